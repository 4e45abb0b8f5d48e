"""Grouped k-fold splits: every session of a subject lands in the same fold.

The SCORE paper trained its networks with 3-fold cross-validation in which "all 3 scans of
each HC were used within only 1 subset", so no test subject (nor any of its sessions) is
ever seen in training. :func:`grouped_folds` assigns whole subjects to folds, balancing the
number of scans per fold; :func:`check_no_leak` is the guard every caller runs.

Examples
--------
>>> subjects = ["01", "01", "01", "02", "03", "03", "04", "05", "06"]
>>> folds = grouped_folds(subjects, n_folds=3, seed=0)
>>> sorted(len(f.test) for f in folds)
[3, 3, 3]
>>> check_no_leak(folds, subjects)
>>> all(set(f.train).isdisjoint(f.test) for f in folds)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from score_gui.errors import ScoreInputError


@dataclass(frozen=True)
class Fold:
    """One split: indices (into the item list) used for training and for testing.

    Attributes
    ----------
    index : int
        0-based fold number.
    train, test : tuple of int
        Item indices; every item is in the test set of exactly one fold.
    test_subjects : tuple of str
        The subjects held out in this fold.
    """

    index: int
    train: tuple[int, ...]
    test: tuple[int, ...]
    test_subjects: tuple[str, ...]


def assign_subjects(subjects: Sequence[str], n_folds: int, seed: int = 0,
                    fixed: dict[str, int] | None = None) -> dict[str, int]:
    """Map each distinct subject to a fold, balancing the number of items per fold.

    Subjects are taken in a seeded random order, largest first, and each goes to the
    fold holding the fewest items so far (ties: the lowest fold number). Subjects in
    ``fixed`` keep their fold (a retrained set keeps its folds, so a fold's model never
    sees its own test subjects); only the others are placed.

    >>> assign_subjects(["a", "b", "c", "d"], 2, fixed={"a": 1, "b": 1})
    {'a': 1, 'b': 1, 'c': 0, 'd': 0}

    Raises
    ------
    ScoreInputError
        Fewer distinct subjects than folds (some fold would have no test subject).
    """
    counts: dict[str, int] = {}
    for subject in subjects:
        counts[subject] = counts.get(subject, 0) + 1
    if n_folds < 2:
        raise ScoreInputError(None, f"cross-validation needs at least 2 folds, got {n_folds}")
    if len(counts) < n_folds:
        raise ScoreInputError(None, f"{len(counts)} subject(s) cannot fill {n_folds} folds; "
                                    f"use --folds {max(2, len(counts))} or add subjects")
    rng = np.random.default_rng(seed)
    order = sorted(counts)
    rng.shuffle(order)
    order.sort(key=lambda s: -counts[s])  # stable: random order among equal sizes
    load = [0] * n_folds
    assignment = {s: int(f) for s, f in (fixed or {}).items() if s in counts and 0 <= int(f) < n_folds}
    for subject, fold in assignment.items():
        load[fold] += counts[subject]
    for subject in order:
        if subject in assignment:
            continue
        fold = int(np.argmin(load))
        assignment[subject] = fold
        load[fold] += counts[subject]
    return assignment


def grouped_folds(subjects: Sequence[str], n_folds: int = 3, seed: int = 0,
                  fixed: dict[str, int] | None = None) -> list[Fold]:
    """Split items (one subject ID per item, e.g. per scan) into grouped folds
    (``fixed``: subjects whose fold is given, see :func:`assign_subjects`)."""
    assignment = assign_subjects(subjects, n_folds, seed, fixed)
    folds = []
    for k in range(n_folds):
        test = tuple(i for i, s in enumerate(subjects) if assignment[s] == k)
        train = tuple(i for i, s in enumerate(subjects) if assignment[s] != k)
        held_out = tuple(sorted(s for s, f in assignment.items() if f == k))
        folds.append(Fold(index=k, train=train, test=test, test_subjects=held_out))
    check_no_leak(folds, subjects)
    return folds


def check_no_leak(folds: Sequence[Fold], subjects: Sequence[str]) -> None:
    """Raise AssertionError if a test subject of any fold appears in its training set,
    or if an item is not tested exactly once."""
    tested = sorted(i for fold in folds for i in fold.test)
    if tested != list(range(len(subjects))):
        raise AssertionError("every item must be in exactly one fold's test set")
    for fold in folds:
        train_subjects = {subjects[i] for i in fold.train}
        test_subjects = {subjects[i] for i in fold.test}
        shared = train_subjects & test_subjects
        if shared:
            raise AssertionError(f"fold {fold.index}: subjects {sorted(shared)} in training and test")
        if set(fold.train) & set(fold.test):
            raise AssertionError(f"fold {fold.index}: items in training and test")
