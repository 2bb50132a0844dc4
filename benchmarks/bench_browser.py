#!/usr/bin/env python3
"""Speed of the book's live widgets in headless Chromium (one WebAssembly thread), printed, not asserted.

    .venv/bin/python benchmarks/bench_browser.py [--repeats 15]

It builds the standalone widget site of tests/test_browser.py (``ifanp.live.standalone_site``: every
model a widget offers, exported to ONNX; onnxruntime-web from npm), serves it on 127.0.0.1 and reports

* the bytes downloaded (uncompressed bodies, as the browser's resource timing decodes them) by a first
  visit to the image widget's page, until its first completion is on screen, and by the GP page;
* per model, the time of one completion update in the page (``session.run``; median and 90th
  percentile over ``--repeats`` changes of the context ratio): with 0 draws of z (one completion, the
  mean) and with the mean and 3 draws (the widget's default, what one stroke of the pen triggers); and
  the time of the first update, which includes fetching the model and creating the session;
* the GP widget's update time (the posterior on 201 points, in JavaScript).

Needs Playwright (requirements-dev.txt) and Debian's chromium (``make browser``).
"""
from __future__ import annotations

import argparse
import functools
import http.server
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import ClassVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    extensions_map: ClassVar[dict[str, str]] = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".wasm": "application/wasm"}

    def log_message(self, *args):
        pass


def _state(page) -> dict:
    return json.loads(page.get_attribute("div.ifanp-live", "data-state"))


def _updates(page) -> int:
    return int(page.get_attribute("div.ifanp-live", "data-updates") or 0)


def _wait_more(page, n: int) -> int:
    page.wait_for_function(f"() => Number(document.querySelector('div.ifanp-live').dataset.updates || 0) > {n}"
                           " || document.querySelector('div.ifanp-live').dataset.error", timeout=120_000)
    err = page.get_attribute("div.ifanp-live", "data-error")
    if err:
        raise SystemExit(f"bench_browser: the widget failed: {err}")
    page.wait_for_timeout(30)
    return _updates(page)


def _bytes(page) -> tuple[int, int]:
    """(bytes, files) over the page's resources and the document itself."""
    total = page.evaluate("() => performance.getEntriesByType('resource').reduce((s, e) => s + e.decodedBodySize, 0)"
                          " + performance.getEntriesByType('navigation')[0].decodedBodySize")
    count = page.evaluate("() => performance.getEntriesByType('resource').length + 1")
    return int(total), int(count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="updates timed per model (default 15)")
    args = parser.parse_args(argv)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise SystemExit("bench_browser: Playwright is not installed (pip install -r requirements-dev.txt)") from None
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("bench_browser: no chromium on PATH (make browser, or apt-get install -y chromium)")
    from ifanp.live import standalone_site

    root = Path(tempfile.mkdtemp(prefix="ifanp-bench-browser-"))
    t0 = time.perf_counter()
    manifest = standalone_site(root)
    print(f"site: {root} ({len(manifest['models'])} models, exporter {manifest['exporter']}, "
          f"{time.perf_counter() - t0:.0f} s to build)")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    sizes = {m["name"]: m["bytes"] for m in manifest["models"]}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        print(f"browser: {browser.version}, headless, onnxruntime-web with 1 WebAssembly thread")
        page = browser.new_context(viewport={"width": 1300, "height": 1000}).new_page()
        t = time.perf_counter()
        page.goto(f"{url}/book/image.html")
        n = _wait_more(page, 0)
        first_s = time.perf_counter() - t
        total, files = _bytes(page)
        default = _state(page)["model"]
        print(f"first visit to the image widget's page: {total / 1e6:.2f} MB in {files} files until the first "
              f"completion ({first_s:.1f} s); of which the model {default}: {sizes[default] / 1e6:.2f} MB")
        print(f"{'model':18s} {'graph MB':>8s} {'first update':>13s} {'1 completion: median':>21s} {'p90':>8s}"
              f" {'mean + 3 draws: median':>23s} {'p90':>8s}")
        ratio = page.locator("div.ifanp-live input[type=range]").first
        draws = page.locator("div.ifanp-live input[type=range]").nth(1)
        for info in manifest["models"]:
            name = info["name"]
            t = time.perf_counter()
            page.select_option("div.ifanp-live select >> nth=1", name)
            n = _wait_more(page, n)
            first = (time.perf_counter() - t) * 1e3
            row = []
            for k_draws in (0, 3):
                draws.fill(str(k_draws))
                n = _wait_more(page, n)
                times = []
                for k in range(args.repeats):
                    ratio.fill(f"{0.1 + 0.8 * (k % 9) / 8:.2f}")
                    n = _wait_more(page, n)
                    times.append(_state(page)["run_ms"])
                times.sort()
                row += [statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))]]
            print(f"{name:18s} {info['bytes'] / 1e6:8.2f} {first:10.0f} ms {row[0]:18.1f} ms {row[1]:5.1f} ms"
                  f" {row[2]:20.1f} ms {row[3]:5.1f} ms")
        np1d = browser.new_context(viewport={"width": 1300, "height": 1000}).new_page()
        np1d.goto(f"{url}/book/np1d.html")
        n = _wait_more(np1d, 0)
        draws = np1d.locator("div.ifanp-live input[type=range]").first
        print(f"{'1-D model':18s} {'graph MB':>8s} {'update (mean + 5 draws, 161 targets): median':>46s} {'p90':>8s}")
        for info in manifest.get("np1d", []):
            np1d.select_option("div.ifanp-live select >> nth=0", info["kernel"])
            np1d.select_option("div.ifanp-live select >> nth=1", info["model"])
            n = _wait_more(np1d, n)
            times = []
            for k in range(args.repeats):
                draws.fill(str(5 + k % 2))
                n = _wait_more(np1d, n)
                times.append(_state(np1d)["run_ms"])
            times.sort()
            print(f"{info['name']:18s} {info['bytes'] / 1e6:8.2f} {statistics.median(times):43.1f} ms "
                  f"{times[min(len(times) - 1, int(0.9 * len(times)))]:5.1f} ms")
        gp = browser.new_context(viewport={"width": 1300, "height": 1000}).new_page()
        gp.goto(f"{url}/book/gp.html")
        n = _wait_more(gp, 0)
        gp_bytes, gp_files = _bytes(gp)
        slider = gp.locator("div.ifanp-live input[type=range]").first
        times = []
        for k in range(args.repeats):
            slider.fill(f"{-1 + 1.5 * (k % 7) / 6:.2f}")
            n = _wait_more(gp, n)
            times.append(_state(gp)["ms"])
        print(f"GP page: {gp_bytes / 1e6:.2f} MB in {gp_files} files; update (posterior on 201 points, "
              f"{len(_state(gp)['points'])} observations) median {statistics.median(times):.2f} ms")
        browser.close()
    server.shutdown()
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
