"""Shipped weights: saving, verified loading, and the registry of pretrained models.

Weights are stored as safetensors (no pickle anywhere): the tensors, plus string metadata holding
the model's JSON configuration. The registry ``ifanp/weights/registry.json`` lists every shipped
file with its sha256, the command that trained it and its wall time; :func:`load_pretrained`
checks the hash before reading a byte of the tensors.
"""
from __future__ import annotations

import hashlib
import json
import os
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
    save_file(tensors, str(path), metadata=metadata)
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
    return {"family": md["family"], "config": json.loads(md["config"]), "meta": json.loads(md.get("meta", "{}"))}


def load_weights(path: str | Path, sha256: str | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Build the model stored in ``path`` and load its weights (checking ``sha256`` first when given)."""
    path = Path(path)
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


def register_weights(name: str, model: nn.Module, half: bool = True, **info: Any) -> dict[str, Any]:
    """Save ``model`` into the package as ``name`` and record it (with ``info``: command, wall time...)."""
    import fcntl  # POSIX only: imported where the registry lock is taken, so that reading works anywhere

    file = f"{name}.safetensors"
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    with open(WEIGHTS_DIR / ".registry.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two exports at once must not lose each other's entries
        digest = save_weights(model, WEIGHTS_DIR / file, half=half, meta={"name": name, **info})
        reg = registry()
        reg[name] = {"file": file, "sha256": digest, "family": model_family(model), "half": half,
                     "bytes": (WEIGHTS_DIR / file).stat().st_size, **info}
        tmp = REGISTRY_FILE.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(dict(sorted(reg.items())), indent=2) + "\n")
        os.replace(tmp, REGISTRY_FILE)
    return reg[name]


# ---- python -m ifanp export -------------------------------------------------------------------------
