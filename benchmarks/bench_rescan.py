"""Scan-rescan reproducibility of the compartment areas, next to the SCORE paper's numbers.

For K healthy subjects (default 3) the same anatomy is imaged three times: scan 1; scan 2
with new noise; scan 3 with new noise and a repositioning of 1.6 mm and 4 degrees. Each scan
is segmented with the ensemble (:func:`score_gui.inference.segment_scan`); per slice and
compartment the area (mm², :func:`score_gui.areas.areas_table`) is compared across the
three scans as the relative SD (SD / mean, %). Printed: the mean over slices and subjects
for the ensemble and for the true labels themselves (the voxelisation floor: what a
perfect segmenter could reach), with the paper's values (Tsagkas et al. 2023: GM <= 3.50 %,
WM <= 1.47 %).

``--generator phantom`` uses :mod:`score_gui.phantom` (random_subject + scan_of_subject,
which also re-draws a small position jitter and, rarely, a degradation per slice);
``--generator variant`` uses the evaluation-only :mod:`score_gui.phantom_variant`.

Usage::

    nice -n 5 .venv/bin/python benchmarks/bench_rescan.py [--subjects 3] [--generator phantom|variant]
        [--models default] [--slices 12] [--pixel-size 0.67] [--threads 1] [--vote soft|hard] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from score_gui.areas import areas_table
from score_gui.inference import Ensemble, segment_scan
from score_gui.phantom import random_subject, scan_of_subject
from score_gui.phantom_variant import variant_scan_of_subject, variant_subject
from score_gui.progress import drain

from bench_generalisation import segment_kwargs  # noqa: E402  (same folder: run as a script)

FIRST_SEED = 930000
REPOSITION = (1.6 / np.sqrt(2), 1.6 / np.sqrt(2), 4.0)
"""Scan 3: 1.6 mm in-plane shift (diagonal) and 4 degrees rotation."""
COMPARTMENTS = ("canal", "cord", "wm", "gm", "anterior_horns", "posterior_horns", "gray_commissure")
PAPER_RSD = {"gm": 3.50, "wm": 1.47}


def three_scans(generator: str, k: int, n_slices: int, shape: int, pixel_size: float):
    """Scans 1-3 (with truths) of subject ``k``: same anatomy; new noise; new noise + move."""
    subject_rng = np.random.default_rng([FIRST_SEED + k, 1 if generator == "phantom" else 2])
    repositions = [(0.0, 0.0, 0.0), (0.0, 0.0, 0.0), REPOSITION]
    scans = []
    if generator == "phantom":
        subject = random_subject(subject_rng, "hc", n_slices=n_slices)
        for i, move in enumerate(repositions):
            scans.append(scan_of_subject(subject, np.random.default_rng([FIRST_SEED + k, i, 7]), n_slices=n_slices,
                                         shape=(shape, shape), pixel_size=pixel_size, reposition=move)[:2])
    else:
        subject = variant_subject(subject_rng, "hc", n_slices=n_slices)
        for i, move in enumerate(repositions):
            scans.append(variant_scan_of_subject(subject, np.random.default_rng([FIRST_SEED + k, i, 7]),
                                                 shape=(shape, shape), pixel_size=pixel_size, reposition=move)[:2])
    return scans


def slice_areas(labels, scan) -> pd.DataFrame:
    return areas_table(labels.dseg, labels.lesion, scan.pixel_area_mm2)[["slice", *COMPARTMENTS]]


def relative_sd(areas: list[pd.DataFrame]) -> pd.DataFrame:
    """Per slice and compartment: SD / mean (%) over the scans (``ddof = 1``)."""
    stack = np.stack([a[list(COMPARTMENTS)].to_numpy(float) for a in areas])  # (scans, slices, compartments)
    mean = stack.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rsd = np.where(mean > 0, stack.std(axis=0, ddof=1) / mean * 100, np.nan)
    return pd.DataFrame(rsd, columns=list(COMPARTMENTS)).assign(slice=areas[0]["slice"].to_numpy())


def evaluate(args) -> tuple[pd.DataFrame, list[float]]:
    ensemble = Ensemble.load(args.models)
    extra = segment_kwargs(args.vote)
    rows, seconds = [], []
    for k in range(args.subjects):
        scans = three_scans(args.generator, k, args.slices, args.shape, args.pixel_size)
        predicted, true = [], []
        for scan, truth in scans:
            started = time.perf_counter()
            result = drain(segment_scan(scan, ensemble, **extra))
            seconds.append(time.perf_counter() - started)
            predicted.append(slice_areas(result.consensus, scan))
            true.append(slice_areas(truth, scan))
        for source, areas in (("score", predicted), ("truth", true)):
            table = relative_sd(areas)
            table["subject"], table["source"] = k, source
            table[[f"mean_{c}" for c in COMPARTMENTS]] = np.mean([a[list(COMPARTMENTS)].to_numpy(float)
                                                                  for a in areas], axis=0)
            rows.append(table)
    return pd.concat(rows, ignore_index=True), seconds


def report(table: pd.DataFrame, args, seconds: list[float]) -> None:
    print(f"scan-rescan on {args.subjects} healthy subject(s) x 3 scans ({args.generator}), {args.slices} slices, "
          f"{args.pixel_size} mm pixels; scan 3 moved {np.hypot(*REPOSITION[:2]):.1f} mm / {REPOSITION[2]:.0f} deg"
          + (f", vote={args.vote}" if args.vote else ""))
    print(f"{'compartment':<16} {'mean area mm2':>13} {'RSD % ensemble':>15} {'RSD % truth':>12} {'paper':>7}")
    score, truth = table[table["source"] == "score"], table[table["source"] == "truth"]
    for name in COMPARTMENTS:
        paper = PAPER_RSD.get(name)
        print(f"{name:<16} {truth[f'mean_{name}'].mean():13.1f} {np.nanmean(score[name]):15.2f} "
              f"{np.nanmean(truth[name]):12.2f} {'' if paper is None else f'<={paper:.2f}':>7}")
    print(f"segmentation time per scan: median {np.median(seconds):.1f} s ({args.threads} thread(s))")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--generator", choices=("phantom", "variant"), default="phantom")
    parser.add_argument("--models", default="default")
    parser.add_argument("--slices", type=int, default=12)
    parser.add_argument("--pixel-size", type=float, default=0.67)
    parser.add_argument("--shape", type=int, default=192)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--vote", choices=("soft", "hard"), help="passed to segment_scan when it supports vote=")
    parser.add_argument("--csv", help="also write the per-slice relative SDs here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    table, seconds = evaluate(args)
    if args.csv:
        table.to_csv(args.csv, index=False)
    report(table, args, seconds)


if __name__ == "__main__":
    main()
