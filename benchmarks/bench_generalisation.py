"""Generalisation: accuracy on the project phantom next to an independent generator.

The default models were trained on :mod:`score_gui.phantom` only. This benchmark segments
N HC + N MS scans from that phantom and N + N from :mod:`score_gui.phantom_variant` (another
signal equation, anatomy, texture and noise; never used for training), all from seeds far
from the training seeds (920000 up), with :func:`score_gui.inference.segment_scan` like
``score segment``, and compares with the true labels (:func:`score_gui.metrics.compare_labels`).

Printed per compartment: phantom Dice, variant Dice, HD95 (mean over slices where both
masks exist; lesion Dice over slices with a lesion in truth or prediction) and the variant
slices the ensemble missed entirely (empty prediction, structure present), then the ensemble against
each of its members on both generators: "ensemble - best member" per compartment, where
the best member is the one with the highest mean Dice over the compartments.

Usage::

    nice -n 5 .venv/bin/python benchmarks/bench_generalisation.py [--models default|DIR]
        [--hc 4] [--ms 4] [--slices 12] [--pixel-size 0.67] [--threads 1] [--vote soft|hard]
        [--csv out.csv]
"""

from __future__ import annotations

import argparse
import inspect
import time

import numpy as np
import pandas as pd
import torch

from score_gui.inference import Ensemble, segment_scan
from score_gui.mdgru.heads import restrict_to_learnt
from score_gui.metrics import compare_labels
from score_gui.phantom import make_scan
from score_gui.phantom_variant import make_variant_scan
from score_gui.progress import drain

FIRST_SEED = 920000
COMPARTMENTS = ("canal", "cord", "wm", "gm", "anterior_horns", "posterior_horns", "gray_commissure", "lesion")
GENERATORS = {"phantom": make_scan, "variant": make_variant_scan}


def segment_kwargs(vote: str | None) -> dict:
    """``vote=`` for :func:`segment_scan` when asked for and supported; else nothing."""
    if vote is None:
        return {}
    if "vote" not in inspect.signature(segment_scan).parameters:
        raise SystemExit("this version of segment_scan has no vote= argument; run without --vote")
    return {"vote": vote}


def _compare(labels, truth, scan, contrast: str = "amira") -> pd.DataFrame:
    if contrast != "amira":  # single contrast: judged on cord and GM, as T2*w studies are labelled
        cord_gm = {"cord", "gm"}
        return compare_labels(restrict_to_learnt(labels.dseg, cord_gm), restrict_to_learnt(truth.dseg, cord_gm),
                              scan.pixel_spacing, levels=scan.levels, labelled=cord_gm)
    lesion = labels.lesion if labels.lesion is not None else None
    return compare_labels(labels.dseg, truth.dseg, scan.pixel_spacing, pred_lesion=lesion,
                          truth_lesion=truth.lesion if lesion is not None else None, levels=scan.levels)


def canal_centring(centres: np.ndarray, truth, scan) -> pd.DataFrame:
    """Per slice: how far the crop centre lies from the true canal's centroid, and how far the
    true canal reaches from that centre (both mm); the canal must stay inside half the crop."""
    rows = []
    spacing = np.asarray(scan.pixel_spacing, float)
    for s, centre in enumerate(centres):
        r, c = np.nonzero(truth.dseg[s] >= 1)
        if not len(r):
            continue
        offsets = (np.stack([r, c], 1) - centre) * spacing
        rows.append({"error_mm": float(np.linalg.norm(offsets.mean(0))),
                     "reach_mm": float(np.abs(offsets).max())})
    return pd.DataFrame(rows)


def evaluate(models: str, n_hc: int, n_ms: int, n_slices: int, pixel_size: float, shape: int,
             vote: str | None = None, contrast: str = "amira") -> tuple[pd.DataFrame, list[float]]:
    """Per-slice metrics of the consensus (``source = score``) and of every member, both generators;
    the crop centring rows have ``source = centring``."""
    ensemble = Ensemble.load(models)
    extra = segment_kwargs(vote)
    tables, seconds = [], []
    for generator, make in GENERATORS.items():
        for kind, count in (("hc", n_hc), ("ms", n_ms)):
            for i in range(count):
                seed = FIRST_SEED + (0 if kind == "hc" else 1000) + i
                scan, truth, _ = make(kind, seed=seed, n_slices=n_slices, shape=(shape, shape),
                                      pixel_size=pixel_size, contrast=contrast)
                started = time.perf_counter()
                result = drain(segment_scan(scan, ensemble, members_out=True, **extra))
                seconds.append(time.perf_counter() - started)
                for source, labels in [("score", result.consensus), *result.members.items()]:
                    table = _compare(labels, truth, scan, contrast)
                    table["generator"], table["kind"], table["seed"], table["source"] = generator, kind, seed, source
                    tables.append(table)
                centring = canal_centring(result.centres, truth, scan)
                centring["generator"], centring["source"] = generator, "centring"
                tables.append(centring)
    return pd.concat(tables, ignore_index=True), seconds


def mean_dice(table: pd.DataFrame, compartment: str) -> float:
    """Mean Dice over slices; for lesions only slices where truth or prediction has one."""
    part = table[table["compartment"] == compartment]
    if compartment == "lesion":
        part = part[(part["area_truth_mm2"] > 0) | (part["area_pred_mm2"] > 0)]
    return float(part["dice"].mean()) if len(part) else float("nan")


def dice_by_source(table: pd.DataFrame, generator: str) -> pd.DataFrame:
    """Rows: sources (``score`` + members); columns: compartments; values: mean Dice."""
    part = table[(table["generator"] == generator) & (table["source"] != "centring")]
    return pd.DataFrame({source: {c: mean_dice(rows, c) for c in COMPARTMENTS}
                         for source, rows in part.groupby("source")}).T


def best_member(scores: pd.DataFrame) -> str:
    members = scores.drop(index="score", errors="ignore")
    return str(members.mean(axis=1, skipna=True).idxmax())


def pooled_lesion_dice(table: pd.DataFrame, generator: str) -> float:
    part = table[(table["generator"] == generator) & (table["source"] == "score")
                 & (table["compartment"] == "lesion")]
    # Dice pooled over voxels from per-slice areas: 2|A and B| = dice * (|A| + |B|).
    total = part["area_pred_mm2"].sum() + part["area_truth_mm2"].sum()
    if not total:
        return float("nan")
    return float((part["dice"] * (part["area_pred_mm2"] + part["area_truth_mm2"])).sum() / total)


def report(table: pd.DataFrame, args, seconds: list[float]) -> None:
    print(f"models {args.models} on {args.hc} HC + {args.ms} MS scans per generator, {args.slices} slices, "
          f"{args.pixel_size} mm pixels, seeds from {FIRST_SEED}"
          + (f", vote={args.vote}" if args.vote else ""))
    score = table[table["source"] == "score"]
    by = {g: score[score["generator"] == g] for g in GENERATORS}
    print(f"{'compartment':<16} {'phantom Dice':>12} {'variant Dice':>12} {'drop':>7} {'phantom HD95':>12} "
          f"{'variant HD95':>12} {'variant missed':>14}")
    for name in COMPARTMENTS:
        p, v = mean_dice(by["phantom"], name), mean_dice(by["variant"], name)
        hd = {g: np.nanmean(t[t["compartment"] == name]["hd95_mm"]) if (t["compartment"] == name).any()
              else float("nan") for g, t in by.items()}
        # HD95 is undefined (NaN, left out of the mean) where the prediction is empty but the
        # truth is not: count those slices so a low HD95 cannot hide missed slices.
        rows = by["variant"][by["variant"]["compartment"] == name]
        present = rows["area_truth_mm2"] > 0
        missed = f"{int((present & (rows['area_pred_mm2'] == 0)).sum())}/{int(present.sum())}"
        print(f"{name:<16} {p:12.3f} {v:12.3f} {p - v:7.3f} {hd['phantom']:12.2f} {hd['variant']:12.2f} {missed:>14}")
    for g in GENERATORS:
        print(f"lesion Dice pooled over voxels ({g}): {pooled_lesion_dice(table, g):.3f}")
    print()
    for g in GENERATORS:
        scores = dice_by_source(table, g)
        best = best_member(scores)
        gain = scores.loc["score"] - scores.loc[best]
        print(f"{g}: ensemble vs best single member ({best}); per-member mean Dice over compartments: "
              + ", ".join(f"{s} {scores.loc[s].mean():.3f}" for s in scores.index))
        print("  " + "  ".join(f"{c} {gain[c]:+.3f}" for c in COMPARTMENTS))
        print(f"  ensemble beats best member by {gain.mean():+.4f} Dice on average over compartments "
              f"(GM {gain['gm']:+.4f}, WM {gain['wm']:+.4f})")
    centring = table[table["source"] == "centring"]
    half_crop = Ensemble.load(args.models).members[0]
    half_crop_mm = half_crop.crop_size_px * half_crop.pixel_size_mm / 2
    for g, rows in centring.groupby("generator"):
        print(f"crop centre ({g}): error median {rows['error_mm'].median():.2f} mm, 95th percentile "
              f"{rows['error_mm'].quantile(0.95):.2f}, max {rows['error_mm'].max():.2f}; the canal reaches "
              f"at most {rows['reach_mm'].max():.1f} mm from it (half the crop: {half_crop_mm:.1f} mm)")
    print(f"segmentation time per scan: median {np.median(seconds):.1f} s ({args.threads} thread(s))")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="default")
    # 4 + 4 per generator: the shipped models' variant GM reads 0.855 on the first 2 + 2, 0.835 on 4 + 4
    # (compare_generalisation.py gives the interval of a difference between two sets)
    parser.add_argument("--hc", type=int, default=4)
    parser.add_argument("--ms", type=int, default=4)
    parser.add_argument("--slices", type=int, default=12)
    parser.add_argument("--pixel-size", type=float, default=0.67)
    parser.add_argument("--shape", type=int, default=192)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--vote", choices=("soft", "hard"), help="passed to segment_scan when it supports vote=")
    parser.add_argument("--csv", help="also write the per-slice table (every source) here")
    parser.add_argument("--contrast", choices=("amira", "t2star"), default="amira",
                        help="t2star: single-contrast scans (repeated on the models' inputs), cord and GM judged")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    table, seconds = evaluate(args.models, args.hc, args.ms, args.slices, args.pixel_size, args.shape, args.vote,
                              args.contrast)
    if args.csv:
        table.to_csv(args.csv, index=False)
    report(table, args, seconds)


if __name__ == "__main__":
    main()
