"""Sphinx extension: after an HTML build, fill ``_build/html/_live/`` for the live widgets.

It copies ``book/_live/*.js`` and ``*.css``, exports the shipped models the widgets use to ONNX
(``python -m ifanp export-onnx``, cached between builds) and writes the test digits; see
:func:`ifanp.live.build_site_files`. onnxruntime-web itself reaches ``_static/ort/`` through
``html_static_path`` (``book/_widgets_js``, filled by ``tools/fetch_widgets_js.py``).
"""
from __future__ import annotations

import time

from sphinx.util import logging

logger = logging.getLogger(__name__)


def _build_finished(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from ifanp.live import build_site_files

    t0 = time.perf_counter()
    manifest = build_site_files(app.outdir, quiet=True)
    every = manifest["models"] + manifest["attention"] + manifest["np1d"]
    graphs = len(every)
    size = sum(m["bytes"] for m in every) / 1e6
    logger.info(f"live widgets: {graphs} ONNX graphs ({size:.1f} MB, {manifest['exporter']}) and the test digits "
                f"in _live/ ({time.perf_counter() - t0:.1f} s)")
    if manifest["missing"]:
        logger.info(f"live widgets: models not installed, left out: {', '.join(manifest['missing'])}")


def setup(app):
    app.connect("build-finished", _build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
