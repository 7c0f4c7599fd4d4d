"""trainwise in Jupyter: examples/quickstart.ipynb runs on a real ipykernel (through nbclient) and every result
shows itself: figures as PNG images without `%matplotlib inline`, results as HTML tables, the progress as an HTML
display that needs no ipywidgets, and nothing at all on stderr. Also the short reprs of results in a notebook."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

import trainwise

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def outputs_of(notebook: Any, marker: str) -> list[dict[str, Any]]:
    """The outputs of the one code cell whose source contains `marker`."""
    cells = [cell for cell in notebook.cells if cell.cell_type == "code" and marker in cell.source]
    assert len(cells) == 1, f"{len(cells)} code cells contain {marker!r}"
    return list(cells[0].outputs)


def html_of(outputs: list[dict[str, Any]]) -> list[str]:
    return [output["data"]["text/html"] for output in outputs if "text/html" in output.get("data", {})]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # the kernel must import this checkout's trainwise: say which one it imported
    notebook.cells.append(nbformat.v4.new_code_cell("import trainwise\nprint(trainwise.__file__)"))
    folder = tmp_path_factory.mktemp("notebook")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.pop("MPLBACKEND", None)  # the kernel picks its own (inline) backend, as in Jupyter
    env.pop("TRAINWISE_HOME", None)
    client = nbclient.NotebookClient(
        notebook, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(folder)}}
    )
    client.execute(env=env, cwd=str(folder))
    return notebook


def test_the_committed_notebook_has_no_outputs() -> None:
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert len(code) >= 8
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


def test_the_kernel_ran_this_checkout(executed: Any) -> None:
    (output,) = executed.cells[-1].outputs
    assert Path(output["text"].strip()) == ROOT / "src" / "trainwise" / "__init__.py"


def test_nothing_goes_to_stderr_and_no_cell_fails(executed: Any) -> None:
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", output
            assert not (output["output_type"] == "stream" and output["name"] == "stderr"), output["text"]
            assert "ipywidgets" not in str(output)


def test_every_plot_cell_shows_one_png(executed: Any) -> None:
    for marker in ("plot_history(result.history)", "lr_result.plot()", "comparison.plot()"):
        outputs = outputs_of(executed, marker)
        images = [output for output in outputs if "image/png" in output.get("data", {})]
        assert len(images) == 1, f"{marker}: {len(images)} images"
        assert images[0]["output_type"] == "execute_result"
        assert len(images[0]["data"]["image/png"]) > 5000  # base64 of a real plot


def test_the_fit_shows_its_progress_and_its_result_table(executed: Any) -> None:
    outputs = outputs_of(executed, "trainwise.fit(")
    progress = [output for output in outputs if output["output_type"] == "display_data"]
    assert len(progress) == 1  # one display, updated in place
    assert progress[0]["data"]["text/plain"].startswith("epoch 5000/5000  0:00:00 left  loss ")
    assert progress[0]["data"]["text/html"].count("<progress") == 1  # full batch: no batches bar
    (result,) = [output for output in outputs if output["output_type"] == "execute_result"]
    assert "<table" in result["data"]["text/html"] and "best (epoch" in result["data"]["text/html"]
    assert result["data"]["text/plain"].startswith("FitResult(status='completed', epochs=5000, loss=")


def test_the_doctor_lr_finder_and_comparison_show_as_html_tables(executed: Any) -> None:
    doctor = outputs_of(executed, "trainwise.watch(")
    assert any("<table" in page for page in html_of(doctor))
    printed = "".join(output.get("text", "") for output in doctor if output["output_type"] == "stream")
    assert "lr-too-high" in printed  # the findings, printed as they came (on stdout)
    (lr_page,) = html_of(outputs_of(executed, "trainwise.lr_find("))
    assert "<table" in lr_page and "suggested lr" in lr_page
    (comparison,) = html_of(outputs_of(executed, "trainwise.compare("))
    assert "<table" in comparison and "<td>0.01</td>" in comparison and "<td>0.001</td>" in comparison
    table = outputs_of(executed, "print(comparison.table())")
    text = table[0]["text"]
    assert table[0]["name"] == "stdout" and "ranked by loss, lowest first" in text and "\u2503 optim.lr" in text
    assert table[1]["data"]["text/plain"].startswith("CompareRow(rank=1, label='optim.lr=0.01', final_loss=")
    assert "loss=[200 values]" in table[1]["data"]["text/plain"]


def test_fit_result_repr_is_short_and_html_is_a_table() -> None:
    X = torch.linspace(-1, 1, 20).unsqueeze(1)
    result = trainwise.fit(torch.nn.Linear(1, 1), (X, 3 * X + 1), loss="mse", lr=0.1, epochs=300, progress=False,
                           device="cpu")  # fmt: skip
    final = result.history["loss"][-1]
    text = repr(result)
    assert text == (
        f"FitResult(status='completed', epochs=300, loss={final:.4g}, best_epoch={int(result.best['epoch'])}, "
        f"seconds={round(result.seconds, 2):.4g})"
    )
    page = result._repr_html_()
    assert "<table>" in page and f"<td>{final:.6g}</td>" in page


def test_load_ext_trainwise_watches_the_notebooks_loops_and_shows_findings_under_their_cell(
    tmp_path: Path,
) -> None:
    """examples/w1_temperature.ipynb, plain PyTorch after `%load_ext trainwise`: the book's first loop gets its
    findings under its cell, the fixed loop none."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(ROOT / "examples" / "w1_temperature.ipynb", as_version=4)
    nbformat.validate(notebook)
    assert all(cell.outputs == [] for cell in notebook.cells if cell.cell_type == "code")
    assert "trainwise" not in "".join(cell.source for cell in notebook.cells[2:] if cell.cell_type == "code")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.pop("MPLBACKEND", None)
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=600)
    client.execute(env=env, cwd=str(tmp_path))
    faulty = "".join(o.get("text", "") for o in outputs_of(notebook, "# as first written"))
    assert "warning unscaled-inputs" in faulty and "warning lr-too-high" in faulty and "nonfinite-loss" in faulty
    assert all(o.get("name") != "stderr" for o in outputs_of(notebook, "# as first written"))  # no red block
    fixed = outputs_of(notebook, "# the fix")
    assert [o["name"] for o in fixed] == ["stdout"] and fixed[0]["text"].startswith("loss 2.9")
    assert outputs_of(notebook, "%load_ext") == []
