#!/usr/bin/env python3
"""Fetch the JavaScript that the book's pages run, so the built HTML needs no CDN.

Two sets of files, both from npm:

* The static ipywidgets. The rendered book embeds the state of every ipywidget (myst-nb). A browser
  draws that state with ``@jupyter-widgets/html-manager`` (``embed-amd.js``), which is loaded by
  ``requirejs``; by default myst-nb takes both from CDNs, and offline the widgets are then missing.
  Copied into ``book/_widgets_js/widgets-js/`` (``require.js``, ``embed-amd.js`` and the icon fonts it
  loads relative to itself, about 4 MB).
* The live widgets' runtime (``book/_live/``): ``onnxruntime-web`` runs the exported models
  (``python -m ifanp export-onnx``) in the page through WebAssembly. Copied into
  ``book/_widgets_js/ort/``: the ES-module build ``ort.wasm.min.mjs``, its WebAssembly
  ``ort-wasm-simd-threaded.wasm`` (about 14 MB) with the glue ``ort-wasm-simd-threaded.mjs`` that
  loads it, and its package.json (version, MIT licence).

The script ``npm install``s the packages, pinned below, into a cache folder outside the repository
(``$IFANP_CACHE/widgets-js``, default ``~/.cache/ifanp/widgets-js``) and copies the files a page needs
into ``book/_widgets_js/`` (git-ignored, never committed).

``_config.yml`` puts ``book/_widgets_js`` on Sphinx's ``html_static_path`` (so the files land in
``_build/html/_static/widgets-js/`` and ``_build/html/_static/ort/``) and points myst-nb's
``nb_ipywidgets_js`` at the first set. The folder is deliberately not named ``_static``: jupyter-book
would add every ``.js`` in it to every page.

Run it through ``make widgets-js`` (``make book`` and ``make test`` do). It does nothing when the
files are already there for the pinned versions; ``--force`` fetches again.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEST = REPO / "book" / "_widgets_js" / "widgets-js"
ORT_DEST = REPO / "book" / "_widgets_js" / "ort"

# ipywidgets 8.x pairs with html-manager 1.0.x (controls 5.x, model module version 2.0.0).
# onnxruntime-web 1.30.0: served over HTTP with one WebAssembly thread it needs no special headers.
PACKAGES = {"@jupyter-widgets/html-manager": "1.0.15", "requirejs": "2.3.8", "onnxruntime-web": "1.30.0"}
# (file in node_modules, name in DEST); plus the icon fonts next to embed-amd.js in the formats that
# browsers of the last decade read (the .eot/.svg fallbacks for old Internet Explorer and Safari are left out).
FILES = [
    ("requirejs/require.js", "require.js"),
    ("@jupyter-widgets/html-manager/dist/embed-amd.js", "embed-amd.js"),
]
# The runtime of the live widgets: the plain WebAssembly build (no WebGPU/WebGL, no threads needed).
ORT_FILES = [
    ("onnxruntime-web/dist/ort.wasm.min.mjs", "ort.wasm.min.mjs"),
    ("onnxruntime-web/dist/ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.mjs"),
    ("onnxruntime-web/dist/ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.wasm"),
    ("onnxruntime-web/package.json", "package.json"),  # name, version and licence (MIT); the package has no LICENSE file
]
FONT_SUFFIXES = (".woff2", ".woff", ".ttf")
STAMP = "versions.json"


def cache_dir() -> Path:
    root = os.environ.get("IFANP_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "ifanp"
    return base / "widgets-js"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def up_to_date(dest: Path = DEST, files_list: list[tuple[str, str]] | None = None) -> bool:
    """True when ``dest`` holds every file for the pinned versions, unchanged since it was written."""
    files_list = FILES if files_list is None else files_list
    stamp = dest / STAMP
    if not stamp.is_file():
        return False
    try:
        recorded = json.loads(stamp.read_text())
    except ValueError:
        return False
    if recorded.get("packages") != PACKAGES or recorded.get("fonts") != list(FONT_SUFFIXES):
        return False
    files = recorded.get("files", {})
    if not files or any(name not in files for _, name in files_list):
        return False
    return all((dest / name).is_file() and _sha256(dest / name) == digest for name, digest in files.items())


def npm_install(cache: Path) -> Path:
    """``npm install`` the pinned packages into ``cache``; returns its ``node_modules``."""
    npm = shutil.which("npm")
    if npm is None:
        sys.exit(
            "fetch_widgets_js: npm was not found. Install Node.js and npm (Debian: apt-get install -y npm); "
            "the book's static widgets need @jupyter-widgets/html-manager and requirejs from the npm registry."
        )
    cache.mkdir(parents=True, exist_ok=True)
    specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
    cmd = [npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund", "--ignore-scripts",
           "--loglevel=error", *specs]
    print("fetch_widgets_js:", " ".join(cmd[1:]), flush=True)
    result = subprocess.run(cmd, cwd=cache, text=True, capture_output=True, check=False)
    if result.returncode != 0:
        sys.exit(
            f"fetch_widgets_js: npm install failed (exit {result.returncode}); is the npm registry reachable?\n"
            f"{result.stdout}\n{result.stderr}"
        )
    modules = cache / "node_modules"
    for name, version in PACKAGES.items():
        installed = json.loads((modules / name / "package.json").read_text())["version"]
        if installed != version:
            sys.exit(f"fetch_widgets_js: npm installed {name} {installed}, expected {version}.")
    return modules


def copy_files(modules: Path, dest: Path = DEST, files_list: list[tuple[str, str]] | None = None,
               fonts: bool = True) -> dict[str, str]:
    """Copy what a page needs from ``modules`` into ``dest``; returns {name: sha256}."""
    files_list = FILES if files_list is None else files_list
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    pairs = [(modules / src, name) for src, name in files_list]
    if fonts:
        dist = modules / "@jupyter-widgets" / "html-manager" / "dist"
        pairs += [(p, p.name) for p in sorted(dist.iterdir()) if p.suffix in FONT_SUFFIXES]
    digests = {}
    for src, name in pairs:
        if not src.is_file():
            sys.exit(f"fetch_widgets_js: {src} is missing from the npm package.")
        shutil.copyfile(src, dest / name)
        digests[name] = _sha256(dest / name)
    (dest / STAMP).write_text(json.dumps({"packages": PACKAGES, "fonts": list(FONT_SUFFIXES), "files": digests}, indent=1) + "\n")
    return digests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="fetch and copy again even if up to date")
    args = parser.parse_args(argv)
    if not args.force and up_to_date() and up_to_date(ORT_DEST, ORT_FILES):
        print(f"fetch_widgets_js: {DEST.relative_to(REPO)} and {ORT_DEST.relative_to(REPO)} are up to date.")
        return 0
    modules = cache_dir() / "node_modules"
    have_all = all(
        (modules / name / "package.json").is_file()
        and json.loads((modules / name / "package.json").read_text()).get("version") == version
        for name, version in PACKAGES.items()
    )
    if args.force or not have_all:
        modules = npm_install(cache_dir())
    for dest, files_list, fonts in ((DEST, FILES, True), (ORT_DEST, ORT_FILES, False)):
        digests = copy_files(modules, dest, files_list, fonts)
        size = sum((dest / name).stat().st_size for name in digests) / 1e6
        print(f"fetch_widgets_js: {len(digests)} files ({size:.1f} MB) -> {dest.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
