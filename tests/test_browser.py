"""The book's live widgets (book/_live/) in a real browser: Playwright driving Debian's chromium.

The site is a small one that the test builds (``ifanp.live.standalone_site``: the widgets' JavaScript,
the ONNX exports of the models under test and the test digits, as the book build writes them, plus
onnxruntime-web from ``tools/fetch_widgets_js.py``) with one page per widget, each holding exactly the
HTML that a chapter's ``live_widget(...)`` cell writes into the book (so no book build is needed here). It is served from a thread on 127.0.0.1; every request
the page makes must stay there. Each test interacts as a reader would (clicks, drags, draws, selects),
then reads the page's numbers from the widget's ``data-state`` attribute and compares them with the
package (ifanp.gp, the PyTorch models) on the same inputs.

No browser or no Playwright: the tests skip with a message saying what to install, except under
``CI=true``, where that is a failure (``make test`` installs both). A failing test saves a screenshot
under ``_build/browser-failures/``.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "_build" / "browser-failures"
pytestmark = [pytest.mark.slow]
MODELS = ("mnist-ifanp-plus", "mnist-np")
ATTENTION = ("mnist-ifanp",)
NP1D = ("np1d-cnp-rbf", "np1d-anp-rbf", "np1d-np-periodic")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _missing(what: str):
    msg = f"{what}; install it with `make test` (apt-get install -y chromium; pip install -r requirements-dev.txt)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: the browser tests must run, but {msg}")
    pytest.skip(msg)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        _missing("no chromium on PATH")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=LAUNCH_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A served site: {url, root}. Pages: book/gp.html, book/image.html, book/attention.html."""
    from ifanp.live import standalone_site

    if not (REPO / "book" / "_widgets_js" / "ort" / "ort.wasm.min.mjs").is_file():
        subprocess.run([sys.executable, str(REPO / "tools" / "fetch_widgets_js.py")], check=True, cwd=REPO)
    root = tmp_path_factory.mktemp("live-site")
    manifest = standalone_site(root, models=MODELS, attention=ATTENTION, np1d=NP1D)
    assert not manifest["missing"], manifest["missing"]
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "root": root}
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map: ClassVar[dict[str, str]] = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".wasm": "application/wasm", ".onnx": "application/octet-stream"}

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def page(browser, site, request):
    """A fresh page (1300 px wide) that records every request and saves a screenshot if the test fails."""
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    pg = context.new_page()
    pg.requests = []
    pg.errors = []
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    failed_before = request.session.testsfailed
    yield pg
    if request.session.testsfailed > failed_before:  # the call phase is reported before this teardown
        SHOTS.mkdir(parents=True, exist_ok=True)
        shot = SHOTS / f"{request.node.name}.png"
        pg.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failing page: {shot}")
    context.close()


def _state(pg, selector: str = "div.ifanp-live") -> dict:
    return json.loads(pg.get_attribute(selector, "data-state"))


def _wait_updates(pg, more_than: int, timeout: float = 60_000) -> int:
    pg.wait_for_function(
        f"() => {{ const d = document.querySelector('div.ifanp-live'); "
        f"return d && (d.dataset.error || Number(d.dataset.updates || 0) > {more_than}); }}", timeout=timeout)
    err = pg.get_attribute("div.ifanp-live", "data-error")
    assert not err, f"the widget reported an error: {err}"
    return int(pg.get_attribute("div.ifanp-live", "data-updates"))


def _only_local(pg, site):
    outside = [u for u in pg.requests if not u.startswith(site["url"] + "/") and not u.startswith("data:")
               and not u.startswith("blob:")]
    assert not outside, f"requests left 127.0.0.1: {outside}"
    assert not pg.errors, f"JavaScript errors on the page: {pg.errors}"


# ---- GP regression -----------------------------------------------------------------------------------


def _gp_reference(state: dict):
    from ifanp import gp

    params = {"lengthscale": state["lengthscale"], "variance": state["variance"]}
    if state["kernel"] == "periodic":
        params["period"] = state["period"]
    model = gp.GPRegression(gp.kernel_by_name(state["kernel"], **params), noise=state["noise_std"] ** 2)
    pts = torch.tensor(state["points"], dtype=torch.float64)
    xs = torch.tensor(state["x"], dtype=torch.float64)[:, None]
    with torch.no_grad():
        post = model.posterior(pts[:, :1], pts[:, 1], xs, full_cov=False)
        lml = float(model.log_marginal_likelihood(pts[:, :1], pts[:, 1]))
    var = post.cov.numpy()
    return post.mean.numpy(), np.sqrt(var), np.sqrt(var + state["noise_std"] ** 2), lml


def _assert_gp_matches(state: dict):
    mean, sd_f, sd_y, lml = _gp_reference(state)
    for key, ref in (("mean", mean), ("sd_f", sd_f), ("sd_y", sd_y)):
        diff = np.abs(np.array(state[key]) - ref).max()
        assert diff < 1e-6, f"{state['kernel']}: the page's {key} differs from ifanp.gp by {diff:.3g}"
    assert abs(state["lml"] - lml) < 1e-8 * max(1.0, abs(lml))


def test_gp_widget_follows_clicks_drags_and_controls_and_equals_ifanp_gp(page, site):
    page.goto(f"{site['url']}/book/gp.html")
    n = _wait_updates(page, 0)
    first = _state(page)
    assert len(first["points"]) == 4
    _assert_gp_matches(first)
    box = page.locator("svg.ifanp-plot").bounding_box()
    # click twice on empty space: two new observations
    page.mouse.click(box["x"] + 0.55 * box["width"], box["y"] + 0.3 * box["height"])
    page.mouse.click(box["x"] + 0.85 * box["width"], box["y"] + 0.7 * box["height"])
    n = _wait_updates(page, n)
    page.wait_for_function("() => JSON.parse(document.querySelector('div.ifanp-live').dataset.state).points.length === 6")
    added = _state(page)
    assert added["mean"] != first["mean"]
    _assert_gp_matches(added)
    # drag the first point upwards
    dot = page.locator("circle.dot").first.bounding_box()
    cx, cy = dot["x"] + dot["width"] / 2, dot["y"] + dot["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 5, cy - 60, steps=5)
    page.mouse.up()
    page.wait_for_timeout(100)
    dragged = _state(page)
    assert dragged["points"][0][1] > added["points"][0][1] + 0.3, "dragging did not move the point"
    _assert_gp_matches(dragged)
    # every kernel, and the two sliders
    for kernel in ("matern12", "matern32", "matern52", "periodic", "rbf"):
        page.select_option("div.ifanp-live select", kernel)
        page.wait_for_function(f"() => JSON.parse(document.querySelector('div.ifanp-live').dataset.state).kernel === '{kernel}'")
        _assert_gp_matches(_state(page))
    sliders = page.locator("div.ifanp-live input[type=range]")
    sliders.nth(0).fill("-1")   # lengthscale 0.1
    sliders.nth(1).fill("-0.5")  # noise std 0.316
    page.wait_for_timeout(100)
    last = _state(page)
    assert abs(last["lengthscale"] - 0.1) < 1e-9 and abs(last["noise_std"] - 10 ** -0.5) < 1e-9
    _assert_gp_matches(last)
    # double-click removes a point
    page.locator("circle.dot").nth(1).dblclick()
    page.wait_for_timeout(100)
    assert len(_state(page)["points"]) == 5
    _only_local(page, site)


# ---- image completion --------------------------------------------------------------------------------


@functools.cache
def _model(name: str):
    from ifanp.pretrained import load_pretrained

    return load_pretrained(name).float().eval()


def _assert_image_matches(state: dict):
    from ifanp.onnx_export import CompletionGraph

    s = state["size"]
    image = torch.tensor(state["image"], dtype=torch.float32).view(1, 1, s, s)
    mask = torch.tensor([int(c) for c in state["mask"]], dtype=torch.float32).view(1, 1, s, s)
    eps = torch.tensor(state["eps"], dtype=torch.float32).view(state["rows"], 1, state["z_dim"])
    model = _model(state["model"])
    with torch.no_grad():
        mean, std = CompletionGraph(model)(image, mask, eps)
        ref_mean = model.complete(image, mask).mean  # the package's public completion: row 0 of eps is zero
    page_mean = np.array(state["mean"]).reshape(mean.shape)
    page_std = np.array(state["std"]).reshape(std.shape)
    assert np.abs(page_mean - mean.numpy()).max() <= 1e-4, f"{state['model']}: mean differs from PyTorch"
    assert np.abs(page_std - std.numpy()).max() <= 1e-4, f"{state['model']}: std differs from PyTorch"
    assert np.abs(page_mean[0] - ref_mean.numpy()).max() <= 1e-4, "row 0 is not model.complete's mean"


def test_image_widget_draws_context_switches_models_and_equals_pytorch(page, site):
    page.goto(f"{site['url']}/book/image.html")
    n = _wait_updates(page, 0, timeout=120_000)
    first = _state(page)
    assert first["model"] == "mnist-ifanp-plus" and first["rows"] == 4
    _assert_image_matches(first)
    # draw a stroke across the middle of the context with the "reveal" pen
    box = page.locator("canvas.ifanp-px").first.bounding_box()
    y = box["y"] + 0.5 * box["height"]
    page.mouse.move(box["x"] + 0.15 * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.85 * box["width"], y, steps=12)
    page.mouse.up()
    n = _wait_updates(page, n)
    page.wait_for_timeout(300)  # let the last queued run finish
    n = int(page.get_attribute("div.ifanp-live", "data-updates"))
    drawn = _state(page)
    assert drawn["mask"].count("1") > first["mask"].count("1") + 10, "drawing did not reveal pixels"
    assert drawn["mean"] != first["mean"]
    _assert_image_matches(drawn)
    # another model, a structured mask and the context-ratio slider
    page.select_option("div.ifanp-live select >> nth=1", "mnist-np")
    n = _wait_updates(page, n)
    page.select_option("div.ifanp-live select >> nth=2", "top")
    n = _wait_updates(page, n)
    top = _state(page)
    assert top["model"] == "mnist-np" and top["kind"] == "top" and top["mask"] == "1" * 392 + "0" * 392
    _assert_image_matches(top)
    page.select_option("div.ifanp-live select >> nth=2", "random")
    n = _wait_updates(page, n)
    page.locator("div.ifanp-live input[type=range]").first.fill("0.6")
    n = _wait_updates(page, n)
    page.wait_for_timeout(300)
    dense = _state(page)
    assert abs(dense["ratio"] - 0.6) < 1e-9 and 0.5 * 784 < dense["mask"].count("1") < 0.7 * 784
    _assert_image_matches(dense)
    _only_local(page, site)


def test_attention_widget_follows_the_clicked_target_and_equals_pytorch(page, site):
    page.goto(f"{site['url']}/book/attention.html")
    n = _wait_updates(page, 0, timeout=120_000)
    box = page.locator("canvas.ifanp-px").first.bounding_box()
    page.mouse.click(box["x"] + (5.5 / 28) * box["width"], box["y"] + (20.5 / 28) * box["height"])
    _wait_updates(page, n)
    state = _state(page)
    assert state["target"] == [20, 5]
    model = _model(state["model"])
    image = torch.tensor(state["image"], dtype=torch.float32).view(1, 1, 28, 28)
    mask = torch.tensor([int(c) for c in state["mask"]], dtype=torch.float32).view(1, 1, 28, 28)
    gca = model.attention_map(image, mask, 20, 5)[0, 0].flatten().numpy()
    assert np.abs(np.array(state["gca_row"]) - gca).max() <= 1e-4
    weights = model.lpa_steps(image, mask)["weights"][0, :, 20 // 2, 5 // 2].numpy()
    assert np.abs(np.array(state["lpa"]) - weights).max() <= 1e-4
    _only_local(page, site)


def _assert_np1d_matches(state: dict):
    from ifanp.onnx_export import NP1DGraph

    pts = torch.tensor(state["points"], dtype=torch.float32)
    xt = torch.tensor(state["x"], dtype=torch.float32).view(1, -1, 1)
    eps = torch.tensor(state["eps"], dtype=torch.float32).view(state["rows"], 1, state["z_dim"])
    model = _model(f"np1d-{state['model']}-{state['kernel']}")
    with torch.no_grad():
        mean, std = NP1DGraph(model)(pts[None, :, :1], pts[None, :, 1:], xt, eps)
    assert np.abs(np.array(state["mean"]) - mean.flatten().numpy()).max() <= 1e-4
    assert np.abs(np.array(state["std"]) - std.flatten().numpy()).max() <= 1e-4


def test_np1d_widget_follows_clicks_and_menus_and_equals_pytorch(page, site):
    page.goto(f"{site['url']}/book/np1d.html")
    n = _wait_updates(page, 0, timeout=120_000)
    first = _state(page)
    assert first["model"] == "anp" and len(first["points"]) == 3 and first["rows"] == 6
    _assert_np1d_matches(first)
    box = page.locator("svg.ifanp-plot").bounding_box()
    page.mouse.click(box["x"] + 0.6 * box["width"], box["y"] + 0.3 * box["height"])
    n = _wait_updates(page, n)
    page.wait_for_timeout(300)
    added = _state(page)
    assert len(added["points"]) == 4 and added["mean"] != first["mean"]
    _assert_np1d_matches(added)
    page.select_option("div.ifanp-live select >> nth=1", "cnp")
    n = _wait_updates(page, n)
    _assert_np1d_matches(_state(page))
    page.select_option("div.ifanp-live select >> nth=0", "periodic")
    page.select_option("div.ifanp-live select >> nth=1", "np")
    page.wait_for_function("() => { const s = JSON.parse(document.querySelector('div.ifanp-live').dataset.state); "
                           "return s.kernel === 'periodic' && s.model === 'np' && s.mean; }")
    _assert_np1d_matches(_state(page))
    page.select_option("div.ifanp-live select >> nth=1", "gp")
    page.wait_for_function("() => JSON.parse(document.querySelector('div.ifanp-live').dataset.state).model === 'gp'")
    _only_local(page, site)


def test_a_page_opened_from_a_file_says_how_to_serve_it(browser, site):
    context = browser.new_context()
    pg = context.new_page()
    pg.goto((site["root"] / "book" / "image.html").as_uri())
    pg.wait_for_timeout(500)
    text = pg.inner_text("div.ifanp-live")
    assert "served over HTTP" in text and "make serve" in text
    context.close()


# ---- the chapters embed them (no browser needed) ---------------------------------------------------------


LIVE_CHAPTERS = {"gp_regression": "gp", "neural_processes": "np1d", "images_as_functions": "image", "ifnp": "image", "attention": "attention",
                 "ifanp": "image", "experiments": "image", "beyond": "image"}


@pytest.mark.parametrize("chapter", sorted(LIVE_CHAPTERS))
def test_each_chapter_embeds_its_live_widget_once(chapter):
    cells = json.loads((REPO / "book" / f"{chapter}.ipynb").read_text())["cells"]
    live = [c for c in cells if c["cell_type"] == "code" and "live_widget(" in "".join(c["source"])]
    assert len(live) == 1, f"{chapter}: {len(live)} live widget cells"
    assert f'live_widget("{LIVE_CHAPTERS[chapter]}"' in "".join(live[0]["source"])


def test_the_widget_html_degrades_to_one_line_and_loads_nothing_remote():
    from ifanp.live import live_widget

    text = live_widget("gp", points=np.zeros((2, 2)))._repr_html_()
    assert 'data-widget="gp"' in text and "make serve" in text and "http://" not in text and "https://" not in text
    assert '<script type="module" src="../_live/live.js"></script>' in text
    with pytest.raises(ValueError, match="unknown live widget"):
        live_widget("no-such-widget")
