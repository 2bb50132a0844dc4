"""Measure how the built book meets a reader, in headless Chromium, at several window widths.

    .venv/bin/python tools/check_pages.py _build/html [--widths 1300 400] [--shots DIR] [--pages book/ifnp ...]

For every page of the built site (``_build/html`` of ``jupyter-book build``) and every width it counts:

* ``math_scroll`` / ``math_clipped``: display equations wider than their box that scroll inside it, or that
  are cut (wider than the page column with nothing to scroll);
* ``table_scroll`` / ``table_clipped``: the same for tables;
* ``code_scroll``: code blocks (cell inputs and outputs) that need horizontal scrolling;
* ``fig_small``: figures shown at less than 2/3 of their pixel width (``fig_min`` is the smallest scale);
* ``page_overflow``: 1 when the page itself is wider than the window (something escaped its box);
* ``noise``: tracebacks and machine paths in the page text; ``spec_unlinked``: "SPEC x.y" not inside a link.

Needs Playwright (``pip install playwright``) and Debian's ``chromium`` (no browser download). The site is
served over HTTP from a thread, as the browser tests do. Exit status 0 always: it reports, it does not judge.
With ``--shots DIR`` it also saves full-page screenshots ``DIR/<page>-<width>.png``.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import json
import shutil
import sys
import threading
from pathlib import Path

MEASURE = r"""
() => {
  const article = document.querySelector('article') || document.body;
  const colW = article.clientWidth;
  function scrollsInside(el) {
    for (let a = el; a && a !== article.parentElement; a = a.parentElement) {
      const ox = getComputedStyle(a).overflowX;
      if ((ox === 'auto' || ox === 'scroll') && a.scrollWidth > a.clientWidth + 1) return true;
    }
    return false;
  }
  function classify(el, inner) {
    const box = el.getBoundingClientRect();
    const w = inner ? inner.getBoundingClientRect().width : el.scrollWidth;
    const avail = Math.min(el.clientWidth || box.width, colW);
    if (w <= avail + 1) return 'fit';
    return scrollsInside(inner || el) ? 'scroll' : 'clipped';
  }
  const out = {col: colW, math_scroll: 0, math_clipped: 0, table_scroll: 0, table_clipped: 0,
               code_scroll: 0, fig_small: 0, fig_min: 1, figs: 0, examples: []};
  document.querySelectorAll('mjx-container[display="true"]').forEach(m => {
    const c = classify(m, m.querySelector('mjx-math'));
    if (c !== 'fit') { out['math_' + (c === 'scroll' ? 'scroll' : 'clipped')]++;
      out.examples.push('math ' + c + ': ' + m.textContent.slice(0, 50)); }
  });
  article.querySelectorAll('table').forEach(t => {
    const w = Math.max(t.getBoundingClientRect().width, t.scrollWidth);
    const parent = t.parentElement;
    if (w <= Math.min(parent.clientWidth, colW) + 1) return;
    if (scrollsInside(t)) out.table_scroll++; else { out.table_clipped++;
      out.examples.push('table: ' + t.textContent.trim().slice(0, 50)); }
  });
  article.querySelectorAll('pre').forEach(p => {
    if (p.scrollWidth > p.clientWidth + 1) { out.code_scroll++; }
  });
  article.querySelectorAll('img').forEach(img => {
    if (!img.naturalWidth || img.naturalWidth < 120) return;
    out.figs++;
    const s = img.getBoundingClientRect().width / img.naturalWidth;
    out.fig_min = Math.min(out.fig_min, s);
    if (s < 2 / 3) { out.fig_small++; out.examples.push('fig ' + img.naturalWidth + 'px at ' + s.toFixed(2)); }
  });
  out.page_overflow = document.scrollingElement.scrollWidth > window.innerWidth + 1 ? 1 : 0;
  const text = article.innerText;
  const noise = text.match(/Traceback \(most recent call last\)|\/home\/\S+|\/root\/\S+|\/tmp\/\S+|~\/\.cache\S*|\/work\/\S+|site-packages/g) || [];
  out.noise = noise.length;
  noise.slice(0, 3).forEach(n => out.examples.push('noise: ' + n));
  let unlinked = 0;
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const hits = n.textContent.match(/SPEC(?:'s)?\s+(?:section\s+)?\d/g);
    if (hits && !n.parentElement.closest('a, pre, code, script, style')) {
      unlinked += hits.length; out.examples.push('spec: ' + n.textContent.trim().slice(0, 60));
    }
  }
  out.spec_unlinked = unlinked;
  out.examples = out.examples.slice(0, 8);
  return out;
}
"""

KEYS = ("math_scroll", "math_clipped", "table_scroll", "table_clipped", "code_scroll", "fig_small",
        "page_overflow", "noise", "spec_unlinked")


def _pages(root: Path, only: list[str] | None) -> list[str]:
    if only:
        return only
    skip = {"genindex", "search", "index"}
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.html")
                  if "_static" not in p.parts and "_sources" not in p.parts and "reports" not in p.parts
                  and p.stem not in skip)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("site", type=Path, help="the built site (the folder holding index.html)")
    ap.add_argument("--widths", type=int, nargs="+", default=[1300, 400])
    ap.add_argument("--pages", nargs="*", help="pages without .html (default: all)")
    ap.add_argument("--shots", type=Path, help="save full-page screenshots here")
    ap.add_argument("--json", type=Path, help="write the numbers here as JSON")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    root = args.site.resolve()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # no request log
            pass

    handler = functools.partial(Quiet, directory=str(root))
    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):  # the browser closing a connection early
            pass

    server = Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    pages = _pages(root, args.pages)
    if args.shots:
        args.shots.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        for width in args.widths:
            page = browser.new_page(viewport={"width": width, "height": 1000})
            for name in pages:
                page.goto(f"{base}/{name}.html", wait_until="load")
                page.evaluate("() => (window.MathJax && MathJax.startup && MathJax.startup.promise) || null")
                page.wait_for_timeout(300)
                r = page.evaluate(MEASURE)
                results[f"{name}@{width}"] = r
                if args.shots:
                    try:
                        page.screenshot(path=str(args.shots / f"{name.replace('/', '_')}-{width}.png"),
                                        full_page=True, timeout=180_000)
                    except Exception as err:  # noqa: BLE001 - a long page on a busy machine: report, go on
                        print(f"no screenshot of {name} at {width} px: {type(err).__name__}")
            page.close()
        browser.close()
    server.shutdown()
    print(f"{'page@width':38s} col " + " ".join(f"{k:>13s}" for k in KEYS) + "  fig_min")
    totals = {f"{k}@{w}": 0 for w in args.widths for k in KEYS}
    for key, r in results.items():
        w = key.rsplit("@", 1)[1]
        print(f"{key:38s} {r['col']:4d} " + " ".join(f"{r[k]:13d}" for k in KEYS) + f"  {r['fig_min']:.2f}")
        for k in KEYS:
            totals[f"{k}@{w}"] += r[k]
        for e in r["examples"]:
            print(f"    {e}")
    print("totals: " + ", ".join(f"{k}={v}" for k, v in totals.items()))
    if args.json:
        args.json.write_text(json.dumps({"pages": results, "totals": totals}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
