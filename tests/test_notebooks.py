"""Static checks of the chapters (book/*.ipynb) as they are committed.

Running them is nbval's job: ``book`` is in pytest's ``testpaths`` and ``--nbval-lax`` in its options
(pyproject.toml), so every notebook is executed cell by cell in the smoke profile (book/conftest.py).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
COLAB_GUARD = 'if "google.colab" in sys.modules:'
# `%pip install -q "ifanp @ git+https://github.com/ifanp/ifanp.git"` (optionally @ a ref, quoted either way)
INSTALL = re.compile(r"""^\s+%pip install (?:-\S+ )*["']ifanp @ git\+(?P<url>[^"'@\s]+?)(?:\.git)?(?:@[^"'\s]+)?["']\s*$""")
# an install command: `!pip`, `%pip`, `%conda` ... at the start of a line, or `python -m pip` run from Python
PIP_ANYWHERE = re.compile(r"""^\s*[!%]\s*(pip|conda|mamba|uv)\b|["']-m["'],\s*["']pip["']""", re.MULTILINE)


def _config() -> dict:
    return yaml.safe_load((REPO / "_config.yml").read_text())


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def _guard_line(lines: list[str]) -> int | None:
    """Index of the line that opens the Colab guard (a trailing comment is allowed), or None."""
    for i, line in enumerate(lines):
        if line.strip().startswith(COLAB_GUARD):
            return i
    return None


def _toc_files(node) -> list[str]:
    files = []
    if isinstance(node, dict):
        if "file" in node:
            files.append(node["file"])
        if "root" in node:
            files.append(node["root"])
        for value in node.values():
            files += _toc_files(value)
    elif isinstance(node, list):
        for value in node:
            files += _toc_files(value)
    return files


def test_there_are_chapters():
    assert NOTEBOOKS, "no notebooks in book/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    dirty = [
        i for i, cell in enumerate(_cells(path))
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} hold outputs or execution counts. Clear them before committing "
        "(e.g. `jupyter nbconvert --clear-output --inplace` or Edit > Clear All Outputs); the book holds the outputs."
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_install_comes_from_the_configured_repository(path):
    """The setup cell installs the package in Colab only, from _config.yml's repository.url (one source)."""
    url = _config()["repository"]["url"].rstrip("/")
    cells = [c for c in _cells(path) if c["cell_type"] == "code"]
    assert cells, f"{path.name} has no code cells"
    lines = _source(cells[0]).splitlines()
    guard = _guard_line(lines)
    assert guard is not None, f"{path.name}: the first code cell must install the package under `{COLAB_GUARD}`."
    match = INSTALL.match(lines[guard + 1]) if guard + 1 < len(lines) else None
    assert match, (
        f"{path.name}: the line after the Colab guard must be "
        f'`    %pip install -q "ifanp @ git+{url}.git"`, got {lines[guard + 1:guard + 2]}.'
    )
    assert match["url"].rstrip("/") == url, (
        f"{path.name} installs from {match['url']} but _config.yml's repository.url is {url}."
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_install_or_chdir_outside_the_colab_guard(path):
    cells = [_source(c) for c in _cells(path) if c["cell_type"] == "code"]
    first = cells[0].splitlines()
    guard = _guard_line(first)
    rest_of_first = "\n".join(first[:guard] + first[guard + 2:]) if guard is not None else cells[0]
    for i, src in enumerate([rest_of_first] + cells[1:]):
        assert not PIP_ANYWHERE.search(src), f"{path.name}: code cell {i} installs packages outside the Colab guard."
        assert "os.chdir" not in src, f"{path.name}: code cell {i} changes the working directory."


def test_every_chapter_is_in_the_toc_and_every_toc_entry_exists():
    """only_build_toc_files is on: a chapter missing from _toc.yml would silently not be built."""
    listed = _toc_files(yaml.safe_load((REPO / "_toc.yml").read_text()))
    missing = [f for f in listed if not any((REPO / f).with_suffix(s).is_file() for s in (".md", ".ipynb"))]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"
    pages = {p.relative_to(REPO).with_suffix("").as_posix() for p in NOTEBOOKS}
    pages |= {p.relative_to(REPO).with_suffix("").as_posix() for p in BOOK.glob("*.md")}
    unlisted = sorted(pages - {f.removesuffix(".md").removesuffix(".ipynb") for f in listed})
    assert not unlisted, f"chapters not in _toc.yml (they would not be built): {unlisted}"


def test_the_config_executes_every_notebook_and_fails_on_errors():
    execute = _config()["execute"]
    assert execute["execute_notebooks"] == "force"
    assert execute["allow_errors"] is False
