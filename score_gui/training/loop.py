"""Training loop (resumable generator) and grouped cross-validation.

:func:`train_model` runs seeded, checkpointed optimisation of any model on samples drawn by
a callable, yielding :class:`~score_gui.progress.Progress` (loss, ETA) per iteration. Every
``checkpoint_every`` iterations it writes the model, optimiser, iteration, loss history and
both random states (numpy sampler, torch DropConnect) atomically, so a killed run started
again with ``resume=True`` continues where it stopped and draws the same samples it would
have drawn.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from score_gui.atomic import atomic_path
from score_gui.progress import Progress

OPTIMIZERS = ("adam", "adadelta")


@dataclass(frozen=True)
class TrainConfig:
    """How one model is trained.

    Attributes
    ----------
    iterations : int
        Optimiser steps in all (a resumed run counts the steps already done).
    optimizer : str
        ``"adam"`` (default; learns faster here, see ``benchmarks/bench_train.py``) or
        ``"adadelta"`` (the reference implementation's choice, lr 1, rho 0.9).
    learning_rate : float or None
        None: 2e-3 for Adam, 1.0 for Adadelta.
    batch_size : int
        Slices per step (1 is fastest per slice on CPU).
    checkpoint_every : int
        Iterations between resumable checkpoints (0: only at the end).
    seed : int
        Seeds the sampler (numpy) and the weights / DropConnect (torch).
    device : str
        ``"cpu"`` or ``"cuda"``.
    """

    iterations: int = 2000
    optimizer: str = "adam"
    learning_rate: float | None = None
    batch_size: int = 1
    checkpoint_every: int = 200
    seed: int = 0
    device: str = "cpu"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    """What :func:`train_model` returns."""

    model: torch.nn.Module
    iterations: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from: int = 0

    def loss_curve(self, windows: int = 10) -> list[float]:
        """Mean loss in ``windows`` equal consecutive chunks of the run (for summaries)."""
        if not self.losses:
            return []
        chunks = np.array_split(np.asarray(self.losses, float), min(windows, len(self.losses)))
        return [round(float(c.mean()), 5) for c in chunks]


def make_optimizer(model: torch.nn.Module, name: str = "adam", learning_rate: float | None = None):
    """Adam (lr 2e-3) or Adadelta (lr 1, rho 0.9, as the reference MDGRU)."""
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=learning_rate or 2e-3)
    if name == "adadelta":
        return torch.optim.Adadelta(model.parameters(), lr=learning_rate or 1.0, rho=0.9, eps=1e-6)
    raise ValueError(f"unknown optimizer {name!r}; one of {OPTIMIZERS}")


def resolve_device(device: str) -> torch.device:
    """``cpu`` or ``cuda``; asking for cuda without a GPU is a clear error."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but no CUDA GPU is available here")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; cpu or cuda")
    return torch.device(device)


def to_device(value: Any, device: torch.device) -> Any:
    """Move tensors (possibly inside tuples, lists or dicts) to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    return value


def save_train_state(path: Path, model, optimizer, iteration: int, rng: np.random.Generator,
                     losses: list[float], extra: dict | None = None) -> None:
    """Write a resumable checkpoint atomically (model, optimiser, RNG states, losses)."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "iteration": int(iteration),
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "losses": list(losses),
        "extra": extra or {},
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_train_state(path: Path, model, optimizer, rng: np.random.Generator) -> tuple[int, list[float]]:
    """Restore a checkpoint written by :func:`save_train_state`; returns (iteration, losses)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["iteration"]), list(state["losses"])


def train_model(model: torch.nn.Module,
                sample: Callable[[np.random.Generator], tuple[torch.Tensor, Any]],
                loss_fn: Callable[[torch.Tensor, Any], torch.Tensor],
                config: TrainConfig = TrainConfig(),
                state_path: str | Path | None = None,
                resume: bool = True,
                label: str = "") -> Generator[Progress, None, TrainResult]:
    """Train ``model`` for ``config.iterations`` steps; yield Progress, return TrainResult.

    Parameters
    ----------
    model : torch.nn.Module
        Initialised by the caller (seed torch first for reproducible weights).
    sample : callable
        ``sample(rng) -> (inputs [B, C, H, W], targets)``, drawing one batch with the numpy
        generator it is given (the loop owns the generator, so resuming restores it).
    loss_fn : callable
        ``loss_fn(logits, targets) -> scalar tensor``.
    config : TrainConfig
    state_path : path or None
        Resumable checkpoint file; None: no checkpoints.
    resume : bool
        Continue from ``state_path`` when it exists.
    label : str
        Shown in the progress message (e.g. ``"fold 1/3"``).

    Examples
    --------
    >>> import torch, numpy as np
    >>> from score_gui.progress import drain
    >>> net = torch.nn.Conv2d(1, 2, 1)
    >>> def sample(rng):
    ...     x = torch.from_numpy(rng.normal(size=(1, 1, 4, 4)).astype("float32"))
    ...     return x, (x[:, 0] > 0).long()
    >>> result = drain(train_model(net, sample, torch.nn.functional.cross_entropy,
    ...                            TrainConfig(iterations=200, learning_rate=0.05)))
    >>> result.iterations, result.loss_curve(2)[1] < result.loss_curve(2)[0]
    (200, True)
    """
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model.to(device)
    optimizer = make_optimizer(model, config.optimizer, config.learning_rate)
    state_path = Path(state_path) if state_path is not None else None
    iteration, losses = 0, []
    if resume and state_path is not None and state_path.exists():
        iteration, losses = load_train_state(state_path, model, optimizer, rng)
    resumed_from = iteration
    started = time.monotonic()
    model.train()
    smooth = None
    while iteration < config.iterations:
        inputs, targets = sample(rng)
        logits = model(to_device(inputs, device))
        loss = loss_fn(logits, to_device(targets, device))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training diverged at iteration {iteration} (loss {float(loss)})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        iteration += 1
        value = float(loss.detach())
        losses.append(value)
        smooth = value if smooth is None else 0.95 * smooth + 0.05 * value
        if state_path is not None and config.checkpoint_every and iteration % config.checkpoint_every == 0:
            save_train_state(state_path, model, optimizer, iteration, rng, losses)
        yield _progress(iteration, config.iterations, resumed_from, started, label, smooth)
    if state_path is not None and iteration > resumed_from:
        save_train_state(state_path, model, optimizer, iteration, rng, losses)
    model.eval()
    return TrainResult(model=model, iterations=iteration, losses=losses,
                       seconds=time.monotonic() - started, resumed_from=resumed_from)


def _progress(done: int, total: int, resumed_from: int, started: float, label: str,
              loss: float) -> Progress:
    """Progress whose ETA counts only the iterations of this run (a resumed run starts late)."""
    elapsed = time.monotonic() - started
    this_run = max(done - resumed_from, 1)
    virtual_start = time.monotonic() - elapsed * done / this_run
    message = f"{label} iteration {done}/{total}".strip()
    return Progress(done, total, message, virtual_start, {"loss": loss if math.isfinite(loss) else float("nan")})
