"""Every notebook in notebooks/ runs top to bottom (nbclient, kernel python3), so none can rot."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(ROOT.glob("*.ipynb"))


def test_there_is_a_notebook():
    assert any(p.name == "choosing_gna_parameters.ipynb" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()     # raises CellExecutionError on the first failing cell
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    # the plots were drawn (plotly figures in the outputs), and the tables computed
    mimes = {m for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             for m in o.get("data", {})}
    assert "application/vnd.plotly.v1+json" in mimes or "text/html" in mimes
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                   for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    if path.name == "choosing_gna_parameters.ipynb":
        assert "configurations in" in text
        assert "smallest perfectly block-sparse stride" in text
        assert re.search(r"h100: fastest Q \S+ / KV \S+, stride \S+: [0-9.]+ ms predicted", text)


def _outputs_text(nb) -> str:
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                   for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_committed_notebook_is_executed_from_the_current_cells():
    """The notebook is committed with its outputs (make_notebooks.py executes it), from the cells
    make_notebooks.py holds now, and it chooses by predicted time on the h100 profile."""
    spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "make_notebooks.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    nb = nbformat.read(ROOT / "choosing_gna_parameters.ipynb", as_version=4)
    assert [(c.cell_type, c.source) for c in nb.cells] == \
        [(c.cell_type, c.source) for c in make.build(make.CHOOSING).cells], \
        "notebooks/choosing_gna_parameters.ipynb is stale: run python notebooks/make_notebooks.py"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert all(c.outputs for c in code), "every code cell has its output stored"
    assert not [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    choose = next(c.source for c in code if "ranked = []" in c.source)
    assert "simulate(" in choose and "predicted_total_ms" in choose
    text = _outputs_text(nb)
    assert re.search(r"h100: fastest Q \S+ / KV \S+, stride \S+: [0-9.]+ ms predicted", text)
