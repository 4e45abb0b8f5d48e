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
from score_gui.devices import pick_device
from score_gui.progress import Progress, forward

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
        None: 5e-3 for Adam, 1.0 for Adadelta.
    decay : bool
        Cosine decay of the learning rate to 10 % over the run (a pure function of the
        iteration, so resuming needs no scheduler state).
    batch_size : int
        Slices per step (1 is fastest per slice on CPU).
    checkpoint_every : int
        Iterations between resumable checkpoints (0: only at the end).
    seed : int
        Seeds the sampler (numpy) and the weights / DropConnect (torch).
    device : str
        ``"cpu"`` or ``"cuda"``.
    loader_workers : int
        Processes that draw the next batches while the model trains (0: drawn in the
        training process). Each iteration's samples come from a generator seeded by
        ``(seed, iteration)``, so the result does not depend on this number and a resumed
        run draws exactly what the killed one would have.
    validate_every : int
        Iterations between validations (0: none). The model with the lowest validation
        loss is the one returned.
    patience : int
        Stop early after this many validations without improvement (0: never).
    """

    iterations: int = 2000
    optimizer: str = "adam"
    learning_rate: float | None = None
    decay: bool = True
    batch_size: int = 1
    checkpoint_every: int = 200
    seed: int = 0
    device: str = "cpu"
    loader_workers: int = 0
    validate_every: int = 0
    patience: int = 0

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
    best_iteration: int | None = None
    validation: list = field(default_factory=list)

    def loss_curve(self, windows: int = 10) -> list[float]:
        """Mean loss in ``windows`` equal consecutive chunks of the run (for summaries)."""
        if not self.losses:
            return []
        chunks = np.array_split(np.asarray(self.losses, float), min(windows, len(self.losses)))
        return [round(float(c.mean()), 5) for c in chunks]


def make_optimizer(model: torch.nn.Module, name: str = "adam", learning_rate: float | None = None):
    """Adam (lr 5e-3) or Adadelta (lr 1, rho 0.9, as the reference MDGRU)."""
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=learning_rate or 5e-3)
    if name == "adadelta":
        return torch.optim.Adadelta(model.parameters(), lr=learning_rate or 1.0, rho=0.9, eps=1e-6)
    raise ValueError(f"unknown optimizer {name!r}; one of {OPTIMIZERS}")


def learning_rate_at(base: float, iteration: int, total: int, decay: bool = True) -> float:
    """Cosine decay from ``base`` to ``0.1 * base`` over ``total`` iterations.

    >>> learning_rate_at(1.0, 0, 100), learning_rate_at(1.0, 100, 100), learning_rate_at(1.0, 5, 100, False)
    (1.0, 0.1, 1.0)
    """
    if not decay or total <= 0:
        return base
    progress = min(max(iteration / total, 0.0), 1.0)
    return base * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


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


def load_train_state(path: Path, model, optimizer, rng: np.random.Generator) -> tuple[int, list[float], dict]:
    """Restore a checkpoint written by :func:`save_train_state`; returns (iteration, losses, extra)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["iteration"]), list(state["losses"]), dict(state.get("extra") or {})


def train_model(model: torch.nn.Module,
                sample: Callable[[np.random.Generator], tuple[torch.Tensor, Any]],
                loss_fn: Callable[[torch.Tensor, Any], torch.Tensor],
                config: TrainConfig = TrainConfig(),
                state_path: str | Path | None = None,
                resume: bool = True,
                label: str = "",
                validate: Callable[[torch.nn.Module], float] | None = None) -> Generator[Progress, None, TrainResult]:
    """Train ``model`` for ``config.iterations`` steps; yield Progress, return TrainResult.

    Parameters
    ----------
    model : torch.nn.Module
        Initialised by the caller (seed torch first for reproducible weights).
    sample : callable
        ``sample(rng) -> (inputs [B, C, H, W], targets)``, drawing one batch with the numpy
        generator it is given: a fresh generator per iteration seeded by
        ``(config.seed, iteration)``, so resuming draws the same batches.
    loss_fn : callable
        ``loss_fn(logits, targets) -> scalar tensor``.
    config : TrainConfig
    state_path : path or None
        Resumable checkpoint file; None: no checkpoints.
    resume : bool
        Continue from ``state_path`` when it exists.
    label : str
        Shown in the progress message (e.g. ``"fold 1/3"``).
    validate : callable, optional
        ``validate(model) -> loss`` on held-out data, every ``config.validate_every``
        iterations (model in eval mode, no gradients); the best model is returned and
        training stops after ``config.patience`` validations without improvement.

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
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)  # kept in the state for older state files
    model.to(device)
    optimizer = make_optimizer(model, config.optimizer, config.learning_rate)
    state_path = Path(state_path) if state_path is not None else None
    iteration, losses, tracker = 0, [], _BestTracker(config.patience)
    if resume and state_path is not None and state_path.exists():
        iteration, losses, extra = load_train_state(state_path, model, optimizer, rng)
        tracker.restore(extra.get("best"))
    resumed_from = iteration
    base_lrs = [group["initial_lr"] if "initial_lr" in group else group["lr"] for group in optimizer.param_groups]
    for group, base in zip(optimizer.param_groups, base_lrs):
        group["initial_lr"] = base
    started = time.monotonic()
    model.train()
    smooth = None
    batches = iteration_batches(sample, config.seed, iteration, config.iterations, config.loader_workers)
    try:
        for inputs, targets in batches:
            if tracker.stopped:
                break
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = learning_rate_at(base, iteration, config.iterations, config.decay)
            loss = loss_fn(model(to_device(inputs, device)), to_device(targets, device))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training diverged at iteration {iteration} (loss {float(loss)})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            iteration += 1
            value = float(loss.detach())
            losses.append(value)
            smooth = value if smooth is None else 0.95 * smooth + 0.05 * value
            extra = {"loss": smooth}
            if validate is not None and config.validate_every and iteration % config.validate_every == 0:
                extra["validation_loss"] = tracker.update(iteration, _validation_loss(model, validate), model)
            if state_path is not None and config.checkpoint_every and iteration % config.checkpoint_every == 0:
                save_train_state(state_path, model, optimizer, iteration, rng, losses, {"best": tracker.state()})
            yield _progress(iteration, config.iterations, resumed_from, started, label, extra)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    if state_path is not None and iteration > resumed_from:
        save_train_state(state_path, model, optimizer, iteration, rng, losses, {"best": tracker.state()})
    tracker.load_best(model)
    model.eval()
    return TrainResult(model=model, iterations=iteration, losses=losses,
                       seconds=time.monotonic() - started, resumed_from=resumed_from,
                       best_iteration=tracker.best_iteration, validation=list(tracker.history))


def _validation_loss(model: torch.nn.Module, validate) -> float:
    model.eval()
    with torch.no_grad():
        value = float(validate(model))
    model.train()
    return value


class _BestTracker:
    """The best validation loss so far, its weights, and when to stop (patience)."""

    def __init__(self, patience: int):
        self.patience = int(patience)
        self.best_loss = math.inf
        self.best_iteration = None
        self.best_weights = None
        self.since_best = 0
        self.history: list[tuple[int, float]] = []

    @property
    def stopped(self) -> bool:
        return bool(self.patience) and self.since_best >= self.patience

    def update(self, iteration: int, loss: float, model: torch.nn.Module) -> float:
        self.history.append((int(iteration), round(float(loss), 5)))
        if loss < self.best_loss:
            self.best_loss, self.best_iteration, self.since_best = float(loss), int(iteration), 0
            self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.since_best += 1
        return float(loss)

    def load_best(self, model: torch.nn.Module) -> None:
        if self.best_weights is not None:
            model.load_state_dict(self.best_weights)

    def state(self) -> dict:
        return {"loss": self.best_loss, "iteration": self.best_iteration, "weights": self.best_weights,
                "since": self.since_best, "history": self.history}

    def restore(self, state: dict | None) -> None:
        if state:
            self.best_loss, self.best_iteration = float(state["loss"]), state["iteration"]
            self.best_weights, self.since_best = state["weights"], int(state["since"])
            self.history = [tuple(h) for h in state["history"]]


class _IterationSamples(torch.utils.data.Dataset):
    """Batch ``i`` = ``sample(default_rng((seed, i)))``: the same batches whatever the workers."""

    def __init__(self, sample, seed: int, first: int, total: int):
        self.sample, self.seed, self.first, self.total = sample, int(seed), int(first), int(total)

    def __len__(self) -> int:
        return max(self.total - self.first, 0)

    def __getitem__(self, index: int):
        return self.sample(np.random.default_rng((self.seed, self.first + int(index))))


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)  # the training process owns the cores' math


def iteration_batches(sample, seed: int, first: int, total: int, workers: int = 0):
    """Batches for iterations ``first .. total - 1``, drawn in ``workers`` processes (0: here).

    >>> import numpy as np
    >>> draw = lambda rng: rng.integers(100)
    >>> list(iteration_batches(draw, 0, 0, 3)) == list(iteration_batches(draw, 0, 0, 3, workers=1))
    True
    """
    dataset = _IterationSamples(sample, seed, first, total)
    if workers <= 0:
        return (dataset[i] for i in range(len(dataset)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=int(workers),
                                         prefetch_factor=4, worker_init_fn=_one_thread,
                                         multiprocessing_context="fork")
    return iter(loader)


def _progress(done: int, total: int, resumed_from: int, started: float, label: str,
              extra: dict) -> Progress:
    """Progress whose ETA counts only the iterations of this run (a resumed run starts late)."""
    elapsed = time.monotonic() - started
    this_run = max(done - resumed_from, 1)
    virtual_start = time.monotonic() - elapsed * done / this_run
    message = f"{label} iteration {done}/{total}".strip()
    extra = {k: (v if math.isfinite(v) else float("nan")) for k, v in extra.items()}
    return Progress(done, total, message, virtual_start, extra)


# ---------------------------------------------------------------------------------------
# Cross-validation
# ---------------------------------------------------------------------------------------

DEFAULT_ITERATIONS = 2000
"""Training iterations per fold model when none are given (about 10 min per fold on one idle CPU core
at the default 64 px crops: 3.7 slices/s, see benchmarks/bench_train.py)."""

DEFAULT_DICE_WEIGHT = 0.5
"""Soft Dice weight of the members' loss: small structures (GM, horns) learn much sooner."""

DEFAULT_CROP_PX = 64
"""Side of the training crops (at the model's pixel size); inference may use larger crops."""


@dataclass
class CrossValidationResult:
    """What :func:`cross_validate` returns."""

    model_dir: Path
    metrics_csv: Path
    fold_models: list[Path]
    predictions: list[Path]
    metrics: Any  # pandas.DataFrame with per-slice rows and mean rows
    trained_slices: list[str] = field(default_factory=list)
    """``stem:slice`` of every slice learnt (each by the folds not testing its subject)."""

    def mean_metrics(self) -> dict[str, dict[str, float]]:
        """compartment -> {dice, hd95_mm} means over all out-of-fold slices."""
        table = self.metrics
        if table is None or len(table) == 0:
            return {}
        means = table[table["slice"] == "mean"]
        return {row.compartment: {"dice": round(float(row.dice), 4), "hd95_mm": round(float(row.hd95_mm), 3)}
                for row in means.itertuples()}

    def summary_lines(self) -> list[str]:
        lines = ["compartment       dice   hd95_mm  (out-of-fold, against the rater)"]
        for name, values in self.mean_metrics().items():
            lines.append(f"{name:<16} {values['dice']:6.3f} {values['hd95_mm']:8.3f}")
        return lines


def fold_who(rater: str, fold: int) -> str:
    """Label source name of a fold model's out-of-fold predictions (alphanumeric).

    >>> fold_who("A", 0), fold_who("raterB", 2)
    ('modelAfold1', 'modelBfold3')
    """
    from score_gui.training.data import source_id

    return f"model{source_id(rater)}fold{fold + 1}"


def member_meta(name: str, heads, slices, config: TrainConfig, result: TrainResult, *,
                pixel_size_mm: float, crop_size_px: int, extra: dict | None = None) -> dict:
    """Checkpoint metadata of a trained network, with the training data summary."""
    from score_gui.mdgru.checkpoint import channel_names_for
    from score_gui.training.data import summarise

    first = slices[0] if slices else None
    training = {
        **(extra or {}),
        "data": summarise(slices) if slices else {},
        "config": config.to_dict(),
        "iterations": result.iterations,
        "seconds": round(result.seconds, 1),
        "loss_curve": result.loss_curve(10),
        "final_loss": round(float(np.mean(result.losses[-50:])), 5) if result.losses else None,
    }
    meta = {"name": name, "heads": list(heads), "pixel_size_mm": float(pixel_size_mm),
            "crop_size_px": int(crop_size_px), "training": plain_json(training)}
    if first is not None and first.inversion_times is not None:
        meta["channel_names"] = channel_names_for(first.inversion_times)
    return meta


def plain_json(value):
    """``value`` with numpy scalars and tuples turned into JSON types (checkpoints load with
    ``weights_only=True``, which accepts only plain containers)."""
    import json

    def default(obj):
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, (set, frozenset)):
            return sorted(obj)
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"not JSON-able: {type(obj).__name__}")

    return json.loads(json.dumps(value, default=default))


def write_ensemble_json(folder: Path, members: list[tuple[str, str]], localiser: str | None) -> Path:
    """``ensemble.json`` (see :mod:`score_gui.inference`) listing ``(name, checkpoint)`` members."""
    import json

    from score_gui.atomic import write_text_atomic

    spec = {"members": [{"name": name, "checkpoints": [file]} for name, file in members],
            "localiser": localiser}
    return write_text_atomic(Path(folder) / "ensemble.json", json.dumps(spec, indent=2))


def training_loss(heads, localiser: bool, dice_weight: float = 0.0):
    """The loss ``(logits, targets) -> tensor`` of a model: set cross-entropy for a canal
    localiser, :func:`member_loss` (with its Dice weight) for a member."""
    from score_gui.training.losses import set_loss

    if localiser:
        return lambda logits, targets: set_loss(logits, targets, heads)
    return lambda logits, targets: member_loss(logits, targets, heads, dice_weight)


def member_loss(logits: torch.Tensor, targets: dict, heads, dice_weight: float = 0.0) -> torch.Tensor:
    """Loss of a member network: set cross-entropy per head, plus soft Dice.

    Tissue heads get ``(1 - w) CE + w (1 - mean soft Dice)`` (:func:`score_gui.training.losses.set_loss`).
    The lesion head gets plain cross-entropy plus ``w (1 - soft Dice of the lesion class)``
    only on samples that contain a lesion: a Dice over a class absent from the crop
    (most crops) would only push the lesion probability to zero, and the head collapses
    to "never a lesion".
    """
    from score_gui.mdgru.heads import resolve_heads
    from score_gui.training.losses import set_loss, split_logits

    specs = resolve_heads(heads)
    total = logits.new_zeros(())
    for head in specs:
        if head.name not in targets:
            continue
        part = {head.name: targets[head.name]}
        if head.kind != "lesion":
            total = total + set_loss(logits, part, specs, dice_weight=dice_weight)
            continue
        total = total + set_loss(logits, part, specs, dice_weight=0.0)
        allowed = targets[head.name].to(logits.device)
        positive = allowed[:, 1] & ~allowed[:, 0]
        if dice_weight and positive.any():
            probs = torch.softmax(split_logits(logits, specs)[head.name].float(), dim=1)[:, 1]
            known = allowed[:, 0] ^ allowed[:, 1]  # pixels whose lesion status is labelled
            p = probs * known
            dice = (2 * (p * positive).sum() + 1.0) / (p.sum() + positive.sum() + 1.0)
            total = total + dice_weight * (1.0 - dice)
    return total


def train_network(slices, heads, out_file: Path, state_file: Path, *, name: str, config: TrainConfig,
                  architecture: dict, crop_px: int, pixel_size_mm: float, crop_size_px: int,
                  localiser: bool = False, augment=None, resume: bool = True, label: str = "",
                  extra_meta: dict | None = None, dice_weight: float = 0.0, start=None,
                  keep_last_layer: bool = True,
                  validation_slices=None) -> Generator[Progress, None, TrainResult]:
    """Train one network (member or localiser) on labelled slices and save it with metadata.

    When ``out_file`` already exists and ``resume`` is set, the finished model is kept.
    ``start`` (:class:`score_gui.training.transfer.InitialNetwork`) gives the starting
    weights (its last layer replaced when ``keep_last_layer`` is False); ``validation_slices``
    are held out and scored every ``config.validate_every`` iterations (early stopping).
    """
    from score_gui.mdgru.checkpoint import load_model, save_model
    from score_gui.mdgru.heads import n_outputs
    from score_gui.mdgru.model import MDGRUNet
    from score_gui.training.augment import AugmentConfig
    from score_gui.training.data import LocaliserSampler, SliceSampler
    from score_gui.training.transfer import load_initial

    if resume and out_file.exists():
        model, _ = load_model(out_file)
        return TrainResult(model=model, iterations=config.iterations, resumed_from=config.iterations)
    torch.manual_seed(config.seed)
    in_channels = int(slices[0].images.shape[0])
    model = MDGRUNet(in_channels, n_outputs(heads), **architecture)
    if start is not None:
        load_initial(model, start, keep_last_layer=keep_last_layer)
    kind = LocaliserSampler if localiser else SliceSampler
    sampler_args = {"slices": list(slices), "heads": list(heads), "batch_size": config.batch_size}
    if not localiser:
        sampler_args.update(pixel_size_mm=pixel_size_mm, crop_px=crop_px)
    if augment is not None:
        sampler_args["augment"] = augment if augment != "none" else AugmentConfig.none()
    sampler = kind(**sampler_args)
    loss = training_loss(heads, localiser, dice_weight)
    validate = validation_loss(sampler, validation_slices, loss) if validation_slices else None
    result = yield from train_model(model, sampler.sample, loss, config, state_file, resume=resume, label=label,
                                    validate=validate)
    meta = member_meta(name, heads, slices, config, result, pixel_size_mm=pixel_size_mm,
                       crop_size_px=crop_size_px,
                       extra={**(extra_meta or {}), "augmentation": sampler.augment.to_dict(),
                              "dice_weight": dice_weight,
                              "training_crop_px": None if localiser else crop_px,
                              "initialised_from": None if start is None else start.source,
                              "validation": {"slices": len(validation_slices or []),
                                             "best_iteration": result.best_iteration,
                                             "losses": result.validation}})
    save_model(out_file, result.model, meta)
    return result


def validation_loss(sampler, slices, loss_fn, batch: int = 8):
    """``validate(model) -> mean loss`` on un-augmented crops of held-out ``slices``.

    The crops are drawn once (centred on the labelled canal, no augmentation), so every
    validation scores the same pixels and the losses are comparable.
    """
    import dataclasses

    from score_gui.mdgru.heads import targets_from_labels
    from score_gui.training.losses import stack_targets
    from score_gui.training.augment import AugmentConfig

    fixed = dataclasses.replace(sampler, max_offset_mm=0.0)
    rng = np.random.default_rng(0)
    batches = []
    for first in range(0, len(slices), batch):
        images, targets = [], []
        for item in slices[first:first + batch]:
            crop, dseg, lesion = fixed.crop(item, rng, AugmentConfig.none())
            images.append(crop)
            targets.append(targets_from_labels(dseg, lesion, item.labelled, sampler.heads))
        batches.append((torch.from_numpy(np.stack(images)), stack_targets(targets)))

    def validate(model: torch.nn.Module) -> float:
        device = next(model.parameters()).device
        total = sum(float(loss_fn(model(to_device(x, device)), to_device(t, device))) * len(x) for x, t in batches)
        return total / max(len(slices), 1)
    return validate


def cross_validate(study, rater: str, out_dir, folds: int = 3, iterations: int | None = None,
                   device: str = "cpu", seed: int = 0, resume: bool = True, optimizer: str = "adam",
                   architecture: dict | None = None, crop_px: int | None = None,
                   pixel_size_mm: float | None = None, crop_size_px: int | None = None,
                   localiser_iterations: int | None = None, augment=None,
                   checkpoint_every: int = 200, learning_rate: float | None = None,
                   dice_weight: float = DEFAULT_DICE_WEIGHT, init=None, batch_size: int = 1,
                   loader_workers: int = 0, early_stopping: bool = True,
                   fixed_folds: dict[str, int] | None = None) -> Generator[Progress, None, CrossValidationResult]:
    """Grouped k-fold cross-validation of MDGRU models on one rater's labels.

    For every fold: train a member network on the other folds' subjects (and a canal
    localiser), save them as ``fold<k>/`` (a one-member ensemble), segment the held-out
    scans through :func:`score_gui.inference.segment_scan` (exactly like ``score segment``),
    write those out-of-fold labels as ``predictions/<study path>/<stem>_desc-model<ID>fold<k>_*``
    and score them against the rater (:func:`score_gui.metrics.compare_labels`). ``out_dir``
    also gets ``ensemble.json`` listing the fold models (usable with ``score segment
    --models``) and ``metrics.csv``.

    Parameters
    ----------
    study : Study or path
    rater : str
        Rater ID (``A`` or ``raterA``).
    out_dir : path
    folds : int
        Number of folds; all sessions of a subject stay in one fold.
    iterations : int, optional
        Training iterations per fold model (the localiser gets a quarter unless
        ``localiser_iterations`` is given); default :data:`DEFAULT_ITERATIONS`, or
        :data:`DEFAULT_TRANSFER_ITERATIONS` when starting from a model set.
    device, seed, resume, optimizer
        See :class:`TrainConfig`; ``resume`` continues interrupted folds and keeps finished ones.
    architecture : dict
        MDGRUNet keyword arguments (default :data:`score_gui.mdgru.model.DEFAULT_ARCHITECTURE`).
    augment : AugmentConfig, "none" or None
        Augmentation of the member (None: the default :class:`AugmentConfig`).
    learning_rate : float or None
        Optimiser learning rate (None: the optimiser's default).
    dice_weight : float
        Weight of the soft Dice term added to the (set-valued) cross-entropy of the
        members (Horvath et al. 2019 added a generalised Dice loss to the cross-entropy).
    crop_px : int, optional
        Training crop side (default :data:`DEFAULT_CROP_PX`, or the crop the start model
        was trained with); ``crop_size_px`` is the crop used at inference (default: the
        checkpoint default, 80), ``pixel_size_mm`` the model's pixel size (default 0.6).
    init : str or path, optional
        Start from this model set (``"default"``, a folder or set name; None or ``"none"``:
        random weights). Fold ``k`` starts from member ``k mod n`` (and the set's
        localiser), with architecture, heads, pixel size and crop taken from it; the input
        channels are mapped (:mod:`score_gui.training.transfer`).
    batch_size, loader_workers : int
        Crops per optimiser step; processes drawing samples alongside (see :class:`TrainConfig`).
    early_stopping : bool
        Hold one training subject of each fold out (when the fold trains on at least 3)
        and keep the member with the lowest loss on it, stopping after 3 checks (every
        tenth of the run) without improvement.
    fixed_folds : dict, optional
        Subject -> fold index (0-based) for subjects whose fold is given (a retrained set
        keeps its folds, :mod:`score_gui.retraining`); new subjects are placed as usual.
    """
    import pandas as pd

    from score_gui.atomic import atomic_path, ensure_writable_dir
    from score_gui.errors import ScoreInputError
    from score_gui.inference import Ensemble, segment_scan
    from score_gui.labels import LabelMap, read_labels, write_labels
    from score_gui.mdgru.checkpoint import DEFAULT_CROP_SIZE_PX, DEFAULT_PIXEL_SIZE_MM
    from score_gui.mdgru.model import DEFAULT_ARCHITECTURE, LOCALISER_ARCHITECTURE
    from score_gui.mdgru.preprocess import LOCALISER_PIXEL_SIZE_MM
    from score_gui.metrics import compare_labels, with_mean_rows
    from score_gui.scan import read_scan
    from score_gui.study import Study
    from score_gui.training.data import (heads_for, load_scan_slices, localiser_head_for, rater_scans,
                                         rater_who, source_id)
    from score_gui.training.folds import grouped_folds

    from score_gui.training.transfer import initial_networks, resolve_init

    started = time.monotonic()
    study = study if isinstance(study, Study) else Study.open(study)
    init_folder = resolve_init(init)
    pick_device(device)
    rater_id = source_id(rater)

    entries = rater_scans(study, rater)
    slices_of = {entry.stem: load_scan_slices(entry, rater) for entry in entries}
    entries = [e for e in entries if slices_of[e.stem]]
    all_slices = [s for e in entries for s in slices_of[e.stem]]
    if not all_slices:
        raise ScoreInputError(study.root, f"the labels of {rater_who(rater)} contain no labelled slice")
    channels = {int(s.images.shape[0]) for s in all_slices}
    if len(channels) != 1:
        raise ScoreInputError(study.root, f"scans have different numbers of images {sorted(channels)}; "
                                          "train one model per contrast")
    heads = heads_for(all_slices)
    learnt = _learnt_structures(heads)
    localiser_head = localiser_head_for(all_slices)
    starts, localiser_start = [], None
    if init_folder is not None:
        starts, localiser_start = initial_networks(init_folder, next(iter(channels)))
        heads = _transfer_heads(starts[0], heads)
        architecture = starts[0].architecture
        pixel_size_mm = pixel_size_mm or float(starts[0].meta["pixel_size_mm"])
        crop_size_px = int(starts[0].meta.get("crop_size_px", DEFAULT_CROP_SIZE_PX)) if crop_size_px is None \
            else crop_size_px
        learning_rate = learning_rate or DEFAULT_TRANSFER_LEARNING_RATE
        crop_px = crop_px or starts[0].meta.get("training", {}).get("training_crop_px")
    crop_px = int(crop_px or DEFAULT_CROP_PX)
    iterations = iterations or (DEFAULT_TRANSFER_ITERATIONS if starts else DEFAULT_ITERATIONS)
    architecture = dict(architecture or DEFAULT_ARCHITECTURE)
    pixel_size_mm = float(pixel_size_mm or DEFAULT_PIXEL_SIZE_MM)
    crop_size_px = int(DEFAULT_CROP_SIZE_PX if crop_size_px is None else crop_size_px)
    localiser_iterations = localiser_iterations or max(iterations // 4, 1)
    out_dir = ensure_writable_dir(out_dir)
    fold_list = grouped_folds([e.subject for e in entries], n_folds=folds, seed=seed, fixed=fixed_folds)
    steps_per_fold = iterations + localiser_iterations
    total = folds * steps_per_fold + sum(len(slices_of[e.stem]) for e in entries)
    done = 0
    tables, fold_models, predictions, fold_info = [], [], [], []
    for fold in fold_list:
        train_slices = [s for i in fold.train for s in slices_of[entries[i].stem]]
        train_slices, validation_slices = (_hold_out_subject(train_slices, seed + fold.index) if early_stopping
                                           else (train_slices, []))
        fold_dir = ensure_writable_dir(out_dir / f"fold{fold.index + 1}")
        label = f"fold {fold.index + 1}/{folds}"
        common = {"study": str(study.root), "rater": rater_who(rater), "fold": fold.index + 1,
                  "folds": folds, "test_subjects": list(fold.test_subjects)}
        member_file = f"model{rater_id}fold{fold.index + 1}.pt"
        member_start = starts[fold.index % len(starts)] if starts else None
        for kind, file, n_iter, arch, head_list, start in (
                ("member", member_file, iterations, architecture, heads, member_start),
                ("localiser", "localiser.pt", localiser_iterations,
                 localiser_start.architecture if localiser_start else LOCALISER_ARCHITECTURE, [localiser_head],
                 localiser_start)):
            validate = kind == "member" and bool(validation_slices)
            config = TrainConfig(iterations=n_iter, optimizer=optimizer, learning_rate=learning_rate,
                                 seed=seed + 7919 * fold.index + (0 if kind == "member" else 1), device=device,
                                 checkpoint_every=checkpoint_every,
                                 # localiser crops span each scan's whole field of view: sizes differ
                                 batch_size=batch_size if kind == "member" else 1,
                                 loader_workers=loader_workers,
                                 validate_every=max(n_iter // 10, 1) if validate else 0,
                                 patience=3 if validate else 0)
            job = train_network(train_slices, head_list, fold_dir / file, fold_dir / f".{kind}_state.pt",
                                name=fold_who(rater, fold.index)[len("model"):] if kind == "member" else "localiser",
                                config=config, architecture=arch, crop_px=crop_px,
                                pixel_size_mm=pixel_size_mm if kind == "member" else LOCALISER_PIXEL_SIZE_MM,
                                crop_size_px=crop_size_px if kind == "member" else 0,
                                localiser=kind == "localiser", augment=augment, resume=resume,
                                label=f"{label} {kind}",
                                extra_meta={**common, "learnt_structures": sorted(learnt)} if kind == "member"
                                else common,
                                dice_weight=dice_weight if kind == "member" else 0.0, start=start,
                                keep_last_layer=start is None or _same_heads(start, head_list),
                                validation_slices=validation_slices if validate else None)
            result = yield from forward(job, done, total, started=started)
            done += n_iter  # an early stop skips the rest of the member's share
            if kind == "member":
                fold_info.append({"fold": fold.index + 1, "test_subjects": list(fold.test_subjects),
                                  "iterations": result.iterations, "loss_curve": result.loss_curve(10)})
        write_ensemble_json(fold_dir, [(fold_who(rater, fold.index)[len("model"):], member_file)], "localiser.pt")
        fold_models.append(fold_dir / member_file)
        ensemble = Ensemble.load(fold_dir, device=device)
        who = fold_who(rater, fold.index)
        for i in fold.test:
            entry = entries[i]
            scan = read_scan(entry.path)
            segmented = yield from forward(segment_scan(scan, ensemble, members_out=True), done, total,
                                          started=started)
            done += len(slices_of[entry.stem])
            member_map = next(iter(segmented.members.values()))
            predicted = LabelMap(dseg=member_map.dseg, lesion=member_map.lesion if "lesion" in learnt else None,
                                 labelled=learnt, who=who)
            target_dir = out_dir / "predictions" / entry.path.parent.relative_to(study.root)
            written = write_labels(scan, predicted, target_dir, who, keep_previous=False)
            predictions.append(written["dseg"])
            truth = read_labels(entry.dseg_path(rater_who(rater)), scan)
            compared = set(truth.labelled) & learnt
            table = compare_labels(predicted.dseg, truth.dseg, scan.pixel_spacing,
                                   pred_lesion=predicted.lesion,
                                   truth_lesion=truth.lesion if "lesion" in compared else None,
                                   levels=scan.levels, labelled=compared,
                                   slices=np.flatnonzero(truth.reviewed_slices()))
            table.insert(0, "fold", fold.index + 1)
            table.insert(0, "scan", entry.stem)
            table.insert(0, "session", entry.session or "")
            table.insert(0, "subject", entry.subject)
            tables.append(table)
    per_slice = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    metrics = _metrics_with_means(per_slice, with_mean_rows)
    metrics_csv = out_dir / "metrics.csv"
    with atomic_path(metrics_csv) as tmp:
        metrics.to_csv(tmp, index=False)
    summary = CrossValidationResult(out_dir, metrics_csv, fold_models, predictions, metrics,
                                    trained_slices=[f"{s.stem}:{s.slice_index}" for s in all_slices])
    _finish_fold_models(out_dir, fold_models, rater, summary, fold_info)
    return summary


DEFAULT_LOADER_WORKERS = 1
"""Sampling processes beside the training process: drawing and augmenting crops then uses
the second core while the first trains (``benchmarks/bench_train.py``)."""


def default_batch_size(transfer: bool) -> int:
    """Crops per step: 4 when fine-tuning a model set, 1 from scratch (measured in
    ``benchmarks/bench_train.py``)."""
    return 4 if transfer else 1


DEFAULT_TRANSFER_ITERATIONS = 300
"""Iterations per fold model when starting from a model set (chosen with
``benchmarks/bench_train.py --transfer``: GM Dice stops improving well before)."""

DEFAULT_TRANSFER_LEARNING_RATE = 1e-3
"""Adam's learning rate when starting from a model set: a fifth of the from-scratch rate,
so the first steps refine what the model knows instead of scrambling it."""


def _transfer_heads(start, wanted) -> list:
    """The start model's heads, checked to cover what the labels need (tissue, lesion)."""
    from score_gui.errors import ScoreInputError
    from score_gui.mdgru.checkpoint import head_specs

    have = head_specs(start.meta)
    kinds = {h.kind for h in have}
    missing = [h.name for h in wanted if h.kind not in kinds]
    if missing:
        raise ScoreInputError(start.source, f"--init: the model has no head for {', '.join(missing)}")
    return have


def _same_heads(start, heads) -> bool:
    from score_gui.mdgru.checkpoint import head_specs
    return [h.classes for h in head_specs(start.meta)] == [h.classes for h in heads]


def _hold_out_subject(slices, seed: int):
    """``(training slices, validation slices)``: one subject's slices held out when the
    slices come from at least 3 subjects, else no validation."""
    subjects = sorted({s.subject for s in slices})
    if len(subjects) < 3:
        return list(slices), []
    held = subjects[int(np.random.default_rng(seed).integers(len(subjects)))]
    return [s for s in slices if s.subject != held], [s for s in slices if s.subject == held]


def _learnt_structures(heads) -> set[str]:
    """LabelledStructures that a member with these heads predicts."""
    learnt = set()
    for head in heads:
        if head.kind == "lesion":
            learnt.add("lesion")
            continue
        classes = head.classes
        splits = {"canal": (0, 1), "cord": (1, 2), "gm": (2, 3)}
        for structure, (a, b) in splits.items():
            if not any(a in c and b in c for c in classes):
                learnt.add(structure)
        if not any(len(set(c) & {3, 4, 5, 6}) > 1 for c in classes):
            learnt.add("horns")
    return learnt


def _metrics_with_means(per_slice, with_mean_rows):
    """Per-slice rows of every scan plus one mean row per compartment over all of them."""
    import pandas as pd

    if per_slice.empty:
        return per_slice
    keys = ["subject", "session", "scan", "fold"]
    means = with_mean_rows(per_slice.drop(columns=keys))
    means = means[means["slice"] == "mean"]
    for key in keys:
        means.insert(keys.index(key), key, "all")
    return pd.concat([per_slice, means], ignore_index=True)


def _finish_fold_models(out_dir: Path, fold_models: list[Path], rater: str, summary, fold_info) -> None:
    """Add the cross-validation metrics to each fold model's metadata; write the top ensemble.json."""
    from score_gui.mdgru.checkpoint import read_checkpoint, save_model, load_model

    metrics = summary.mean_metrics()
    members = []
    for path in fold_models:
        model, meta = load_model(path)
        meta.setdefault("training", {})["cross_validation"] = {"mean_out_of_fold": metrics,
                                                               "folds": fold_info}
        save_model(path, model, meta)
        members.append((meta["name"], str(path.relative_to(out_dir))))
    localiser = fold_models[0].parent / "localiser.pt"
    write_ensemble_json(out_dir, members, str(localiser.relative_to(out_dir)))
