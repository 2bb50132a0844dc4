"""Calibration of predictive distributions: interval coverage, reliability diagrams, calibration error.

Every model's predictive distribution of a pixel given the context is either

* **a Gaussian** N(mu, sigma^2) (the deterministic models: hetero-cnp, the CNP), or
* **a mixture over z**: p(y | C) = E_{z ~ q(z | C)} N(y | mu_z, sigma_z^2), estimated with K draws
  (every latent model: IFNP, IFANP and variants, the NP/ANP, the VAE's conditional), or
* **a per-pixel mixture** sum_k w_k N(mu_k, sigma_k^2) (hetero-mix; its ``pixel_cdf`` gives the PIT).

Both are summarised by the probability integral transform of each target pixel, ``u = F(y)`` with F
the predictive CDF (for the mixture, the mean of the K Gaussian CDFs). The central interval of
probability p, [F^{-1}((1-p)/2), F^{-1}((1+p)/2)], contains y exactly when |u - 1/2| <= p/2, so the
coverage of every level comes from u without inverting the mixture's CDF. A calibrated model has u
uniform: coverage(p) = p at every p (the reliability diagram's diagonal). The expected calibration
error (:func:`calibration_error`) is the mean of |coverage(p) - p| over the levels p = 0.05, 0.10, ...,
0.95 (in percentage points when multiplied by 100).

:func:`moment_matched_pit` gives the PIT of the Gaussian with the mixture's mean and variance, to show
how far that shortcut is from the mixture itself.

**Pixels are 8-bit and bounded.** MNIST's background is exactly 0: a model sure of it puts 0 at the
centre of a Gaussian of std >= 0.01 (NPF's floor), so u = 1/2 and every central interval holds the pixel,
at every level; the coverage of the continuous PIT then measures the floor, not the calibration. The
observed value is really ``round(255 * clip(Y, 0, 1)) / 255`` for a Y from the predictive, and for such
a discrete outcome the calibrated quantity is the *randomised* PIT (Czado, Gneiting and Held, 2009,
Biometrics 65: 1254-1261): u uniform between F(y - h) and F(y + h), h = 1/510, with F(y - h) = 0 at
y = 0 and F(y + h) = 1 at y = 1 (the mass outside [0, 1] goes to the end values). It is exactly uniform
when the model is calibrated for the 8-bit pixel (:func:`censored_pit`; ``model_pit``'s ``"discrete"``).
:func:`fit_temperature` fits one scale of every std (floor kept) on *training*
images to bring those coverages to nominal.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

#: The central-interval levels the issue asks for: 50 %, 68.3 % (1 sigma), 90 %, 95.4 % (2 sigma).
LEVELS: tuple[float, ...] = (0.5, 0.683, 0.9, 0.954)
#: The levels of the reliability diagram and of the calibration error.
DIAGRAM_LEVELS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))


def _normal_cdf(x: Tensor) -> Tensor:
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def gaussian_pit(y: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """PIT u = Phi((y - mean) / std) of a Gaussian predictive (any shape, broadcast)."""
    return _normal_cdf((y - mean) / std)


def mixture_pit(y: Tensor, means: Tensor, stds: Tensor) -> Tensor:
    """PIT of the equal-weight mixture of K Gaussians: ``means``/``stds`` (K, ...) , ``y`` (...): mean_k Phi_k(y)."""
    return _normal_cdf((y.unsqueeze(0) - means) / stds).mean(0)


def moment_matched_pit(y: Tensor, means: Tensor, stds: Tensor) -> Tensor:
    """PIT of the Gaussian with the mixture's mean and variance (the shortcut we compare against)."""
    m = means.mean(0)
    var = (stds**2 + means**2).mean(0) - m**2
    return gaussian_pit(y, m, var.clamp_min(1e-12).sqrt())


#: Half the step between two 8-bit pixel values in [0, 1].
HALF_BIN = 0.5 / 255


def mixture_cdf(v: Tensor, logw: Tensor, mu: Tensor, sd: Tensor) -> Tensor:
    """CDF at ``v`` (B, ...) of the per-element mixture with log-weights/means/stds (B, K, ...)."""
    return (logw.exp() * _normal_cdf((v.unsqueeze(1) - mu) / sd)).sum(1)


def censored_pit(y: Tensor, logw: Tensor, mu: Tensor, sd: Tensor, generator: torch.Generator | None = None,
                 half_bin: float = HALF_BIN) -> Tensor:
    """Randomised PIT of 8-bit values ``y`` in [0, 1] (B, ...) under the mixture (B, K, ...), the value being
    the rounded, clipped draw: u ~ U(F(y - h), F(y + h)), F(y - h) = 0 at y = 0 and F(y + h) = 1 at y = 1."""
    lo = torch.where(y > half_bin, mixture_cdf(y - half_bin, logw, mu, sd), torch.zeros_like(y))
    hi = torch.where(y < 1 - half_bin, mixture_cdf(y + half_bin, logw, mu, sd), torch.ones_like(y))
    v = torch.rand(y.shape, generator=generator, dtype=y.dtype).to(y.device)
    return lo + v * (hi - lo)


def predictive_mixture(model: Any, x: Tensor, m: Tensor, samples: int = 16) -> tuple[Tensor, Tensor, Tensor]:
    """Every pixel's predictive as a mixture: log-weights, means, stds (B, K, C, H, W). A model's own
    ``mixture`` (hetero-mix; K = 1 for hetero-cnp), the K = ``samples`` equal-weight draws z ~ q(z | context)
    of a latent model, or the one Gaussian of ``predict``."""
    if hasattr(model, "mixture") and not model.latent:
        return model.mixture(x, m)
    means, stds = model.predict(x, m, samples=samples if model.latent else 0)
    means, stds = means.transpose(0, 1), stds.transpose(0, 1)
    return torch.full_like(means, -math.log(means.shape[1])), means, stds


def tempered(logw: Tensor, mu: Tensor, sd: Tensor, tau: float, floor: float = 0.01) -> tuple[Tensor, Tensor, Tensor]:
    """The mixture with every std scaled by ``tau`` and floored at ``floor`` (NPF's 0.01)."""
    return logw, mu, (sd * tau).clamp_min(floor)


def coverage(pit: Tensor, levels: tuple[float, ...] = LEVELS) -> dict[float, float]:
    """Fraction of values whose central interval of probability p holds them (|u - 1/2| <= p/2), per level p."""
    u = pit.flatten()
    if u.numel() == 0:
        raise ValueError("no target pixels to compute coverage on.")
    dev = (u - 0.5).abs()
    return {p: float((dev <= p / 2).double().mean()) for p in levels}


def calibration_error(pit: Tensor, levels: tuple[float, ...] = DIAGRAM_LEVELS) -> float:
    """Expected calibration error: the mean over ``levels`` of |coverage(p) - p| (a fraction, not %)."""
    cov = coverage(pit, levels)
    return sum(abs(c - p) for p, c in cov.items()) / len(cov)


def reliability(pit: Tensor, levels: tuple[float, ...] = DIAGRAM_LEVELS) -> dict[str, list[float]]:
    """The reliability diagram's data: nominal levels and observed coverage."""
    cov = coverage(pit, levels)
    return {"nominal": list(cov), "observed": list(cov.values())}


@torch.no_grad()
def model_pit(model: Any, images: Tensor, masks: Tensor, samples: int = 16, batch_size: int = 50,
              targets: str = "missing", seed: int = 0, tau: float = 1.0) -> dict[str, Tensor]:
    """PIT values of the target pixels of ``images`` (uint8 or float in [0, 1]) given ``masks``.

    The predictive distribution is the model family's own (:func:`predictive_mixture`): a Gaussian for
    deterministic models, hetero-mix's per-pixel mixture, the mixture over ``samples`` draws
    z ~ q(z | context) for latent ones (then ``"moment_matched"`` too). ``"pit"``: the continuous PIT;
    ``"discrete"``: the randomised PIT of the 8-bit value (:func:`censored_pit`; only for uint8 images).
    ``tau`` scales every std (:func:`tempered`). ``targets="missing"``: the pixels outside the context
    (what a completion predicts); ``"all"``: every pixel.
    """
    if targets not in ("missing", "all"):
        raise ValueError(f"targets must be 'missing' or 'all'; got {targets!r}.")
    model.eval()
    dev = model.device
    discrete = images.dtype == torch.uint8
    out: dict[str, list[Tensor]] = {"pit": [], "moment_matched": [], "discrete": []}
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    try:
        for i in range(0, len(images), batch_size):
            x = images[i : i + batch_size].to(dev)
            x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
            m = masks[i : i + batch_size].to(dev).float()
            keep = (m == 0).expand_as(x) if targets == "missing" else torch.ones_like(x, dtype=torch.bool)
            if model.latent or hasattr(model, "mixture") or tau != 1.0:
                logw, mu, sd = tempered(*predictive_mixture(model, x, m, samples), tau)
                out["pit"].append(mixture_cdf(x, logw, mu, sd)[keep].cpu())
                if model.latent:
                    out["moment_matched"].append(moment_matched_pit(x, mu.transpose(0, 1), sd.transpose(0, 1))[keep].cpu())
                if discrete:
                    out["discrete"].append(censored_pit(x, logw, mu, sd, generator=g)[keep].cpu())
            else:
                means, stds = model.predict(x, m, samples=0)
                out["pit"].append(gaussian_pit(x, means[0], stds[0])[keep].cpu())
                if discrete:
                    out["discrete"].append(censored_pit(x, torch.zeros_like(means[0]).unsqueeze(1), means[0].unsqueeze(1),
                                                        stds[0].unsqueeze(1), generator=g)[keep].cpu())
    finally:
        torch.set_rng_state(state)
    return {k: torch.cat(v) for k, v in out.items() if v}


@torch.no_grad()
def fit_temperature(model: Any, images: Tensor, masks: Tensor, taus: tuple[float, ...] | None = None,
                    samples: int = 16, levels: tuple[float, ...] = LEVELS) -> dict[str, Any]:
    """The std scale tau (grid ``taus``) whose discrete-PIT coverage of the missing pixels of ``images``
    (uint8: use *training* images, not the test split) is closest to nominal: the smallest largest
    |coverage(p) - p| over ``levels``. Returns tau and each candidate's gaps."""
    if images.dtype != torch.uint8:
        raise ValueError("fit_temperature takes uint8 images (the discrete PIT needs the 8-bit values).")
    taus = taus or tuple(round(0.3 + 0.05 * i, 2) for i in range(25))  # 0.30 .. 1.50
    gaps = {}
    for tau in taus:
        cov = coverage(model_pit(model, images, masks, samples=samples, tau=tau)["discrete"], levels)
        gaps[tau] = max(abs(c - p) for p, c in cov.items())
    best = min(gaps, key=gaps.get)
    return {"tau": best, "max_gap": gaps[best], "gaps": gaps, "images": len(images)}


def calibration_report(pits: dict[str, Tensor]) -> dict[str, Any]:
    """Coverage at :data:`LEVELS`, the reliability data and the calibration error of each PIT set."""
    rep: dict[str, Any] = {}
    for k, u in pits.items():
        rep[k] = {"coverage": coverage(u), "ece": calibration_error(u), "reliability": reliability(u),
                  "pixels": int(u.numel())}
    return rep


def family(model: Any) -> str:
    """What the predictive distribution of ``model`` is, in words."""
    if model.latent:
        return "mixture over z ~ q(z | context) of Gaussians"
    if getattr(model, "cfg", {}).get("components", 1) > 1:
        return f"mixture of {model.cfg['components']} Gaussians per pixel"
    return "Gaussian (per-pixel std)" if getattr(model, "cfg", {}).get("std_floor") else "Gaussian"
