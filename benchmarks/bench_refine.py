"""Click correction measured as interactive segmentation is: NoC@90 and Dice against clicks.

Draws unseen synthetic scans (:func:`score_gui.phantom.make_scan`, seeds from 940000 up, HC and
MS in turn), segments them with the default ensemble exactly like ``score segment``
(:func:`score_gui.inference.segment_scan`) and keeps the slices whose automatic Dice for the
structure is below the selection threshold (``--below``, default the target 0.90). On each, a
simulated rater clicks at the centre of the largest error region (the maximum of the distance
transform inside it; a missed part gets a ``+`` click, a false part a ``-`` click) and the slice
is refined after each click with :class:`score_gui.click_correction.ClickSession` (the code behind
``score refine``). Printed:

- mean Dice after 0-10 clicks, for the refinement and for a plain brush baseline that fixes a
  disk of radius 2 px at the same kind of click points (with the pixels it painted so far);
- NoC@target: clicks to reach the target Dice (a slice that never gets there counts as the
  maximum number of clicks), with how many slices reach it;
- latency per click (median, max), crop, walker and nesting included.

Usage::

    .venv/bin/python benchmarks/bench_refine.py [--slices 8] [--structure gm|cord] [--clicks 10]
        [--target 0.90] [--below 0.90] [--max-scans 20] [--prior none|members|soft] [--band 1]

``--prior members`` adds the fraction of ensemble members labelling the structure as a prior
of the walker; ``--prior soft`` the ensemble's mean probability of it (what ``score segment``
computes for its soft vote). For ``--structure cord`` the automatic Dice is rarely below 0.90, so the target
(and selection) defaults to 0.98 there (NoC@98).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
from scipy import ndimage

from score_gui.errors import ScoreInputError
from score_gui.inference import Ensemble, segment_scan
from score_gui.labels import structure_mask as label_mask
from score_gui.labels import validate_labels
from score_gui.metrics import dice
from score_gui.phantom import make_scan
from score_gui.progress import drain
from score_gui.click_correction import ClickSession
from score_gui.refine import DEFAULT_SETTINGS, Click, structure_mask

FIRST_SEED = 940000
BRUSH_RADIUS = 2


def next_click(current: np.ndarray, truth: np.ndarray, skip: np.ndarray | None = None) -> Click | None:
    """A click at the centre of the largest error region (None when there is no error).

    Pixels in ``skip`` (where an earlier click was refused) are left out of the errors.

    >>> truth = np.zeros((9, 9), bool); truth[2:7, 2:7] = True
    >>> pred = np.zeros((9, 9), bool); pred[0, :] = True    # missed it all, one false row
    >>> str(next_click(pred, truth))
    '4,4,+'
    """
    best, best_key = None, None
    for error, positive in ((truth & ~current, True), (current & ~truth, False)):
        if skip is not None:
            error = error & ~skip
        regions, count = ndimage.label(error)
        for index in range(1, count + 1):
            region = regions == index
            depth = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
            key = (int(region.sum()), float(depth.max()))
            if best_key is None or key > best_key:
                row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
                best, best_key = Click(int(row), int(col), positive), key
    return best


def noc(curve: list[float], target: float, cap: int) -> int | None:
    """Clicks until Dice reaches the target (None when it does not within ``cap``)."""
    return next((k for k, value in enumerate(curve[:cap + 1]) if value >= target), None)


def pick_slices(ensemble: Ensemble, structure: str, below: float, n_wanted: int, prior_kind: str,
                max_scans: int = 20):
    """Slices of unseen scans whose automatic Dice is below ``below`` (at most ``max_scans`` scans)."""
    picked, seed, scanned = [], FIRST_SEED, 0
    while len(picked) < n_wanted and scanned < max_scans:
        kind = "hc" if scanned % 2 == 0 else "ms"
        scan, truth, _ = make_scan(kind, seed=seed, n_slices=12)
        result = drain(segment_scan(scan, ensemble, members_out=prior_kind == "members"))
        pred = result.consensus
        for s in range(scan.n_slices):
            t = structure_mask(truth.dseg[s], truth.lesion[s], structure)
            p = structure_mask(pred.dseg[s], None if pred.lesion is None else pred.lesion[s], structure)
            if not t.any() or dice(p, t) >= below:
                continue
            prior = None
            if prior_kind == "members":
                prior = np.mean([label_mask(m.dseg[s], structure) for m in result.members.values()], axis=0)
            elif prior_kind == "soft":
                prior = result.probabilities[structure][s]
            picked.append(dict(scan=f"{kind}{seed}", slice=s, images=scan.images[s], truth=t,
                               truth_dseg=truth.dseg[s], dseg=pred.dseg[s],
                               lesion=None if pred.lesion is None else pred.lesion[s],
                               spacing=scan.pixel_spacing, prior=prior))
            if len(picked) == n_wanted:
                break
        seed += 1
        scanned += 1
    return picked


def simulate(case: dict, structure: str, n_clicks: int, settings, use_prior: bool):
    """Dice after each click of the refinement; latencies; clicks refused by nesting."""
    session = ClickSession(case["images"], case["dseg"], case["lesion"], structure, case["spacing"],
                           prior=case["prior"] if use_prior else None, settings=settings)
    current = structure_mask(case["dseg"], case["lesion"], structure)
    curve, latencies, refused, broken = [dice(current, case["truth"])], [], 0, 0
    skip = np.zeros(current.shape, bool)
    for _ in range(n_clicks):
        click = next_click(current, case["truth"], skip)
        if click is not None:
            started = time.perf_counter()
            try:
                dseg, lesion = session.add(click)
            except ScoreInputError:
                refused += 1  # a + click where nesting forbids the structure: a wasted click,
                skip[click.row, click.col] = True  # and the rater clicks elsewhere next
            else:
                latencies.append(time.perf_counter() - started)
                current = structure_mask(dseg, lesion, structure)
                broken += bool(validate_labels(dseg[None], None if lesion is None else lesion[None]))
        curve.append(dice(current, case["truth"]))
    return curve, latencies, refused, broken


def brush(case: dict, structure: str, n_clicks: int):
    """The baseline: a disk of radius 2 px set to the click's sign at the same kind of click points."""
    current = structure_mask(case["dseg"], case["lesion"], structure)
    rows, cols = np.mgrid[:current.shape[0], :current.shape[1]]
    curve, painted = [dice(current, case["truth"])], [0]
    for _ in range(n_clicks):
        click = next_click(current, case["truth"])
        if click is not None:
            disk = (rows - click.row) ** 2 + (cols - click.col) ** 2 <= BRUSH_RADIUS ** 2
            current = current.copy()
            current[disk] = click.positive
            painted.append(painted[-1] + int(disk.sum()))
        else:
            painted.append(painted[-1])
        curve.append(dice(current, case["truth"]))
    return curve, painted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=8, help="slices to correct (default 8)")
    parser.add_argument("--structure", choices=("gm", "cord"), default="gm")
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--target", type=float, default=None,
                        help="Dice of NoC (default 0.90 for gm, 0.98 for cord: its automatic Dice is rarely below 0.90)")
    parser.add_argument("--below", type=float, default=None, help="select slices below this Dice (default: target)")
    parser.add_argument("--max-scans", type=int, default=20, help="scans searched for such slices (default 20)")
    parser.add_argument("--prior", choices=("none", "members", "soft"), default="none")
    parser.add_argument("--band", type=int, default=DEFAULT_SETTINGS.band)
    parser.add_argument("--models", default="default")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.target is None:
        args.target = 0.98 if args.structure == "cord" else 0.90
    below = args.target if args.below is None else args.below
    settings = dataclasses.replace(DEFAULT_SETTINGS, band=args.band)

    started = time.perf_counter()
    cases = pick_slices(Ensemble.load(args.models), args.structure, below, args.slices, args.prior,
                        args.max_scans)
    print(f"{len(cases)} slices with automatic {args.structure} Dice < {below:.2f} "
          f"(seeds from {FIRST_SEED}, {time.perf_counter() - started:.0f} s to find and segment)")
    if not cases:
        return
    curves, brushes, painted, latencies, refused, broken = [], [], [], [], 0, 0
    for case in cases:
        curve, lat, n_refused, n_broken = simulate(case, args.structure, args.clicks, settings,
                                                   args.prior != "none")
        b_curve, b_painted = brush(case, args.structure, args.clicks)
        curves.append(curve)
        brushes.append(b_curve)
        painted.append(b_painted)
        latencies += lat
        refused += n_refused
        broken += n_broken
        print(f"  {case['scan']} slice {case['slice']:2d}: area {int(case['truth'].sum()):3d} px, "
              f"Dice {curve[0]:.3f} -> {curve[1]:.3f} (1 click) -> {curve[3]:.3f} (3) -> {curve[-1]:.3f} "
              f"({args.clicks}); NoC {noc(curve, args.target, args.clicks)}")
    curves, brushes, painted = np.array(curves), np.array(brushes), np.array(painted)
    print(f"\nclicks  refine Dice  brush Dice  brush painted px   ({args.structure}, mean of {len(cases)} slices)")
    for k in range(args.clicks + 1):
        print(f"{k:6d}  {curves[:, k].mean():11.3f}  {brushes[:, k].mean():10.3f}  {painted[:, k].mean():16.1f}")
    for name, table in (("refine", curves), ("brush", brushes)):
        counts = [noc(list(c), args.target, args.clicks) for c in table]
        reached = [c for c in counts if c is not None]
        mean = np.mean([args.clicks if c is None else c for c in counts])
        print(f"NoC@{args.target * 100:.0f} {name:6s}: {mean:.2f} (mean, unreached = {args.clicks}); "
              f"{len(reached)}/{len(counts)} slices reach it within {args.clicks} clicks")
    if latencies:
        ms = np.array(latencies) * 1000
        print(f"latency per click: median {np.median(ms):.1f} ms, max {ms.max():.1f} ms "
              f"({len(ms)} clicks, {args.threads} threads; target 300 ms)")
    print(f"clicks refused by nesting: {refused}; refined slices breaking nesting: {broken}")


if __name__ == "__main__":
    main()
