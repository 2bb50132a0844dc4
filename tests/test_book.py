"""Build the whole book (smoke profile) into a temporary folder and check the HTML a reader gets offline.

Marked ``book`` and ``book_build``: ``pytest -m "not book_build"`` skips it. It runs in ``make test``.
The build is the README's (``jupyter-book build --all -W -n --keep-going``), so any warning, broken
reference or failing notebook fails it. The widget JavaScript comes from tools/fetch_widgets_js.py
(``make widgets-js``; the test calls it too, and it does nothing when the files are there).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.book, pytest.mark.book_build, pytest.mark.slow]
BUILD_TIMEOUT_S = 900  # the smoke build takes about 2 minutes on 2 cores, 4 beside the other tests
BUILD: dict[str, str] = {}  # the build's log, for the tests that read it


class _Page(HTMLParser):
    """Collects a page's script sources, link targets, and its text outside <script>/<style>/<pre>/<code>."""

    SKIP = frozenset({"script", "style", "pre", "code", "textarea"})

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []
        self.script_types: list[str] = []
        self.links: list[str] = []
        self.stylesheets: list[str] = []
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            if a.get("src"):
                self.scripts.append(a["src"])
            self.script_types.append(a.get("type") or "")
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "link" and a.get("rel") == "stylesheet" and a.get("href"):
            self.stylesheets.append(a["href"])
        if tag in self.SKIP:
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in self.SKIP and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _srcs(page: _Page) -> list[str]:
    """Script sources without their cache-busting query and without the leading ../ parts."""
    return [re.sub(r"^(\.\./)+", "", src.split("?")[0]) for src in page.scripts]


def _toc_pages() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [c["file"] for c in part.get("chapters", [])]
    pages += [c["file"] for c in toc.get("chapters", [])]
    return [p.removesuffix(".md").removesuffix(".ipynb") for p in pages]


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    subprocess.run([sys.executable, str(REPO / "tools" / "fetch_widgets_js.py")], check=True, cwd=REPO)
    out = tmp_path_factory.mktemp("book")
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", "--all", "-W", "-n", "--keep-going", "--path-output", str(out), str(REPO)]
    env = {**os.environ, "IFANP_PROFILE": "smoke"}
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as err:  # say where it stopped instead of only that it did
        out_text = err.output.decode(errors="replace") if isinstance(err.output, bytes) else (err.output or "")
        pytest.fail(f"jupyter-book build still running after {BUILD_TIMEOUT_S} s; the end of its log:\n"
                    f"{out_text[-4000:]}")
    log = proc.stdout + proc.stderr
    BUILD["log"] = log
    if proc.returncode != 0:  # the warnings and each failing notebook's traceback, not the log's last lines
        warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
        reports = sorted((out / "_build" / "html" / "reports").rglob("*.err.log"))
        tracebacks = [f"--- {r.name}:\n{r.read_text(errors='replace')[-2500:]}" for r in reports]
        pytest.fail(f"jupyter-book build failed (exit {proc.returncode}):\n" + "\n".join(warnings[:40])
                    + "\n" + "\n".join(tracebacks) + f"\n--- end of the log:\n{log[-1500:]}")
    root = out / "_build" / "html"
    assert (root / "index.html").is_file(), log[-3000:]
    return root


def test_the_build_polls_kernel_replies_in_slices(html):
    """book/_ext/nbclient_poll.py is loaded, so a missed wake-up cannot stall the build (see its docstring)."""
    assert "nbclient_poll: kernel replies are polled in slices" in BUILD["log"]


def test_every_page_of_the_toc_is_built(html):
    missing = [p for p in _toc_pages() if not (html / f"{p}.html").is_file()]
    assert not missing, f"pages missing from the build: {missing}"


def test_no_raw_dollar_math_is_left(html):
    pages = _toc_pages()
    for p in pages:
        text = "".join(_parse(html / f"{p}.html").text)
        assert "$$" not in text, f"{p}.html shows raw $$ math: the dollarmath/amsmath parsing failed."
    # and the chapter's display math became MathJax blocks with equation numbers
    chapter = (html / "book" / "gp_regression.html").read_text(encoding="utf-8")
    assert chapter.count('class="math notranslate nohighlight"') >= 10
    assert 'id="equation-gp-post-mean"' in chapter


def test_mathjax_is_served_locally_and_no_page_uses_a_cdn(html):
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    with_math = []
    for p in _toc_pages():
        source = (html / f"{p}.html").read_text(encoding="utf-8")
        page = _parse(html / f"{p}.html")
        remote = [s for s in page.scripts + page.stylesheets if re.match(r"^(https?:)?//", s)]
        assert not remote, f"{p}.html loads scripts or styles from the internet: {remote}"
        if 'class="math' in source:  # Sphinx adds MathJax to the pages that hold math
            with_math.append(p)
            assert "_static/mathjax/tex-chtml.js" in _srcs(page), f"{p}.html has math but no local MathJax"
    assert "book/gp_regression" in with_math


def test_widget_javascript_is_present_where_widgets_are(html):
    js = html / "_static" / "widgets-js"
    for name in ("require.js", "embed-amd.js"):
        assert (js / name).is_file() and (js / name).stat().st_size > 10_000, f"missing {name} in the build"
    with_widgets = []
    for p in _toc_pages():
        page = _parse(html / f"{p}.html")
        has_state = "application/vnd.jupyter.widget-state+json" in page.script_types
        loads = [s for s in _srcs(page) if "widgets-js/" in s]
        if has_state:
            with_widgets.append(p)
            assert loads == ["_static/widgets-js/require.js", "_static/widgets-js/embed-amd.js"], (
                f"{p}.html holds widget state but loads {loads} (want require.js, then embed-amd.js)"
            )
        else:
            assert not loads, f"{p}.html has no widgets but loads the widget JavaScript: {loads}"
    assert "book/gp_regression" in with_widgets, "the GP chapter's widget state was not saved in the page"


def test_notebook_pages_have_a_colab_button_from_the_configured_repository(html):
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    url = config["repository"]["url"].rstrip("/")
    org_repo = url.removeprefix("https://github.com/")
    branch = config["repository"]["branch"]
    for p in _toc_pages():
        if not (REPO / f"{p}.ipynb").is_file():
            continue
        links = _parse(html / f"{p}.html").links
        expected = f"https://colab.research.google.com/github/{org_repo}/blob/{branch}/{p}.ipynb"
        assert expected in links, f"{p}.html has no Colab button to {expected}"


def test_citations_link_to_the_bibliography(html):
    intro = _parse(html / "book" / "intro.html")
    assert any("bibliography.html#" in href for href in intro.links), "the intro's citations do not link to the bibliography"
    bib = " ".join("".join(_parse(html / "book" / "bibliography.html").text).split()).lower()
    for needle in ("image data complementation method", "10.15888/j.cnki.csa.008864",
                   "gaussian processes for machine learning", "attentive neural processes"):
        assert needle in bib, f"{needle!r} is not in the bibliography"
