"""Experiments: the champion and challenger releases one server holds, and which arm answers a request.

An experiment is one parameter, `/aik/experiment` (the store of the live pointer, so the ECS tasks and
a local server read the same): JSON `{"name", "salt", "arms": [{"arm", "release", "share"}, ...]}`.
A request's arm is a stable hash of the salt and its BidID mapped to [0, 1) against the arms'
cumulative shares: the same BidID always gets the same arm, and a new salt reshuffles. No parameter,
or a stopped experiment (`"stopped": true`), means the champion only, which is the live release.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import secrets
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aik import releases as R
from aik import storage
from aik.errors import AikError, ParameterNotFound
from aik.params import EXPERIMENT, ParameterStore

CHAMPION = "champion"
CHALLENGER = "challenger"
#: How far the shares' sum may be from 1 (decimal shares such as 0.9 + 0.1 are not exact in binary).
SHARE_TOLERANCE = 1e-9
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_SCALE = float(2**64)


class ExperimentError(AikError):
    """An experiment parameter or request that cannot be used; the message says what is wrong."""


@dataclass(frozen=True)
class Arm:
    """One arm: its name (also a metric tag), the release id that answers it, and its share of traffic."""

    arm: str
    release: str
    share: float


@dataclass(frozen=True)
class Experiment:
    """A validated experiment; `bounds` are the arms' cumulative upper shares (the last one is 1)."""

    name: str
    salt: str
    arms: tuple[Arm, ...]
    stopped: bool = False
    bounds: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check(self)
        cumulative, total = [], 0.0
        for arm in self.arms:
            total += arm.share
            cumulative.append(total)
        cumulative[-1] = 1.0  # rounding never leaves a sliver of [0, 1) without an arm
        object.__setattr__(self, "bounds", tuple(cumulative))

    def arm(self, name: str) -> Arm:
        """The arm called `name` (ExperimentError when there is none)."""
        for arm in self.arms:
            if arm.arm == name:
                return arm
        raise ExperimentError(f"experiment {self.name} has no arm {name!r}")

    @property
    def champion(self) -> Arm:
        """The champion arm."""
        return self.arm(CHAMPION)

    def to_dict(self) -> dict[str, Any]:
        """The parameter's document (`stopped` only when true)."""
        doc: dict[str, Any] = {"name": self.name, "salt": self.salt, "arms": [vars(a) for a in self.arms]}
        if self.stopped:
            doc["stopped"] = True
        return doc

    def to_json(self) -> str:
        """The parameter's value."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


def check(experiment: Experiment) -> None:
    """ExperimentError unless the names are valid and unique, one arm is the champion, shares sum to 1."""
    if not _NAME.match(experiment.name):
        raise ExperimentError(
            f"experiment name {experiment.name!r} must be 1-63 letters, digits, '.', '_' or '-'"
        )
    if not experiment.salt:
        raise ExperimentError(f"experiment {experiment.name} has an empty salt")
    if not experiment.arms:
        raise ExperimentError(f"experiment {experiment.name} has no arms")
    names = [a.arm for a in experiment.arms]
    for arm in experiment.arms:
        if not _NAME.match(arm.arm):
            raise ExperimentError(f"arm name {arm.arm!r} must be 1-63 letters, digits, '.', '_' or '-'")
        if not arm.release:
            raise ExperimentError(f"arm {arm.arm} names no release")
        if not (isinstance(arm.share, float | int) and math.isfinite(arm.share) and 0 < arm.share <= 1):
            raise ExperimentError(f"arm {arm.arm} has share {arm.share!r}; a share is in (0, 1]")
    if len(set(names)) != len(names):
        raise ExperimentError(f"experiment {experiment.name} names an arm twice: {', '.join(names)}")
    if CHAMPION not in names:
        raise ExperimentError(f"experiment {experiment.name} has no {CHAMPION!r} arm")
    total = math.fsum(a.share for a in experiment.arms)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise ExperimentError(f"experiment {experiment.name}: the shares sum to {total:g}, not 1")


def parse(value: str | Mapping[str, Any], where: str = EXPERIMENT) -> Experiment:
    """An experiment from the parameter's JSON (ExperimentError naming `where` when it is not one)."""
    try:
        doc = json.loads(value) if isinstance(value, str) else value
        if not isinstance(doc, Mapping):
            raise TypeError("not a JSON object")
        arms = tuple(
            Arm(arm=str(a["arm"]), release=str(a["release"]), share=float(a["share"])) for a in doc["arms"]
        )
        return Experiment(
            name=str(doc["name"]), salt=str(doc["salt"]), arms=arms, stopped=bool(doc.get("stopped", False))
        )
    except ExperimentError as exc:
        raise ExperimentError(f"{where}: {exc}") from exc
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ExperimentError(f"{where} is not an experiment (missing or bad {exc})") from exc


def load(store: ParameterStore) -> Experiment | None:
    """The experiment parameter as stored (stopped or not), or None when there is none."""
    try:
        value = store.get(EXPERIMENT)
    except ParameterNotFound:
        return None
    return parse(value)


def active(store: ParameterStore) -> Experiment | None:
    """The running experiment, or None (no parameter, or stopped): then the live release answers all."""
    experiment = load(store)
    return None if experiment is None or experiment.stopped else experiment


def unit(bid_id: str, salt: str) -> float:
    """The request's point in [0, 1): blake2b of salt and BidID (stable across processes and versions)."""
    digest = hashlib.blake2b(f"{salt}\x00{bid_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def assign(bid_id: str, experiment: Experiment | None) -> str:
    """The arm that answers `bid_id`: the champion without a running experiment, else by the salted hash."""
    if experiment is None or experiment.stopped:
        return CHAMPION
    found = bisect_right(experiment.bounds, unit(bid_id, experiment.salt))
    return experiment.arms[min(found, len(experiment.arms) - 1)].arm  # as `arm_indices`


def assign_many(bid_ids: Iterable[str], experiment: Experiment | None) -> list[str]:
    """`assign` for each BidID, in order."""
    return [assign(b, experiment) for b in bid_ids]


def units_of_keys(keys: Iterable[bytes], salt: str) -> np.ndarray:
    """`unit` of many BidIDs given as their UTF-8 bytes, as a float64 array: one blake2b per key (hashlib
    has no batch call; the salt's prefix is hashed once and copied), the rest in numpy."""
    digests: list[bytes] = []
    append, copy = digests.append, _prefix_hash(salt).copy
    for key in keys:
        h = copy()
        h.update(key)
        append(h.digest())
    return _units_of_digests(digests)


def units_of_slices(data: bytes, bounds: Sequence[int], salt: str) -> np.ndarray:
    """`units_of_keys` of the BidIDs data[bounds[i]:bounds[i + 1]] (one buffer, as a columnar call sends
    them), without a generator between the slices and the hash."""
    digests: list[bytes] = []
    append, copy = digests.append, _prefix_hash(salt).copy
    for start, end in itertools.pairwise(bounds):
        h = copy()
        h.update(data[start:end])
        append(h.digest())
    return _units_of_digests(digests)


def _prefix_hash(salt: str) -> Any:
    return hashlib.blake2b(f"{salt}\x00".encode(), digest_size=8)


def _units_of_digests(digests: list[bytes]) -> np.ndarray:
    # big-endian uint64 -> float64 rounds as int -> float does in `unit`; / 2**64 is exact
    return np.frombuffer(b"".join(digests), dtype=">u8").astype(np.float64) / _SCALE


def arm_indices(units: np.ndarray, experiment: Experiment) -> np.ndarray:
    """Each unit's arm as an index into `experiment.arms` (`assign`'s bisect, vectorised)."""
    found = np.searchsorted(np.asarray(experiment.bounds), units, side="right")
    # a unit that rounded up to 1.0 (a digest within 2**10 of 2**64) belongs to the last arm
    return np.minimum(found, len(experiment.arms) - 1)


def new_experiment(
    *,
    champion: str,
    challengers: Sequence[tuple[str, float]],
    name: str | None = None,
    salt: str | None = None,
) -> Experiment:
    """An experiment giving each challenger (release, share) its share and the champion the rest.

    One challenger is the arm `challenger`; several are `challenger-1`, `challenger-2`, ... The salt
    defaults to a fresh random token, so each experiment splits traffic independently of the last.
    """
    if not challengers:
        raise ExperimentError("an experiment needs at least one challenger")
    rest = 1.0 - math.fsum(share for _, share in challengers)
    if rest <= 0:
        raise ExperimentError(
            f"the challengers' shares sum to {1 - rest:g}: the champion needs a share above 0"
        )
    labels = (
        [CHALLENGER]
        if len(challengers) == 1
        else [f"{CHALLENGER}-{i}" for i in range(1, len(challengers) + 1)]
    )
    arms = (
        Arm(CHAMPION, champion, rest),
        *(Arm(label, rel, share) for label, (rel, share) in zip(labels, challengers, strict=True)),
    )
    return Experiment(
        name=name or f"exp-{secrets.token_hex(4)}", salt=salt or secrets.token_hex(8), arms=arms
    )


def resolve(experiment: Experiment, root: str) -> dict[str, R.Release]:
    """Each arm's release under `root` (a releases root), by arm name; ReleaseError when one is missing."""
    out = {}
    for arm in experiment.arms:
        try:
            out[arm.arm] = R.find(root, arm.release)
        except R.ReleaseError as exc:
            raise ExperimentError(f"experiment {experiment.name}, arm {arm.arm}: {exc}") from exc
        if out[arm.arm].id != arm.release:
            raise ExperimentError(
                f"experiment {experiment.name}, arm {arm.arm}: name the release by its full id "
                f"({out[arm.arm].id}), not {arm.release!r}"
            )
    return out


def manifest_uri(root: str, release_id: str) -> str:
    """The manifest URI of release `release_id` under the releases root (what the server loads)."""
    return storage.join(root, release_id, R.MANIFEST)


def start(store: ParameterStore, experiment: Experiment) -> Experiment:
    """Check every arm's release exists, then write the parameter (the servers pick it up)."""
    resolve(experiment, R.releases_root(store))
    store.put(EXPERIMENT, experiment.to_json())
    return experiment


def stop(store: ParameterStore) -> Experiment:
    """Mark the running experiment stopped (kept for the record); the champion answers everything again."""
    experiment = active(store)
    if experiment is None:
        raise ExperimentError("no experiment is running (`aik experiment start` starts one)")
    stopped = Experiment(name=experiment.name, salt=experiment.salt, arms=experiment.arms, stopped=True)
    store.put(EXPERIMENT, stopped.to_json())
    return stopped
