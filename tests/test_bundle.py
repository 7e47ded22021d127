"""The MLeap bundle: the layout mleap-spark writes, and a reader for every variant MLeap produced."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from aik.bundle import StringIndexerSpec, bundle_bytes, parse_bundle, read_bundle, write_bundle
from aik.errors import ArtifactError, ArtifactNotFound

SPECS = [
    StringIndexerSpec("AdvertiserID", "IndexAdvertiserID", ("3358", "1458", "2821")),
    StringIndexerSpec("Domain", "IndexDomain", ("trqRTJjrXqf7FmMs", "DFpETuxoGQdcFNKbuKz")),
    StringIndexerSpec("RegionID", "IndexRegionID", ("333", "3")),
    StringIndexerSpec("CityID", "IndexCityID", ()),
]


def _zip(files: dict[str, object], dirs: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        if dirs:
            for d in sorted({p.rsplit("/", 1)[0] + "/" for p in files if "/" in p}):
                zf.writestr(d, b"")
        for path, doc in files.items():
            zf.writestr(path, json.dumps(doc))
    return buf.getvalue()


def test_written_bundle_has_mleap_spark_layout() -> None:
    zf = zipfile.ZipFile(io.BytesIO(bundle_bytes(SPECS, name="pipeline_x")))
    names = set(zf.namelist())
    assert {
        "bundle.json",
        "root/model.json",
        "root/node.json",
        "root/",
        "root/strIdx_domain_1.node/",
    } <= names
    bundle = json.loads(zf.read("bundle.json"))
    assert set(bundle) == {"uid", "name", "format", "version", "timestamp"}
    assert bundle["format"] == "json"
    root = json.loads(zf.read("root/model.json"))
    assert root["op"] == "pipeline"
    assert root["attributes"]["nodes"]["string"] == [s.node_name(i) for i, s in enumerate(SPECS)]
    model = json.loads(zf.read("root/strIdx_domain_1.node/model.json"))
    assert model == {
        "op": "string_indexer",
        "attributes": {
            "labels_length": {"int": 1},  # MLeap's runtime reads an int here, not {"long": 1}
            "handle_invalid": {"string": "keep"},
            "labels_array_0": {"type": "list", "string": ["trqRTJjrXqf7FmMs", "DFpETuxoGQdcFNKbuKz"]},
            "input_col": {"string": "Domain"},
            "output_col": {"string": "IndexDomain"},
        },
    }
    node = json.loads(zf.read("root/strIdx_domain_1.node/node.json"))
    assert node["shape"] == {
        "inputs": [{"port": "input", "name": "Domain"}],
        "outputs": [{"port": "output", "name": "IndexDomain"}],
    }
    empty = json.loads(zf.read("root/strIdx_cityid_3.node/model.json"))
    assert empty["attributes"]["labels_array_0"] == {"type": "list"}


def test_round_trip_and_keep_semantics(tmp_path: Path) -> None:
    uri = str(tmp_path / "model.zip")
    write_bundle(uri, SPECS)
    indexer = read_bundle(uri)
    assert indexer.index("AdvertiserID", "1458") == 1
    assert indexer.index("AdvertiserID", "9999") == 3  # unseen -> number of labels
    assert indexer.index("AdvertiserID", None) == 3  # missing -> number of labels
    assert indexer.index("RegionID", 333) == 0  # non-string values are looked up as strings
    assert indexer.index("CityID", "1") == 0  # empty label list
    assert indexer.transform({"AdvertiserID": "2821", "Domain": "x", "RegionID": "3"}) == {
        "IndexAdvertiserID": 2,
        "IndexDomain": 2,
        "IndexRegionID": 1,
        "IndexCityID": 0,
    }
    assert indexer.labels["Domain"] == SPECS[1].labels


def test_reads_legacy_labels_and_names_only_in_node_json() -> None:
    data = _zip(
        {
            "bundle.json": {"uid": "u", "name": "p", "format": "json", "version": "0.23.3", "timestamp": "t"},
            "root/model.json": {"op": "pipeline", "attributes": {"nodes": {"type": "list", "string": ["a"]}}},
            "root/node.json": {"name": "p", "shape": {}},
            "root/a.node/model.json": {
                "op": "string_indexer",
                "attributes": {
                    "labels": {"type": "list", "string": ["x", "y"]},
                    "handle_invalid": {"string": "keep"},
                },
            },
            "root/a.node/node.json": {
                "name": "a",
                "shape": {
                    "inputs": [{"port": "input", "name": "Domain"}],
                    "outputs": [{"port": "output", "name": "IndexDomain"}],
                },
            },
        }
    )
    [spec] = parse_bundle(data)
    assert (spec.input_col, spec.output_col, spec.labels) == ("Domain", "IndexDomain", ("x", "y"))


def test_reads_multi_column_ports_with_directory_entries() -> None:
    data = _zip(
        {
            "bundle.json": {"uid": "u", "name": "p", "format": "json", "version": "0.23.3", "timestamp": "t"},
            "root/model.json": {"op": "pipeline", "attributes": {"nodes": {"type": "list", "string": ["m"]}}},
            "root/node.json": {"name": "p", "shape": {}},
            "root/m.node/model.json": {
                "op": "string_indexer",
                "attributes": {
                    "labels_length": {"int": 2},
                    "labels_array_0": {"type": "list", "string": ["a"]},
                    "labels_array_1": {"type": "list"},
                    "handle_invalid": {"string": "keep"},
                },
            },
            "root/m.node/node.json": {
                "name": "m",
                "shape": {
                    "inputs": [{"port": "input0", "name": "RegionID"}, {"port": "input1", "name": "CityID"}],
                    "outputs": [
                        {"port": "output0", "name": "IndexRegionID"},
                        {"port": "output1", "name": "IndexCityID"},
                    ],
                },
            },
        },
        dirs=True,
    )
    region, city = parse_bundle(data)
    assert (region.input_col, region.output_col, region.labels) == ("RegionID", "IndexRegionID", ("a",))
    assert (city.input_col, city.output_col, city.labels) == ("CityID", "IndexCityID", ())


def test_corrupt_bundle_error_names_the_uri(tmp_path: Path) -> None:
    bad = tmp_path / "model.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match=re.escape(str(bad))):
        read_bundle(str(bad))
    with pytest.raises(ArtifactNotFound, match=r"nowhere\.zip"):
        read_bundle(str(tmp_path / "nowhere.zip"))


def test_bundle_missing_a_stage_file_is_reported() -> None:
    data = _zip(
        {
            "bundle.json": {"format": "json"},
            "root/model.json": {
                "op": "pipeline",
                "attributes": {"nodes": {"type": "list", "string": ["gone"]}},
            },
        }
    )
    with pytest.raises(ArtifactError, match=r"root/gone\.node/model\.json missing"):
        parse_bundle(data, "s3://b/model.zip")
