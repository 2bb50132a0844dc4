"""``python -m ifanp train1d``: train a CNP, NP or ANP on 1-D GP samples, evaluate it, register it.

One run::

    python -m ifanp train1d --model anp --kernel rbf --steps 8000 --batch-size 16 --lr 5e-4 \\
        --seed 0 --threads 1 --register np1d-anp-rbf

draws a fresh batch of functions f ~ GP(0, k) every step (:class:`ifanp.data.functions.GPFunctionSampler`
with the kernel's default hyperparameters), trains with :func:`ifanp.train1d.train_1d`, and reports
the held-out predictive log-likelihood per target point (:func:`ifanp.train1d.evaluate_1d`) on a fixed
evaluation set (``sampler.fixed_eval_set(--eval-tasks, seed=EVAL_SEED)``, the same on every machine),
beside that of the exact GP posterior with the true kernel on the same tasks (the best any model can do
on average). With ``--register NAME`` the model is saved into the package
(:func:`ifanp.pretrained.register_weights`) with the full command line that reproduces it, the wall
time, the number of steps, the evaluation log-likelihood and the kernel.

The helpers :func:`make_sampler`, :func:`eval_tasks` and :func:`gp_log_likelihood_1d` are what the
neural-process chapter uses too, so that the book's table and the registry measure the same thing.
"""
from __future__ import annotations

import argparse
import math
import re
import shlex
import time
from typing import Any

import torch

from .cli import PROG, UsageError

__all__ = [
    "EVAL_BATCH",
    "EVAL_SEED",
    "KERNELS",
    "MODELS",
    "add_train1d_arguments",
    "command_line",
    "eval_tasks",
    "gp_log_likelihood_1d",
    "make_sampler",
    "run_train1d",
    "train_and_evaluate",
]

MODELS = ("cnp", "np", "anp")
KERNELS = ("rbf", "matern52", "periodic")
#: Seed of the fixed evaluation tasks (its random stream is separate from the training batches').
EVAL_SEED = 2023
#: Tasks per evaluation batch (every task of a batch shares Nc and Nt).
EVAL_BATCH = 16
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def make_sampler(kernel: str):
    """The training/evaluation task distribution: ``GPFunctionSampler(kernel)`` with its defaults
    (x ~ U(-2, 2), 50-100 targets of which 3-50 are context, noise variance 1e-4)."""
    from .data.functions import GPFunctionSampler

    return GPFunctionSampler(kernel)


def eval_tasks(sampler, num_tasks: int, seed: int = EVAL_SEED, batch_size: int = EVAL_BATCH) -> list:
    """The fixed evaluation tasks: ``sampler.fixed_eval_set(num_tasks, seed, batch_size)``."""
    return sampler.fixed_eval_set(num_tasks, seed=seed, batch_size=batch_size)


@torch.no_grad()
def gp_log_likelihood_1d(sampler, tasks, per_task: bool = False):
    """The exact GP's predictive log-likelihood on ``tasks``, with the sampler's true kernel and noise.

    For each task, log p(y_T | x_T, C) = log N(y_T | m_T, Sigma_T + sigma_n^2 I), where m_T and Sigma_T are
    the GP posterior mean and covariance of f at the targets given the context (prior when the context
    is empty). The targets include the context points; like the neural processes, the GP treats each
    target as a new noisy observation. Returns the sum over tasks divided by the number of target
    points (as :func:`ifanp.train1d.evaluate_1d`), or with ``per_task`` a float64 tensor of the
    per-task totals.
    """
    from .gp import GPRegression

    gp = GPRegression(sampler.kernel, noise=max(sampler.noise, 1e-12))
    totals, count = [], 0
    for batch in tasks:
        xc, yc, xt, yt = (t.to(torch.float64) for t in batch)
        if xc.shape[1] > 0:
            mean, cov = gp.posterior(xc, yc[..., 0], xt, noise=sampler.noise, full_cov=True)
        else:
            mean, cov = xt.new_zeros(xt.shape[:2]), gp.kernel(xt).to(torch.float64)
        eye = torch.eye(xt.shape[1], dtype=torch.float64)
        dist = torch.distributions.MultivariateNormal(mean, cov + sampler.noise * eye)
        totals.append(dist.log_prob(yt[..., 0]))
        count += xt.shape[0] * xt.shape[1]
    per = torch.cat(totals)
    return per if per_task else float(per.sum()) / count


def command_line(args: argparse.Namespace) -> str:
    """The full command line that reproduces a run, every option written out."""
    parts = [*PROG.split(), "train1d", "--model", args.model, "--kernel", args.kernel,
             "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--lr", repr(args.lr),
             "--seed", str(args.seed), "--eval-tasks", str(args.eval_tasks),
             "--eval-samples", str(args.eval_samples)]
    if args.threads is not None:
        parts += ["--threads", str(args.threads)]
    if args.register is not None:
        parts += ["--register", args.register]
    return shlex.join(parts)


def add_train1d_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m ifanp train1d``."""
    parser.add_argument("--model", choices=MODELS, default="cnp", help="which neural process (default cnp)")
    parser.add_argument("--kernel", choices=KERNELS, default="rbf",
                        help="kernel of the GP that draws the training functions (default rbf)")
    parser.add_argument("--steps", type=int, default=5000, help="Adam steps, one fresh batch each (default 5000)")
    parser.add_argument("--batch-size", type=int, default=16, help="functions per batch (default 16)")
    parser.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (default 5e-4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the batches (default 0)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 leaves the other cores free)")
    parser.add_argument("--eval-tasks", type=int, default=512,
                        help=f"held-out functions for the final log-likelihood (default 512, seed {EVAL_SEED})")
    parser.add_argument("--eval-samples", type=int, default=32,
                        help="z samples of the importance-sampled log-likelihood of NP/ANP (default 32)")
    parser.add_argument("--register", metavar="NAME", default=None,
                        help="save the trained model into the package as NAME (e.g. np1d-anp-rbf)")
    parser.add_argument("--force", action="store_true", help="with --register: replace weights of that name")
    parser.add_argument("--quiet", action="store_true", help="only the final summary")


def _check(args: argparse.Namespace) -> None:
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1; got {args.steps}.")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1; got {args.batch_size}.")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be a positive number; got {args.lr}.")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0; got {args.seed}.")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1; got {args.threads}.")
    if args.eval_tasks < 1:
        raise UsageError(f"--eval-tasks must be at least 1; got {args.eval_tasks}.")
    if args.eval_samples < 1:
        raise UsageError(f"--eval-samples must be at least 1; got {args.eval_samples}.")
    if args.register is not None and not _NAME.match(args.register):
        raise UsageError(f"--register {args.register!r}: use lower-case letters, digits, '.', '_' and '-' "
                         "(e.g. np1d-anp-rbf).")
    if args.register is not None and not getattr(args, "force", False):
        from .pretrained import registry

        if args.register in registry():
            raise UsageError(f"--register {args.register!r} is already in the registry; pass --force to replace "
                             "those weights, or choose another name.")


def train_and_evaluate(args: argparse.Namespace, log=print) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train and evaluate as ``python -m ifanp train1d`` does; return the model and the summary."""
    _check(args)
    previous_threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return _train_and_evaluate(args, log)
    finally:  # a caller in the same process (a test, a notebook) keeps its own setting
        torch.set_num_threads(previous_threads)


def _train_and_evaluate(args: argparse.Namespace, log) -> tuple[torch.nn.Module, dict[str, Any]]:
    from .models.setnp import build_1d
    from .train1d import evaluate_1d, train_1d

    sampler = make_sampler(args.kernel)
    torch.manual_seed(args.seed)
    model = build_1d(args.model)
    params = sum(p.numel() for p in model.parameters())
    log(f"train1d: {args.model.upper()} ({params:,} parameters) on GP({args.kernel}) functions, "
        f"{args.steps} steps of {args.batch_size}, lr {args.lr:g}, seed {args.seed}, "
        f"{torch.get_num_threads()} thread(s)")
    every = max(1, args.steps // 10)
    window: list[dict[str, float]] = []

    def report(step: int, _model, record: dict[str, float]) -> None:
        window.append(record)
        if step % every == 0 or step == args.steps:
            mean = {k: sum(r[k] for r in window) / len(window) for k in ("loss", "nll", "kl", "mse")}
            log(f"  step {step:>6}/{args.steps}  loss {mean['loss']:8.2f}  nll {mean['nll']:8.2f}  "
                f"kl {mean['kl']:6.2f}  mse {mean['mse']:.4f}  ({step / record['time']:.0f} steps/s)")
            window.clear()

    history = train_1d(model, sampler, args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                       progress=False, callback=None if args.quiet else report)
    wall = history[-1]["time"]
    tasks = eval_tasks(sampler, args.eval_tasks)
    torch.manual_seed(args.seed)  # the z draws of the importance-sampled estimate
    start = time.perf_counter()
    loglik = evaluate_1d(model, tasks, samples=args.eval_samples)
    gp_loglik = gp_log_likelihood_1d(sampler, tasks)
    summary = {
        "model": args.model, "kernel": args.kernel, "steps": args.steps, "batch_size": args.batch_size,
        "lr": args.lr, "seed": args.seed, "threads": torch.get_num_threads(),
        "wall_time_s": round(wall, 1), "eval_time_s": round(time.perf_counter() - start, 1),
        "eval_tasks": args.eval_tasks, "eval_seed": EVAL_SEED, "eval_samples": args.eval_samples,
        "eval_loglik": round(loglik, 4), "gp_eval_loglik": round(gp_loglik, 4),
        "final_loss": round(sum(r["loss"] for r in history[-50:]) / len(history[-50:]), 3),
        "parameters": params,
    }
    return model, summary


def run_train1d(args: argparse.Namespace) -> int:
    """``python -m ifanp train1d``: train, print progress and a summary, optionally register the weights."""
    from . import pretrained

    log = (lambda *a, **k: None) if args.quiet else print
    model, s = train_and_evaluate(args, log=log)
    print(f"train1d {s['model']} on {s['kernel']}: {s['steps']} steps in {s['wall_time_s']:.1f} s "
          f"({s['steps'] / max(s['wall_time_s'], 1e-9):.0f} steps/s, {s['threads']} thread(s)); "
          f"held-out log-likelihood per target point {s['eval_loglik']:.3f} "
          f"(exact GP with the true kernel: {s['gp_eval_loglik']:.3f}; {s['eval_tasks']} tasks, seed {EVAL_SEED})")
    if args.register is not None:
        entry = pretrained.register_weights(
            args.register, model, half=False, command=command_line(args), wall_time_s=s["wall_time_s"],
            steps=s["steps"], eval_loglik=s["eval_loglik"], kernel=s["kernel"],
            gp_eval_loglik=s["gp_eval_loglik"], eval_tasks=s["eval_tasks"], eval_seed=s["eval_seed"],
            eval_samples=s["eval_samples"], batch_size=s["batch_size"], lr=s["lr"], seed=s["seed"],
            threads=s["threads"], torch=torch.__version__,
        )
        print(f"registered {args.register}: {entry['file']} ({entry['bytes'] / 1e6:.2f} MB, "
              f"sha256 {entry['sha256'][:12]}...)")
    return 0
