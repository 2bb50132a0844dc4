"""The book's vocabulary and figure style: SPEC links that resolve, sizes per profile, figures fitted to the column."""
from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from ifanp.plotting import style
from ifanp.reporting import spec_links

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO / "book").glob("*.ipynb"))
LABELS = set(re.findall(r"^\s*(?:\d+\. )?\((spec[\w-]*)\)=", (REPO / "book" / "spec.md").read_text(), re.MULTILINE))


def _markdown(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def test_the_spec_appendix_labels_its_sections():
    assert {"spec", "spec-5-4", "spec-9-8", "spec-8"} <= LABELS


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_spec_reference_in_a_chapter_is_a_link_that_resolves(path):
    text = _markdown(path)
    targets = re.findall(r"\]\(#(spec[\w-]*)\)", text)
    assert set(targets) <= LABELS, f"{path.name} links to missing SPEC sections: {set(targets) - LABELS}"
    plain = [m.group(0) for m in re.finditer(r"(?<!\[)SPEC (?:section )?\d", re.sub(r"`[^`]*`", "", text))]
    assert not plain, f"{path.name} has SPEC references that are not links: {plain[:5]}"


def test_generated_tables_link_spec_references_to_existing_sections():
    html = spec_links("as SPEC 5.4 [I] says (SPEC 4.3, 8)")
    anchors = re.findall(r'href="spec\.html#(spec[\w-]*)"', html)
    assert anchors == ["spec-5-4", "spec-4-3", "spec-8"] and set(anchors) <= LABELS


@pytest.mark.parametrize("profile", ["smoke", "default", "full"])
def test_chapter_sizes_follow_the_profile(monkeypatch, profile):
    monkeypatch.setenv("IFANP_PROFILE", profile)
    mod = importlib.reload(importlib.import_module("ifanp.profiles.ifnp"))
    expected = {"smoke": 8, "default": 300, "full": 5000}[profile]
    assert mod.N_EVAL == expected
    for path in CHAPTERS:  # every chapter imports its sizes from a module that exists
        m = re.search(r"from ifanp\.profiles\.(\w+) import", path.read_text())
        assert m and m.group(1) == path.stem, f"{path.name} does not import ifanp.profiles.{path.stem}"
        importlib.import_module(f"ifanp.profiles.{path.stem}")
    monkeypatch.undo()
    importlib.reload(mod)  # leave the module at the environment's own profile


def test_fit_narrows_wide_figures_and_lifts_small_text():
    fig = Figure(figsize=(12.6, 3.2))
    axes = fig.subplots(1, 3)
    axes[0].set_title("tiny", fontsize=5)
    axes[1].set_title("large", fontsize=12)
    style.fit(fig)
    width, height = fig.get_size_inches()
    assert width == pytest.approx(style.COLUMN_IN)
    assert height >= 3.2 * style.MIN_HEIGHT_SCALE - 1e-9
    assert axes[0].title.get_fontsize() == style.MIN_PT and axes[1].title.get_fontsize() == 12
    narrow = Figure(figsize=(5.0, 3.0))
    style.fit(narrow)
    assert tuple(narrow.get_size_inches()) == (5.0, 3.0)  # a figure that fits is left as drawn
