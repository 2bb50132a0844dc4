"""Shipped weights: saving, verified loading, and the registry of pretrained models.

Weights are stored as safetensors (no pickle anywhere): the tensors, plus string metadata holding
the model's JSON configuration. The registry ``ifanp/weights/registry.json`` lists every shipped
file with its sha256, the command that trained it and its wall time; :func:`load_pretrained`
checks the hash before reading a byte of the tensors.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .models import build
from .models.base import ImageModel
from .models.setnp import build_1d

WEIGHTS_DIR = Path(__file__).parent / "weights"
REGISTRY_FILE = WEIGHTS_DIR / "registry.json"


class WeightsError(RuntimeError):
    """A weights file is missing, corrupt, or does not match its recorded hash."""


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Write a file all at once: ``with atomic_path(p) as tmp: write(tmp)`` writes a temporary file beside
    ``p``, flushes it to disk and renames it over ``p`` (``os.replace``); a kill or an error midway leaves
    ``p`` as it was (the temporary file is removed on an error)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    """``Path(path).write_text(text)`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_family(model: nn.Module) -> str:
    """``"image"`` for :class:`ifanp.models.ImageModel`, ``"1d"`` for the 1-D set models."""
    return "image" if isinstance(model, ImageModel) else "1d"


def build_from_config(family: str, config: dict[str, Any]) -> nn.Module:
    """Rebuild an (untrained) model from its family and JSON configuration."""
    if family == "image":
        cfg = dict(config)
        return build(cfg.pop("name"), **cfg)
    if family == "1d":
        return build_1d(**config)
    raise WeightsError(f"unknown model family {family!r} in a weights file (expected 'image' or '1d').")


def save_weights(model: nn.Module, path: str | Path, half: bool = False, meta: dict[str, Any] | None = None) -> str:
    """Write ``model`` to ``path`` as safetensors (fp16 with ``half``); return the file's sha256."""
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().contiguous()
        tensors[k] = v.half() if half and v.is_floating_point() else v.clone()
    metadata = {
        "family": model_family(model),
        "config": json.dumps(model.config, sort_keys=True),
        "meta": json.dumps(meta or {}, sort_keys=True),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # a kill midway leaves the previous file, never half of a new one
        save_file(tensors, str(tmp), metadata=metadata)
    return sha256_of(path)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The family, configuration and free-form metadata stored in a weights file."""
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise WeightsError(f"{path} is not a readable safetensors file ({err}); delete it and retrain or reinstall.") from err
    if "config" not in md or "family" not in md:
        raise WeightsError(f"{path} has no ifanp model configuration in its metadata; was it written by save_weights?")
    try:
        return {"family": md["family"], "config": json.loads(md["config"]), "meta": json.loads(md.get("meta", "{}"))}
    except json.JSONDecodeError as err:
        raise WeightsError(f"{path}: the model configuration in its metadata is not valid JSON ({err}); the file is "
                           "corrupt or was altered. Delete it and retrain or reinstall.") from err


def load_weights(path: str | Path, sha256: str | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Build the model stored in ``path`` and load its weights (checking ``sha256`` first when given).

    The configuration in the file's metadata is checked against its tensors before any memory is given to
    the model: the model is first built on torch's ``meta`` device (shapes only), and its parameters must
    have exactly the names and shapes of the stored tensors. So a file whose metadata asks for a huge
    model is refused without allocating it. ``device`` is checked first (``cuda`` without a GPU is an error).
    """
    from .config import get_device

    path = Path(path)
    device = get_device(device)
    if not path.is_file():
        raise WeightsError(f"no weights file at {path}.")
    if sha256 is not None:
        actual = sha256_of(path)
        if actual != sha256:
            raise WeightsError(
                f"{path.name}: sha256 {actual} does not match the registry's {sha256}; the file is corrupt or was "
                "replaced. Reinstall the package (pip install --force-reinstall) or retrain the model."
            )
    info = read_metadata(path)
    if not isinstance(info["config"], dict):
        raise WeightsError(f"{path}: the model configuration in its metadata is not a JSON object.")
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except Exception as err:  # safetensors' own error types
        raise WeightsError(f"{path} is not a readable safetensors file ({err}); delete it and retrain or reinstall.") from err
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated
            skeleton = build_from_config(info["family"], info["config"])
    except WeightsError:
        raise
    except Exception as err:  # any failure means: the metadata does not describe a model
        raise WeightsError(f"{path}: the configuration in its metadata does not build a model "
                           f"({str(err).splitlines()[0] if str(err) else type(err).__name__}).") from err
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    if expected != shapes:
        wrong = sorted(set(expected) ^ set(shapes)) + sorted(k for k in set(expected) & set(shapes)
                                                              if expected[k] != shapes[k])
        raise WeightsError(f"{path}: its metadata describes a model whose tensors differ from the stored ones "
                           f"({len(wrong)} differ, e.g. {wrong[0]!r}); the file is corrupt or was altered. "
                           "Delete it and retrain or reinstall.")
    stored = sum(math.prod(s) for s in shapes.values())
    other = sum(b.numel() for b in skeleton.buffers()) - sum(math.prod(s) for k, s in shapes.items()
                                                              if k in dict(skeleton.named_buffers()))
    if other > max(16 * stored, 1 << 24):  # buffers that are not stored (coordinate grids) stay small
        raise WeightsError(f"{path}: its metadata asks for {other:,} values of buffers beside {stored:,} stored "
                           "values (an image size far too large?); the file is corrupt or was altered.")
    del skeleton
    model = build_from_config(info["family"], info["config"])
    state = {}
    with safe_open(str(path), framework="pt") as f:
        for k in f.keys():  # noqa: SIM118 (safe_open is not iterable)
            state[k] = f.get_tensor(k)
    ref = model.state_dict()
    state = {k: v.to(ref[k].dtype) if k in ref else v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WeightsError(f"{path.name} does not fit its model: missing {missing}, unexpected {unexpected}.")
    model.pretrained_meta = info["meta"]
    return model.to(device).eval()


def pretrained_name(model: str, dataset: str, seed: int = 0) -> str:
    """The registry name of a shipped model: ``mnist-ifanp`` (seed 0) or ``mnist-ifanp-s1``."""
    return f"{dataset}-{model}" + (f"-s{seed}" if seed else "")


def registry() -> dict[str, dict[str, Any]]:
    """The registry of shipped weights: name -> {file, sha256, family, command, wall_time_s, ...}."""
    if not REGISTRY_FILE.is_file():
        return {}
    return json.loads(REGISTRY_FILE.read_text())


def available() -> list[str]:
    """Names accepted by :func:`load_pretrained`."""
    return sorted(registry())


def load_pretrained(name: str, device: str | torch.device = "cpu") -> nn.Module:
    """Load the shipped model ``name`` (see :func:`available`), verifying its sha256; never unpickles."""
    reg = registry()
    if name not in reg:
        names = ", ".join(sorted(reg)) or "none are installed"
        raise WeightsError(f"no pretrained weights named {name!r}; available: {names}.")
    entry = reg[name]
    return load_weights(WEIGHTS_DIR / entry["file"], sha256=entry["sha256"], device=device)


_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def check_name(name: str, force: bool = False) -> None:
    """ValueError unless ``name`` can name new weights in the registry: lower-case letters, digits, '.', '_'
    and '-' (no path separator, so the file stays in the weights folder), and not a registered name unless
    ``force``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"--name {name!r}: use lower-case letters, digits, '.', '_' and '-' (e.g. mnist-ifanp-s1); "
                         "no path separators.")
    if not force and name in registry():
        raise ValueError(f"{name!r} is already in the registry ({registry()[name].get('file')}); pass --force to "
                         "replace it, or choose another name.")


def register_weights(name: str, model: nn.Module, half: bool = True, **info: Any) -> dict[str, Any]:
    """Save ``model`` into the package as ``name`` and record it (with ``info``: command, wall time...).

    ``name`` must pass :func:`check_name` (an existing name is replaced: commands check it first)."""
    import fcntl  # POSIX only: imported where the registry lock is taken, so that reading works anywhere

    check_name(name, force=True)
    file = f"{name}.safetensors"
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    with open(WEIGHTS_DIR / ".registry.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two exports at once must not lose each other's entries
        digest = save_weights(model, WEIGHTS_DIR / file, half=half, meta={"name": name, **info})
        reg = registry()
        reg[name] = {"file": file, "sha256": digest, "family": model_family(model), "half": half,
                     "bytes": (WEIGHTS_DIR / file).stat().st_size, **info}
        write_text_atomic(REGISTRY_FILE, json.dumps(dict(sorted(reg.items())), indent=2) + "\n")
    return reg[name]


# ---- python -m ifanp export -------------------------------------------------------------------------
