"""The Spark feature job (notebook 2): iPinYou logs -> labelled splits, inference data and the MLeap bundle.

Runs the same way everywhere:
- locally: `aik features` (Spark local mode, the local parameter store and workspace);
- on EMR from notebook 2 (SparkMagic/Livy): `run_features(ctx, use_case, spark=spark)`;
- on EMR as a step: `spark-submit --py-files aik.zip <path of this file> --backend aws` (see
  docs/pipeline.md), with the parameters read from SSM.

It reads the configured sources, checks every line (rejects are written aside with their reason),
joins bids with impressions (left, on BidID) or impressions with clicks (`ctr`), derives dow/hour and
device_type_id, fits the StringIndexers, and writes every artifact to its parameter's URI. The logs
are read once: their parsed lines, narrowed to the fields the job uses, are cached for the rejects,
the counts and the join; the joined rows are cached in turn for the fit and the writes.

Over 400 lines on purpose: the job's five stages and its spark-submit entry point, read top to
bottom; the pure DataFrame transforms live in transforms.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import reduce
from typing import TYPE_CHECKING

from aik import storage
from aik.bundle import write_spark_bundle
from aik.errors import AikError, ParameterNotFound
from aik.features.report import FeaturesReport, LineCounts, SplitCount
from aik.features.transforms import (
    BID_FILTERING,
    DEFAULT_SPLIT_SEED,
    REQUEST_FIELDS,
    SPLIT,
    TEST,
    TRAIN,
    USE_CASES,
    VALID,
    accepted,
    bid_filtering_rows,
    ctr_rows,
    fit_indexers,
    indexer_labels,
    prepare,
    raw_schema_rows,
    split_features,
)
from aik.features.window import Chosen, Window, add_window_arguments, select_files, window_from_args
from aik.ipinyou import BID, CLK, CLK_SOURCE, IMP, REASON_CLASSES
from aik.logsetup import setup_logging
from aik.params import (
    BID_SOURCE,
    IMP_SOURCE,
    INFERENCE_DATA,
    OUTPUT_TEST,
    OUTPUT_TRAIN,
    OUTPUT_TRANSFORMED,
    OUTPUT_VALID,
    PIPELINE_MODEL,
    PIPELINE_SCHEMA,
    RAW_DATA,
    ParameterStore,
)
from aik.schema import LABEL, RAW_SCHEMA

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import Column, DataFrame, Observation, SparkSession

    from aik.context import Context

log = logging.getLogger("aik.features")

#: Whether Spark compresses cached DataFrames (a session setting the job turns off while it runs).
CACHE_COMPRESSED = "spark.sql.inMemoryColumnarStorage.compressed"
#: Open files per task of a partitioned write before Spark sorts the rows by partition instead.
MAX_WRITERS = "spark.sql.maxConcurrentOutputFileWriters"
#: The session settings while the job runs (restored after). Its two caches live for one run: built
#: uncompressed they cost less CPU (no compression scheme chosen and applied per column batch) and more
#: memory (spilling to disk if they must). The splits' partitioned write keeps one file open per split.
JOB_SETTINGS = {CACHE_COMPRESSED: "false", MAX_WRITERS: "3"}


@dataclass(frozen=True)
class Sources:
    """Where the logs are (a directory/prefix or one file each); `clk` is only read for the ctr use case."""

    bid: str
    imp: str
    clk: str


@dataclass(frozen=True)
class Outputs:
    """Where every artifact goes (the `/aik/...` parameters), plus the rejects and the job report."""

    transformed: str
    inference: str
    train: str
    valid: str
    test: str
    bundle: str
    schema: str
    rejects: str
    report: str


def parent(uri: str) -> str:
    """The URI one level up (`.../processed/sample/transformed/` -> `.../processed/sample`)."""
    return uri.rstrip("/").rsplit("/", 1)[0]


def sources_from_params(params: ParameterStore) -> Sources:
    """The log sources from the parameter store (the clk source defaults to `<raw_data>/clk/`)."""
    try:
        clk = params.get(CLK_SOURCE)
    except ParameterNotFound:
        clk = storage.join(params.get(RAW_DATA), "clk/")
    return Sources(bid=params.get(BID_SOURCE), imp=params.get(IMP_SOURCE), clk=clk)


def outputs_from_params(params: ParameterStore) -> Outputs:
    """The artifact URIs from the parameter store; rejects and report sit beside the transformed output."""
    transformed = params.get(OUTPUT_TRANSFORMED)
    return Outputs(
        transformed=transformed,
        inference=params.get(INFERENCE_DATA),
        train=params.get(OUTPUT_TRAIN),
        valid=params.get(OUTPUT_VALID),
        test=params.get(OUTPUT_TEST),
        bundle=params.get(PIPELINE_MODEL),
        schema=params.get(PIPELINE_SCHEMA),
        rejects=storage.join(parent(transformed), "rejects/"),
        report=storage.join(parent(transformed), "features-report.json"),
    )


def log_files(uri: str, kind: str) -> list[str]:
    """The data files under a source (hidden, `_SUCCESS`-style and checksum files skipped)."""
    files = [
        u
        for u in storage.list_uris(uri)
        if not u.rsplit("/", 1)[-1].startswith((".", "_")) and not u.endswith(".crc")
    ]
    if not files:
        if kind == BID:
            raise AikError(
                f"no bid logs under {uri}: the bid-filtering use case needs them "
                "(ingest bid logs, or with impression and click logs only use --use-case ctr)"
            )
        raise AikError(f"no {kind} logs under {uri}: run `aik ingest` first")
    return files


def _line_metrics(reason: Column) -> list[Column]:
    """Aggregates of one kind's lines: lines, rejected lines, and rejected lines per reason class."""
    from pyspark.sql import functions as F

    metrics = [F.count(F.lit(1)).alias("lines"), F.count(reason).alias("rejected")]
    for i, text in enumerate(REASON_CLASSES.values()):
        metrics.append(F.sum(F.when(reason.contains(text), 1).otherwise(0)).alias(f"reason{i}"))
    return metrics


def observe_lines(parsed: DataFrame, name: str, agents: str | None = None) -> tuple[DataFrame, Observation]:
    """`parsed` counting its lines, rejects and rejects per reason class as an action reads it (observed
    metrics: the counts cost no pass of their own); `line_counts` of the observation after the action.

    With `agents` (a column), the distinct values of that column on accepted lines are collected too
    (the metric `agents`, a JSON array), so the user-agent vocabulary needs no pass of its own either.
    """
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    from aik.features.logs import REASON

    observation = Observation(name)
    metrics = _line_metrics(F.col(REASON))
    if agents is not None:
        # as one JSON string: Spark 3.5's Observation hands an array back as a Java object
        values = F.collect_set(F.when(F.col(REASON).isNull(), F.col(agents)))
        metrics.append(F.to_json(values).alias("agents"))
    return parsed.observe(observation, *metrics), observation


def line_counts(observation: Observation) -> LineCounts:
    """Lines, accepted, rejected and rejects per reason class, after an action read `observe_lines`'s rows."""
    metrics = observation.get
    return LineCounts(
        lines=metrics["lines"],
        accepted=metrics["lines"] - metrics["rejected"],
        rejected=metrics["rejected"],
        reasons={
            name: metrics[f"reason{i}"] for i, name in enumerate(REASON_CLASSES) if metrics[f"reason{i}"]
        },
    )


@dataclass(frozen=True)
class Plan:
    """Which logs the job reads: the kinds of the use case, their sources and files, the window's days."""

    use_case: str
    kinds: tuple[str, ...]
    uris: dict[str, str]
    files: dict[str, list[str]]
    chosen: Chosen | None


def plan(sources: Sources, use_case: str, window: Window | None) -> Plan:
    """The kinds of logs the use case joins and their files (only the window's days with a window)."""
    if use_case not in USE_CASES:
        raise AikError(f"unknown use case {use_case!r} (choose from {', '.join(USE_CASES)})")
    kinds = (BID, IMP) if use_case == BID_FILTERING else (IMP, CLK)
    uris = {BID: sources.bid, IMP: sources.imp, CLK: sources.clk}
    files = {kind: log_files(uris[kind], kind) for kind in kinds}
    chosen: Chosen | None = None
    if window is not None:
        files, chosen = select_files(files, kinds[0], window)
        log.info(
            "features: temporal split: train on %s..%s, test on %s",
            chosen.train_days[0],
            chosen.train_days[-1],
            ", ".join(chosen.test_days),
        )
    for kind in kinds:
        if not files[kind]:
            raise AikError(f"no {kind} logs of the window's days under {uris[kind]}")
    return Plan(use_case, kinds, uris, files, chosen)


def kept_fields(use_case: str, kind: str) -> tuple[str, ...]:
    """The fields of one kind of log that the use case's joined rows take."""
    if kind == BID:
        return ("BidID", *REQUEST_FIELDS)
    if kind == IMP:
        if use_case == BID_FILTERING:
            return ("BidID", "PayingPrice")
        return ("BidID", *REQUEST_FIELDS, "PayingPrice")
    return ("BidID",)


@dataclass(frozen=True)
class Checked:
    """What the pass over the logs gives: each kind's parsed lines (cached), their counts, and the distinct
    user agents of the requests' log (missing included, as None)."""

    parsed: dict[str, DataFrame]
    counts: dict[str, LineCounts]
    agents: list[str | None]


def read_and_check(spark: SparkSession, plan: Plan, rejects_uri: str) -> Checked:
    """The one pass over the logs: each kind parsed and cached, the rejects written aside, every line
    counted, the requests' user agents collected.

    Decompressing and parsing the logs is most of the job's cost, so it happens once: what is cached is
    only what the job uses (the kept fields and each line's reason; the file name and text of rejected
    lines only), and the rejects, the counts and the join all read that cache. The rejects are always
    written, so those of an earlier run never linger beside this run's output. The caller unpersists
    the parsed frames once the joined rows are cached.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from aik.features.logs import LINE, REASON, SOURCE, read_logs

    parsed: dict[str, DataFrame] = {}
    for kind in plan.kinds:
        log.info("features: reading %d %s file(s) under %s", len(plan.files[kind]), kind, plan.uris[kind])
        rejected = F.col(REASON).isNotNull()
        parsed[kind] = (
            read_logs(spark, plan.files[kind], kind)
            .select(
                F.when(rejected, F.col(SOURCE)).alias(SOURCE),
                REASON,
                F.when(rejected, F.col(LINE)).alias(LINE),
                *kept_fields(plan.use_case, kind),
            )
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
    # Every line is counted, and the requests' user agents collected, while the rejects are written.
    requests = plan.kinds[0]  # the log whose user agents the joined rows take (bids, or imps for ctr)
    observed = {
        kind: observe_lines(df, f"aik-lines-{kind}", "UserAgent" if kind == requests else None)
        for kind, df in parsed.items()
    }
    rejects = reduce(
        lambda a, b: a.unionByName(b),
        [
            df.where(F.col(REASON).isNotNull()).select(F.lit(kind).alias("kind"), SOURCE, REASON, LINE)
            for kind, (df, _) in observed.items()
        ],
    )
    # The first action over the cached frames: it builds their every partition (the filter runs on top).
    rejects.write.mode("overwrite").partitionBy("kind", SOURCE).json(rejects_uri)
    counts = {kind: line_counts(observation) for kind, (_, observation) in observed.items()}
    for kind, c in counts.items():
        log.info(
            "features: %s logs: %s lines, %s accepted, %s rejected",
            kind,
            f"{c.lines:,}",
            f"{c.accepted:,}",
            f"{c.rejected:,}",
        )
    empty = [kind for kind, c in counts.items() if c.accepted == 0]
    if empty:
        for df in parsed.values():  # a notebook's session lives on: free the cache
            df.unpersist()
        raise AikError(
            f"no accepted {empty[0]} log lines under {plan.uris[empty[0]]} (see the rejects in {rejects_uri})"
        )
    # a missing agent (collect_set skips nulls) has a device type too
    agents = [None, *json.loads(observed[requests][1].get["agents"])]
    return Checked(parsed, counts, agents)


def labelled_rows(checked: Checked, plan: Plan, seed: int) -> DataFrame:
    """The accepted lines joined and labelled, with dow, hour, device type and split (cached for the fit
    and the writes that follow)."""
    from pyspark import StorageLevel

    narrow = {
        kind: accepted(checked.parsed[kind]).select(*kept_fields(plan.use_case, kind)) for kind in plan.kinds
    }
    if plan.use_case == BID_FILTERING:
        rows = bid_filtering_rows(narrow[BID], narrow[IMP])
    else:
        rows = ctr_rows(narrow[IMP], narrow[CLK])
    first_test_day = plan.chosen.first_test_day if plan.chosen is not None else None
    prepared = prepare(rows, seed, first_test_day, agents=checked.agents)
    # the Timestamp has given dow, hour and the split: no output takes it, so the cache does not hold it
    return prepared.drop("Timestamp").persist(StorageLevel.MEMORY_AND_DISK)


def write_rows(prepared: DataFrame, outputs: Outputs) -> None:
    """The joined rows (with their label) and the inference data (without), in the schema's fields."""
    raw_schema_rows(prepared, with_label=True).write.mode("overwrite").parquet(outputs.transformed)
    log.info("features: joined rows written to %s", outputs.transformed)
    raw_schema_rows(prepared).write.mode("overwrite").option("ignoreNullFields", "false").json(
        outputs.inference
    )
    log.info("features: inference data written to %s", outputs.inference)


def place_partition(staging: str, uri: str) -> None:
    """The files Spark wrote under one partition's directory `staging`, moved to `uri` in place of what
    was there, with the `_SUCCESS` marker Spark's own write leaves (local paths or S3, via aik.storage)."""
    storage.delete_tree(uri)
    prefix = staging.rstrip("/") + "/"
    for file in storage.list_uris(staging):
        storage.move(file, storage.join(uri, file[len(prefix) :]))
    storage.write_text(storage.join(uri, "_SUCCESS"), "")


def write_splits(prepared: DataFrame, model: PipelineModel, outputs: Outputs) -> dict[str, SplitCount]:
    """The train/valid/test splits in index space, and each one's rows and positives.

    One scan of the cached rows writes all three: partitioned by split into a staging directory beside
    the train output, each partition's files then moved to its split's URI (no sort by split: one
    writer per split in each task, `spark.sql.maxConcurrentOutputFileWriters`). Each split's rows and
    positives are observed metrics of that write.
    """
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    features = split_features(prepared, model)
    targets = {TRAIN: ("train", outputs.train), VALID: ("valid", outputs.valid), TEST: ("test", outputs.test)}
    observed = Observation("aik-splits")
    metrics = []
    for split, (name, _) in targets.items():
        in_split = F.col(SPLIT) == split
        metrics.append(F.count(F.when(in_split, 1)).alias(f"{name}_rows"))
        metrics.append(F.sum(F.when(in_split, F.col(LABEL))).alias(f"{name}_positives"))
    staging = storage.join(parent(outputs.train), f"_aik-splits-{uuid.uuid4().hex}")
    try:
        features.observe(observed, *metrics).write.partitionBy(SPLIT).parquet(staging)
        counts: dict[str, SplitCount] = {}
        for split, (name, uri) in targets.items():
            rows = observed.get[f"{name}_rows"]
            if rows:
                place_partition(storage.join(staging, f"{SPLIT}={split}"), uri)
            else:  # no partition directory: Spark's write of no rows leaves one file with the schema
                features.where(F.col(SPLIT) == split).drop(SPLIT).write.mode("overwrite").parquet(uri)
            counts[name] = SplitCount(uri, rows, int(observed.get[f"{name}_positives"] or 0))
    finally:
        storage.delete_tree(staging)
    log.info("features: splits written: %s", ", ".join(f"{k} {v.rows:,} rows" for k, v in counts.items()))
    return counts


@contextmanager
def session_settings(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """The session's SQL settings changed for a block of work, and restored after it."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, earlier in before.items():
            if earlier is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, earlier)


def run_job(
    spark: SparkSession,
    sources: Sources,
    outputs: Outputs,
    use_case: str = BID_FILTERING,
    seed: int = DEFAULT_SPLIT_SEED,
    window: Window | None = None,
) -> FeaturesReport:
    """Run the feature job on explicit URIs and return its report (also written to `outputs.report`).

    With a `window`, only the files of its days are read and the split is temporal (`aik.features.window`).
    """
    from aik.features.spark import StageProgress

    start = time.monotonic()
    chosen_plan = plan(sources, use_case, window)
    describe = spark.sparkContext.setJobDescription  # names each step's Spark jobs in the UI and event log
    with session_settings(spark, JOB_SETTINGS), StageProgress(spark, "features"):
        try:
            describe("aik features: read the logs, write the rejects, count the lines")
            checked = read_and_check(spark, chosen_plan, outputs.rejects)
            inputs = checked.counts
            describe("aik features: join, label, fit the indexers")
            prepared = labelled_rows(checked, chosen_plan, seed)
            model = fit_indexers(prepared)  # the first action over the joined rows: they are cached now
            for df in checked.parsed.values():
                df.unpersist()
            labels = indexer_labels(model)
            log.info(
                "features: indexers fitted: %s",
                ", ".join(f"{c} {len(v):,} labels" for c, v in labels.items()),
            )
            describe("aik features: write the joined rows and the inference data")
            write_rows(prepared, outputs)
            describe("aik features: write the splits")
            splits = write_splits(prepared, model, outputs)
            describe("aik features: write the bundle")
            writer = write_spark_bundle(spark, model, prepared, outputs.bundle)
            storage.write_text(outputs.schema, json.dumps(RAW_SCHEMA, indent=2) + "\n")
            log.info(
                "features: bundle (%s) and schema written to %s, %s", writer, outputs.bundle, outputs.schema
            )
            prepared.unpersist()
        finally:
            describe(None)  # type: ignore[arg-type]  # None clears it (pyspark's stub says str)
    chosen = chosen_plan.chosen
    report = FeaturesReport(
        use_case=use_case,
        seed=seed,
        split=chosen.as_dict() if chosen is not None else {"split": "random"},
        input_files={
            u: storage.fingerprint(u) for kind in chosen_plan.kinds for u in chosen_plan.files[kind]
        },
        inputs=inputs,
        splits=splits,
        labels={column: len(values) for column, values in labels.items()},
        bundle_writer=writer,
        sources=sources,
        outputs=outputs,
        seconds=round(time.monotonic() - start, 1),
    )
    storage.write_text(outputs.report, json.dumps(report.to_dict(), indent=2) + "\n")
    log.info(
        "features: %s rows (%.1f %% positive) in %.1f s, %s rows/s",
        f"{report.rows:,}",
        100.0 * (report.positive_rate or 0.0),
        report.seconds,
        f"{report.rows / max(report.seconds, 1e-9):,.0f}",
    )
    return report


def run_features(
    ctx: Context,
    use_case: str = BID_FILTERING,
    *,
    spark: SparkSession | None = None,
    seed: int = DEFAULT_SPLIT_SEED,
    window: Window | None = None,
) -> FeaturesReport:
    """Notebook 2 / `aik features`: run the job on the URIs in the parameter store."""
    from aik.features.spark import get_session

    sources = sources_from_params(ctx.params)
    outputs = outputs_from_params(ctx.params)
    session = spark or get_session()
    uris = [*asdict(sources).values(), *asdict(outputs).values()]
    if (session.sparkContext.master or "").startswith("local") and any(storage.is_s3(u) for u in uris):
        raise AikError(
            "the parameters point at S3 but Spark runs in local mode here: run the job on EMR "
            "(notebook 2 attached to the cluster, or an EMR step with spark-submit; see docs/pipeline.md)"
        )
    return run_job(session, sources, outputs, use_case, seed, window)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit (an EMR step) and `python -m aik.features`."""
    from aik.context import Context
    from aik.settings import Settings, add_backend_arguments

    parser = argparse.ArgumentParser(
        prog="aik-features-job",
        description="The Spark feature job: read the iPinYou logs named by the parameters, write the splits, "
        "inference data, MLeap bundle and schema.",
    )
    add_backend_arguments(parser)
    parser.add_argument("--use-case", choices=USE_CASES, default=BID_FILTERING)
    parser.add_argument("--seed", type=int, default=DEFAULT_SPLIT_SEED, help="split seed (default 42)")
    add_window_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        ctx = Context(Settings.from_env(args.backend, args.workspace, args.region))
        report = run_features(ctx, args.use_case, seed=args.seed, window=window_from_args(args))
    except AikError as exc:
        print(f"aik-features-job: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
