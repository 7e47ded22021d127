"""The training job's program in the kit's image, run on channels laid out as SageMaker lays them out."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from train_fixture_data import FixtureSpec

from aik import params as P
from aik.bundle import read_bundle
from aik.params import open_store
from aik.schema import FEATURE_COLUMNS, INDEXED_COLUMNS
from aik.settings import Settings
from aik.train import sagemaker_entry as entry
from aik.train import sagemaker_job as sm
from aik.train.data import read_split
from aik.train.model import load_booster, model_bytes, train_booster
from aik.train.presets import resolve

SPEC = FixtureSpec(rows=6000, seed=5, domains=200, cities=40, regions=10)
#: Few rounds: the tests are about the job's plumbing, not the model's quality.
HPS = {"num_round": "40", "early_stopping_rounds": "10", "seed": "3", "threads": "1"}


def _job(ws: Path, root: Path, hps: dict[str, str]) -> dict[str, str]:
    """A job directory as SageMaker fills it (File mode), and the toolkit's variables pointing at it."""
    store = open_store(Settings(backend="local", workspace=ws))
    data = root / "input" / "data"
    for channel, name in (("train", P.OUTPUT_TRAIN), ("validation", P.OUTPUT_VALID)):
        shutil.copytree(store.get(name), data / channel)
    (data / "pipeline").mkdir(parents=True)
    shutil.copy(store.get(P.PIPELINE_MODEL), data / "pipeline" / "model.zip")
    return {
        "SM_CHANNEL_TRAIN": str(data / "train"),
        "SM_CHANNEL_VALIDATION": str(data / "validation"),
        "SM_CHANNEL_PIPELINE": str(data / "pipeline"),
        "SM_MODEL_DIR": str(root / "model"),
        "SM_OUTPUT_DIR": str(root / "output"),
        "SM_HPS": json.dumps(hps),
    }


def _model_tar(model_dir: Path) -> bytes:
    """model.tar.gz as SageMaker uploads the model directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return buf.getvalue()


def test_the_job_trains_the_laptops_default_preset(make_ws: Callable[..., Path], tmp_path: Path) -> None:
    ws = make_ws(SPEC)
    env = _job(ws, tmp_path / "job", HPS)
    assert entry.main([], env) == 0

    store = open_store(Settings(backend="local", workspace=ws))
    config = resolve("default", {"num_round": 40, "early_stopping_rounds": 10}, seed=3)
    indexer = read_bundle(store.get(P.PIPELINE_MODEL))
    unseen = {out: len(indexer.labels[raw]) for raw, out in INDEXED_COLUMNS.items()}
    local = train_booster(
        read_split(store.get(P.OUTPUT_TRAIN), seed=3, label="train"),
        read_split(store.get(P.OUTPUT_VALID), seed=4, label="valid"),
        config,
        unseen_codes=unseen,
        nthread=1,
    )
    cloud = (tmp_path / "job" / "model" / entry.MODEL_FILE).read_bytes()
    assert cloud == model_bytes(local.booster)


def test_the_model_archive_keeps_the_categorical_feature_types(
    make_ws: Callable[..., Path], tmp_path: Path
) -> None:
    ws = make_ws(SPEC)
    env = _job(ws, tmp_path / "job", HPS)
    assert entry.main([], env) == 0
    booster = sm.booster_from_model_tar(_model_tar(tmp_path / "job" / "model"), "s3://b/model.tar.gz")
    assert booster.feature_names == list(FEATURE_COLUMNS)
    assert booster.feature_types == resolve("default").feature_types()
    assert "c" in booster.feature_types


def test_training_json_says_what_was_trained(make_ws: Callable[..., Path], tmp_path: Path) -> None:
    ws = make_ws(SPEC)
    env = _job(ws, tmp_path / "job", {**HPS, "preset": "numeric"})
    assert entry.main([], env) == 0
    info = json.loads((tmp_path / "job" / "model" / entry.TRAINING_FILE).read_text())
    assert info["preset"]["preset"] == "numeric"
    assert info["preset"]["num_round"] == 40
    assert info["train_rows"] > info["valid_rows"] > 0
    model = load_booster((tmp_path / "job" / "model" / entry.MODEL_FILE).read_bytes())
    assert model.num_boosted_rounds() == info["rounds"]


def test_a_missing_channel_fails_the_job_with_its_reason(
    make_ws: Callable[..., Path], tmp_path: Path
) -> None:
    ws = make_ws(SPEC)
    env = _job(ws, tmp_path / "job", HPS)
    shutil.rmtree(env["SM_CHANNEL_VALIDATION"])
    assert entry.main([], env) == 1
    failure = (tmp_path / "job" / "output" / "failure").read_text()
    assert "validation channel" in failure
    assert not (tmp_path / "job" / "model" / entry.MODEL_FILE).exists()


def test_an_unknown_preset_fails_the_job(make_ws: Callable[..., Path], tmp_path: Path) -> None:
    ws = make_ws(SPEC)
    env = _job(ws, tmp_path / "job", {**HPS, "preset": "fancy"})
    assert entry.main([], env) == 1
    assert "unknown preset 'fancy'" in (tmp_path / "job" / "output" / "failure").read_text()


def test_hyperparameters_default_to_sagemakers_file(tmp_path: Path) -> None:
    layout = entry.JobLayout.from_env({"SM_MODEL_DIR": str(tmp_path)})
    assert layout.channels["train"] == Path("/opt/ml/input/data/train")
    assert layout.output_dir == Path("/opt/ml/output")
    assert layout.model_dir == tmp_path


def test_hyperparameters_that_are_not_json_are_refused() -> None:
    with pytest.raises(entry.AikError, match="not JSON"):
        entry.JobLayout.from_env({"SM_HPS": "{nope"})


def test_the_jobs_archive_becomes_the_live_release_through_aik_train(
    make_ws: Callable[..., Path], tmp_path: Path
) -> None:
    from aik import releases, storage
    from aik.cli import main

    ws = make_ws(SPEC)
    env = _job(ws, tmp_path / "job", {"seed": "3", "threads": "1"})
    assert entry.main([], env) == 0
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(_model_tar(tmp_path / "job" / "model"))

    assert main(["--workspace", str(ws), "train", "--no-baselines", "--model-uri", str(archive)]) == 0
    live = releases.require_live(open_store(Settings(backend="local", workspace=ws)))
    served = load_booster(storage.read_bytes(live.file_uri("model")))
    trained = load_booster((tmp_path / "job" / "model" / entry.MODEL_FILE).read_bytes())
    assert served.get_dump(dump_format="json") == trained.get_dump(dump_format="json")
    assert served.feature_types == trained.feature_types
    metrics = json.loads(storage.read_bytes(live.file_uri("metrics")))
    assert metrics["model"]["training"] == {"source": "sagemaker", "model_artifact": str(archive)}
    assert live.passed
