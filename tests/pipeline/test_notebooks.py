"""Notebooks 0-2 run locally, in order, on a small synthetic dataset; they are committed without outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from aik.params import OUTPUT_TRAIN, PIPELINE_MODEL, LocalParameterStore

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ORDER = ("0_store_configuration", "1_download_ipinyou_data_tos3", "2_OpenRTB_EMR")


@pytest.mark.parametrize("name", ORDER)
def test_committed_without_outputs_and_with_a_parameters_cell(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])


def test_notebooks_run_in_order_locally(tmp_path: Path) -> None:
    import papermill

    workspace = tmp_path / "ws"
    outputs = {}
    parameters = {
        "0_store_configuration": {"WORKSPACE": str(workspace)},
        "1_download_ipinyou_data_tos3": {"WORKSPACE": str(workspace), "ROWS": 2_000, "SEED": 3},
        "2_OpenRTB_EMR": {"WORKSPACE": str(workspace)},
    }
    for name in ORDER:
        out = tmp_path / f"{name}.out.ipynb"
        papermill.execute_notebook(
            str(NOTEBOOKS / f"{name}.ipynb"),
            str(out),
            parameters=parameters[name],
            kernel_name="python3",
            cwd=str(tmp_path),
            progress_bar=False,
        )
        outputs[name] = nbformat.read(out, as_version=4)
    store = LocalParameterStore(workspace / "parameters.json")
    assert (Path(store.get(OUTPUT_TRAIN)) / "_SUCCESS").is_file()
    assert Path(store.get(PIPELINE_MODEL)).is_file()
    text = json.dumps([c.get("outputs", []) for nb in outputs.values() for c in nb.cells])
    assert "/aik/xgboost/path=" in text  # notebook 0 printed the parameters
    assert "2,000 rows" in text  # notebook 2's summary
    assert "IndexDomain" in text  # the split's schema


def test_notebook_context_is_aws_in_sagemaker_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aik import notebook

    assert notebook.notebook_context(workspace=str(tmp_path)).settings.backend == "local"
    metadata = tmp_path / "resource-metadata.json"
    metadata.write_text("{}")
    monkeypatch.setattr(notebook, "STUDIO_METADATA", metadata)
    assert notebook.notebook_context(workspace=str(tmp_path)).settings.backend == "aws"
    assert notebook.notebook_context("local", str(tmp_path)).settings.backend == "local"
    monkeypatch.setenv("AIK_BACKEND", "local")
    assert notebook.notebook_context(workspace=str(tmp_path)).settings.backend == "local"


def test_notebook_context_is_aws_on_an_emr_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aik import notebook

    monkeypatch.setattr(notebook, "STUDIO_METADATA", tmp_path / "absent.json")
    monkeypatch.setattr(notebook, "EMR_INSTANCE_INFO", tmp_path / "instance.json")
    assert notebook.notebook_context(workspace=str(tmp_path)).settings.backend == "local"
    (tmp_path / "instance.json").write_text('{"isMaster": true}')
    assert notebook.notebook_context(workspace=str(tmp_path)).settings.backend == "aws"


@pytest.mark.parametrize("name", (*ORDER, "3_train_xgboost"))
def test_every_notebook_takes_its_context_from_notebook_context(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "notebook_context(" in code
    assert "Settings.from_env" not in code and "Context(" not in code.replace("notebook_context(", "")
    parameters = nb.cells[[c.cell_type for c in nb.cells].index("code")].source
    assert re.search(r"^(backend|BACKEND) = None\b", parameters, re.M), "the backend must not be hard-coded"


def test_notebook_2_has_no_configure_cell_for_the_products_releases() -> None:
    from aik.features.emr import mleap_spark_package
    from stacks.emr_product import EMR_RELEASES

    assert all(mleap_spark_package(release) is None for release in EMR_RELEASES)
    nb = nbformat.read(NOTEBOOKS / "2_OpenRTB_EMR.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    text = "\n".join(c.source for c in nb.cells)
    assert "%%configure" not in code
    assert "aik.zip" not in text and "mleap-spark_" not in text
