"""The book's live widgets: what a chapter's cell writes into the page, and the files the site serves.

A chapter embeds a widget with one line, ``live_widget("gp", points=..., kernel="rbf")``: the cell's
output is an HTML block, a ``<div class="ifanp-live">`` with the widget's configuration and one line
saying how to run it, plus the module script ``_live/live.js`` (``book/_live/`` in the repository, ES
modules). Served over HTTP, the script replaces the line by the widget; opened from a file (browsers
refuse module scripts and WebAssembly there), or in Jupyter, the line stays and the chapter's
ipywidget below it is the one to use.

At book-build time :func:`build_site_files` (called by the Sphinx extension ``book/_live/live_ext.py``)
copies the JavaScript into ``_build/html/_live/``, exports the models the widgets use to ONNX
(:mod:`ifanp.onnx_export`, into ``_live/models/``) and writes ``_live/digits.json``, a few test digits
of the MNIST evaluation set (uint8 pixels).
"""
from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parents[1] / "book" / "_live"
NUM_DIGITS = 24
FALLBACK = (
    "Live widget: it runs in the book's web pages when the site is served over HTTP "
    "(<code>make serve</code>, or <code>python -m http.server -d _build/html</code>); "
    "opened from a file it cannot start. In Jupyter or Colab, use the notebook widget below."
)


class _HTML:
    """A display object with only an HTML representation (no IPython import needed)."""

    def __init__(self, text: str):
        self.text = text

    def _repr_html_(self) -> str:
        return self.text


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def live_widget(name: str, root: str = "..", **config: Any) -> _HTML:
    """The HTML of the live widget ``name`` ("gp", "image" or "attention") with ``config`` (JSON).

    ``root`` is the site's root relative to the page (the chapters live in ``book/``).
    """
    if name not in ("gp", "np1d", "image", "attention"):
        raise ValueError(f"unknown live widget {name!r}; use 'gp', 'np1d', 'image' or 'attention'.")
    cfg = html.escape(json.dumps(_jsonable(config), separators=(",", ":")), quote=True)
    return _HTML(
        f'<link rel="stylesheet" href="{root}/_live/live.css">'
        f'<div class="ifanp-live" data-widget="{name}" data-config="{cfg}">'
        f'<p class="ifanp-live-fallback">{FALLBACK}</p></div>'
        f'<script type="module" src="{root}/_live/live.js"></script>'
    )


def write_digits(path: str | Path, n: int = NUM_DIGITS) -> dict[str, Any]:
    """The first ``n`` images of the MNIST evaluation subset as ``{size, digits: [{index, label, pixels}]}``."""
    from .data import load_mnist_eval, mnist_eval_indices

    data = load_mnist_eval(progress=False)
    idx = mnist_eval_indices()[:n].tolist()
    digits = []
    for k in range(n):  # the uint8 bytes; the widgets divide by 255 as ImageDataset does
        label = int(data.labels[k]) if data.labels is not None else -1
        digits.append({"index": int(idx[k]), "label": label, "pixels": data.images[k].reshape(-1).tolist()})
    out = {"size": int(data.images.shape[-1]), "source": "MNIST test split, evaluation subset (ifanp.data)",
           "digits": digits}
    Path(path).write_text(json.dumps(out, separators=(",", ":")) + "\n")
    return out


def build_site_files(html_root: str | Path, quiet: bool = False, models: tuple[str, ...] | None = None,
                     attention: tuple[str, ...] | None = None, np1d: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Fill ``html_root/_live``: the widgets' JavaScript and CSS, the ONNX models (default: every model a
    widget offers, :data:`ifanp.onnx_export.WIDGET_MODELS`) and the test digits."""
    from .onnx_export import ATTENTION_MODELS, NP1D_MODELS, WIDGET_MODELS, export_all

    dest = Path(html_root) / "_live"
    dest.mkdir(parents=True, exist_ok=True)
    for src in sorted(SOURCE.iterdir()):
        if src.suffix in (".js", ".css"):
            shutil.copyfile(src, dest / src.name)
    manifest = export_all(dest / "models", WIDGET_MODELS if models is None else models,
                          ATTENTION_MODELS if attention is None else attention, quiet=quiet,
                          np1d=NP1D_MODELS if np1d is None else np1d)
    write_digits(dest / "digits.json")
    return manifest


def standalone_site(root: str | Path, models: tuple[str, ...] | None = None,
                    attention: tuple[str, ...] | None = None, quiet: bool = True,
                    np1d: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A small site with one page per live widget (``book/gp.html``, ``book/image.html``,
    ``book/attention.html``, ``book/np1d.html``), each holding the HTML a chapter's cell writes, inside the book theme's
    ``.bd-article``: what tests/test_browser.py and benchmarks/bench_browser.py serve. Needs
    onnxruntime-web in ``book/_widgets_js/ort`` (``tools/fetch_widgets_js.py``). Returns the manifest."""
    root = Path(root)
    ort = SOURCE.parent / "_widgets_js" / "ort"
    if not (ort / "ort.wasm.min.mjs").is_file():
        raise FileNotFoundError(f"{ort} has no onnxruntime-web; run tools/fetch_widgets_js.py (make widgets-js)")
    shutil.copytree(ort, root / "_static" / "ort", dirs_exist_ok=True)
    manifest = build_site_files(root, quiet=quiet, models=models, attention=attention, np1d=np1d)
    names = [m["name"] for m in manifest["models"]]
    pages = {
        "gp": live_widget("gp", points=[[-2.0, -0.5], [-0.7, 0.8], [0.4, 0.1], [1.9, -1.0]], kernel="rbf",
                          lengthscale=0.8, noise_std=0.1, period=2.0),
        "image": live_widget("image", models=names, model="mnist-ifanp-plus" if "mnist-ifanp-plus" in names
                             else names[-1], ratio=0.2, samples=3),
        "np1d": live_widget("np1d", points=[[-1.5, 0.4], [-0.2, -0.6], [0.9, 0.8]], kernel="rbf", model="anp"),
        "attention": live_widget("attention", model=(manifest["attention"] or [{"name": ""}])[0]["name"], ratio=0.3),
    }
    (root / "book").mkdir(exist_ok=True)
    for name, widget in pages.items():
        (root / "book" / f"{name}.html").write_text(
            f'<!doctype html><html><head><meta charset="utf-8"><title>{name}</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
            f'<body><main class="bd-article">{widget._repr_html_()}</main></body></html>\n')
    return manifest
