"""Training throughput on CPU: slices per second for the default architecture.

Measures, per crop size and thread count, the time to draw one augmented sample (phantom
slice + rater simulation + crop + augmentation + targets) and one optimiser step (forward,
backward, Adam), and prints slices/s. Also compares how fast Adam and Adadelta (the
reference MDGRU's optimiser) lower the loss on the same stream of synthetic samples.

``--throughput`` times whole training loops (:func:`score_gui.training.loop.train_model`)
the way ``score train`` runs them: crops from a study's labelled slices, default
augmentation, Adam, set-valued loss + soft Dice, for several batch sizes, thread counts and
sampling processes, and prints crops (slices) per second of wall time.

Usage: ``.venv/bin/python benchmarks/bench_train.py [--quick] [--throughput]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from score_gui.mdgru.heads import n_outputs
from score_gui.training.losses import set_loss
from score_gui.mdgru.model import DEFAULT_ARCHITECTURE, MDGRUNet
from score_gui.progress import drain
from score_gui.training.data import SyntheticConfig, SyntheticSampler
from score_gui.training.loop import TrainConfig, make_optimizer, train_model


def time_steps(crop: int, threads: int, steps: int) -> tuple[float, float]:
    """Median seconds per sample draw and per optimiser step."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    sampler = SyntheticSampler(pixel_size_mm=0.5, crop_px=crop, synthetic=SyntheticConfig(rater="A"))
    net = MDGRUNet(8, n_outputs(), **DEFAULT_ARCHITECTURE)
    optimizer = make_optimizer(net, "adam")
    rng = np.random.default_rng(0)
    draw, step = [], []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        inputs, targets = sampler.sample(rng)
        t1 = time.perf_counter()
        loss = set_loss(net(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        t2 = time.perf_counter()
        draw.append(t1 - t0)
        step.append(t2 - t1)
    return float(np.median(draw[1:])), float(np.median(step[1:]))


def optimiser_race(iterations: int) -> dict[str, list[float]]:
    """Loss curve (10 windows) of Adam vs Adadelta on identical sample streams."""
    torch.set_num_threads(1)
    curves = {}
    for name in ("adam", "adadelta"):
        torch.manual_seed(0)
        sampler = SyntheticSampler(pixel_size_mm=0.5, crop_px=48, synthetic=SyntheticConfig(rater="A"))
        net = MDGRUNet(8, n_outputs(), **DEFAULT_ARCHITECTURE)
        result = drain(train_model(net, sampler.sample, set_loss,
                                   TrainConfig(iterations=iterations, optimizer=name, seed=0)))
        curves[name] = result.loss_curve(10)
    return curves


def loop_throughput(crop: int, batch: int, threads: int, workers: int, iterations: int) -> float:
    """Crops per second of one :func:`train_model` run (sampling, forward, backward, step)."""
    from score_gui.training.data import SliceSampler, synthetic_slice
    from score_gui.training.loop import member_loss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    slices = [synthetic_slice(rng, SyntheticConfig(rater="A")) for _ in range(12)]  # a small lab study
    sampler = SliceSampler(slices=slices, heads=("tissue", "lesion"), pixel_size_mm=0.6, crop_px=crop,
                           batch_size=batch)
    net = MDGRUNet(8, n_outputs(), **DEFAULT_ARCHITECTURE)
    config = TrainConfig(iterations=iterations, seed=0, batch_size=batch, loader_workers=workers,
                         checkpoint_every=0)
    loss = lambda logits, targets: member_loss(logits, targets, ("tissue", "lesion"), 0.5)  # noqa: E731
    started = time.perf_counter()
    drain(train_model(net, sampler.sample, loss, config))
    return batch * iterations / (time.perf_counter() - started)


def throughput_table(iterations: int) -> None:
    print(f"training loop throughput, {iterations} crops per configuration; the first row is the loop as "
          "it was (64 px crops, batch 1, sampled in the training process)")
    print(f"{'crop':>4} {'batch':>5} {'threads':>7} {'workers':>7} {'crops/s':>8}")
    baseline = None
    for crop, batch, threads, workers in ((64, 1, 1, 0), (64, 1, 2, 0), (64, 1, 1, 1), (64, 4, 1, 1),
                                          (64, 4, 2, 1), (64, 8, 2, 1), (48, 1, 1, 0), (48, 4, 1, 1)):
        rate = loop_throughput(crop, batch, threads, workers, max(iterations // batch, 3))
        baseline = baseline or rate
        print(f"{crop:>4} {batch:>5} {threads:>7} {workers:>7} {rate:>8.2f}  ({rate / baseline:.2f}x)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, no optimiser race")
    parser.add_argument("--race", type=int, default=400, help="iterations per optimiser in the race")
    parser.add_argument("--throughput", type=int, nargs="?", const=24, default=0, metavar="CROPS",
                        help="only the training-loop throughput table (CROPS crops per configuration)")
    args = parser.parse_args()
    if args.throughput:
        throughput_table(args.throughput)
        return
    steps = 5 if args.quick else 15
    print(f"architecture {DEFAULT_ARCHITECTURE}, torch {torch.__version__}, batch 1, Adam")
    print(f"{'crop':>5} {'threads':>7} {'sample ms':>10} {'step ms':>8} {'slices/s':>9}")
    for crop in (48, 64, 80):
        for threads in (1, 2):
            draw, step = time_steps(crop, threads, steps)
            print(f"{crop:>5} {threads:>7} {draw * 1e3:>10.1f} {step * 1e3:>8.1f} {1.0 / (draw + step):>9.2f}")
    if not args.quick:
        for name, curve in optimiser_race(args.race).items():
            print(f"{name:>9} loss by tenths of {args.race} iterations: {curve}")


if __name__ == "__main__":
    main()
