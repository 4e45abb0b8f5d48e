"""Accuracy of the default ensemble on fresh synthetic scans, next to the SCORE paper's numbers.

Draws HC and MS scans with :func:`score_gui.phantom.make_scan` from seeds the default models
never saw (they were trained on a continuous random stream seeded 1001-4004; these scans use
seeds from 910000 up), segments them with :func:`score_gui.inference.segment_scan` exactly
like ``score segment``, and compares the consensus with the phantom's true labels
(:func:`score_gui.metrics.compare_labels`). Prints per-compartment Dice and HD95 (mean over
slices) for all slices and for slices without simulated degradation, and the lesion Dice
pooled over all lesion voxels of the MS scans.

Usage: ``.venv/bin/python benchmarks/bench_accuracy.py [--hc 3] [--ms 3] [--models default]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from score_gui.inference import Ensemble, segment_scan
from score_gui.metrics import compare_labels
from score_gui.phantom import make_scan
from score_gui.progress import drain

TARGETS = {"cord": 0.97, "wm": 0.94, "gm": 0.90, "anterior_horns": 0.80, "posterior_horns": 0.80,
           "lesion": 0.70}
"""Dice the SCORE paper reports or aims at (HC cord 0.98, WM 0.95, GM 0.92; MS GM >= 0.84)."""
TARGET_HD95_MM = 0.7
FIRST_SEED = 910000


def evaluate(models: str, n_hc: int, n_ms: int, n_slices: int, pixel_size: float, shape: int):
    ensemble = Ensemble.load(models)
    rows, pooled, seconds = [], {"inter": 0, "pred": 0, "truth": 0}, []
    for kind, count in (("hc", n_hc), ("ms", n_ms)):
        for i in range(count):
            seed = FIRST_SEED + (0 if kind == "hc" else 1000) + i
            scan, truth, info = make_scan(kind, seed=seed, n_slices=n_slices, shape=(shape, shape),
                                          pixel_size=pixel_size)
            started = time.perf_counter()
            result = drain(segment_scan(scan, ensemble))
            seconds.append(time.perf_counter() - started)
            pred = result.consensus
            table = compare_labels(pred.dseg, truth.dseg, scan.pixel_spacing, pred_lesion=pred.lesion,
                                   truth_lesion=truth.lesion, levels=scan.levels)
            table["kind"] = kind
            table["seed"] = seed
            table["degraded"] = [bool(info["degraded"][s]) for s in table["slice"]]
            rows.append(table)
            if pred.lesion is not None:
                pooled["inter"] += int(((pred.lesion > 0) & (truth.lesion > 0)).sum())
                pooled["pred"] += int((pred.lesion > 0).sum())
                pooled["truth"] += int((truth.lesion > 0).sum())
    return pd.concat(rows, ignore_index=True), pooled, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="default")
    parser.add_argument("--hc", type=int, default=3)
    parser.add_argument("--ms", type=int, default=3)
    parser.add_argument("--slices", type=int, default=12)
    parser.add_argument("--pixel-size", type=float, default=0.67)
    parser.add_argument("--shape", type=int, default=192)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--csv", help="also write the per-slice table here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    table, pooled, seconds = evaluate(args.models, args.hc, args.ms, args.slices, args.pixel_size, args.shape)
    if args.csv:
        table.to_csv(args.csv, index=False)
    clean = table[~table["degraded"]]
    print(f"default ensemble on {args.hc} HC + {args.ms} MS unseen synthetic scans, {args.slices} slices, "
          f"{args.pixel_size} mm pixels; {len(set(table['slice'].astype(str) + table['seed'].astype(str)))} "
          f"slices ({int(table.groupby(['seed', 'slice'])['degraded'].first().sum())} degraded)")
    print(f"{'compartment':<16} {'dice all':>9} {'dice clean':>10} {'dice HC':>8} {'dice MS':>8} "
          f"{'target':>7} {'HD95 mm':>8} {'target':>7}")
    for name in ("canal", "cord", "wm", "gm", "anterior_horns", "posterior_horns", "gray_commissure", "lesion"):
        part = table[table["compartment"] == name]
        if part.empty:
            continue
        cl = clean[clean["compartment"] == name]
        if name == "lesion":  # slices with a lesion in truth or prediction (empty-vs-empty is trivially 1)
            part = part[(part["area_truth_mm2"] > 0) | (part["area_pred_mm2"] > 0)]
            cl = cl[(cl["area_truth_mm2"] > 0) | (cl["area_pred_mm2"] > 0)]
        target = TARGETS.get(name)
        print(f"{name:<16} {part['dice'].mean():9.3f} {cl['dice'].mean():10.3f} "
              f"{part[part['kind'] == 'hc']['dice'].mean():8.3f} {part[part['kind'] == 'ms']['dice'].mean():8.3f} "
              f"{'' if target is None else f'{target:.2f}':>7} {np.nanmean(part['hd95_mm']):8.2f} "
              f"{TARGET_HD95_MM:>7}")
    if pooled["pred"] + pooled["truth"]:
        print(f"lesion Dice pooled over all lesion voxels: "
              f"{2 * pooled['inter'] / (pooled['pred'] + pooled['truth']):.3f} (target 0.70)")
    print(f"segmentation time per scan: median {np.median(seconds):.1f} s ({args.threads} thread(s))")


if __name__ == "__main__":
    main()
