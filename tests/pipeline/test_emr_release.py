"""The product's EMR releases: their Spark/Scala are known; mleap-spark is named only where MLeap built it."""

from __future__ import annotations

import pytest

from aik.features import emr


def test_every_release_the_product_offers_has_a_known_spark_and_scala() -> None:
    from stacks.emr_product import EMR_RELEASES

    assert set(EMR_RELEASES) <= set(emr.EMR_SPARK)


def test_emr_7_runs_spark_3_5_on_scala_2_12_for_which_mleap_has_no_build() -> None:
    assert emr.EMR_SPARK["emr-7.13.0"] == emr.SparkRuntime("3.5", "2.12")
    assert emr.mleap_spark_package("emr-7.13.0") is None


def test_a_release_whose_spark_has_an_mleap_build_gets_the_coordinates_of_its_scala(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(emr.EMR_SPARK, "emr-test-spark4", emr.SparkRuntime("4.1", "2.13"))
    assert emr.mleap_spark_package("emr-test-spark4") == "ml.combust.mleap:mleap-spark_2.13:0.25.2"


def test_an_unknown_release_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown EMR release 'emr-9\.9\.9'"):
        emr.mleap_spark_package("emr-9.9.9")
