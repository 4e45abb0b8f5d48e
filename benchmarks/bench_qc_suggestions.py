"""How well the automatic QC suggestions find degraded slices of synthetic AMIRA scans.

Synthetic scans (``score_gui.phantom``) with a known degradation per slice
(``motion`` ghosting, ``arch_contact``, ``low_snr``, or none) go through
``score_gui.qc.suggest.suggest_scan`` with their true labels as the segmentation under
review. For each suggestion kind the script prints:

* sensitivity: the fraction of slices with the degradation it targets that it flags;
* false-positive rate: the fraction of *non-degraded* slices it flags.

plus the same for "any suggestion". Usage::

    .venv/bin/python benchmarks/bench_qc_suggestions.py [--subjects 10] [--rate 0.15] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from score_gui.phantom import DEGRADATIONS, make_slice, random_subject
from score_gui.qc.suggest import KINDS, suggest_scan

TARGET = {"ghosting": "motion", "arch_contact": "arch_contact", "low_snr": "low_snr",
          "topology": "seg_error", "area_outlier": "seg_error", "session_outlier": "seg_error"}
"""Suggestion kind -> the degradation it is meant to catch (``seg_error``: simulated below)."""

SEG_ERRORS = ("gm_split", "cord_leak", "cord_bite")


def corrupt_segmentation(dseg: np.ndarray, rng) -> tuple[np.ndarray, str]:
    """A plausible segmentation failure on one slice's true labels (the image is untouched).

    ``gm_split``: the commissure row erased (GM in two pieces); ``cord_leak``: the cord
    swallows the CSF around it (area up); ``cord_bite``: the posterior third of the
    cord labelled CSF (area down).
    """
    from scipy import ndimage

    out = dseg.copy()
    kind = str(rng.choice(SEG_ERRORS))
    cord = out >= 2
    rows = np.flatnonzero(cord.any(axis=1))
    if kind == "gm_split":
        gm_rows = np.flatnonzero((out >= 3).any(axis=1))
        middle = gm_rows[len(gm_rows) // 2]
        band = slice(middle - 1, middle + 2)
        out[band][out[band] >= 3] = 2
        cols = np.flatnonzero((dseg >= 3).any(axis=0))
        centre = cols[len(cols) // 2]
        out[:, centre - 1:centre + 2][out[:, centre - 1:centre + 2] >= 3] = 2
    elif kind == "cord_leak":
        grown = ndimage.binary_dilation(cord, iterations=3) & (out == 1)
        out[grown] = 2
    else:
        cut = rows[0] + int(0.66 * (rows[-1] - rows[0]))
        out[cut:][out[cut:] >= 2] = 1
    return out, kind

LEVEL_OF_SLICE = ("C2", "C2", "C2", "C3", "C3", "C3", "C4", "C4", "C4", "C5", "C5", "C5")


def synthetic_scan(rng, subject, degraded: list[str | None], shape=(192, 192), reposition=(0, 0, 0)):
    """Images ``[S, H, W]`` (all-image average), true dseg ``[S, H, W]``, pixel size."""
    images, dsegs = [], []
    for s, reason in enumerate(degraded):
        level = LEVEL_OF_SLICE[s % len(LEVEL_OF_SLICE)]
        made = make_slice(rng, level=level, subject=subject, shape=shape, degrade=reason or "none",
                          z_mm=8.0 * s, reposition=reposition)
        assert made.info["degraded"] == reason
        images.append(made.images.mean(axis=0))
        dsegs.append(made.dseg)
    return np.stack(images), np.stack(dsegs), made.info["pixel_size"]


def run(subjects: int, rate: float, seed: int, sessions: int = 2, n_slices: int = 12,
        seg_rate: float = 0.05) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(subjects):
        subject = random_subject(rng, "ms" if i % 2 else "hc", n_slices=n_slices)
        session_areas = []
        scans = []
        for session in range(sessions):
            degraded = [str(rng.choice(DEGRADATIONS)) if rng.random() < rate else None
                        for _ in range(n_slices)]
            reposition = (rng.normal(0, 1.0), rng.normal(0, 1.0), rng.normal(0, 2.0)) if session else (0, 0, 0)
            images, dseg, spacing = synthetic_scan(rng, subject, degraded, reposition=reposition)
            for s in range(n_slices):  # segmentation failures on slices whose image is fine
                if degraded[s] is None and rng.random() < seg_rate:
                    dseg[s], _ = corrupt_segmentation(dseg[s], rng)
                    degraded[s] = "seg_error"
            scans.append((session, images, dseg, spacing, degraded))
        from score_gui.qc.suggest import slice_areas

        session_areas = [slice_areas(d, sp[0] * sp[1]) for _, _, d, sp, _ in scans]
        for session, images, dseg, spacing, degraded in scans:
            others = [a for k, a in enumerate(session_areas) if k != session]
            found = suggest_scan(images, dseg, spacing, other_sessions=others)
            for s, reason in enumerate(degraded):
                kinds = {h.kind for h in found.get(s, [])}
                rows.append({"subject": i, "session": session, "slice": s, "degraded": reason or "none",
                             **{k: k in kinds for k in KINDS}})
    return pd.DataFrame(rows)


def run_make_scan(n_scans: int, seed: int, seg_rate: float = 0.05) -> pd.DataFrame:
    """Scans from ``score_gui.phantom.study.make_scan`` with its own random degradations
    (about 5 % of slices, ``info["degraded"]``), reviewed with their true labels."""
    from score_gui.phantom.study import make_scan

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_scans):
        scan, truth, info = make_scan("ms" if i % 2 else "hc", seed=seed * 1000 + i)
        degraded = list(info["degraded"])
        dseg = truth.dseg.copy()
        for s in range(scan.n_slices):
            if degraded[s] is None and rng.random() < seg_rate:
                dseg[s], _ = corrupt_segmentation(dseg[s], rng)
                degraded[s] = "seg_error"
        found = suggest_scan(scan.average(), dseg, scan.pixel_spacing)
        for s, reason in enumerate(degraded):
            kinds = {h.kind for h in found.get(s, [])}
            rows.append({"subject": i, "session": 0, "slice": s, "degraded": reason or "none",
                         **{k: k in kinds for k in KINDS}})
    table = pd.DataFrame(rows)
    table["session_outlier"] = np.nan  # one session per subject: the check cannot run
    return table


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    clean = table[table["degraded"] == "none"]
    degraded = table[table["degraded"] != "none"]
    lines = []
    for kind in KINDS:
        target = TARGET.get(kind)
        hits = table.loc[table["degraded"] == target, kind].dropna() if target else pd.Series(dtype=bool)
        lines.append({"kind": kind, "targets": target or "-", "n_target": len(hits),
                      "sensitivity": hits.mean() if len(hits) else np.nan,
                      "false_positive_rate": clean[kind].mean(),
                      "flags_other_degraded": degraded.loc[degraded["degraded"] != target, kind].mean()})
    any_flag = (table[list(KINDS)].astype(float).fillna(0) > 0).any(axis=1)
    lines.append({"kind": "any", "targets": "any degradation", "n_target": len(degraded),
                  "sensitivity": any_flag[degraded.index].mean(),
                  "false_positive_rate": any_flag[clean.index].mean(), "flags_other_degraded": np.nan})
    return pd.DataFrame(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--rate", type=float, default=0.15, help="fraction of degraded slices")
    parser.add_argument("--seg-rate", type=float, default=0.05,
                        help="fraction of slices with a simulated segmentation failure")
    parser.add_argument("--scans", type=int, default=30, help="make_scan scans (natural 5 %% rate)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for title, job in (
            (f"A. make_scan, its own degradations (~5 %), {args.scans} scans",
             lambda: run_make_scan(args.scans, args.seed, args.seg_rate)),
            (f"B. forced degradations ({args.rate:.0%} of slices), {args.subjects} subjects x 2 sessions",
             lambda: run(args.subjects, args.rate, args.seed, seg_rate=args.seg_rate))):
        started = time.perf_counter()
        table = job()
        elapsed = time.perf_counter() - started
        counts = table["degraded"].value_counts().to_dict()
        print(f"\n{title}: {len(table)} slices, {counts}; {elapsed:.1f} s")
        with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 120):
            print(summarize(table).to_string(index=False))


if __name__ == "__main__":
    main()
