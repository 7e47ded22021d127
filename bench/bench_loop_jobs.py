"""The retraining loop's two SageMaker programs, timed here (inputs of the cost estimate in docs/deploy.md).

Builds a synthetic workspace of `--rows` bid requests (the training tests' generator: splits, MLeap
bundle, truth), lays a training job out as SageMaker does (channels under `input/data/`, the toolkit's
`SM_*` variables), runs the image's training program (`aik.train.sagemaker_entry`, the `default`
preset) and then `aik train --model-uri <its model.tar.gz>` (evaluation, baselines, gates, release), and
prints each one's wall and CPU seconds (CPU: this process, xgboost's threads included) and the load
average. On a shared machine the CPU seconds are the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "train"))

from train_fixture_data import FixtureSpec, make_workspace

from aik import params as P
from aik.cli import main as aik_main
from aik.params import open_store
from aik.settings import Settings
from aik.train import sagemaker_entry


def timed(label: str, run: Callable[[], int]) -> None:
    """Run, then print wall and CPU seconds and the load average."""
    t0, c0 = time.monotonic(), os.times()
    status = run()
    c1, t1 = os.times(), time.monotonic()
    cpu = (c1.user + c1.system) - (c0.user + c0.system)
    print(
        f"{label}: exit {status}, {t1 - t0:.1f} s wall, {cpu:.1f} s CPU, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="bid requests (default 200000)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    try:
        ws = root / "ws"
        ws.mkdir()
        make_workspace(ws, FixtureSpec(rows=args.rows, seed=7))
        store = open_store(Settings(backend="local", workspace=ws))
        data = root / "job" / "input" / "data"
        shutil.copytree(store.get(P.OUTPUT_TRAIN), data / "train")
        shutil.copytree(store.get(P.OUTPUT_VALID), data / "validation")
        (data / "pipeline").mkdir()
        shutil.copy(store.get(P.PIPELINE_MODEL), data / "pipeline" / "model.zip")
        model_dir = root / "job" / "model"
        env = {
            "SM_CHANNEL_TRAIN": str(data / "train"),
            "SM_CHANNEL_VALIDATION": str(data / "validation"),
            "SM_CHANNEL_PIPELINE": str(data / "pipeline"),
            "SM_MODEL_DIR": str(model_dir),
            "SM_OUTPUT_DIR": str(root / "job" / "output"),
            "SM_HPS": json.dumps({"preset": "default"}),
        }
        timed("training program (default preset)", lambda: sagemaker_entry.main([], env))
        print(f"  {json.loads((model_dir / sagemaker_entry.TRAINING_FILE).read_text())}")
        archive = root / "model.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            for path in sorted(model_dir.iterdir()):
                tar.add(path, arcname=path.name)
        timed(
            "aik train --model-uri (evaluate, baselines, gates, release)",
            lambda: aik_main(["--workspace", str(ws), "train", "--model-uri", str(archive)]),
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
