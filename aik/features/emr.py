"""What notebook 2 needs on the EMR releases the kit's product launches: their Spark/Scala, no configure cell.

The product's bootstrap action installs the kit and the feature job's packages on every node, so a
Livy session needs no `pyFiles`. The only thing a `%%configure` cell could still add is mleap-spark
(`spark.jars.packages`), and only a build for the cluster's Spark and Scala loads there. MLeap's
builds (its README's compatibility matrix) go from Spark 3.4 / Scala 2.12 (0.23.x) straight to
Spark 4.0 / Scala 2.13 (0.24+): none is built for the Spark 3.5 / Scala 2.12 of EMR 7.x. So for
the product's releases notebook 2 has no `%%configure` cell (a release with a build would get one
naming `mleap_spark_package(release)`), and `aik.bundle` writes the bundle in mleap-spark's layout.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SparkRuntime:
    """The Spark (major.minor) and Scala (binary) versions of an EMR release."""

    spark: str
    scala: str


#: The releases the product offers (stacks/emr_product.py), from EMR's release guide.
EMR_SPARK: dict[str, SparkRuntime] = {
    "emr-7.13.0": SparkRuntime("3.5", "2.12"),
    "emr-7.12.0": SparkRuntime("3.5", "2.12"),
}

#: mleap-spark versions by (Spark major.minor, Scala binary version), from MLeap's compatibility matrix.
MLEAP_SPARK_BUILDS: dict[tuple[str, str], str] = {
    ("3.4", "2.12"): "0.23.4",
    ("4.0", "2.13"): "0.24.2",
    ("4.1", "2.13"): "0.25.2",
}


def mleap_spark_package(release: str) -> str | None:
    """Maven coordinates of the mleap-spark built for an EMR release's Spark and Scala, or None (no build)."""
    try:
        runtime = EMR_SPARK[release]
    except KeyError:
        raise ValueError(f"unknown EMR release {release!r} (known: {', '.join(EMR_SPARK)})") from None
    version = MLEAP_SPARK_BUILDS.get((runtime.spark, runtime.scala))
    return None if version is None else f"ml.combust.mleap:mleap-spark_{runtime.scala}:{version}"
