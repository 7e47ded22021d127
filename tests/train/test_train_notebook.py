"""Notebook 3 runs locally (papermill, parameterised with the workspace) and is committed clean."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nbformat
import papermill as pm
from train_fixture_data import model_path

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "3_train_xgboost.ipynb"


def test_notebook_3_trains_publishes_and_shows_the_plots(
    make_ws: Callable[..., Path], tmp_path: Path
) -> None:
    ws = make_ws()
    out = tmp_path / "executed.ipynb"
    pm.execute_notebook(
        str(NOTEBOOK),
        str(out),
        parameters={"workspace": str(ws), "baselines": False},
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )
    assert model_path(ws).is_file()
    executed = nbformat.read(out, as_version=4)
    images = [o for c in executed.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 4
    text = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    live = (ws / "bucket" / "releases").glob("*/release.json")
    assert [f"published: release {p.parent.name} is live" in text for p in live] == [True]


def test_notebook_3_is_committed_without_outputs_and_has_a_parameters_cell() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])
