"""Two model sets on the same scans: the Dice difference per compartment, with its uncertainty.

Reads two per-slice tables written by ``bench_generalisation.py --csv`` (same ``--hc``,
``--ms``, ``--slices``: the same scans) and prints, per generator and compartment, the mean
per-scan Dice of the ensemble for each set, the difference (second minus first), a 95 %
bootstrap interval of that difference over scans, and on how many scans the second set won.
The scan, not the slice, is the unit that is resampled: slices of one subject share its
anatomy, so treating them as independent would make the interval too narrow.

A difference whose interval contains 0 is not one these scans can tell apart.

Usage::

    .venv/bin/python benchmarks/bench_generalisation.py --models default --hc 4 --ms 4 --csv a.csv
    .venv/bin/python benchmarks/bench_generalisation.py --models DIR --hc 4 --ms 4 --csv b.csv
    .venv/bin/python benchmarks/compare_generalisation.py a.csv b.csv
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from bench_generalisation import COMPARTMENTS, mean_dice  # noqa: E402  (same folder: run as a script)


def per_scan_dice(table: pd.DataFrame) -> pd.DataFrame:
    """Ensemble Dice per (generator, seed) scan and compartment, as
    :func:`bench_generalisation.mean_dice` takes it over the scan's slices.

    >>> rows = pd.DataFrame({"source": "score", "generator": "phantom", "seed": [1, 1, 2],
    ...                      "compartment": "gm", "dice": [0.8, 0.9, 0.7],
    ...                      "area_truth_mm2": 1.0, "area_pred_mm2": 1.0})
    >>> per_scan_dice(rows)["gm"].round(2).tolist()
    [0.85, 0.7]
    """
    scans = table[table["source"] == "score"].groupby(["generator", "seed"])
    return pd.DataFrame({key: {name: mean_dice(rows, name) for name in COMPARTMENTS}
                         for key, rows in scans}).T.rename_axis(["generator", "seed"])


def bootstrap_interval(differences: np.ndarray, rng: np.random.Generator, draws: int = 10000) -> tuple[float, float]:
    """95 % percentile interval of the mean of ``differences`` resampled with replacement.

    >>> low, high = bootstrap_interval(np.array([0.01, 0.02, 0.03]), np.random.default_rng(0))
    >>> bool(0.01 <= low <= 0.02 <= high <= 0.03)
    True
    """
    picks = rng.integers(len(differences), size=(draws, len(differences)))
    means = differences[picks].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def compare(first: pd.DataFrame, second: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One row per generator and compartment: both means, the difference, its interval, wins."""
    a, b = per_scan_dice(first), per_scan_dice(second)
    common = a.index.intersection(b.index)
    if not len(common):
        raise SystemExit("the two tables share no scan: run both with the same --hc/--ms/--slices")
    rng = np.random.default_rng(seed)
    rows = []
    for generator in common.get_level_values("generator").unique():
        keys = [k for k in common if k[0] == generator]
        for name in COMPARTMENTS:
            pair = pd.DataFrame({"a": a.loc[keys, name], "b": b.loc[keys, name]}).dropna()
            if pair.empty:
                continue
            diff = (pair["b"] - pair["a"]).to_numpy()
            low, high = bootstrap_interval(diff, rng)
            rows.append({"generator": generator, "compartment": name, "scans": len(pair), "first": pair["a"].mean(),
                         "second": pair["b"].mean(), "difference": diff.mean(), "low": low, "high": high,
                         "second_wins": int((diff > 0).sum())})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", help="per-slice CSV of the reference set (bench_generalisation.py --csv)")
    parser.add_argument("second", help="per-slice CSV of the candidate set, same scans")
    args = parser.parse_args()
    table = compare(pd.read_csv(args.first), pd.read_csv(args.second))
    print(f"second ({args.second}) minus first ({args.first}): ensemble Dice, mean over scans; "
          "95 % bootstrap interval over scans")
    print(f"{'generator':<9} {'compartment':<16} {'scans':>5} {'first':>6} {'second':>6} {'diff':>7} "
          f"{'interval':>17} {'wins':>5}")
    for row in table.itertuples():
        print(f"{row.generator:<9} {row.compartment:<16} {row.scans:5d} {row.first:6.3f} {row.second:6.3f} "
              f"{row.difference:+7.3f} [{row.low:+.3f}, {row.high:+.3f}] {row.second_wins:>2}/{row.scans}")


if __name__ == "__main__":
    main()
