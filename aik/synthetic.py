"""Synthetic iPinYou logs drawn from a known truth, so the best achievable AUC on any split is known.

The generator draws a small world (advertisers, Zipf-distributed domains, regions and their cities, real
user agents of every woothee category, a daily traffic curve), a `TruthModel` of independent random
effects per value (not ordered by frequency), and then bid requests. Each request is won (an impression)
with the win model's probability of its fields and each impression clicked with the click model's;
both read the fields exactly as the feature job will see them: `device_type_id` from the user agent
through `aik.device`, `hour` and `dow` (Spark's dayofweek) from the bid's Timestamp (impressions and
clicks keep the bid's hour and day). The logs are written in the dataset's raw format, one bz2 file
per day and kind (`bid.20130606.txt.bz2`, ...), and the truth beside them: `truth/truth.json` (the
model) and `truth/bid_truth.parquet` (BidID, p_win, p_click, win, click for every request).

Everything is vectorised (numpy draws, Arrow's CSV writer, the bz2 compressor in threads, which
release the GIL). `sample` returns the same requests in memory (the tests' fixtures use it). One module
past 400 lines on purpose: the world's tables, the truth's effects, the draws and the writer share the
same private arrays, and a split would have to publish them.
"""

from __future__ import annotations

import bz2
import dataclasses
import datetime
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aik import storage
from aik.device import NUM_DEVICE_TYPES, device_type_id
from aik.progress import Progress
from aik.schema import BID_LOG_COLUMNS, EVENT_LOG_COLUMNS
from aik.truth import LogitModel, TruthModel, pair_terms, truth_uri

log = logging.getLogger(__name__)

#: Real user agents by the woothee category they parse to (a test checks each one), with weights
#: within the category. `None` is a missing user agent (written as `null`).
USER_AGENTS: dict[str, tuple[tuple[str | None, float], ...]] = {
    "pc": (
        (
            "Mozilla/5.0 (Windows NT 5.1) AppleWebKit/537.1 (KHTML, like Gecko) "
            "Chrome/21.0.1180.89 Safari/537.1",
            8,
        ),
        ("Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1; Trident/4.0)", 6),
        ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)", 5),
        ("Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)", 3),
        ("Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1; Trident/4.0)", 2),
        ("Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.2; WOW64; Trident/6.0)", 1),
        ("Mozilla/5.0 (Windows NT 6.1; WOW64; rv:21.0) Gecko/20100101 Firefox/21.0", 1),
        (
            "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/27.0.1453.116 Safari/537.36",
            2,
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_8_3) AppleWebKit/536.29.13 (KHTML, like Gecko) "
            "Version/6.0.4 Safari/536.29.13",
            1,
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/27.0.1453.93 Safari/537.36",
            0.5,
        ),
        ("Opera/9.80 (Windows NT 6.1; U; zh-cn) Presto/2.10.289 Version/12.02", 0.5),
    ),
    "smartphone": (
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 6_1_3 like Mac OS X) AppleWebKit/536.26 (KHTML, like Gecko) "
            "Version/6.0 Mobile/10B329 Safari/8536.25",
            4,
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 6_1_3 like Mac OS X) AppleWebKit/536.26 (KHTML, like Gecko) "
            "Version/6.0 Mobile/10B329 Safari/8536.25",
            2,
        ),
        (
            "Mozilla/5.0 (Linux; U; Android 4.1.2; zh-cn; GT-I9300 Build/JZO54K) AppleWebKit/534.30 "
            "(KHTML, like Gecko) Version/4.0 Mobile Safari/534.30",
            4,
        ),
        (
            "Mozilla/5.0 (Linux; U; Android 2.3.6; zh-cn; MI-ONE Plus Build/GINGERBREAD) AppleWebKit/533.1 "
            "(KHTML, like Gecko) Version/4.0 Mobile Safari/533.1",
            2,
        ),
        (
            "Mozilla/5.0 (compatible; MSIE 10.0; Windows Phone 8.0; Trident/6.0; IEMobile/10.0; ARM; Touch; "
            "NOKIA; Lumia 920)",
            0.5,
        ),
        (
            "Mozilla/5.0 (BlackBerry; U; BlackBerry 9900; en) AppleWebKit/534.11+ (KHTML, like Gecko) "
            "Version/7.1.0.346 Mobile Safari/534.11+",
            0.5,
        ),
    ),
    "mobilephone": (
        (
            "Mozilla/5.0 (SymbianOS/9.2; U; Series60/3.1 NokiaN95/12.0.013; Profile/MIDP-2.0 "
            "Configuration/CLDC-1.1 ) AppleWebKit/413 (KHTML, like Gecko) Safari/413",
            3,
        ),
        (
            "SoftBank/1.0/930SH/SHJ001/SN123456789012345 Browser/NetFront/3.4 Profile/MIDP-2.0 "
            "Configuration/CLDC-1.1",
            1,
        ),
        ("DoCoMo/2.0 P903i(c100;TB;W24H12)", 1),
        ("KDDI-CA39 UP.Browser/6.2.0.13.1.5 (GUI) MMP/2.0", 1),
        ("Mozilla/3.0(WILLCOM;KYOCERA/WX310K/2;1.2.2.16.000000/0.1/C100) Opera 7.0", 1),
    ),
    "appliance": (
        (
            "Mozilla/5.0 (Nintendo WiiU) AppleWebKit/536.28 (KHTML, like Gecko) NX/3.0.3.12.12 "
            "NintendoBrowser/3.0.0.9561.JP",
            1,
        ),
        ("Mozilla/5.0 (PlayStation Vita 2.10) AppleWebKit/536.26 (KHTML, like Gecko) Silk/3.2", 1),
        ("Mozilla/5.0 (PLAYSTATION 3 4.41) AppleWebKit/531.22.8 (KHTML, like Gecko)", 1),
        ("Opera/9.30 (Nintendo Wii; U; ; 2071; Wii Shop Channel/1.0; en)", 1),
    ),
    "crawler": (
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 2),
        ("Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)", 3),
        ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", 1),
        ("Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)", 1),
    ),
    "misc": (
        ("Wget/1.12 (linux-gnu)", 1),
        ("Java/1.6.0_26", 1),
        ("Windows-RSS-Platform/2.0 (MSIE 9.0; Windows NT 6.1)", 1),
        ("Apache-HttpClient/4.2.3 (java 1.5)", 1),
    ),
    "unknown": (
        (None, 3),
        ("Opera/9.80 (J2ME/MIDP; Opera Mini/4.5.29721/29.3551; U; zh) Presto/2.8.119 Version/11.10", 2),
        ("Mozilla/4.0", 1),
        ("docer", 1),
    ),
}

#: Share of bid requests per device category (PC-heavy, like 2013 display traffic, but with enough
#: of the rare categories for their effects to matter).
CATEGORY_SHARES: dict[str, float] = {
    "pc": 0.78,
    "smartphone": 0.15,
    "mobilephone": 0.015,
    "appliance": 0.01,
    "crawler": 0.01,
    "misc": 0.01,
    "unknown": 0.025,
}

#: Relative bid-request volume per hour of the day (a night trough, an evening peak).
HOURLY_VOLUME: tuple[float, ...] = (
    0.55, 0.38, 0.27, 0.20, 0.17, 0.18, 0.25, 0.40, 0.60, 0.80, 0.95, 1.00,
    0.95, 0.95, 1.00, 1.00, 0.98, 0.95, 0.95, 1.05, 1.15, 1.20, 1.05, 0.80,
)  # fmt: skip

#: Relative volume per Spark dayofweek (1 = Sunday ... 7 = Saturday).
DAILY_VOLUME: dict[int, float] = {1: 0.9, 2: 1.0, 3: 1.0, 4: 1.0, 5: 1.0, 6: 1.0, 7: 0.9}

#: iPinYou's advertiser ids (seasons 2 and 3); more advertisers get made-up four-digit ids.
ADVERTISER_IDS: tuple[str, ...] = ("1458", "3358", "3386", "3427", "3476", "2259", "2261", "2821", "2997")
BIDDING_PRICES: tuple[int, ...] = (227, 238, 241, 294, 300)
AD_SIZES: tuple[tuple[int, int], ...] = (
    (300, 250), (336, 280), (728, 90), (950, 90), (1000, 90), (160, 600), (468, 60), (250, 250), (960, 90),
)  # fmt: skip

_BASE62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
_DOMAIN_CHARS = np.frombuffer(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_", dtype=np.uint8
)


#: `--interactions default`: an advertiser's win rate depends on the site, a device's on the hour, an
#: advertiser's on the device (what campaign targeting and time-of-day device mix do to real traffic).
DEFAULT_INTERACTIONS: tuple[tuple[str, str, float], ...] = (
    ("advertiser", "domain", 0.6),
    ("device_type", "hour", 0.5),
    ("advertiser", "device_type", 0.4),
)


def parse_interactions(text: str | None) -> tuple[tuple[str, str, float], ...]:
    """`none`, `default`, or `term:term=sd,...` (terms of `aik.truth.TERMS`) as SyntheticConfig wants them."""
    if text is None or text.strip().lower() in ("", "none"):
        return ()
    if text.strip().lower() == "default":
        return DEFAULT_INTERACTIONS
    out = []
    for item in text.split(","):
        name, sep, sd = item.strip().partition("=")
        try:
            first, second = pair_terms(name.strip())
            out.append((first, second, float(sd) if sep else 0.5))
        except ValueError as exc:
            raise ValueError(f"interaction {item.strip()!r}: {exc}") from exc
    return tuple(out)


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate; the truth depends on `seed` and the world/effect settings, not on `rows`."""

    rows: int = 200_000
    seed: int = 7
    start: datetime.date = datetime.date(2013, 6, 6)
    days: int = 7
    advertisers: int = 10
    domains: int = 5000
    domain_zipf: float = 1.1
    regions: int = 35
    cities: int = 370
    #: target mean win probability of a bid request and click probability of an impression
    win_rate: float = 0.20
    ctr: float = 0.01
    #: standard deviations of the random effects on the logit
    advertiser_sd: float = 0.7
    domain_sd: float = 0.5
    region_sd: float = 0.3
    city_sd: float = 0.3
    device_sd: float = 0.8
    hour_amplitude: float = 0.35
    dow_sd: float = 0.15
    #: Interaction terms of the win and click models: (term, term, sd) with terms from
    #: `aik.truth.TERMS`, e.g. ("advertiser", "domain", 0.6); none by default (an additive truth).
    interactions: tuple[tuple[str, str, float], ...] = ()
    #: bz2 level: 1 compresses ~30 % faster than 9 and Spark splits either
    compresslevel: int = 1
    #: How fast the truth drifts: day k's effects are cos(k*drift) * the base draw + sin(k*drift) * a
    #: second independent draw (radians per day; 0: one fixed truth). Each term keeps its spread.
    drift: float = 0.0
    #: Day 0 of the world (default `start`): successive calls with later `start`s and the same
    #: world_start and seed produce successive days of one world, each day's truth drifted from it.
    world_start: datetime.date | None = None

    @property
    def origin(self) -> datetime.date:
        """Day 0 of the world."""
        return self.world_start or self.start

    def day_index(self, day: datetime.date) -> int:
        """Days since the world's day 0."""
        return (day - self.origin).days

    def __post_init__(self) -> None:
        if self.rows < 1:
            raise ValueError(f"rows must be positive, got {self.rows}")
        if not 1 <= self.days <= 366:
            raise ValueError(f"days must be within 1..366, got {self.days}")
        if self.cities < self.regions:
            raise ValueError("need at least one city per region")
        if not (0 < self.win_rate < 1 and 0 < self.ctr < 1):
            raise ValueError("win_rate and ctr must be probabilities")
        seen = set()
        for first, second, sd in self.interactions:
            pair_terms(f"{first}:{second}")
            if {first, second} == {"region", "city"}:
                raise ValueError("region:city is not an interaction: every city lies in one region")
            if frozenset((first, second)) in seen:
                raise ValueError(f"interaction {first}:{second} is given twice")
            seen.add(frozenset((first, second)))
            if not sd > 0:
                raise ValueError(f"interaction {first}:{second} needs a positive sd, got {sd}")
        if self.day_index(self.start) < 0:
            raise ValueError(f"start {self.start} is before the world's first day {self.origin}")
        if self.drift < 0:
            raise ValueError(f"drift must be >= 0, got {self.drift}")


@dataclass
class World:
    """The dimension tables: ids, traffic weights and attributes of every value a request can take."""

    advertiser_ids: list[str]
    advertiser_weights: np.ndarray
    advertiser_price: np.ndarray
    advertiser_creatives: np.ndarray  # (advertisers, 4) indices into creative_ids
    creative_ids: list[str]
    keypage_ids: list[str]
    domain_ids: list[str]
    domain_weights: np.ndarray
    domain_exchange: np.ndarray
    domain_url_start: np.ndarray
    domain_url_count: np.ndarray
    url_ids: list[str]
    domain_slot_start: np.ndarray
    domain_slot_count: np.ndarray
    slot_ids: list[str]
    slot_width: np.ndarray
    slot_height: np.ndarray
    slot_visibility: np.ndarray
    slot_format: np.ndarray
    slot_floor: np.ndarray
    region_ids: list[str]
    region_weights: np.ndarray
    city_ids: list[str]
    city_region: np.ndarray
    city_cum: np.ndarray  # per-region cumulative weights, offset by the region's index
    city_weights: np.ndarray  # share of all requests
    user_agents: list[str | None]
    user_agent_weights: np.ndarray
    user_agent_device: np.ndarray
    profile_ids: list[str | None]
    dates: list[datetime.date]
    date_weights: np.ndarray
    date_dow: np.ndarray
    hour_weights: np.ndarray


@dataclass
class Effects:
    """One logit model's effects as arrays indexed like the world's tables (fast), and as a LogitModel."""

    intercept: float
    advertiser: np.ndarray
    domain: np.ndarray
    region: np.ndarray
    city: np.ndarray
    device: np.ndarray  # by device_type_id
    hour: np.ndarray  # by hour 0-23
    dow: np.ndarray  # by Spark dayofweek, index 0 unused
    #: "<term>:<term>" -> effects by (first term's code, second term's code)
    pairs: dict[str, np.ndarray] = field(default_factory=dict)

    def logit(self, rows: Mapping[str, np.ndarray], world: World) -> np.ndarray:
        """The logit of each row, summed in `LogitModel.logit`'s order so both give identical floats."""
        codes = term_codes(rows, world)
        total = self.advertiser[codes["advertiser"]]
        total = total + self.domain[codes["domain"]]
        total = total + self.region[codes["region"]]
        total = total + self.city[codes["city"]]
        total = total + self.device[codes["device_type"]]
        total = total + self.hour[codes["hour"]]
        total = total + self.dow[codes["dow"]]
        for name in sorted(self.pairs):
            first, second = pair_terms(name)
            total = total + self.pairs[name][codes[first], codes[second]]
        return total + self.intercept

    def probability(self, rows: Mapping[str, np.ndarray], world: World) -> np.ndarray:
        """The logistic of `logit`, written as `LogitModel.probability` writes it."""
        return 1.0 / (1.0 + np.exp(-self.logit(rows, world)))

    def model(self, world: World) -> LogitModel:
        """The same model keyed by raw values as strings (the truth file's form)."""
        return LogitModel(
            intercept=float(self.intercept),
            advertiser=dict(zip(world.advertiser_ids, map(float, self.advertiser), strict=True)),
            domain=dict(zip(world.domain_ids, map(float, self.domain), strict=True)),
            region=dict(zip(world.region_ids, map(float, self.region), strict=True)),
            city=dict(zip(world.city_ids, map(float, self.city), strict=True)),
            device_type={str(d): float(self.device[d]) for d in range(NUM_DEVICE_TYPES)},
            hour={str(h): float(self.hour[h]) for h in range(24)},
            dow={str(d): float(self.dow[d]) for d in range(1, 8)},
            pairs={
                name: {
                    f"{a}|{b}": float(table[i, j])
                    for i, a in enumerate(term_values(world, pair_terms(name)[0]))
                    for j, b in enumerate(term_values(world, pair_terms(name)[1]))
                    if a is not None and b is not None
                }
                for name, table in self.pairs.items()
            },
        )


def term_codes(rows: Mapping[str, np.ndarray], world: World) -> dict[str, np.ndarray]:
    """Each truth term's code per row: an index into the term's effect array (`term_values` order)."""
    return {
        "advertiser": rows["advertiser"],
        "domain": rows["domain"],
        "region": world.city_region[rows["city"]],
        "city": rows["city"],
        "device_type": world.user_agent_device[rows["user_agent"]],
        "hour": rows["hour"],
        "dow": world.date_dow[rows["date"]],
    }


def term_values(world: World, term: str) -> list[str | None]:
    """The raw value (as the truth file keys it) of each code of a term; None for an unused code."""
    fixed: dict[str, list[str | None]] = {
        "device_type": [str(d) for d in range(NUM_DEVICE_TYPES)],
        "hour": [str(h) for h in range(24)],
        "dow": [None, *(str(d) for d in range(1, 8))],
    }
    if term in fixed:
        return fixed[term]
    ids = {"advertiser": world.advertiser_ids, "domain": world.domain_ids, "region": world.region_ids}
    return list(ids.get(term, world.city_ids))


def term_weights(world: World, term: str) -> np.ndarray:
    """Each code's share of bid requests (what a term's strength is measured over)."""
    if term == "device_type":
        return np.bincount(
            world.user_agent_device, weights=world.user_agent_weights, minlength=NUM_DEVICE_TYPES
        )
    if term == "dow":
        return np.bincount(world.date_dow, weights=world.date_weights, minlength=8)
    return {
        "advertiser": world.advertiser_weights,
        "domain": world.domain_weights,
        "region": world.region_weights,
        "city": world.city_weights,
        "hour": world.hour_weights,
    }[term]


def interaction(rng: np.random.Generator, first: np.ndarray, second: np.ndarray, sd: float) -> np.ndarray:
    """A pure interaction: random effects per pair of values with every row and column mean removed.

    Means are weighted by traffic (the two terms are drawn independently, so a pair's share is the
    product of its values' shares); what remains no sum of per-value effects can express, and its sd
    over requests is `sd`.
    """
    effects = rng.normal(0, 1, (len(first), len(second)))
    w1, w2 = first / first.sum(), second / second.sum()
    rows = effects @ w2
    columns = w1 @ effects
    effects = effects - rows[:, None] - columns[None, :] + float(w1 @ rows)
    spread = float(np.sqrt(w1 @ (effects**2) @ w2))
    return effects * (sd / spread) if spread > 0 else effects


def _random_strings(rng: np.random.Generator, count: int, length: int, alphabet: np.ndarray) -> np.ndarray:
    """`count` random strings of `length` characters as a numpy bytes array (vectorised)."""
    codes = rng.integers(0, len(alphabet), size=(count, length), dtype=np.uint8)
    return np.ascontiguousarray(alphabet[codes]).view(f"S{length}").ravel()


def _unique_strings(rng: np.random.Generator, count: int, length: int, alphabet: np.ndarray) -> list[str]:
    """`count` distinct random strings (collisions are redrawn)."""
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        for s in _random_strings(rng, count - len(out), length, alphabet):
            text = s.decode()
            if text not in seen:
                seen.add(text)
                out.append(text)
    return out


def _hex_ids(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` 32-character hex ids (like iPinYou's BidID, URL and creative hashes) as bytes."""
    return np.frombuffer(rng.bytes(16 * count).hex().encode(), dtype="S32")


def _normalised(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum()


def build_world(config: SyntheticConfig, rng: np.random.Generator) -> World:
    """Draw the dimension tables of a synthetic dataset."""
    n_adv = config.advertisers
    adv_ids = list(ADVERTISER_IDS[:n_adv])
    extra = sorted(
        set(rng.choice(np.arange(1000, 9999), size=n_adv * 2, replace=False).astype(str)) - set(adv_ids)
    )
    adv_ids += extra[: n_adv - len(adv_ids)]
    creatives = [s.decode() for s in _hex_ids(rng, n_adv * 4)]
    keypages = [s.decode() for s in _hex_ids(rng, n_adv)]

    # Domains: Zipf frequencies over a random order, so an id's frequency says nothing of its effect.
    n_dom = config.domains
    lengths = rng.integers(15, 21, size=n_dom)
    domain_ids: list[str] = []
    for length in sorted(set(lengths.tolist())):
        domain_ids += _unique_strings(rng, int((lengths == length).sum()), length, _DOMAIN_CHARS)
    domain_ids = [domain_ids[i] for i in rng.permutation(n_dom)]
    ranks = rng.permutation(n_dom) + 1
    domain_weights = _normalised(1.0 / ranks.astype(np.float64) ** config.domain_zipf)
    url_count = rng.integers(1, 6, size=n_dom)
    slot_count = rng.integers(1, 4, size=n_dom)
    exchange = rng.choice(np.array([1, 2, 3]), size=n_dom, p=[0.45, 0.35, 0.20])
    url_ids = [s.decode() for s in _hex_ids(rng, int(url_count.sum()))]
    n_slots = int(slot_count.sum())
    slot_exchange = np.repeat(exchange, slot_count)
    numbers = rng.integers(10_000_000, 99_999_999, size=(n_slots, 3))
    slot_ids = [
        f"mm_{a}_{b // 10}_{c}"
        if ex == 1
        else str(a * 41 + c % 97)
        if ex == 2
        else f"Slot_{b % 997}_{c % 89}"
        for ex, (a, b, c) in zip(slot_exchange.tolist(), numbers.tolist(), strict=True)
    ]
    sizes = np.array(AD_SIZES)[rng.integers(0, len(AD_SIZES), size=n_slots)]
    floors = np.where(rng.random(n_slots) < 0.5, 0, rng.integers(1, 120, size=n_slots))

    # Regions with skewed traffic; each owns a contiguous run of city ids, as in iPinYou's tables.
    n_reg, n_city = config.regions, config.cities
    region_numbers = np.sort(rng.choice(np.arange(1, 400), size=n_reg, replace=False))
    per_region = 1 + rng.multinomial(n_city - n_reg, _normalised(rng.lognormal(0, 0.6, n_reg)))
    city_region = np.repeat(np.arange(n_reg), per_region)
    city_numbers = np.sort(rng.choice(np.arange(1, 1000), size=n_city, replace=False))
    city_weights = rng.lognormal(0, 1.0, n_city)
    city_cum = np.empty(n_city)
    start = 0
    for r, count in enumerate(per_region.tolist()):
        w = city_weights[start : start + count]
        city_cum[start : start + count] = r + np.cumsum(w) / w.sum()
        start += count
    city_cum[np.cumsum(per_region) - 1] = np.arange(n_reg) + 1.0  # exact segment ends
    city_share = city_weights / np.bincount(city_region, weights=city_weights)[city_region]
    region_weights = _normalised(rng.lognormal(0, 1.0, n_reg))

    agents: list[str | None] = []
    agent_weights: list[float] = []
    for category, share in CATEGORY_SHARES.items():
        entries = USER_AGENTS[category]
        category_weight = sum(weight for _, weight in entries)
        for ua, weight in entries:
            agents.append(ua)
            agent_weights.append(share * weight / category_weight)

    profile_tags = np.sort(rng.choice(np.arange(10_000, 16_800), size=48, replace=False))
    profiles: list[str | None] = [None]
    for _ in range(499):
        tags = rng.choice(profile_tags, size=int(rng.integers(1, 9)), replace=False)
        profiles.append(",".join(map(str, tags.tolist())))

    dates = [config.start + datetime.timedelta(days=i) for i in range(config.days)]
    dow = np.array([d.isoweekday() % 7 + 1 for d in dates])  # Spark dayofweek: 1 = Sunday
    return World(
        advertiser_ids=adv_ids,
        advertiser_weights=rng.dirichlet(np.full(n_adv, 2.0)),
        advertiser_price=rng.choice(np.array(BIDDING_PRICES), size=n_adv),
        advertiser_creatives=np.arange(n_adv * 4).reshape(n_adv, 4),
        creative_ids=creatives,
        keypage_ids=keypages,
        domain_ids=domain_ids,
        domain_weights=domain_weights,
        domain_exchange=exchange,
        domain_url_start=np.cumsum(url_count) - url_count,
        domain_url_count=url_count,
        url_ids=url_ids,
        domain_slot_start=np.cumsum(slot_count) - slot_count,
        domain_slot_count=slot_count,
        slot_ids=slot_ids,
        slot_width=sizes[:, 0],
        slot_height=sizes[:, 1],
        slot_visibility=rng.choice(np.array([0, 1, 2, 255]), size=n_slots, p=[0.35, 0.3, 0.25, 0.1]),
        slot_format=rng.choice(np.array([0, 1, 5]), size=n_slots, p=[0.6, 0.3, 0.1]),
        slot_floor=floors,
        region_ids=[str(x) for x in region_numbers.tolist()],
        region_weights=region_weights,
        city_ids=[str(x) for x in city_numbers.tolist()],
        city_region=city_region,
        city_cum=city_cum,
        city_weights=region_weights[city_region] * city_share,
        user_agents=agents,
        user_agent_weights=_normalised(np.array(agent_weights)),
        user_agent_device=np.array([device_type_id(ua) for ua in agents]),
        profile_ids=profiles,
        dates=dates,
        date_weights=_normalised(np.array([DAILY_VOLUME[int(d)] for d in dow])),
        date_dow=dow,
        hour_weights=_normalised(np.array(HOURLY_VOLUME)),
    )


def draw_rows(world: World, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw `n` bid requests as code arrays into the world's tables (the fields the truth reads)."""
    region = rng.choice(len(world.region_ids), size=n, p=world.region_weights)
    city = np.searchsorted(world.city_cum, region + rng.random(n), side="right")
    city = np.minimum(city, len(world.city_ids) - 1)
    return {
        "date": rng.choice(len(world.dates), size=n, p=world.date_weights),
        "hour": rng.choice(24, size=n, p=world.hour_weights),
        "advertiser": rng.choice(len(world.advertiser_ids), size=n, p=world.advertiser_weights),
        "domain": rng.choice(len(world.domain_ids), size=n, p=world.domain_weights),
        "city": city,
        "user_agent": rng.choice(len(world.user_agents), size=n, p=world.user_agent_weights),
    }


def standardised(effects: np.ndarray, weights: np.ndarray, sd: float) -> np.ndarray:
    """Effects centred and scaled so that, over requests (`weights` = traffic shares), their sd is `sd`.

    A term's strength is its spread across requests: with few values (10 advertisers, 7 device types,
    PC-heavy traffic) raw draws would make the oracle AUC swing from seed to seed.
    """
    mean = float(np.sum(weights * effects))
    spread = float(np.sqrt(np.sum(weights * (effects - mean) ** 2)))
    return (effects - mean) * (sd / spread) if spread > 0 else effects - mean


def draw_effects(config: SyntheticConfig, world: World, rng: np.random.Generator, phase: float) -> Effects:
    """Independent random effects per value; a smooth daily curve (peak at `phase`) for the hour."""
    hours = np.arange(24)
    device_weights = np.bincount(
        world.user_agent_device, weights=world.user_agent_weights, minlength=NUM_DEVICE_TYPES
    )
    dow = np.zeros(8)
    dow[1:] = rng.normal(0, config.dow_sd, 7)
    return Effects(
        intercept=0.0,
        advertiser=standardised(
            rng.normal(0, 1, len(world.advertiser_ids)), world.advertiser_weights, config.advertiser_sd
        ),
        domain=standardised(rng.normal(0, 1, len(world.domain_ids)), world.domain_weights, config.domain_sd),
        region=standardised(rng.normal(0, 1, len(world.region_ids)), world.region_weights, config.region_sd),
        city=standardised(rng.normal(0, 1, len(world.city_ids)), world.city_weights, config.city_sd),
        device=standardised(rng.normal(0, 1, NUM_DEVICE_TYPES), device_weights, config.device_sd),
        hour=config.hour_amplitude * np.cos(2 * np.pi * (hours - phase) / 24) + rng.normal(0, 0.05, 24),
        dow=dow,
        pairs={
            f"{first}:{second}": interaction(rng, term_weights(world, first), term_weights(world, second), sd)
            for first, second, sd in config.interactions
        },
    )


def calibrate_intercept(logit: np.ndarray, target: float) -> float:
    """The intercept that makes the mean probability over `logit` (intercept 0) equal `target`."""
    low, high = -30.0, 30.0
    for _ in range(100):  # bisection: the mean is monotone in the intercept
        mid = (low + high) / 2
        if np.mean(1.0 / (1.0 + np.exp(-(logit + mid)))) < target:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def draw_truth(config: SyntheticConfig, world: World, rng: np.random.Generator) -> tuple[Effects, Effects]:
    """Win and click effects; intercepts calibrated on a fixed-size sample, so `rows` does not change them."""
    win = draw_effects(config, world, rng, phase=14.0)
    click = draw_effects(config, world, rng, phase=21.0)
    sample = draw_rows(world, 200_000, rng)
    win.intercept = calibrate_intercept(win.logit(sample, world), config.win_rate)
    p_win = win.probability(sample, world)
    # The click rate is over impressions, so calibrate on the sample weighted by winning.
    click_logit = click.logit(sample, world)
    low, high = -30.0, 30.0
    for _ in range(100):
        mid = (low + high) / 2
        rate = np.sum(p_win / (1.0 + np.exp(-(click_logit + mid)))) / np.sum(p_win)
        low, high = (mid, high) if rate < config.ctr else (low, mid)
    click.intercept = (low + high) / 2
    return win, click


def rotated(base: Effects, other: Effects, angle: float) -> Effects:
    """cos(angle) * base + sin(angle) * other, term by term (independent draws: each term keeps its sd)."""
    c, s = float(np.cos(angle)), float(np.sin(angle))
    return Effects(
        intercept=base.intercept,
        **{
            name: c * getattr(base, name) + s * getattr(other, name)
            for name in ("advertiser", "domain", "region", "city", "device", "hour", "dow")
        },
        pairs={name: c * effects + s * other.pairs[name] for name, effects in base.pairs.items()},
    )


def daily_truths(config: SyntheticConfig, world: World) -> list[tuple[Effects, Effects]]:
    """(win, click) effects of each of the world's dates: the fixed truth, or its drifted form per day."""
    if config.drift == 0:
        win, click = draw_truth(config, world, np.random.default_rng([config.seed, 1]))
        return [(win, click)] * len(world.dates)
    # Calibrated on the world's first week whatever days are made now, so a day's truth is the same
    # whether it is generated alone or with others (the dates draw no randomness: same tables).
    week = build_world(
        dataclasses.replace(config, start=config.origin, days=7), np.random.default_rng([config.seed, 0])
    )
    win, click = draw_truth(config, week, np.random.default_rng([config.seed, 1]))
    # the second draw the truth drifts towards, and a fixed sample to re-calibrate each day's intercepts
    win2, click2 = draw_truth(config, week, np.random.default_rng([config.seed, 3]))
    sample = draw_rows(week, 200_000, np.random.default_rng([config.seed, 4]))
    out = []
    for day in world.dates:
        angle = config.drift * config.day_index(day)
        w, c = rotated(win, win2, angle), rotated(click, click2, angle)
        w.intercept = calibrate_intercept(w.logit(sample, week) - w.intercept, config.win_rate)
        c.intercept = click.intercept
        out.append((w, c))
    return out


def rank_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula, ties sharing their average rank."""
    labels = np.asarray(labels).astype(bool)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_rank = ends - (counts - 1) / 2.0  # 1-based average rank of each distinct score
    rank_sum = float(average_rank[inverse][labels].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


@dataclass
class SyntheticReport:
    """What was generated: counts, realised rates, the oracle AUCs and the files."""

    rows: int
    impressions: int
    clicks: int
    oracle_auc_win: float
    oracle_auc_click: float
    files: list[str] = field(default_factory=list)
    truth_uri: str = ""
    bid_truth_uri: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the ingest report)."""
        return {
            "rows": self.rows,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "win_rate": self.impressions / self.rows,
            "ctr": self.clicks / self.impressions if self.impressions else None,
            "oracle_auc_win": self.oracle_auc_win,
            "oracle_auc_click": self.oracle_auc_click,
            "files": self.files,
            "truth_uri": self.truth_uri,
            "bid_truth_uri": self.bid_truth_uri,
            "seconds": self.seconds,
        }


def _strings(codes: np.ndarray, pool: Sequence[str | None]) -> Any:
    """An Arrow string column of `pool[codes]` (None -> `null`), built without a Python loop."""
    import pyarrow as pa

    dictionary = pa.array(["null" if s is None else s for s in pool], pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), dictionary).dictionary_decode()


def _numbers(values: np.ndarray) -> Any:
    import pyarrow as pa

    return pa.array(values.astype(np.int64)).cast(pa.string())


def _timestamps(world: World, date: np.ndarray, ms_of_hour: np.ndarray, hour: np.ndarray) -> np.ndarray:
    """yyyyMMddHHmmssSSS as int64 (17 digits fit)."""
    ymd = np.array([d.year * 10_000 + d.month * 100 + d.day for d in world.dates], dtype=np.int64)[date]
    minute, rest = np.divmod(ms_of_hour, 60_000)
    return ymd * 10**9 + hour * 10**7 + minute * 10**5 + rest


class _Generated:
    """Every column of the bid requests (sorted by time), plus win/click outcomes and impression times."""

    def __init__(
        self, config: SyntheticConfig, world: World, truths: Sequence[tuple[Effects, Effects]]
    ) -> None:
        offset = config.day_index(config.start)
        # a later day of the same world draws other requests (and BidIDs) than the days before it
        rng = np.random.default_rng([config.seed, 2] if offset == 0 else [config.seed, 2, offset])
        n = config.rows
        rows = draw_rows(world, n, rng)
        ms_of_hour = rng.integers(0, 3_600_000, size=n)
        stamp = _timestamps(world, rows["date"], ms_of_hour, rows["hour"])
        order = np.argsort(stamp, kind="stable")
        self.rows = {k: v[order] for k, v in rows.items()}
        self.ms_of_hour = ms_of_hour[order]
        self.timestamp = stamp[order]
        self.p_win = np.empty(n)
        self.p_click = np.empty(n)
        for d, (win, click) in enumerate(truths):
            on_day = self.rows["date"] == d
            rows_of_day = {k: v[on_day] for k, v in self.rows.items()}
            self.p_win[on_day] = win.probability(rows_of_day, world)
            self.p_click[on_day] = click.probability(rows_of_day, world)
        self.win = rng.random(n) < self.p_win
        self.click = self.win & (rng.random(n) < self.p_click)
        self.bid_id = _hex_ids(rng, n)
        users = max(1000, n // 3)
        user_pool = _random_strings(rng, users, 14, _BASE62)
        self.user = np.char.add(b"V", user_pool)[rng.integers(0, users, size=n)]
        self.user_missing = rng.random(n) < 0.03
        self.ip = rng.integers(0, 256, size=(n, 3))
        self.ip[:, 0] = rng.choice(np.array([27, 36, 58, 60, 61, 110, 113, 114, 115, 116, 117, 118, 119, 120,
                                             121, 122, 123, 124, 125, 171, 175, 180, 182, 183, 218, 219, 220,
                                             221, 222, 223]), size=n)  # fmt: skip
        domain = self.rows["domain"]
        self.url = (
            world.domain_url_start[domain] + rng.integers(0, 1 << 30, size=n) % world.domain_url_count[domain]
        )
        self.slot = (
            world.domain_slot_start[domain]
            + rng.integers(0, 1 << 30, size=n) % world.domain_slot_count[domain]
        )
        self.creative = world.advertiser_creatives[self.rows["advertiser"], rng.integers(0, 4, size=n)]
        self.profile = np.where(rng.random(n) < 0.2, 0, rng.integers(1, len(world.profile_ids), size=n))
        bid_price = world.advertiser_price[self.rows["advertiser"]]
        floor = np.minimum(world.slot_floor[self.slot], bid_price - 1)
        self.paying = floor + np.floor((bid_price - floor) * rng.beta(2.0, 3.0, size=n)).astype(np.int64)
        # Impressions and clicks follow the bid within the same hour (features come from the bid's time).
        self.imp_ms = np.minimum(self.ms_of_hour + rng.integers(20, 800, size=n), 3_599_999)
        self.clk_ms = np.minimum(self.imp_ms + rng.integers(1_000, 600_000, size=n), 3_599_999)

    def table(self, world: World, index: np.ndarray, kind: str) -> Any:
        """The Arrow table of one log file's rows (`index` into the sorted requests), in file column order."""
        import pyarrow as pa
        import pyarrow.compute as pc

        r = {k: v[index] for k, v in self.rows.items()}
        slot = self.slot[index]
        user = pa.array(self.user[index]).cast(pa.string())
        user = pc.if_else(pa.array(self.user_missing[index]), pa.scalar("null"), user)
        ip = self.ip[index]
        ms = {"bid": self.ms_of_hour, "imp": self.imp_ms, "clk": self.clk_ms}[kind][index]
        columns: dict[str, Any] = {
            "BidID": pa.array(self.bid_id[index]).cast(pa.string()),
            "Timestamp": _numbers(_timestamps(world, r["date"], ms, r["hour"])),
            "LogType": _strings(
                np.zeros(index.size, dtype=np.int32), [{"imp": "1", "clk": "2"}.get(kind, "")]
            ),
            "iPinYouID": user,
            "UserAgent": _strings(r["user_agent"], world.user_agents),
            "IP": pc.binary_join_element_wise(
                *(pa.array(ip[:, i]).cast(pa.string()) for i in range(3)), pa.scalar("*"), pa.scalar(".")
            ),
            "RegionID": _strings(world.city_region[r["city"]], world.region_ids),
            "CityID": _strings(r["city"], world.city_ids),
            "AdExchange": _numbers(world.domain_exchange[r["domain"]]),
            "Domain": _strings(r["domain"], world.domain_ids),
            "URL": _strings(self.url[index], world.url_ids),
            "AnonymousURLID": _strings(np.zeros(index.size, dtype=np.int32), [None]),
            "AdSlotID": _strings(slot, world.slot_ids),
            "AdSlotWidth": _numbers(world.slot_width[slot]),
            "AdSlotHeight": _numbers(world.slot_height[slot]),
            "AdSlotVisibility": _numbers(world.slot_visibility[slot]),
            "AdSlotFormat": _numbers(world.slot_format[slot]),
            "AdSlotFloorPrice": _numbers(world.slot_floor[slot]),
            "CreativeID": _strings(self.creative[index], world.creative_ids),
            "BiddingPrice": _numbers(world.advertiser_price[r["advertiser"]]),
            # Season-2 quirk kept: click rows carry PayingPrice 0, the price is on the impression.
            "PayingPrice": _numbers(self.paying[index] if kind == "imp" else np.zeros(index.size)),
            "KeyPageURL": _strings(r["advertiser"], world.keypage_ids),
            "AdvertiserID": _strings(r["advertiser"], world.advertiser_ids),
            "UserProfileIDs": _strings(self.profile[index], world.profile_ids),
        }
        names = BID_LOG_COLUMNS if kind == "bid" else EVENT_LOG_COLUMNS
        return pa.table({name: columns[name] for name in names})


def write_log(uri: str, table: Any, compresslevel: int = 1) -> int:
    """Write an Arrow table as a tab-separated, headerless, bz2-compressed log; returns its size in bytes."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    options = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    compressor = bz2.BZ2Compressor(compresslevel)
    size = 0
    with storage.open_uri(uri, "wb") as f:
        for batch in table.to_batches(max_chunksize=65_536):
            sink = pa.BufferOutputStream()
            pacsv.write_csv(batch, sink, options)
            data = compressor.compress(sink.getvalue())  # releases the GIL: files compress in parallel
            f.write(data)
            size += len(data)
        data = compressor.flush()
        f.write(data)
        size += len(data)
    return size


def _write_file(
    data: _Generated, world: World, uri: str, index: np.ndarray, kind: str, compresslevel: int
) -> int:
    return write_log(uri, data.table(world, index, kind), compresslevel)


def file_name(kind: str, day: datetime.date) -> str:
    """The dataset's file name for one day of one kind of log."""
    return f"{kind}.{day:%Y%m%d}.txt.bz2"


def daily_truth_uri(raw_data: str, day: datetime.date) -> str:
    """Where the truth of one day of a drifting world is kept."""
    return storage.join(raw_data, "truth", f"truth.{day:%Y%m%d}.json")


def generate(raw_data: str, config: SyntheticConfig) -> SyntheticReport:
    """Generate logs and truth under `raw_data` (`bid/`, `imp/`, `clk/`, `truth/`)."""
    import time

    import pyarrow as pa
    import pyarrow.parquet as pq

    start = time.monotonic()
    world = build_world(config, np.random.default_rng([config.seed, 0]))
    truths = daily_truths(config, world)
    # truth.json: the truth of the last day generated (the test day of a temporal split)
    win, click = truths[-1]
    truth = TruthModel(win=win.model(world), click=click.model(world), seed=config.seed)
    data = _Generated(config, world, truths)
    log.info(
        "synthetic: drew %s bid requests, %s impressions, %s clicks in %.1f s",
        f"{config.rows:,}",
        f"{int(data.win.sum()):,}",
        f"{int(data.click.sum()):,}",
        time.monotonic() - start,
    )

    jobs: list[tuple[str, np.ndarray, str]] = []
    all_rows = np.arange(config.rows)
    imp_rows = np.flatnonzero(data.win)
    clk_rows = np.flatnonzero(data.click)
    for d, day in enumerate(world.dates):
        for kind, rows in (("bid", all_rows), ("imp", imp_rows), ("clk", clk_rows)):
            index = rows[data.rows["date"][rows] == d]
            if kind != "bid":  # event logs are in their own time order
                ms = data.imp_ms if kind == "imp" else data.clk_ms
                index = index[np.argsort(data.rows["hour"][index] * 3_600_000 + ms[index], kind="stable")]
            jobs.append((storage.join(raw_data, kind, file_name(kind, day)), index, kind))

    total = sum(index.size for _, index, _ in jobs)
    files = []
    # Threads, not processes: Arrow's CSV writer and bz2 release the GIL, and the columns are shared.
    with (
        Progress("synthetic logs", total=total, unit="lines") as progress,
        ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool,
    ):
        futures = {
            pool.submit(_write_file, data, world, uri, index, kind, config.compresslevel): (uri, index)
            for uri, index, kind in jobs
        }
        for future in as_completed(futures):
            uri, index = futures[future]
            future.result()
            files.append(uri)
            progress.update(int(index.size))

    t_uri = truth_uri(raw_data)
    truth.save(t_uri)
    if config.drift:
        for day, (w, c) in zip(world.dates, truths, strict=True):
            TruthModel(win=w.model(world), click=c.model(world), seed=config.seed).save(
                daily_truth_uri(raw_data, day)
            )
    # a later day appended to a world keeps the earlier days' truth files beside its own
    name = (
        "bid_truth.parquet"
        if config.day_index(config.start) == 0
        else f"bid_truth.{config.start:%Y%m%d}.parquet"
    )
    bid_truth_uri = storage.join(raw_data, "truth", name)
    table = pa.table(
        {
            "BidID": pa.array(data.bid_id).cast(pa.string()),
            "p_win": data.p_win,
            "p_click": data.p_click,
            "win": data.win,
            "click": data.click,
        }
    )
    with storage.open_uri(bid_truth_uri, "wb") as f:
        pq.write_table(table, f)
    imp = data.win
    return SyntheticReport(
        rows=config.rows,
        impressions=int(imp.sum()),
        clicks=int(data.click.sum()),
        oracle_auc_win=rank_auc(data.win, data.p_win),
        oracle_auc_click=rank_auc(data.click[imp], data.p_click[imp]),
        files=sorted(files),
        truth_uri=t_uri,
        bid_truth_uri=bid_truth_uri,
        seconds=time.monotonic() - start,
    )


@dataclass
class Sample:
    """Synthetic bid requests in memory, as `generate` draws them for its logs (same config, same rows).

    `columns` holds each request's fields as the feature job reads them from the joined logs (raw
    values; `device_type_id` from the user agent, `dow` as Spark's dayofweek), `p_win` its win
    probability under the truth and `win` whether it was won (an impression). Tests and benchmarks
    build their artifacts from it instead of drawing data of their own.
    """

    columns: dict[str, np.ndarray]
    p_win: np.ndarray
    win: np.ndarray
    truth: TruthModel


def sample(config: SyntheticConfig) -> Sample:
    """Draw `config.rows` requests of the world `config` describes, with their truth and outcomes."""
    world = build_world(config, np.random.default_rng([config.seed, 0]))
    truths = daily_truths(config, world)
    win, click = truths[-1]  # as generate()'s truth.json: the last day's
    data = _Generated(config, world, truths)
    r = data.rows

    def values(codes: np.ndarray, pool: Sequence[str | None]) -> np.ndarray:
        return np.array([None if v is None else str(v) for v in pool], dtype=object)[codes]

    columns = {
        "BidID": data.bid_id.astype(str).astype(object),
        "AdvertiserID": values(r["advertiser"], world.advertiser_ids),
        "Domain": values(r["domain"], world.domain_ids),
        "RegionID": values(world.city_region[r["city"]], world.region_ids),
        "CityID": values(r["city"], world.city_ids),
        "UserAgent": values(r["user_agent"], world.user_agents),
        "device_type_id": world.user_agent_device[r["user_agent"]].astype(np.int64),
        "hour": r["hour"].astype(np.int64),
        "dow": world.date_dow[r["date"]].astype(np.int64),
        "BiddingPrice": world.advertiser_price[r["advertiser"]].astype(np.int64),
        "PayingPrice": data.paying.astype(np.int64),
    }
    truth = TruthModel(win=win.model(world), click=click.model(world), seed=config.seed)
    return Sample(columns=columns, p_win=data.p_win, win=data.win, truth=truth)
