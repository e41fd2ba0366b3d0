"""Every notebook is saved the way CI and learners need it (nbval itself executes them)."""

from __future__ import annotations

import json
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def test_the_curriculum_starts_with_00_and_01() -> None:
    names = [path.name[:2] for path in NOTEBOOKS]
    assert names[:2] == ["00", "01"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_kernelspec_requirements_and_no_widget_state(path: pathlib.Path) -> None:
    notebook = json.loads(path.read_text())
    metadata = notebook["metadata"]
    assert metadata["kernelspec"]["name"] == "python3"
    assert "widgets" not in metadata, "strip the widget state before saving"
    assert isinstance(metadata.get("minictr", {}).get("requires"), list), (
        "metadata.minictr.requires lists what it needs"
    )
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code and all(cell.get("execution_count") for cell in code), "save notebooks executed"
    tagged = [cell for cell in code if "nbval-check-output" in cell.get("metadata", {}).get("tags", [])]
    assert tagged, "tag the cells whose output matters with nbval-check-output"
