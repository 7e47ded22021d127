"""The Studio install: the lifecycle script in a fresh environment resembling the Studio image, then
notebooks 0, 1 and 3 executed there (papermill, the image's own) against the emulated AWS endpoint.

The environment is a venv on this machine's Python 3.11 (the image has 3.12) holding the image's own
versions of the packages the kit touches, from SageMaker Distribution 4.4.1's CPU environment file
(`build_artifacts/v4/v4.4/v4.4.1/cpu.env.out` in aws/sagemaker-distribution). Notebook 2 runs on EMR
in Studio (the SparkMagic kernel), not in this kernel: its outputs come from the feature job in local
mode, uploaded to S3 (`features_to_s3`), as in the end-to-end test.
"""

from __future__ import annotations

import shutil
import subprocess
import venv
from pathlib import Path

import nbformat
import pytest

from aik.params import RELEASE_LIVE, XGBOOST_PATH
from aik.releases import MANIFEST
from stacks import studio_lifecycle

from .conftest import ROOT, MotoEndpoint, features_to_s3, s3_keys, ssm_parameters

# creating the image venv and running the lifecycle script take minutes on a busy machine
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"

#: SageMaker Distribution 4.4.1 (CPU): the image's versions of what the kit and its notebooks use.
IMAGE_PACKAGES = (
    "numpy==1.26.4",
    "pandas==2.3.3",
    "pyarrow==21.0.0",
    "boto3==1.43.56",
    "scipy==1.16.3",
    "scikit-learn==1.7.2",
    "matplotlib==3.10.9",
    "smart_open==8.0.1",
    "papermill==2.7.0",
    "ipykernel==7.3.0",
    "sagemaker-core==2.20.0",
    "sagemaker-train==1.14.0",
)
#: conda-forge's CPU build has no NCCL; PyPI's wheel pulls nvidia-nccl-cu12, which the image lacks.
IMAGE_XGBOOST = "xgboost==2.1.4"


def pip_versions(python: Path) -> dict[str, str]:
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.lower().replace("_", "-").split("==", 1) for line in listed.splitlines() if "==" in line)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment with the image's packages, returning its interpreter."""
    path = tmp_path_factory.mktemp("studio-image") / "venv"
    venv.create(path, with_pip=True)
    python = path / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *IMAGE_PACKAGES], check=True)
    subprocess.run([*pip, "--no-deps", IMAGE_XGBOOST], check=True)
    return python


@pytest.fixture(scope="module")
def installed(image: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The lifecycle script run on the image, from what the stack deploys under `bootstrap/`; the image's
    package versions before it ran."""
    source = tmp_path_factory.mktemp("bootstrap")
    shutil.copytree(REPO / "aik", source / "aik", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    before = pip_versions(image)
    done = subprocess.run(
        ["bash", str(studio_lifecycle.SCRIPT), str(source)],
        env={"PATH": "/usr/bin:/bin", "HOME": str(source), "AIK_PYTHON": str(image), "AIK_EXTRAS": "studio"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return before


def run_notebook(image: Path, endpoint: MotoEndpoint, name: str, out: Path, **parameters: object) -> str:
    """Execute a notebook with the image's papermill and kernel; returns its outputs' text."""
    args = [str(image), "-m", "papermill", str(NOTEBOOKS / f"{name}.ipynb"), str(out), "-k", "python3"]
    for key, value in parameters.items():
        args += (
            ["-p", key, str(value)] if not isinstance(value, bool) else ["-y", f"{key}: {str(value).lower()}"]
        )
    env = {**endpoint.env, "PATH": f"{image.parent}:/usr/bin:/bin", "MPLBACKEND": "Agg"}
    done = subprocess.run(args, env=env, cwd=out.parent, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{name} failed:\n{done.stderr[-4000:]}"
    executed = nbformat.read(out, as_version=4)
    return "\n".join(
        o.get("text", "") + "".join(str(v) for v in o.get("data", {}).values() if isinstance(v, str))
        for c in executed.cells
        for o in c.get("outputs", [])
    )


def test_the_lifecycle_script_installs_the_kit_and_moves_none_of_the_images_packages(
    image: Path, installed: dict[str, str]
) -> None:
    after = pip_versions(image)
    assert {name: after.get(name) for name in installed} == installed
    assert "advertising-intelligence-kit" in after
    subprocess.run([str(image), "-c", "import aik.notebook, aik.ingest, aik.train, woothee"], check=True)


def test_notebooks_0_1_and_3_run_in_the_studio_kernel_against_the_emulated_aws(
    image: Path,
    installed: dict[str, str],
    moto_endpoint: MotoEndpoint,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    out = tmp_path_factory.mktemp("executed")
    text = run_notebook(image, moto_endpoint, "0_store_configuration", out / "0.ipynb", BACKEND="aws")
    assert "backend: aws" in text and f"/aik/output_train={ROOT}processed/sample/train/" in text
    run_notebook(
        image,
        moto_endpoint,
        "1_download_ipinyou_data_tos3",
        out / "1.ipynb",
        BACKEND="aws",
        ROWS=12000,
        SEED=11,
    )
    assert any(k.startswith("raw/ipinyou-data/bid/") for k in s3_keys(moto_endpoint, "raw/"))
    features_to_s3(moto_endpoint, tmp_path_factory.mktemp("spark-ws"))
    text = run_notebook(
        image, moto_endpoint, "3_train_xgboost", out / "3.ipynb", backend="aws", baselines=False
    )
    release = text.split("published: release ", 1)[1].split()[0]
    live = ssm_parameters(moto_endpoint)[RELEASE_LIVE]
    assert live == f"{ROOT}releases/{release}/{MANIFEST}"
    assert live.removeprefix(ROOT) in s3_keys(moto_endpoint, f"releases/{release}/")
    assert ssm_parameters(moto_endpoint)[XGBOOST_PATH].removeprefix(ROOT) in s3_keys(moto_endpoint, "")
