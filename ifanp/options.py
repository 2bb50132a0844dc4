"""Model options given on the command line or in a run's configuration (``--set KEY=VALUE``), checked
against the type of each option's default: :func:`parse_overrides` (text -> typed values),
:func:`check_overrides` (values given as Python objects) and :func:`model_defaults` (an image model's
options and their defaults, read from ``build(model).config`` without allocating weights). A bad value is
a ValueError that names the option and the spellings it takes.
"""
from __future__ import annotations

import json
import math
from typing import Any

import torch

from .models import build, model_names

__all__ = ["check_overrides", "model_defaults", "parse_overrides"]


_BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_NONE_WORDS = ("none", "null")


def model_defaults(model: str) -> dict[str, Any]:
    """The options of image model ``model`` and their default values (those of ``build(model).config``)."""
    if model not in _DEFAULTS_CACHE:
        if model not in model_names():
            raise ValueError(f"unknown model {model!r}; choose one of: {', '.join(model_names())}.")
        try:
            with torch.device("meta"):  # only the configuration is wanted: allocate nothing
                config = dict(build(model).config)
        except (RuntimeError, NotImplementedError):  # a model whose constructor needs real tensors
            config = dict(build(model).config)
        for key in ("name", "channels", "size"):
            config.pop(key, None)
        _DEFAULTS_CACHE[model] = config
    return dict(_DEFAULTS_CACHE[model])


_DEFAULTS_CACHE: dict[str, dict[str, Any]] = {}


def _kind(default: Any) -> str:
    if default is None:
        return "none"
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    return "str"


def _wanted(key: str, default: Any) -> str:
    kind = _kind(default)
    if kind == "bool":
        return "true or false (also 1/0, yes/no)"
    if kind == "int":
        return f"a whole number >= {1 if default >= 1 else 0}"
    if kind == "float":
        return "a finite number > 0" if "sigma" in key else "a finite number >= 0"
    if kind == "str":
        return f"a word such as {default!r} (none or null for None)"
    return "none or null, or a number or word"


def _option_value(model: str, key: str, value: Any, text: bool) -> Any:
    """``value`` of option ``key`` checked against the type of its default (parsed first when ``text``)."""
    defaults = model_defaults(model)
    if key not in defaults:
        raise ValueError(f"unknown option {key!r} for {model}; its options are: {', '.join(defaults)}.")
    default = defaults[key]
    kind = _kind(default)
    shown = f"--set {key}={value}" if text else f"option {key}={value!r}"
    bad = ValueError(f"{shown}: {key} takes {_wanted(key, default)}.")
    if text:
        word = str(value).strip()
        if kind == "bool":
            if word.lower() not in _BOOL_WORDS:
                raise bad
            value = _BOOL_WORDS[word.lower()]
        elif kind == "int":
            try:
                value = int(word) if word.lstrip("+-").isdigit() else None
            except ValueError:
                value = None
            if value is None:
                raise bad
        elif kind == "float":
            try:
                value = float(word)
            except ValueError:
                raise bad from None
        elif word.lower() in _NONE_WORDS:
            value = None
        elif kind == "str":
            value = word[1:-1] if len(word) >= 2 and word[0] == word[-1] == '"' else word
        else:  # default None: a number, a JSON value, or a word
            try:
                value = json.loads(word)
            except json.JSONDecodeError:
                value = word
    ok = {"bool": isinstance(value, bool),
          "int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "str": value is None or isinstance(value, str),
          "none": value is None or isinstance(value, (bool, int, float, str))}[kind]
    if not ok:
        if isinstance(value, str) and kind != "str":
            raise ValueError(f"{shown}: {key} takes {_wanted(key, default)}, not the text {value!r}.")
        raise bad
    if kind == "int" and value < (1 if default >= 1 else 0):
        raise bad
    if kind == "float" or (kind == "none" and isinstance(value, float)):
        if not math.isfinite(value) or value < 0 or (value == 0 and "sigma" in key):
            raise bad
        value = float(value)
    return value


def check_overrides(model: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` with every value checked against the type of the model's default for it (a bool
    for a bool, a whole number for an int, ...); ValueError naming the option and what it takes."""
    if not isinstance(overrides, dict):
        raise ValueError(f"overrides must be a dict of model options, got {type(overrides).__name__}.")  # noqa: TRY004
    return {k: _option_value(model, k, v, text=False) for k, v in overrides.items()}


def parse_overrides(items: list[str], model: str | None = None) -> dict[str, Any]:
    """``["hidden=96", "skip=false"]`` -> ``{"hidden": 96, "skip": False}``.

    With ``model``, each value is parsed as the type of that model's default for the option
    (:func:`model_defaults`): a bool from true/false, 1/0 or yes/no; an int from a whole number; a float
    from a finite number; a word as text; none/null as None (options whose default is None or a word).
    Anything else is a ValueError that names the option and the spellings it takes. Without ``model``
    the values are read as JSON (else kept as text), as before.
    """
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}.")
        key, value = (part.strip() for part in item.split("=", 1))
        if model is not None:
            out[key] = _option_value(model, key, value, text=True)
            continue
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
