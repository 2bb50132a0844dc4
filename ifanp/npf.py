"""The Neural Process Family's image-completion protocol, and the training of our 32 x 32 models on it.

The Neural Process Family (Dubois, Gordon and Foong, 2020;
https://yanndubs.github.io/Neural-Process-Family/) reports the test log-likelihood of its models on
MNIST in nats per image. What we found in its data code (``utils/data/imgs.py`` of
github.com/YannDubs/Neural-Process-Family, class ``MNIST``): the official torchvision splits, each
28 x 28 image passed through ``transforms.Resize(32)`` (a PIL image, so PIL's bilinear filter with
its antialiasing, rounded back to 8 bits) and ``transforms.ToTensor()`` (pixel values in [0, 1];
unlike its SVHN and CelebA, no rescaling to [-1, 1]). Its image contexts come from
``RandomMasker(min_nnz=0, max_nnz=0.3)``: a count drawn uniformly between 0 and 30 % of the pixels,
then that many pixels at random; the targets are every pixel (``no_masker``). Its models floor the
predictive std at ``min_std = 0.01``.

Our protocol (:func:`evaluate_npf`), the same in every respect we could check:

* the same resize (:func:`resize_like_npf`, PIL bilinear through torchvision) of the official splits;
* one context count per image, uniform on {0, 1, ..., floor(0.3 n)} (n = 1,024 pixels), and that many
  pixels uniformly at random, from a generator seeded with ``seed`` and the image's index in the test
  split (NPF draws one count per batch;
  per image has the same marginal distribution and does not depend on the batch size);
* every pixel a target, the log-likelihood summed over them: nats per image;
* deterministic models: the exact Gaussian log-likelihood, std floored at 0.01 (a model with a per-pixel
  mixture, hetero-mix: the exact mixture density, every component's std at least 0.01); latent models: the
  Monte-Carlo mixture estimate ``log (1/K) sum_k p(y | z_k)``, ``z_k ~ q(z | context)`` (NPF's estimate;
  it is biased low and rises with K, so K is printed), and beside it the importance-sampled estimate
  with proposal q(z | full image) (:meth:`ImageModel.log_likelihood`).

The anchors (:data:`NPF_ANCHORS`) are the numbers of NPF's reproducibility pages.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .models.base import ImageModel

#: Test log-likelihood (nats per image) on 32 x 32 MNIST, 0-30 % context, all pixels targets:
#: the Neural Process Family's reproducibility pages (pixels in [0, 1], predictive std floored at 0.01).
NPF_ANCHORS: dict[str, float] = {"CNP": 2062.8, "AttnCNP": 2262.2, "AttnLNP": 2507.9, "ConvCNP": 2628.2, "ConvLNP": 2919.4}
NPF_SOURCE = ("Dubois, Gordon and Foong, The Neural Process Family (2020), reproducibility pages "
              "https://yanndubs.github.io/Neural-Process-Family/reproducibility/{CNP,AttnCNP,LNP,AttnLNP,ConvCNP,ConvLNP}.html")
NPF_SIZE = 32
NPF_MAX_CONTEXT = 0.3
NPF_MIN_STD = 0.01
NPF_SEED = 0


# ---- data -------------------------------------------------------------------------------------------------


def resize_like_npf(images: Tensor, size: int = NPF_SIZE) -> Tensor:
    """``transforms.Resize(size)`` of PIL images, as NPF's MNIST does: uint8 (N, 1, h, w) -> uint8 (N, 1, size, size)."""
    import numpy as np
    from PIL import Image
    from torchvision.transforms import functional as TF

    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"resize_like_npf takes uint8 grey images (N, 1, H, W); got {images.dtype} {tuple(images.shape)}.")
    arr = images[:, 0].numpy()
    out = np.empty((len(arr), size, size), dtype=np.uint8)
    for i, a in enumerate(arr):
        out[i] = np.asarray(TF.resize(Image.fromarray(a, mode="L"), size))
    return torch.from_numpy(out).unsqueeze(1)


@lru_cache(maxsize=2)
def load_mnist32(split: str = "test") -> Tensor:
    """The official MNIST ``split`` resized to 32 x 32 as NPF does: uint8 (N, 1, 32, 32).

    The resize takes about a second per 1,000 images, so the result is cached beside the IDX files
    (``$IFANP_DATA/MNIST/npf32-<split>.npy``, plain uint8, read without pickle) keyed by the source's sha256.
    """
    import hashlib

    import numpy as np

    from .config import data_root
    from .data.mnist import load_mnist

    src = load_mnist(split, progress=False).images
    key = hashlib.sha256(src.numpy().tobytes()).hexdigest()[:16]
    cache = data_root() / "MNIST" / f"npf32-{split}-{key}.npy"
    if cache.is_file():
        try:
            return torch.from_numpy(np.load(cache, allow_pickle=False))
        except (OSError, ValueError):
            pass  # a broken cache file: recompute it
    out = resize_like_npf(src)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, out.numpy())
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only data folder: no cache
    return out


def npf_masks(n: int, size: int = NPF_SIZE, seed: int = NPF_SEED, max_fraction: float = NPF_MAX_CONTEXT) -> Tensor:
    """Context masks (n, 1, size, size): per image a count uniform on {0..floor(max_fraction * size^2)}, then
    that many pixels uniformly at random, from a generator seeded with (``seed``, the image's index)."""
    if n < 1:
        raise ValueError(f"need at least one mask; got n={n}.")
    if not 0 <= max_fraction <= 1:
        raise ValueError(f"max_fraction must lie in [0, 1]; got {max_fraction}.")
    pixels = size * size
    out = torch.zeros(n, pixels)
    for i in range(n):  # one generator per image: its context depends on (seed, index) only
        g = torch.Generator().manual_seed(seed * 1_000_003 + i)
        count = int(torch.randint(0, int(max_fraction * pixels) + 1, (1,), generator=g))
        out[i, torch.randperm(pixels, generator=g)[:count]] = 1.0
    return out.view(n, 1, size, size)


def training_masks(batch: int, size: int, generator: torch.Generator, max_fraction: float = NPF_MAX_CONTEXT) -> Tensor:
    """Training contexts with the protocol's distribution (a fresh draw from ``generator``)."""
    pixels = size * size
    counts = torch.randint(0, int(max_fraction * pixels) + 1, (batch,), generator=generator)
    ranks = torch.rand(batch, pixels, generator=generator).argsort(dim=1).argsort(dim=1)
    return (ranks < counts[:, None]).float().view(batch, 1, size, size)


def at_size(model: ImageModel, size: int) -> ImageModel:
    """The same weights built for ``size`` x ``size`` images (fully convolutional models such as hetero-cnp:
    a 32x32 model evaluated at MNIST's 28x28 under the paper's protocol)."""
    from .models import build

    cfg = {k: v for k, v in model.config.items() if k not in ("name", "size")}
    other = build(model.config["name"], size=size, **cfg)
    other.load_state_dict(model.state_dict())
    return other.to(model.device).eval()


# ---- the log-likelihood -------------------------------------------------------------------------------------


def _gauss_logp(y: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """log N(y | mean, std^2) per pixel, std floored at NPF's 0.01."""
    std = std.clamp_min(NPF_MIN_STD)
    return -0.5 * ((y - mean) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)


def _gauss_ll(y: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """sum over pixels of log N(y | mean, std^2) with std floored at NPF's 0.01; leading dims kept."""
    logp = _gauss_logp(y, mean, std)
    return logp.flatten(start_dim=logp.dim() - 3).sum(-1)


@torch.no_grad()
def npf_log_likelihood(model: ImageModel, x: Tensor, mask: Tensor, samples: int = 32) -> dict[str, Tensor]:
    """Per-image log-likelihood of every pixel of ``x`` (B, C, H, W in [0, 1]) given the context ``mask``.

    ``"ll"``: exact (deterministic models) or the Monte-Carlo mixture over ``samples`` draws of
    z ~ q(z | context) (latent models); ``"ll_is"``: the importance-sampled estimate (latent models only).
    """
    if model.latent:
        means, stds = model.predict(x, mask, samples=samples)  # (K, B, C, H, W)
        ll = torch.logsumexp(_gauss_ll(x, means, stds), dim=0) - math.log(samples)
        ll_is = model.log_likelihood(x, mask, target_mask=torch.ones_like(mask), samples=samples)
        return {"ll": ll, "ll_is": ll_is}
    if hasattr(model, "pixel_log_density"):  # a model with its own per-pixel predictive (hetero-mix's mixture)
        if model.cfg.get("std_floor", 0.0) < NPF_MIN_STD:
            raise ValueError(f"{model.name}'s std floor {model.cfg.get('std_floor')} is below the protocol's {NPF_MIN_STD}.")
        return {"ll": model.pixel_log_density(x, mask).flatten(1).sum(1)}
    means, stds = model.predict(x, mask, samples=0)
    return {"ll": _gauss_ll(x, means[0], stds[0])}


@torch.no_grad()
def evaluate_npf(
    model: ImageModel, images: Tensor, seed: int = NPF_SEED, samples: int = 32, batch_size: int = 100,
    progress: bool = False,
) -> dict[str, Any]:
    """The NPF protocol on uint8 ``images`` (N, C, H, W) of the model's size; see the module docstring."""
    if images.shape[1:] != (model.channels, model.size, model.size):
        raise ValueError(f"{model.name} expects {model.channels}x{model.size}x{model.size} images; got "
                         f"{'x'.join(map(str, images.shape[1:]))}.")
    model.eval()
    dev = model.device
    masks = npf_masks(len(images), model.size, seed)
    t0 = time.perf_counter()
    gen_state = torch.get_rng_state()
    torch.manual_seed(seed)
    acc: dict[str, list[Tensor]] = {}
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(dev).float().div(255)
        out = npf_log_likelihood(model, x, masks[i : i + batch_size].to(dev), samples)
        for k, v in out.items():
            acc.setdefault(k, []).append(v.cpu())
        if progress:
            print(f"\r{model.name}: {min(i + batch_size, len(images))}/{len(images)}", end="", file=sys.stderr)
    if progress:
        print(file=sys.stderr)
    torch.set_rng_state(gen_state)
    per_image = {k: torch.cat(v) for k, v in acc.items()}
    ll = per_image["ll"]
    pixels = model.channels * model.size**2
    res = {
        "model": model.name, "size": model.size, "images": len(images), "pixels": pixels,
        "ll_per_image": float(ll.mean()), "ll_per_image_se": float(ll.std() / math.sqrt(len(ll))) if len(ll) > 1 else 0.0,
        "ll_per_image_median": float(ll.median()), "ll_per_image_min": float(ll.min()),
        "ll_per_pixel": float(ll.mean()) / pixels,
        # the mean over the first n images: what a quick recomputation (the book's default build) checks against
        "ll_per_image_first": {str(k): float(ll[:k].mean()) for k in (16, 100, 500, 1000) if k <= len(ll)},
        "ll_is_per_image": float(per_image["ll_is"].mean()) if "ll_is" in per_image else None,
        "estimate": (f"Monte-Carlo mixture over K={samples} z ~ q(z|context)" if model.latent else
                     f"exact (mixture of {model.cfg['components']} Gaussians per pixel)"
                     if getattr(model, "cfg", {}).get("components", 1) > 1 else "exact (Gaussian)"),
        "samples": samples if model.latent else None,
        "protocol": {"context": f"uniform count in 0..floor({NPF_MAX_CONTEXT} n) per image, seed {seed}",
                     "targets": "all pixels", "min_std": NPF_MIN_STD, "pixels": "[0, 1]"},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return res


@torch.no_grad()
def ll_breakdown(model: ImageModel, images: Tensor, seed: int = NPF_SEED, batch_size: int = 100) -> dict[str, Any]:
    """Where a deterministic model's NPF log-likelihood comes from: per image, the pixels, nats and share at
    the floor of the context pixels (split by black / stroke), the black target pixels and the stroke target
    pixels, and the nats each group loses against the cap log N(0 | 0, 0.01^2) per pixel ("std at the floor":
    the predictive std, for a mixture its moment-matched std, below 1.05 x 0.01)."""
    if model.latent:
        raise ValueError("ll_breakdown takes deterministic models (the per-pixel predictive is then exact).")
    model.eval()
    masks = npf_masks(len(images), model.size, seed)
    cap = -math.log(NPF_MIN_STD) - 0.5 * math.log(2 * math.pi)
    lp, sd = [], []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].float().div(255).to(model.device)
        m = masks[i : i + batch_size].to(model.device)
        out = npf_log_likelihood(model, x, m)["ll"]  # (B,), checked against the per-pixel sum below
        if hasattr(model, "pixel_log_density"):
            p = model.pixel_log_density(x, m)
        else:
            mean, std = model.predict(x, m, samples=0)
            p = _gauss_logp(x, mean[0], std[0])
        if not torch.allclose(p.flatten(1).sum(1), out, rtol=1e-4, atol=1e-2):
            raise RuntimeError("the per-pixel log-likelihoods do not add up to the image's")
        lp.append(p.cpu())
        sd.append(model.predict(x, m, samples=0)[1][0].cpu())
    lp, sd = torch.cat(lp), torch.cat(sd)
    x, ctx, n = images.float(), masks.bool(), len(images)
    groups = {"context (black)": ctx & (x == 0), "context (stroke)": ctx & (x > 0),
              "target (black)": ~ctx & (x == 0), "target (stroke)": ~ctx & (x > 0)}
    res: dict[str, Any] = {"model": model.name, "images": n, "ll_per_image": float(lp.flatten(1).sum(1).mean()),
                           "cap_per_pixel": cap, "groups": {}}
    for name, sel in groups.items():
        k = int(sel.sum())
        res["groups"][name] = {"pixels_per_image": k / n, "nats_per_image": float(lp[sel].sum()) / n,
                               "nats_per_pixel": float(lp[sel].mean()) if k else float("nan"),
                               "std_at_floor": float((sd[sel] < 1.05 * NPF_MIN_STD).float().mean()) if k else float("nan"),
                               "lost_per_image": (cap * k - float(lp[sel].sum())) / n}
    return res


def npf_table(results: list[dict[str, Any]]) -> str:
    """Markdown: our rows (nats per image, exact or MC with its K, importance-sampled beside) and NPF's anchors."""
    lines = ["| model | size | LL (nats/image, ± s.e.) | LL importance-sampled | nats/pixel | estimate |", "|---|---|---|---|---|---|"]
    for r in results:
        is_ = "—" if r["ll_is_per_image"] is None else f"{r['ll_is_per_image']:.1f}"
        note = "" if r["size"] == NPF_SIZE else " (not comparable: not 32x32)"
        lines.append(f"| {r.get('label', r['model'])} | {r['size']}x{r['size']}{note} | {r['ll_per_image']:.1f} "
                     f"± {r['ll_per_image_se']:.1f} | {is_} | {r['ll_per_pixel']:.3f} | {r['estimate']} |")
    for name, v in NPF_ANCHORS.items():
        lines.append(f"| NPF {name} (anchor) | 32x32 | {v:.1f} | — | {v / 1024:.3f} | published |")
    return "\n".join(lines) + f"\n\nAnchors: {NPF_SOURCE}.\n"


def run_npf_evaluate(args: argparse.Namespace, model: ImageModel, label: str) -> int:
    """``python -m ifanp evaluate MODEL --protocol npf`` (``model`` resolved by the caller): the table above
    on the MNIST test split."""
    if args.dataset != "mnist":
        raise ValueError("--protocol npf is defined for MNIST (the NPF anchors); use --dataset mnist.")
    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be a positive number of images.")
    if getattr(args, "npf_samples", 32) < 1 or args.batch_size < 1:
        raise ValueError("--npf-samples and --batch-size must be at least 1.")
    if model.size == NPF_SIZE:
        images = load_mnist32("test")
    else:
        from .data.mnist import load_mnist

        images = load_mnist("test", progress=False).images  # a 28x28 model: the same protocol at its size
    if images.shape[1:] != (model.channels, model.size, model.size):
        raise ValueError(f"{label} expects {model.channels}x{model.size}x{model.size} images; the NPF protocol has MNIST at 32x32.")
    if args.limit:
        images = images[: args.limit]
    samples = getattr(args, "npf_samples", 32)
    res = evaluate_npf(model, images, samples=samples, batch_size=args.batch_size, progress=not args.quiet)
    res["label"] = label
    res["command"] = "python -m ifanp " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["evaluate"] else None
    out = args.out or (Path(args.model) if Path(args.model).is_dir() else Path("results") / Path(label).stem)
    out.mkdir(parents=True, exist_ok=True)
    (out / "npf.json").write_text(json.dumps(res, indent=2) + "\n")
    table = npf_table([res])
    (out / "npf.md").write_text(f"# {label}: NPF protocol on the MNIST test split ({res['images']:,} images)\n\n{table}")
    print(table, end="")
    print(f"wrote {out / 'npf.json'} and {out / 'npf.md'} ({res['seconds']:.0f} s)")
    return 0


# ---- training (python -m ifanp.npf train / export) --------------------------------------------------------


def _save_checkpoint(run: Path, model: ImageModel, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    from .pretrained import save_weights

    save_weights(model, run / "checkpoint.model.safetensors", meta=state)
    tensors, meta = {}, {}
    for pid, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous().clone()
            else:
                meta[f"{pid}.{k}"] = v
    tmp = run / "checkpoint.opt.safetensors.tmp"
    save_file(tensors, str(tmp), metadata={"meta": json.dumps(meta), "state": json.dumps(state)})
    os.replace(tmp, run / "checkpoint.opt.safetensors")
    (run / "checkpoint.json").write_text(json.dumps(state) + "\n")


def _load_checkpoint(run: Path, model: ImageModel, opt: torch.optim.Optimizer) -> dict[str, Any]:
    from safetensors import safe_open

    from .pretrained import load_weights

    state = json.loads((run / "checkpoint.json").read_text())
    model.load_state_dict(load_weights(run / "checkpoint.model.safetensors").state_dict())
    sd = opt.state_dict()
    with safe_open(str(run / "checkpoint.opt.safetensors"), framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
        for key in f.keys():  # noqa: SIM118
            pid, k = key.split(".", 1)
            sd["state"].setdefault(int(pid), {})[k] = f.get_tensor(key)
    for key, v in meta.items():
        pid, k = key.split(".", 1)
        sd["state"].setdefault(int(pid), {})[k] = v
    opt.load_state_dict(sd)
    return state


def warmup_weight(step: int, warmup_steps: int, ramp_steps: int) -> float:
    """1 for the first ``warmup_steps`` (mean against a fixed sigma, std on the detached mean), then a
    linear ramp to 0 (the exact NLL) over ``ramp_steps``."""
    if step < warmup_steps:
        return 1.0
    if ramp_steps <= 0:
        return 0.0
    return max(0.0, 1.0 - (step - warmup_steps) / ramp_steps)


def init_from(model: ImageModel, source: str) -> dict[str, Any]:
    """Copy into ``model`` every tensor of ``source`` (a registry name, sha-verified, or a weights file) whose
    name and shape match; the others keep their fresh initialisation. Returns what was copied and what not."""
    from .pretrained import load_pretrained, load_weights, registry

    if source in registry():
        other, sha = load_pretrained(source), registry()[source]["sha256"]
    else:
        from .pretrained import sha256_of

        other, sha = load_weights(source), sha256_of(source)
    theirs = {k: v.float() for k, v in other.state_dict().items()}
    own = model.state_dict()
    copied = [k for k, v in own.items() if k in theirs and theirs[k].shape == v.shape]
    if not copied:
        raise ValueError(f"--init {source}: no tensor of {other.name} fits {model.name}.")
    model.load_state_dict({**own, **{k: theirs[k] for k in copied}})
    return {"source": source, "sha256": sha, "copied": copied, "fresh": [k for k in own if k not in copied]}


def train(args: argparse.Namespace) -> int:
    """Train an image model on 32 x 32 MNIST with the protocol's contexts; checkpoints and --resume."""
    from .models import build
    from .pretrained import save_weights

    torch.set_num_threads(args.threads)
    run = Path(args.run)
    if args.resume and (run / "config.json").is_file():  # a resumed run keeps its recipe
        saved = json.loads((run / "config.json").read_text())
        new_steps = args.steps
        for k in ("model", "steps", "batch", "lr", "lr_min", "seed", "warmup_steps", "ramp_steps", "clip"):
            setattr(args, k, saved[k])
        args.overrides = json.dumps(saved["overrides"])
        command = saved["command"]
        changes = saved.get("schedule_changes", [])
        if new_steps is not None and new_steps != saved["steps"]:  # a shorter or longer cosine from here on
            state = json.loads((run / "checkpoint.json").read_text())
            changes.append({"at_step": state["step"], "steps": new_steps})
            command += f"  # then --resume --steps {new_steps} at step {state['step']}"
            args.steps = new_steps
    else:
        command, changes = None, []
        args.steps = 12000 if args.steps is None else args.steps
    run.mkdir(parents=True, exist_ok=True)
    config = {"model": args.model, "overrides": json.loads(args.overrides), "steps": args.steps, "batch": args.batch,
              "lr": args.lr, "lr_min": args.lr_min, "seed": args.seed, "warmup_steps": args.warmup_steps,
              "ramp_steps": args.ramp_steps, "clip": args.clip, "threads": args.threads,
              "command": command or "python -m ifanp.npf train " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["train"] else sys.argv[1:])}
    torch.manual_seed(args.seed)
    model = build(args.model, size=NPF_SIZE, **config["overrides"])
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    step, elapsed, cpu = 0, 0.0, 0.0
    resuming = args.resume and (run / "checkpoint.json").is_file()
    if getattr(args, "init", None) and not resuming:
        config["init"] = init_from(model, args.init)
        print(f"initialised from {args.init}: {len(config['init']['copied'])} tensors copied, "
              f"fresh: {', '.join(config['init']['fresh']) or 'none'}")
    elif args.resume and (run / "config.json").is_file() and "init" in saved:
        config["init"] = saved["init"]
    if resuming:
        state = _load_checkpoint(run, model, opt)
        step, elapsed, cpu = state["step"], state["elapsed_s"], state["cpu_s"]
        print(f"resumed {run} at step {step}")
    elif (run / "log.jsonl").exists() and not args.resume:
        raise ValueError(f"{run} already holds a run; pass --resume to continue it or choose another folder.")
    config["schedule_changes"] = changes
    (run / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    train_images = load_mnist32("train")
    test_images = load_mnist32("test")[: args.eval_images]
    log = open(run / "log.jsonl", "a")  # noqa: SIM115 - appended to for the whole run, closed below
    model.train()
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    window: list[dict[str, float]] = []
    warm_kw = "warmup" in model.loss.__code__.co_varnames
    while step < args.steps:
        g = torch.Generator().manual_seed(args.seed * 1_000_003 + step)  # one generator per step: exact resume
        idx = torch.randint(0, len(train_images), (args.batch,), generator=g)
        x = train_images[idx].float().div(255)
        m = training_masks(args.batch, NPF_SIZE, g)
        lr = args.lr_min + 0.5 * (args.lr - args.lr_min) * (1 + math.cos(math.pi * step / args.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        w = warmup_weight(step, args.warmup_steps, args.ramp_steps)
        out = model.loss(x, m, warmup=w) if warm_kw else model.loss(x, m)
        opt.zero_grad(set_to_none=True)
        (out.loss / (NPF_SIZE * NPF_SIZE)).backward()  # per pixel: the clip threshold does not depend on the size
        gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip if args.clip > 0 else float("inf")))
        opt.step()
        step += 1
        rec = {**out.as_floats(), "gnorm": gnorm}
        window.append(rec)
        if step % args.log_every == 0 or step == args.steps:
            now_wall, now_cpu = time.perf_counter(), time.process_time()
            elapsed += now_wall - t_wall
            cpu += now_cpu - t_cpu
            t_wall, t_cpu = now_wall, now_cpu
            row = {"kind": "train", "step": step, "elapsed_s": round(elapsed, 1), "cpu_s": round(cpu, 1), "lr": lr,
                   "warmup": w, **{k: sum(r[k] for r in window) / len(window) for k in window[0]},
                   "gnorm_max": max(r["gnorm"] for r in window), "nll_max": max(r["nll"] for r in window)}
            window = []
            if step % args.eval_every == 0 or step == args.steps:
                model.eval()
                ev = evaluate_npf(model, test_images, samples=8)
                with torch.no_grad():
                    xs = test_images[:200].float().div(255)
                    _, s = model.predict(xs, npf_masks(len(xs), NPF_SIZE), 0)
                model.train()
                row.update(kind="eval", npf_ll_first=ev["ll_per_image"], eval_images=len(test_images),
                           std_at_floor=float((s[0] < 1.5 * NPF_MIN_STD).float().mean()))
                t_wall, t_cpu = time.perf_counter(), time.process_time()  # evaluation time is not training time
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(json.dumps(row), flush=True)
            if step % args.checkpoint_every == 0 or step == args.steps:
                _save_checkpoint(run, model, opt, {"step": step, "elapsed_s": elapsed, "cpu_s": cpu})
    log.close()
    save_weights(model, run / "model.safetensors", meta={"steps": step, "elapsed_s": round(elapsed, 1), "cpu_s": round(cpu, 1)})
    print(f"finished {run}: {step} steps, {elapsed / 60:.1f} min wall, {cpu / 60:.1f} CPU min")
    return 0


@torch.no_grad()
def psnr28(model: ImageModel, limit: int = 1000, ratios: tuple[float, ...] = (0.2, 0.4, 0.6)) -> dict[str, float]:
    """Whole-image PSNR (dB) of the same weights at MNIST's 28x28 under the paper's protocol: the predictive mean
    clamped to [0, 1] on the evaluation subset's first ``limit`` images with their masks (``eval_mask``), the mean
    of the per-image PSNR, as ``ifanp.evaluate.evaluate`` computes it (not imported: evaluate imports this module)."""
    from .data.masks import eval_mask
    from .data.splits import load_eval_images
    from .metrics import completion_metrics

    images, indices = load_eval_images("mnist")
    images, indices = images[:limit], indices[:limit]
    small = at_size(model, 28)
    out = {}
    for ratio in ratios:
        vals = []
        for i in range(0, len(images), 100):
            x = images[i : i + 100].to(small.device).float().div(255)
            m = eval_mask(indices[i : i + 100], 28, ratio).to(small.device)
            mean, _ = small.predict(x, m, samples=0)
            vals.append(completion_metrics(mean[0].clamp(0, 1), x, m)["psnr_whole"].cpu())
        out[str(ratio)] = round(float(torch.cat(vals).mean()), 4)
    return out


def record(name: str, model: ImageModel | None = None, calib_images: int = 500) -> dict[str, Any]:
    """Evaluate registry model ``name`` on the whole test split under the protocol and fit its calibration
    temperature on ``calib_images`` *training* images (NPF contexts of seed 1); write both into its registry
    entry (``npf_test``, ``temperature``), so the book reads the 10,000-image number and rechecks a sample."""
    import fcntl

    from .calibration import fit_temperature
    from .pretrained import REGISTRY_FILE, WEIGHTS_DIR, load_pretrained, registry, write_text_atomic

    model = model or load_pretrained(name)
    res = evaluate_npf(model, load_mnist32("test"))
    npf_test = {k: res[k] for k in ("images", "ll_per_image", "ll_per_image_se", "ll_per_image_median",
                                    "ll_per_image_min", "ll_per_pixel", "ll_per_image_first", "estimate", "seconds")}
    train_images = load_mnist32("train")[:calib_images]
    fit = fit_temperature(model, train_images, npf_masks(len(train_images), model.size, seed=1))
    temperature = {"tau": fit["tau"], "max_gap_train": round(fit["max_gap"], 4), "images": fit["images"],
                   "data": "training images 0..{}, NPF contexts of seed 1, the discrete PIT of the missing "
                           "pixels".format(fit["images"] - 1)}
    with open(WEIGHTS_DIR / ".registry.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        reg = registry()
        if name not in reg:
            raise ValueError(f"{name} is not in the registry.")
        reg[name].update(npf_test=npf_test, temperature=temperature,
                         npf_test_command=f"python -m ifanp.npf record {name}")
        write_text_atomic(REGISTRY_FILE, json.dumps(dict(sorted(reg.items())), indent=2) + "\n")
    print(f"{name}: {npf_test['ll_per_image']:.1f} ± {npf_test['ll_per_image_se']:.1f} nats/image on the "
          f"{npf_test['images']:,} test images ({npf_test['seconds']:.0f} s); calibration temperature "
          f"{fit['tau']} (largest gap on training images {100 * fit['max_gap']:.1f} points)")
    return {"npf_test": npf_test, "temperature": temperature}


def export(args: argparse.Namespace) -> int:
    """Register a finished run's weights: fp16 when the NPF log-likelihood moves by < 0.5 nats/image and the
    28x28 PSNR by < 0.05 dB, else fp32; the registry entry keeps both, the learning curve and the command,
    and then :func:`record` adds the whole test split's log-likelihood and the calibration temperature."""
    from .pretrained import WEIGHTS_DIR, load_weights, read_metadata, register_weights, save_weights

    torch.set_num_threads(args.threads)
    run = Path(args.run)
    model = load_weights(run / "model.safetensors")
    cfg = json.loads((run / "config.json").read_text())
    images = load_mnist32("test")[:1000]
    ll32, psnr32 = evaluate_npf(model, images)["ll_per_image"], psnr28(model)
    tmp = WEIGHTS_DIR / f".{args.name}.tmp.safetensors"
    save_weights(model, tmp, half=True)
    half_model = load_weights(tmp)
    ll16, psnr16 = evaluate_npf(half_model, images)["ll_per_image"], psnr28(half_model)
    tmp.unlink()
    half = abs(ll16 - ll32) < 0.5 and all(abs(psnr16[r] - psnr32[r]) < 0.05 for r in psnr32)
    meta = read_metadata(run / "model.safetensors")["meta"]
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    info = {"command": cfg["command"], "dataset": "mnist32", "seed": cfg["seed"], "steps": int(meta["steps"]),
            "wall_time_s": meta["elapsed_s"], "cpu_time_s": meta["cpu_s"], "threads": cfg["threads"],
            "npf_ll_first1000_fp32": round(ll32, 2), "npf_ll_first1000_fp16": round(ll16, 2),
            "psnr28_whole_first1000_fp32": psnr32, "psnr28_whole_first1000_fp16": psnr16,
            "eval_images": next((r["eval_images"] for r in rows if r["kind"] == "eval"), None),
            "evals": [{k: r.get(k) for k in ("step", "elapsed_s", "cpu_s", "npf_ll_first", "std_at_floor")}
                      for r in rows if r["kind"] == "eval"],
            "history": [{k: (round(r[k], 4) if isinstance(r.get(k), float) else r.get(k))
                         for k in ("step", "cpu_s", "warmup", "lr", "nll", "nll_max", "gnorm", "gnorm_max")}
                        for r in rows]}
    if "init" in cfg:
        info["init"] = {k: cfg["init"][k] for k in ("source", "sha256", "fresh")}
    entry = register_weights(args.name, model, half=half, **info)
    record(args.name)
    print(f"registered {args.name}: {entry['bytes'] / 2**20:.2f} MB ({'fp16' if half else 'fp32'}); "
          f"NPF LL on the first 1,000 test images: fp32 {ll32:.1f}, fp16 {ll16:.1f} nats/image; "
          f"28x28 whole-image PSNR (first 1,000, 20/40/60 %): fp32 {psnr32}, fp16 {psnr16}")
    return 0


def diagnose(args: argparse.Namespace) -> int:
    """``python -m ifanp.npf diagnose MODEL``: :func:`ll_breakdown` as a table."""
    from .pretrained import load_pretrained, load_weights, registry

    torch.set_num_threads(args.threads)
    model = load_pretrained(args.model) if args.model in registry() else load_weights(args.model)
    res = ll_breakdown(model, load_mnist32("test")[: args.images])
    print(f"{args.model}: {res['ll_per_image']:.1f} nats/image on the first {res['images']} test images "
          f"(cap {res['cap_per_pixel']:.3f} nats/pixel)")
    print("| pixels | per image | nats/image | nats/pixel | std at floor | lost vs cap |\n|---|---|---|---|---|---|")
    for name, g in res["groups"].items():
        print(f"| {name} | {g['pixels_per_image']:.1f} | {g['nats_per_image']:.1f} | {g['nats_per_pixel']:.3f} | "
              f"{100 * g['std_at_floor']:.1f} % | {g['lost_per_image']:.1f} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ifanp.npf", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a model on 32x32 MNIST with the NPF contexts")
    t.add_argument("--run", required=True, help="run folder (checkpoints, log.jsonl, model.safetensors)")
    t.add_argument("--model", default="hetero-cnp")
    t.add_argument("--overrides", default="{}", help="JSON model options")
    t.add_argument("--steps", type=int, default=None,
                   help="total steps (default 12000); with --resume, a new total restarts the cosine from there")
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--lr-min", type=float, default=5e-5)
    t.add_argument("--warmup-steps", type=int, default=500, help="steps with the stable objective (see ifanp.models.hetero)")
    t.add_argument("--ramp-steps", type=int, default=1000, help="steps of the linear ramp to the exact NLL")
    t.add_argument("--clip", type=float, default=5.0, help="gradient-norm clip of the per-pixel loss (0 = off)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=int(os.environ.get("IFANP_THREADS", "1")))
    t.add_argument("--log-every", type=int, default=100)
    t.add_argument("--eval-every", type=int, default=1000)
    t.add_argument("--eval-images", type=int, default=500)
    t.add_argument("--checkpoint-every", type=int, default=500)
    t.add_argument("--resume", action="store_true")
    t.add_argument("--init", default=None,
                   help="start from a registry name or weights file (every tensor whose name and shape match)")
    d = sub.add_parser("diagnose", help="where a model's NPF log-likelihood is lost: context / black / stroke pixels")
    d.add_argument("model", help="a registry name or a weights file")
    d.add_argument("--images", type=int, default=500, help="the first N test images (default 500)")
    d.add_argument("--threads", type=int, default=int(os.environ.get("IFANP_THREADS", "1")))
    r = sub.add_parser("record", help="write the whole-test-split NPF log-likelihood and the calibration "
                                      "temperature into a registry entry")
    r.add_argument("name")
    r.add_argument("--threads", type=int, default=int(os.environ.get("IFANP_THREADS", "1")))
    e = sub.add_parser("export", help="register a finished run's weights in the package")
    e.add_argument("run")
    e.add_argument("--name", required=True)
    e.add_argument("--threads", type=int, default=int(os.environ.get("IFANP_THREADS", "1")))
    args = p.parse_args(argv)
    try:
        if args.cmd == "record":
            torch.set_num_threads(args.threads)
            record(args.name)
            return 0
        return {"train": train, "export": export, "diagnose": diagnose}[args.cmd](args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
