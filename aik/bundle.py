"""The feature pipeline as an MLeap bundle: write the format mleap-spark writes, read it into fast lookups.

Format (docs/pipeline.md; sources combust/mleap StringIndexerOp.scala, MultiInOutFormatSparkOp.scala and
bundle-ml JsonSupport): a zip with `bundle.json`, `root/model.json` (op `pipeline` listing node names),
`root/node.json`, and per StringIndexer `root/<name>.node/{model,node}.json`. This module writes the
stages with the `mleap` Python package's serializer, corrected to type the attributes exactly as
mleap-spark 0.19-0.23.2 does (`labels_length` as {"int": n}: the generic serializer writes {"long": n},
which MLeap's runtime rejects). When the mleap-spark jars are on Spark's classpath,
`write_spark_bundle` has mleap-spark serialise the fitted Spark pipeline itself instead. It reads every
variant MLeap has produced: legacy `labels`, `labels_array_<i>`, multi-column ports, column names only
in node.json, empty lists written as {"type": "list"}, zips with or without directory entries.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from aik import storage
from aik.errors import ArtifactError

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import StringIndexerModel
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

#: The MLeap version whose format we write (the layout is the same for 0.19-0.23.2).
MLEAP_FORMAT_VERSION = "0.23.2"


@dataclass(frozen=True)
class StringIndexerSpec:
    """One fitted StringIndexer: labels in Spark's order (descending frequency), handleInvalid=keep."""

    input_col: str
    output_col: str
    labels: tuple[str, ...]
    handle_invalid: str = "keep"
    name: str = ""

    def node_name(self, position: int) -> str:
        """The stage's node name (Spark's uid style when none was given)."""
        return self.name or f"strIdx_{self.input_col.lower()}_{position}"


@dataclass
class FeatureIndexer:
    """The bundle's StringIndexers as dict lookups; unseen or missing values map to the label count."""

    #: input column -> (output column, value -> index)
    lookups: dict[str, tuple[str, dict[str, int]]] = field(default_factory=dict)
    #: input column -> labels in index order
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def index(self, column: str, value: object) -> int:
        """The index of `value` in `column`'s labels, or the number of labels (handleInvalid=keep)."""
        _, table = self.lookups[column]
        if value is None:
            return len(table)
        return table.get(value if isinstance(value, str) else str(value), len(table))

    def transform(self, row: Mapping[str, object]) -> dict[str, int]:
        """Index columns for one raw row (keys are the output column names)."""
        return {out: self.index(col, row.get(col)) for col, (out, _) in self.lookups.items()}

    @property
    def output_columns(self) -> dict[str, str]:
        """input column -> output column."""
        return {col: out for col, (out, _) in self.lookups.items()}


def _string_list(values: Sequence[str]) -> dict[str, Any]:
    return {"type": "list", "string": list(values)} if values else {"type": "list"}


def _mleap_documents(node: str, spec: StringIndexerSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """`model.json` and `node.json` of one StringIndexer stage, through the `mleap` package's serializer.

    Two corrections to its generic typing, so the files are exactly what mleap-spark writes: Python ints
    come out as {"long": n} but MLeap's runtime reads `labels_length` as {"int": n}, and it cannot type
    an empty list (bundle-ml writes {"type": "list"}).
    """
    try:
        from mleap.bundle.serialize import MLeapSerializer
    except ImportError as exc:  # the readers (server, emulator) never need it
        raise ImportError("writing a bundle needs the mleap package (the pipeline extra)") from exc

    stage = SimpleNamespace(op="string_indexer", name=node)
    serializer = MLeapSerializer()
    attributes: list[tuple[str, Any]] = [
        ("labels_length", 1),
        ("handle_invalid", spec.handle_invalid),
        ("labels_array_0", list(spec.labels) or None),
        ("input_col", spec.input_col),
        ("output_col", spec.output_col),
    ]
    model = serializer.get_mleap_model(stage, [(k, v) for k, v in attributes if v is not None])
    typed = model["attributes"]
    typed["labels_length"] = {"int": 1}
    typed.setdefault("labels_array_0", {"type": "list"})
    model["attributes"] = {k: typed[k] for k, _ in attributes}  # mleap-spark's attribute order
    node_doc = serializer.get_mleap_node(
        stage,
        [{"port": "input", "name": spec.input_col}],
        [{"port": "output", "name": spec.output_col}],
    )
    return model, node_doc


def bundle_bytes(indexers: Sequence[StringIndexerSpec], *, name: str | None = None) -> bytes:
    """The zip bytes of a pipeline bundle of StringIndexers, in mleap-spark's JSON layout."""
    if not indexers:
        raise ValueError("a pipeline bundle needs at least one stage")
    pipeline_name = name or f"pipeline_{uuid.uuid4().hex[:12]}"
    names = [spec.node_name(i) for i, spec in enumerate(indexers)]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate stage names: {names}")
    files: dict[str, Any] = {
        "bundle.json": {
            "uid": str(uuid.uuid4()),
            "name": pipeline_name,
            "format": "json",
            "version": MLEAP_FORMAT_VERSION,
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
        },
        "root/model.json": {"op": "pipeline", "attributes": {"nodes": _string_list(names)}},
        "root/node.json": {"name": pipeline_name, "shape": {"inputs": [], "outputs": []}},
    }
    for node, spec in zip(names, indexers, strict=True):
        model, node_doc = _mleap_documents(node, spec)
        files[f"root/{node}.node/model.json"] = model
        files[f"root/{node}.node/node.json"] = node_doc
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        dirs = sorted({p.rsplit("/", 1)[0] + "/" for p in files if "/" in p})
        for d in dirs:  # mleap-spark's zips carry directory entries
            zf.writestr(zipfile.ZipInfo(d), b"")
        for path, doc in files.items():
            zf.writestr(path, json.dumps(doc, indent=2))
    return buf.getvalue()


def write_bundle(uri: str, indexers: Sequence[StringIndexerSpec], *, name: str | None = None) -> None:
    """Write the bundle zip to a URI (atomically locally)."""
    storage.write_bytes(uri, bundle_bytes(indexers, name=name))


def _attr_strings(attr: Mapping[str, Any] | None) -> list[str] | None:
    if attr is None:
        return None
    if "string" in attr:
        value = attr["string"]
        return list(value) if isinstance(value, list) else [value]
    if attr.get("type") == "list":
        return []  # bundle-ml writes an empty list without its value key
    raise ValueError(f"not a string attribute: {attr}")


def _attr_scalar(attr: Mapping[str, Any] | None) -> Any:
    if attr is None:
        return None
    for key in ("string", "int", "long", "bool", "double"):
        if key in attr:
            return attr[key]
    raise ValueError(f"not a scalar attribute: {attr}")


def _ports(shape: Mapping[str, Any], direction: str) -> dict[str, str]:
    return {p["port"]: p["name"] for p in shape.get(direction, [])}


def parse_string_indexer(model: Mapping[str, Any], node: Mapping[str, Any]) -> list[StringIndexerSpec]:
    """The indexer(s) of one `string_indexer` node; multi-column nodes give one spec per column."""
    attrs = model.get("attributes", {})
    shape = node.get("shape", {})
    inputs, outputs = _ports(shape, "inputs"), _ports(shape, "outputs")
    handle = _attr_scalar(attrs.get("handle_invalid")) or "error"
    if "labels" in attrs:  # legacy single-column format
        label_sets = [_attr_strings(attrs["labels"]) or []]
    else:
        count = int(_attr_scalar(attrs.get("labels_length")) or 1)
        label_sets = []
        for i in range(count):
            labels = _attr_strings(attrs.get(f"labels_array_{i}"))
            if labels is None:
                raise ValueError(f"labels_array_{i} missing")
            label_sets.append(labels)
    specs = []
    for i, labels in enumerate(label_sets):
        if len(label_sets) == 1:
            in_col = _attr_scalar(attrs.get("input_col")) or inputs.get("input") or inputs.get("input0")
            out_col = _attr_scalar(attrs.get("output_col")) or outputs.get("output") or outputs.get("output0")
        else:
            in_cols = _attr_strings(attrs.get("input_cols"))
            out_cols = _attr_strings(attrs.get("output_cols"))
            in_col = in_cols[i] if in_cols else inputs.get(f"input{i}")
            out_col = out_cols[i] if out_cols else outputs.get(f"output{i}")
        if not in_col or not out_col:
            raise ValueError(f"column names of stage {node.get('name')!r} not found")
        specs.append(StringIndexerSpec(in_col, out_col, tuple(labels), handle, node.get("name", "")))
    return specs


def parse_bundle(data: bytes, uri: str = "<bytes>") -> list[StringIndexerSpec]:
    """The StringIndexer stages of a bundle zip, in pipeline order."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())

            def load(path: str) -> Any:
                if path not in names:
                    raise ValueError(f"{path} missing from the bundle")
                return json.loads(zf.read(path))

            bundle = load("bundle.json")
            if bundle.get("format", "json") != "json":
                raise ValueError(f"bundle format {bundle.get('format')!r} (only json is supported)")
            root = load("root/model.json")
            if root.get("op") != "pipeline":
                raise ValueError(f"root op is {root.get('op')!r}, expected pipeline")
            specs: list[StringIndexerSpec] = []
            for node_name in _attr_strings(root["attributes"]["nodes"]) or []:
                model = load(f"root/{node_name}.node/model.json")
                node = load(f"root/{node_name}.node/node.json")
                if model.get("op") != "string_indexer":
                    raise ValueError(f"stage {node_name!r} has op {model.get('op')!r}; only string_indexer")
                specs.extend(parse_string_indexer(model, node))
            return specs
    except (zipfile.BadZipFile, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ArtifactError(uri, f"not a valid MLeap pipeline bundle ({exc})") from exc


def indexer_from_specs(specs: Sequence[StringIndexerSpec]) -> FeatureIndexer:
    """Fast lookups for a list of StringIndexer stages."""
    indexer = FeatureIndexer()
    for spec in specs:
        table = {label: i for i, label in enumerate(spec.labels)}
        indexer.lookups[spec.input_col] = (spec.output_col, table)
        indexer.labels[spec.input_col] = spec.labels
    return indexer


def mleap_spark_available(spark: SparkSession) -> bool:
    """True when the mleap-spark jars are on the driver's classpath (EMR with spark.jars.packages)."""
    try:
        from py4j.java_gateway import JavaClass

        jvm = spark.sparkContext._jvm
        if jvm is None:
            return False
        return isinstance(jvm.ml.combust.mleap.spark.SimpleSparkSerializer, JavaClass)
    except Exception:  # no JVM view, no py4j: no mleap-spark either
        return False


def specs_from_pipeline(model: PipelineModel) -> list[StringIndexerSpec]:
    """The single-column StringIndexerModels of a fitted Spark pipeline as specs, in pipeline order."""
    specs = []
    for stage in model.stages:
        labels = getattr(stage, "labels", None)
        if labels is None or not stage.hasParam("inputCol") or not stage.isSet("inputCol"):
            raise ValueError(f"stage {stage.uid} is not a single-column StringIndexerModel")
        indexer = cast("StringIndexerModel", stage)  # checked above; the stages are typed as Transformers
        specs.append(
            StringIndexerSpec(
                indexer.getInputCol(), indexer.getOutputCol(), tuple(labels), indexer.getHandleInvalid()
            )
        )
    return specs


def write_spark_bundle(spark: SparkSession, model: PipelineModel, dataset: DataFrame, uri: str) -> str:
    """Write a fitted Spark pipeline of StringIndexers as a bundle and check it reads back the same.

    With mleap-spark on the classpath the bundle is MLeap's own serialisation (`mleap.pyspark`), made
    in a local temporary file and uploaded; otherwise `write_bundle` writes the same layout from the
    fitted labels, and also when mleap-spark fails (a build for another Spark or Scala loads its classes
    but breaks on first use). Either way the written bundle must give every column's labels back, in order.
    Returns which writer ran: "mleap-spark" or "aik.bundle".
    """
    expected = specs_from_pipeline(model)
    writer = "aik.bundle"
    if mleap_spark_available(spark):
        try:
            _serialize_with_mleap_spark(model, dataset, uri)
            writer = "mleap-spark"
        except Exception as exc:  # a build for another Spark or Scala fails only when it runs
            log.warning(
                "mleap-spark is on the classpath but cannot write the bundle (%s); "
                "writing the same layout with aik.bundle instead",
                _first_line(exc),
            )
    if writer == "aik.bundle":
        write_bundle(uri, expected)
    found = read_bundle(uri)
    for spec in expected:
        if found.labels.get(spec.input_col) != spec.labels:
            raise ArtifactError(
                uri, f"the written bundle's labels for {spec.input_col} differ from the fitted ones"
            )
    return writer


def _serialize_with_mleap_spark(model: PipelineModel, dataset: DataFrame, uri: str) -> None:
    import mleap.pyspark  # noqa: F401  (registers serializeToBundle on Spark transformers)
    from mleap.pyspark.spark_support import SimpleSparkSerializer

    with tempfile.TemporaryDirectory(prefix="aik-bundle-") as tmp:
        path = f"{tmp}/model.zip"
        SimpleSparkSerializer().serializeToBundle(model, f"jar:file:{path}", model.transform(dataset))
        storage.upload(path, uri)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def read_bundle(uri: str) -> FeatureIndexer:
    """Load a bundle from a URI into fast lookups; errors name the URI."""
    return indexer_from_specs(parse_bundle(storage.read_bytes(uri), uri))
