"""Training objectives: the Eq. 6 loss of the paper, the CNP likelihood, and an importance-sampled
predictive log-likelihood that makes latent and deterministic models comparable.

Conventions: ``targets`` is a 0/1 weight tensor broadcastable to the pixel (or point) values; sums
run over every non-batch dimension and the result is one number per task (image / function), so the
callers can take the batch mean.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Normal, kl_divergence


def gaussian_log_likelihood(y: Tensor, mean: Tensor, std: Tensor, targets: Tensor | None = None) -> Tensor:
    """sum over targets of log N(y | mean, std^2), one value per task (first dim of ``y``).

    ``mean``/``std`` may carry extra leading sample dimensions; the sum is over the last
    ``y.dim() - 1`` dimensions, so the result has shape ``mean.shape[:-(y.dim()-1)]``.
    """
    logp = Normal(mean, std).log_prob(y)
    if targets is not None:
        logp = logp * targets
    return logp.flatten(start_dim=logp.dim() - (y.dim() - 1)).sum(-1)


def kl_normal(q: Normal, p: Normal) -> Tensor:
    """Closed-form KL(q || p) between diagonal Gaussians, summed over the last dimension."""
    return kl_divergence(q, p).sum(-1)


def np_elbo_loss(
    y: Tensor, mean: Tensor, std: Tensor, q_full: Normal, q_context: Normal, targets: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Eq. 6 of the paper, per task: KL(q(z|full) || q(z|context)) - (1/K) sum_k sum_targets log p(y|z_k).

    ``mean``/``std`` have shape (K, B, ...) for K samples z_k ~ q(z | full). Returns
    ``(loss, nll, kl)``, each of shape (B,).
    """
    log_lik = gaussian_log_likelihood(y, mean, std, targets)  # (K, B)
    nll = -log_lik.mean(0)
    kl = kl_normal(q_full, q_context)
    return nll + kl, nll, kl


def importance_log_likelihood(
    y: Tensor, mean: Tensor, std: Tensor, z: Tensor, q_full: Normal, q_context: Normal, targets: Tensor | None = None
) -> Tensor:
    """Importance-sampled log p(y_T | context), per task.

    The NP's conditional prior is q(z | context); the proposal is q(z | full data), from which the
    K samples ``z`` (K, B, d) were drawn and decoded into ``mean``/``std`` (K, B, ...):

        log p(y_T | C) ~= log (1/K) sum_k p(y_T | z_k) q(z_k | C) / q(z_k | full)

    The estimate is a stochastic lower bound that tightens as K grows (and is >= the ELBO on average).
    """
    log_lik = gaussian_log_likelihood(y, mean, std, targets)  # (K, B)
    log_w = log_lik + q_context.log_prob(z).sum(-1) - q_full.log_prob(z).sum(-1)
    return torch.logsumexp(log_w, dim=0) - math.log(z.shape[0])
