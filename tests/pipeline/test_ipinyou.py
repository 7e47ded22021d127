"""iPinYou log rules and the streaming reader: every malformed line is counted and set aside, never fatal."""

from __future__ import annotations

import bz2
import gzip
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aik.errors import ArtifactError
from aik.ipinyou import (
    check_line,
    log_kind,
    parse_line,
    read_log,
    scan_log,
    spark_dayofweek,
    valid_timestamp,
)
from aik.schema import BID_LOG_COLUMNS, EVENT_LOG_COLUMNS

BID = dict(
    BidID="015300008f5b1e1c1e4d5d4d8d0f9c0d",
    Timestamp="20130606000104008",
    iPinYouID="Vh16OwT6OQNUXbj",
    UserAgent="Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)",
    IP="180.127.189.*",
    RegionID="80",
    CityID="85",
    AdExchange="2",
    Domain="trqRTJjrXqf7FmMs",
    URL="de0cca5e4ff921ff4d5d2fd4dda9b92a",
    AnonymousURLID="null",
    AdSlotID="2006234745",
    AdSlotWidth="300",
    AdSlotHeight="250",
    AdSlotVisibility="0",
    AdSlotFormat="1",
    AdSlotFloorPrice="0",
    CreativeID="77819d3e0b3467fe5c7b16d68ad923a1",
    BiddingPrice="300",
    AdvertiserID="1458",
    UserProfileIDs="10063,10006",
)
IMP = {**BID, "LogType": "1", "PayingPrice": "23", "KeyPageURL": "bebefa5efe83beee17a3d245e7c5085b"}


def bid_line(**changes: str) -> str:
    return "\t".join({**BID, **changes}[c] for c in BID_LOG_COLUMNS)


def imp_line(**changes: str) -> str:
    return "\t".join({**IMP, **changes}[c] for c in EVENT_LOG_COLUMNS)


#: (line, kind, expected reason) for every rule, shared with the Spark parser's test.
CASES: list[tuple[str, str, str | None]] = [
    (bid_line(), "bid", None),
    (imp_line(), "imp", None),
    (imp_line(LogType="2"), "clk", None),
    (bid_line() + "\t", "bid", None),  # a trailing tab: the extra empty field is dropped
    (bid_line() + "\t\t", "bid", None),
    (bid_line().rsplit("\t", 1)[0], "bid", None),  # UserProfileIDs missing altogether
    (bid_line(AdSlotVisibility="FirstView", AdSlotFormat="Fixed"), "bid", None),  # season-1 style words
    (bid_line(UserAgent="null", Domain="null", BiddingPrice="null"), "bid", None),
    (bid_line(Timestamp="20120229235959999"), "bid", None),  # a leap day
    ("", "bid", "empty line"),
    (bid_line().rsplit("\t", 2)[0], "bid", "19 fields (expected 21)"),
    (bid_line() + "\tx", "bid", "22 fields (expected 21)"),
    (imp_line(), "bid", "24 fields (expected 21)"),
    ("just some text", "imp", "1 fields (expected 24)"),
    (bid_line(BidID="null"), "bid", "missing BidID"),
    (bid_line(BidID=""), "bid", "missing BidID"),
    (bid_line(Timestamp="2013060600010400"), "bid", "bad Timestamp '2013060600010400'"),
    (bid_line(Timestamp="2013-06-06 00:01"), "bid", "bad Timestamp '2013-06-06 00:01'"),
    (bid_line(Timestamp="20131306000104008"), "bid", "bad Timestamp '20131306000104008'"),
    (bid_line(Timestamp="20130230000104008"), "bid", "bad Timestamp '20130230000104008'"),
    (bid_line(Timestamp="20130229000104008"), "bid", "bad Timestamp '20130229000104008'"),
    (bid_line(Timestamp="20130606240104008"), "bid", "bad Timestamp '20130606240104008'"),
    (bid_line(Timestamp="null"), "bid", "bad Timestamp 'null'"),
    (imp_line(LogType="2"), "imp", "LogType '2' in a imp log"),
    (imp_line(), "clk", "LogType '1' in a clk log"),
    (bid_line(BiddingPrice="3.5"), "bid", "bad BiddingPrice '3.5'"),
    (bid_line(BiddingPrice="-1"), "bid", "bad BiddingPrice '-1'"),
    (imp_line(PayingPrice="abc"), "imp", "bad PayingPrice 'abc'"),
]


@pytest.mark.parametrize(("line", "kind", "reason"), CASES)
def test_check_line_gives_each_rules_reason(line: str, kind: str, reason: str | None) -> None:
    assert check_line(line, kind) == reason


def test_parse_line_maps_null_and_empty_to_none_and_pads_a_short_line() -> None:
    record = parse_line(bid_line(UserAgent="null", Domain=""), "bid")
    assert record["UserAgent"] is None and record["Domain"] is None
    assert record["AdvertiserID"] == "1458" and record["AdSlotVisibility"] == "0"
    short = parse_line(bid_line().rsplit("\t", 1)[0], "bid")
    assert short["UserProfileIDs"] is None and short["AdvertiserID"] == "1458"
    with pytest.raises(ValueError, match="missing BidID"):
        parse_line(bid_line(BidID="null"), "bid")


def test_timestamps_and_spark_dayofweek() -> None:
    assert valid_timestamp("20131019235959999")
    assert not valid_timestamp("19000229000000000")  # 1900 is not a leap year
    assert valid_timestamp("20000229000000000")  # 2000 is
    assert spark_dayofweek("20130606000000000") == 5  # a Thursday; Spark: 1 = Sunday
    assert spark_dayofweek("20130609000000000") == 1
    assert spark_dayofweek("20130608000000000") == 7


def test_log_kind_from_the_datasets_file_names() -> None:
    assert log_kind("s3://b/raw/bid.20130606.txt.bz2") == "bid"
    assert log_kind("imp.20131019.txt") == "imp"
    assert log_kind("/x/clk.20130311.txt.gz") == "clk"
    assert log_kind("conv.20130606.txt.bz2") == "conv"
    assert log_kind("leaderboard.test.data.20130613_15.txt.bz2") is None
    assert log_kind("bid.2013066.txt") is None


def _write(path: Path, data: bytes) -> str:
    if path.name.endswith(".bz2"):
        data = bz2.compress(data)
    elif path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("suffix", ["", ".bz2", ".gz"])
def test_scan_log_counts_sets_rejects_aside_and_copies_byte_for_byte(tmp_path: Path, suffix: str) -> None:
    # CRLF, LF and a lone CR all end lines, as in Hadoop's line reader.
    text = (
        bid_line() + "\r\n" + "garbage\n" + bid_line(BidID="b2") + "\r" + bid_line(Timestamp="2013") + "\n"
    ).encode()
    src = _write(tmp_path / f"bid.20130606.txt{suffix}", text)
    rejects = str(tmp_path / "rejects" / "bid.rejects.tsv")
    copy = str(tmp_path / "copy" / f"bid.20130606.txt{suffix}")
    report = scan_log(src, rejects_uri=rejects, copy_to=copy)
    assert (report.kind, report.lines, report.accepted, report.rejected) == ("bid", 4, 2, 2)
    assert report.reasons == {"wrong field count": 1, "bad Timestamp": 1}
    assert Path(copy).read_bytes() == Path(src).read_bytes()
    lines = Path(rejects).read_text().splitlines()
    assert lines == [
        "2\t1 fields (expected 21)\tgarbage",
        f"4\tbad Timestamp '2013'\t{bid_line(Timestamp='2013')}",
    ]
    assert [r["BidID"] for r in read_log(src)] == [BID["BidID"], "b2"]


def test_undecodable_bytes_do_not_stop_a_run(tmp_path: Path) -> None:
    src = _write(tmp_path / "bid.20130606.txt", bid_line(UserAgent="Mozilla\xff").encode("latin-1") + b"\n")
    report = scan_log(src)
    assert (report.accepted, report.rejected) == (1, 0)


def test_a_truncated_bz2_file_is_reported_with_its_uri(tmp_path: Path) -> None:
    data = bz2.compress((bid_line() + "\n").encode() * 5000)
    src = tmp_path / "bid.20130606.txt.bz2"
    src.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match=r"bid\.20130606\.txt\.bz2"):
        scan_log(str(src), copy_to=str(tmp_path / "copy.bz2"))
    assert not (tmp_path / "copy.bz2").exists()  # no half copy left behind


def test_scan_log_needs_a_known_kind(tmp_path: Path) -> None:
    src = _write(tmp_path / "something.txt", b"x\n")
    with pytest.raises(ValueError, match="cannot tell the log kind"):
        scan_log(src)


def test_the_real_season2_sample_is_read_without_rejects(ipinyou_season2: Path, tmp_path: Path) -> None:
    total = 0
    for path in sorted(ipinyou_season2.glob("*.txt")):
        if log_kind(path.name) is None:
            continue  # region/city tables
        report = scan_log(str(path), rejects_uri=str(tmp_path / f"{path.name}.rejects"))
        lines = len(path.read_bytes().splitlines())
        assert (report.lines, report.accepted, report.rejected) == (lines, lines, 0)
        total += lines
    assert total == 14_447
    first = next(read_log(str(ipinyou_season2 / "imp.20130606.txt")))
    assert first["LogType"] == "1" and first["AdvertiserID"] == "1458" and first["AnonymousURLID"] is None


_field = st.text(
    alphabet=st.characters(blacklist_characters="\t\r\n", blacklist_categories=("Cs",)), max_size=12
)


@given(st.lists(_field, min_size=0, max_size=30))
def test_check_line_never_raises_and_parse_agrees(fields: list[str]) -> None:
    line = "\t".join(fields)
    for kind in ("bid", "imp"):
        reason = check_line(line, kind)
        if reason is None:
            record = parse_line(line, kind)
            assert set(record) == set(BID_LOG_COLUMNS if kind == "bid" else EVENT_LOG_COLUMNS)
        else:
            assert isinstance(reason, str) and reason
