"""What a neural process's forward pass returns (:class:`NPOutput`), and everything computed from it:
the Eq. 6 training loss, the predictive log-likelihood (importance-sampled for latent models), the KL and
the reparameterised latent draw. Written once, for the grid models, the pixel-set models, the VAE and the
1-D set models alike.

Conventions: ``y`` holds the true values of one task per row, (B, ...) (an image (B, C, H, W) or a
target set (B, Nt, y_dim)); an output's ``mean``/``std`` carry one more leading dimension, the S latent
draws. ``targets`` is a 0/1 weight tensor broadcastable to ``y``; sums run over every non-batch
dimension and the result is one number per task, so the callers can take the batch mean.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Normal, kl_divergence


@dataclass
class NPOutput:
    """What one forward pass gives (the Neural Process Family's ``p_y``, z samples, ``q_zC``, ``q_zCT``).

    ``mean``/``std``: (S, B, ...) the decoder's Gaussian p(y | z_s, context) at every target (pixel:
    (S, B, C, H, W); point of a set: (S, B, Nt, y_dim)), one row per latent draw ``z`` (S, B, d_z)
    (``z`` is None for a model without a latent; S = 1 unless samples were asked for).
    ``q_context``: q(z | context). ``q_full``: q(z | full image) (set models: context + targets), present
    when the forward pass was asked for it (training, KL, likelihood). ``prior``: a fixed prior p(z) that
    the training KL pulls ``q_context`` towards instead (the VAE's N(0, I)); None for neural processes.
    """

    mean: Tensor
    std: Tensor
    z: Tensor | None = None
    q_context: Normal | None = None
    q_full: Normal | None = None
    prior: Normal | None = None

    @property
    def kl(self) -> Tensor:
        """(B,) KL(q_full || q_context) summed over the latent dimensions (Eq. 6's first term); zeros
        when either is absent (deterministic models, the VAE, a forward pass without ``full``)."""
        if self.q_full is None or self.q_context is None:
            return self.mean.new_zeros(self.mean.shape[1])
        return kl_normal(self.q_full, self.q_context)


def draw_latent(q: Normal, samples: int = 0, eps: Tensor | None = None) -> Tensor:
    """z (S, B, d_z) = q.mean + q.stddev * eps: the reparameterised draw every model uses.

    ``eps`` (S, B, d_z) given: that noise (deterministic). Otherwise ``samples=0`` gives the mean (S = 1)
    and ``samples=S`` draws eps ~ N(0, I) (the same random stream as ``q.rsample((S,))``).
    """
    if eps is None:
        if samples == 0:
            return q.mean.unsqueeze(0)
        eps = torch.randn((samples, *q.mean.shape), dtype=q.mean.dtype, device=q.mean.device)
    return q.mean + q.stddev * eps


def gaussian_log_likelihood(y: Tensor, mean: Tensor, std: Tensor, targets: Tensor | None = None) -> Tensor:
    """sum over targets of log N(y | mean, std^2), one value per task (first dim of ``y``).

    ``mean``/``std`` may carry extra leading sample dimensions; the sum is over the last
    ``y.dim() - 1`` dimensions, so the result has shape ``mean.shape[:-(y.dim()-1)]``.
    """
    logp = Normal(mean, std, validate_args=False).log_prob(y)
    if targets is not None:
        logp = logp * targets
    return logp.flatten(start_dim=logp.dim() - (y.dim() - 1)).sum(-1)


def kl_normal(q: Normal, p: Normal) -> Tensor:
    """Closed-form KL(q || p) between diagonal Gaussians, summed over the last dimension."""
    return kl_divergence(q, p).sum(-1)


def np_elbo_loss(out: NPOutput, y: Tensor, targets: Tensor | None = None,
                 kl_weight: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
    """Eq. 6 of the paper, per task: KL(q(z|full) || q(z|context)) - (1/K) sum_k sum_targets log p(y|z_k).

    ``out`` is a forward pass whose K rows were decoded from z_k ~ q(z | full) (``z_from="full"``).
    Without a latent the KL is 0 (the CNP's exact -log p); with a fixed ``out.prior`` and no q(z | full)
    (the VAE) it is KL(q(z | context) || prior), weighted by ``kl_weight`` (beta).
    Returns ``(loss, nll, kl)``, each of shape (B,).
    """
    nll = -gaussian_log_likelihood(y, out.mean, out.std, targets).mean(0)
    if out.q_full is not None:
        kl = out.kl
    elif out.prior is not None:
        kl = kl_normal(out.q_context, out.prior)
    else:
        kl = torch.zeros_like(nll)
    return nll + kl_weight * kl, nll, kl


def predictive_log_likelihood(out: NPOutput, y: Tensor, targets: Tensor | None = None) -> Tensor:
    """log p(y_T | context) per task, from a forward pass with S draws.

    * no latent: the exact log-likelihood of the (one) prediction;
    * q(z | full) present (neural processes, ``z_from="full"``): importance sampling with the proposal
      q(z | full) and the conditional prior q(z | context),

          log p(y_T | C) ~= log (1/S) sum_s p(y_T | z_s) q(z_s | C) / q(z_s | full),

      a stochastic lower bound that tightens as S grows (and is >= the ELBO on average);
    * otherwise (the VAE): the Monte-Carlo estimate log (1/S) sum_s p(y_T | z_s), z_s ~ q(z | context).
    """
    log_lik = gaussian_log_likelihood(y, out.mean, out.std, targets)  # (S, B)
    if out.z is None:
        return log_lik[0]
    if out.q_full is not None:
        log_lik = log_lik + out.q_context.log_prob(out.z).sum(-1) - out.q_full.log_prob(out.z).sum(-1)
    return torch.logsumexp(log_lik, dim=0) - math.log(out.z.shape[0])


def squared_error(mean: Tensor, y: Tensor, targets: Tensor | None = None) -> Tensor:
    """Mean squared error of the decoded means (S, B, ...) against ``y`` (B, ...), averaged over the
    draws and over all values (or the weighted mean over ``targets``): what training logs as ``mse``."""
    sq = (mean - y).pow(2).mean(0)
    if targets is None:
        return sq.mean()
    w = targets.to(sq.dtype).expand_as(sq)
    return (sq * w).sum() / w.sum().clamp(min=1)
