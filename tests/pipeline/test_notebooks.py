"""Notebooks 0-2 run locally, in order, on a small synthetic dataset; they are committed without outputs."""

from __future__ import annotations

import json
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
