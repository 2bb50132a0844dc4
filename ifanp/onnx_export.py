"""ONNX graphs of the shipped image models, for the book's live widgets (``python -m ifanp export-onnx``).

Each graph is a plain function of tensors, so that a browser (``onnxruntime-web``) computes exactly what
the package computes::

    mean, std = graph(image, mask, eps)

* ``image`` (B, C, H, W) in [0, 1], ``mask`` (B, 1, H, W) of 0/1 (1 = observed), as in
  :meth:`ifanp.models.base.ImageModel.complete`;
* ``eps`` (S, B, d_z): standard-normal noise that draws the latent, z = mu + sigma * eps with
  q(z | context) = N(mu, sigma^2). A row of zeros gives z at the mean of q (the completion the
  package reports as ``mean``); other rows give draws. For a model without z the input is ignored.
* ``mean``, ``std`` (S, B, C, H, W): the decoder's Gaussian for each row of ``eps``.

So a sample is a deterministic function of its inputs and can be compared with PyTorch (the tests do,
tests/test_onnx_export.py and tests/test_browser.py). B and S are dynamic axes.

``attention`` graphs (for models with GCA and LPA) give what the attention chapter draws:
``gca`` (B, heads, r*r, r*r), the attention weights of every target cell over the key cells (rows of
zeros where the context is empty), and ``lpa`` (B, 9, r, r), LPA's weights over each position's 3x3
neighbourhood (r = size / down).

The exporter is the ``torch.export``-based one (``torch.onnx.export(..., dynamo=True)``); two things
made the models export cleanly: ``torch.distributions`` argument validation is switched off while
tracing (its checks are data-dependent branches), and the example inputs have a batch of 2 (an axis
traced at size 1 is specialised to 1). ``--legacy`` uses the TorchScript exporter instead (about 10
times faster to export, smaller files for the pixel-set models, same numbers).

The exports are cached (``$IFANP_CACHE/onnx``, default ``~/.cache/ifanp/onnx``) under a key of the
weights' sha256, the torch version and the source of the model code and of this module, so a book
build exports only what changed.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

#: The shipped models the live widgets use, in the order the model selector lists them.
WIDGET_MODELS: tuple[str, ...] = (
    "mnist-vae", "mnist-np", "mnist-anp", "mnist-ifnp", "mnist-ifanp-gca", "mnist-ifanp", "mnist-ifanp-plus",
)
#: Models whose attention graph is exported (GCA weights and LPA weights).
ATTENTION_MODELS: tuple[str, ...] = ("mnist-ifanp",)
#: The 1-D models of the neural-processes chapter's widget: (xc, yc, xt, eps) -> (y_mean, y_std).
NP1D_MODELS: tuple[str, ...] = tuple(f"np1d-{m}-{k}" for k in ("rbf", "matern52", "periodic") for m in ("cnp", "np", "anp"))
OPSET = 18  # what the torch.export-based exporter emits (no version conversion); onnxruntime-web 1.30 runs it



# ---- the graphs ---------------------------------------------------------------------------------------


def latent_dim(model: nn.Module) -> int:
    """d_z of ``model`` (1 for a model without z: its graph still takes an ``eps`` input)."""
    if getattr(model, "z_dim", None) is not None and not callable(model.z_dim):
        return int(model.z_dim)
    from .models.grid import GridNP
    from .models.setnp import PixelSetModel
    from .models.vae import ConvVAE

    if isinstance(model, (GridNP, ConvVAE)):
        return int(model.cfg["z_dim"])
    if isinstance(model, PixelSetModel):
        lp = model.net.latent_path
        return 1 if lp is None else lp.head.rest[-1].out_features // 2
    raise TypeError(f"no ONNX graph for {type(model).__name__}")


def _forward_takes_eps(model: nn.Module) -> bool:
    """True when ``model(images, mask, eps)`` is the model's own deterministic forward (not a fallback)."""
    import inspect

    from .models.base import ImageModel

    fwd = type(model).forward
    return "eps" in inspect.signature(fwd).parameters and fwd is not ImageModel.forward


class CompletionGraph(nn.Module):
    """(image, mask, eps) -> (mean, std) of the decoder for z = mu + sigma * eps; see the module docstring."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval()

    def forward(self, image: Tensor, mask: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        from .models.grid import GridNP
        from .models.setnp import PixelSetModel
        from .models.vae import ConvVAE

        m = self.model
        if _forward_takes_eps(m):  # the models' own forward (issue 10): z = q.mean + q.stddev * eps
            out = m(image, mask, eps)
            mean, std = out.mean, out.std
            if mean.shape[0] != eps.shape[0]:  # a model without z: one prediction for every row of eps
                s = eps.shape[0]
                mean, std = mean.expand(s, *mean.shape[1:]), std.expand(s, *std.shape[1:])
            return mean, std
        # Before the models' forward took eps: the same computation from their parts.
        if isinstance(m, GridNP):
            feats, dens, stem = m.encode(image, mask)
            q = m.latent_dist(feats, dens)
            z = q.loc.unsqueeze(0) + q.scale.unsqueeze(0) * eps
            return m.decode(z, m.deterministic(feats, dens), image, mask, stem)
        if isinstance(m, ConvVAE):
            q = m.posterior(image, mask)
            return m.decode(q.loc.unsqueeze(0) + q.scale.unsqueeze(0) * eps)
        if isinstance(m, PixelSetModel):
            x, y, cm, _ = m._sets(image, mask, None)
            r = m.net.represent(x, y, cm, x)
            z = None
            if m.net.latent:
                (q,) = m.net.latent_distributions(x, y, [cm])
                z = q.loc.unsqueeze(0) + q.scale.unsqueeze(0) * eps
            mean, std = m.net.decode(x, r, z)
            if z is None:  # one prediction, repeated for every row of eps
                s = eps.shape[0]
                mean, std = mean.expand(s, *mean.shape[1:]), std.expand(s, *std.shape[1:])
            return m._to_image(mean), m._to_image(std)
        raise TypeError(f"no ONNX graph for {type(m).__name__}")


class AttentionGraph(nn.Module):
    """(image, mask) -> (gca, lpa): GCA's weights for every target cell and LPA's neighbourhood weights.

    The same numbers as :meth:`ifanp.models.grid.GridNP.attention_map` (one row of ``gca``) and
    ``lpa_steps(...)["weights"]``, for all positions at once.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval()

    def forward(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        m = self.model
        r = m.res
        logits = m.gca.attention_logits((r, r), (r, r), image.device)  # (heads, rr, rr)
        bias = m.gca.distance_logits((r, r), (r, r), image.device)
        if bias is not None:
            logits = logits + bias
        valid = (m._density(mask).flatten(1) > 0)[:, None, None, :]  # (B, 1, 1, rr)
        masked = logits.unsqueeze(0).masked_fill(~valid, float("-inf"))
        gca = torch.softmax(masked, dim=-1).nan_to_num(0.0)
        feats, _, _ = m.encode(image, mask)
        _, out2 = m.local.pool_twice(feats)
        _, weights = m.local.neighbour_weights(out2)
        b = image.shape[0]
        return gca, weights.view(b, 9, r, r)


class NP1DGraph(nn.Module):
    """(xc, yc, xt, eps) -> (y_mean, y_std), each (S, B, Nt, 1): a 1-D set model's ``forward`` with fixed eps.

    ``xc``, ``yc`` (B, Nc, 1), ``xt`` (B, Nt, 1), ``eps`` (S, B, d_z) (ignored by the CNP, whose one
    prediction is repeated S times). The outputs are not called ``mean``/``std``: those names are taken
    inside the exported graph.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval()

    def forward(self, xc: Tensor, yc: Tensor, xt: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        out = self.model(xc, yc, xt, eps=eps)
        mean, std = out.mean, out.std
        if mean.shape[0] != eps.shape[0]:
            s = eps.shape[0]
            mean, std = mean.expand(s, *mean.shape[1:]), std.expand(s, *std.shape[1:])
        return mean, std


def np1d_inputs(model: nn.Module, batch: int = 2, context: int = 7, targets: int = 9, samples: int = 2,
                seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Fixed inputs for a 1-D model: x in [-2, 2], standard normal y and eps."""
    g = torch.Generator().manual_seed(seed)
    zd = int(model.config.get("z_dim") or 1) if model.latent else 1
    xc = torch.rand(batch, context, 1, generator=g) * 4 - 2
    yc = torch.randn(batch, context, 1, generator=g)
    xt = torch.linspace(-2, 2, targets).view(1, targets, 1).expand(batch, targets, 1).contiguous()
    return xc, yc, xt, torch.randn(samples, batch, zd, generator=g)


def example_inputs(model: nn.Module, batch: int = 1, samples: int = 2, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Fixed inputs for tracing and testing: random images, a 30 % random mask, standard normal eps."""
    g = torch.Generator().manual_seed(seed)
    c, s = model.channels, model.size
    image = torch.rand(batch, c, s, s, generator=g)
    mask = (torch.rand(batch, 1, s, s, generator=g) < 0.3).float()
    eps = torch.randn(samples, batch, latent_dim(model), generator=g)
    return image, mask, eps


@contextlib.contextmanager
def _traceable_lpa():
    """LPA's 3x3 mean pooling as ``avg_pool2d(x, 3, 1, 1)`` while exporting.

    ``LocalPooledAttention.pool`` is a depthwise convolution whose kernel is built from ``x.shape[1]``
    at run time; the TorchScript exporter refuses a convolution with a kernel of traced shape. The
    zero-padded average pooling is the same function (its docstring says so; the tests compare the
    exported graph with the unpatched PyTorch model).
    """
    import torch.nn.functional as F

    from .models.modules import LocalPooledAttention

    original = LocalPooledAttention.__dict__["pool"]
    LocalPooledAttention.pool = staticmethod(lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=True))
    try:
        yield
    finally:
        LocalPooledAttention.pool = original


@contextlib.contextmanager
def _no_distribution_checks():
    """``torch.distributions`` argument validation off: its data-dependent checks stop ``torch.export``."""
    from torch.distributions import Distribution

    before = Distribution._validate_args
    Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        Distribution.set_default_validate_args(before)


def _export(graph: nn.Module, args: tuple[Tensor, ...], input_names, output_names, dynamic_axes,
            dynamo: bool) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), contextlib.ExitStack() as stack:
        warnings.simplefilter("ignore")  # the exporters' deprecation and tracer warnings
        if dynamo:
            from torch.export import Dim

            stack.enter_context(_no_distribution_checks())
            dims = {n: Dim(n, min=1, max=256) for n in ("batch", "samples")}
            dims.update({n: Dim(n, min=1, max=4096) for n in ("context", "targets")})
            shapes = tuple({i: dims[n] for i, n in dynamic_axes.get(name, {}).items()} or None for name in input_names)
            prog = torch.onnx.export(graph, args, input_names=list(input_names), output_names=list(output_names),
                                     dynamic_shapes=shapes, opset_version=OPSET, dynamo=True, verbose=False)
            prog.save(buf)
        else:
            stack.enter_context(_traceable_lpa())
            torch.onnx.export(graph, args, buf, input_names=list(input_names), output_names=list(output_names),
                              dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False)
    return buf.getvalue()


def export_model(model: nn.Module, kind: str = "completion", dynamo: bool = True) -> bytes:
    """The ONNX graph of ``model`` (``kind`` "completion" or "attention") as bytes.

    ``dynamo=True``: the ``torch.export``-based exporter (traced with a batch of 2 and 2 rows of eps, so
    that neither axis is specialised to 1); ``dynamo=False``: the TorchScript-based one.
    """
    model = model.float().eval()
    image = mask = eps = None
    if kind != "np1d":
        image, mask, eps = example_inputs(model, batch=2, samples=2)
    with torch.no_grad():
        if kind == "completion":
            return _export(CompletionGraph(model), (image, mask, eps), ("image", "mask", "eps"), ("mean", "std"),
                           {"image": {0: "batch"}, "mask": {0: "batch"}, "eps": {0: "samples", 1: "batch"},
                            "mean": {0: "samples", 1: "batch"}, "std": {0: "samples", 1: "batch"}}, dynamo)
        if kind == "np1d":
            return _export(NP1DGraph(model), np1d_inputs(model), ("xc", "yc", "xt", "eps"), ("y_mean", "y_std"),
                           {"xc": {0: "batch", 1: "context"}, "yc": {0: "batch", 1: "context"},
                            "xt": {0: "batch", 1: "targets"}, "eps": {0: "samples", 1: "batch"},
                            "y_mean": {0: "samples", 1: "batch", 2: "targets"},
                            "y_std": {0: "samples", 1: "batch", 2: "targets"}}, dynamo)
        if kind == "attention":
            return _export(AttentionGraph(model), (image, mask), ("image", "mask"), ("gca", "lpa"),
                           {"image": {0: "batch"}, "mask": {0: "batch"}, "gca": {0: "batch"}, "lpa": {0: "batch"}},
                           dynamo)
    raise ValueError(f"kind must be 'completion', 'np1d' or 'attention', got {kind!r}.")


# ---- the files the book ships ---------------------------------------------------------------------------


def _manifest_entry(name: str, model: nn.Module, kind: str, file: str, data: bytes, seconds: float) -> dict[str, Any]:
    from .pretrained import registry

    entry = registry().get(name, {})
    cfg = getattr(model, "config", {})
    info = {"name": name, "kind": kind, "file": file, "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "weights_sha256": entry.get("sha256"),
            "model": cfg.get("name"), "seconds": round(seconds, 2)}
    if kind == "np1d":
        info["kernel"] = name.rsplit("-", 1)[-1]
        info["latent"] = bool(model.latent)
        info["z_dim"] = int(model.config.get("z_dim") or 1) if model.latent else 1
        return info
    info.update(channels=model.channels, size=model.size)
    if kind == "completion":
        info["z_dim"] = latent_dim(model)
        info["latent"] = bool(getattr(model, "latent", False)) or type(model).__name__ == "ConvVAE"
    else:
        info["res"] = model.res
        info["heads"] = model.gca.heads
    return info


def cache_dir() -> Path:
    """Where exported graphs are kept between builds: ``$IFANP_CACHE/onnx`` (default ``~/.cache/ifanp/onnx``)."""
    import os

    root = os.environ.get("IFANP_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "ifanp") / "onnx"


def _cache_key(weights_sha: str | None, kind: str, dynamo: bool) -> str:
    """A key that changes with the weights, torch, the exporter and the code the graph is traced from."""
    here = Path(__file__).parent
    h = hashlib.sha256()
    for part in (str(weights_sha), kind, str(dynamo), torch.__version__, str(OPSET)):
        h.update(part.encode() + b"\0")
    for src in sorted([Path(__file__), *(here / "models").glob("*.py")]):
        h.update(src.read_bytes())
    return h.hexdigest()[:24]


def export_all(out: str | Path, names: tuple[str, ...] = WIDGET_MODELS,
               attention: tuple[str, ...] = ATTENTION_MODELS, dynamo: bool = True,
               quiet: bool = False, use_cache: bool = True, np1d: tuple[str, ...] = NP1D_MODELS) -> dict[str, Any]:
    """Write ``<name>.onnx`` (and ``<name>.attention.onnx``) into ``out`` from the shipped weights, plus
    ``manifest.json`` describing them; returns the manifest. Models that are not installed are skipped
    (and listed under ``missing``). With ``use_cache``, a graph exported before from the same weights
    and code is copied from :func:`cache_dir` instead of exported again."""
    from .pretrained import available, load_pretrained, registry

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    have = set(available())
    reg = registry()
    manifest: dict[str, Any] = {"exporter": "torch.export (dynamo=True)" if dynamo else "torchscript (dynamo=False)",
                                "opset": OPSET, "torch": torch.__version__, "models": [], "attention": [],
                                "np1d": [], "missing": []}
    jobs = [(n, "completion") for n in names] + [(n, "attention") for n in attention] + [(n, "np1d") for n in np1d]
    for name, kind in jobs:
        if name not in have:
            manifest["missing"].append(name)
            continue
        model = load_pretrained(name)
        cached = cache_dir() / f"{name}.{kind}.{_cache_key(reg[name].get('sha256'), kind, dynamo)}.onnx"
        t0 = time.perf_counter()
        if use_cache and cached.is_file():
            data, how = cached.read_bytes(), "cached"
        else:
            data, how = export_model(model, kind, dynamo=dynamo), "exported"
            if use_cache:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_suffix(".tmp")
                tmp.write_bytes(data)
                tmp.replace(cached)
        seconds = time.perf_counter() - t0
        file = f"{name}.onnx" if kind in ("completion", "np1d") else f"{name}.attention.onnx"
        (out / file).write_bytes(data)
        manifest["models" if kind == "completion" else kind].append(
            _manifest_entry(name, model, kind, file, data, seconds))
        if not quiet:
            print(f"export-onnx: {file} ({len(data) / 1e6:.2f} MB, {how} in {seconds:.1f} s)", flush=True)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


# ---- python -m ifanp export-onnx --------------------------------------------------------------------------


def add_export_onnx_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m ifanp export-onnx``."""
    parser.add_argument("--out", type=Path, required=True, help="folder for the .onnx files and manifest.json")
    parser.add_argument("--models", nargs="+", default=list(WIDGET_MODELS),
                        help=f"registry names (default: {' '.join(WIDGET_MODELS)})")
    parser.add_argument("--attention", nargs="*", default=list(ATTENTION_MODELS),
                        help="models whose attention graph (GCA and LPA weights) is also written")
    parser.add_argument("--np1d", nargs="*", default=list(NP1D_MODELS),
                        help="1-D models of the neural-processes widget (xc, yc, xt, eps -> y_mean, y_std)")
    parser.add_argument("--legacy", action="store_true",
                        help="the TorchScript exporter (dynamo=False) instead of the torch.export-based one")
    parser.add_argument("--no-cache", action="store_true", help="export again even if the cache holds the graph")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run_export_onnx(args) -> int:
    """Export the graphs; an unknown model name is a usage error."""
    from .pretrained import available

    have = set(available())
    unknown = [n for n in [*args.models, *args.attention, *args.np1d] if n not in have]
    if unknown:
        raise ValueError(f"no shipped weights named {', '.join(unknown)}; available: {', '.join(sorted(have))}.")
    manifest = export_all(args.out, tuple(args.models), tuple(args.attention), dynamo=not args.legacy,
                          quiet=args.quiet, use_cache=not args.no_cache, np1d=tuple(args.np1d))
    if not args.quiet:
        graphs = manifest["models"] + manifest["attention"] + manifest["np1d"]
        total = sum(m["bytes"] for m in graphs)
        print(f"export-onnx: {len(graphs)} graphs, "
              f"{total / 1e6:.1f} MB -> {args.out}")
    return 0
