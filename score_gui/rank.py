"""Which slices a rater should label next: unlabelled slices ranked by how unsure the ensemble is.

For every scan of a study, the slices the rater has not labelled (no label map, or an
all-0 slice, contract section 2) are segmented with the ensemble
(:func:`score_gui.inference.segment_scan`, each member's labels kept) and scored by
:func:`slice_uncertainty`:

- ``disagreement``: the mean fraction of members disagreeing with the consensus inside
  the canal (any member's canal);
- ``gm``, ``cord``, ``lesion``: the share of the cord (for the cord: of the canal) where
  the members' vote on the structure is not unanimous (the probability margin of the
  members' label maps below 1).

``score = disagreement + gm + cord + lesion``; a slice in which no member finds a canal
scores 1 plus (the models have nothing to offer there). The reason names the largest
term ("members disagree on GM (12 % of the cord)"). Slices with the highest scores are
the ones whose labels teach the models most (uncertainty sampling).

Examples
--------
>>> import numpy as np
>>> member = np.zeros((1, 12, 12), np.uint8); member[0, 2:10, 2:10] = 1; member[0, 3:9, 3:9] = 2
>>> other = member.copy(); other[0, 5:7, 5:7] = 3
>>> values = slice_uncertainty([member[0], member[0], other[0]], np.zeros((12, 12), np.float32))
>>> round(values["gm"], 3), values["reason"]
(0.111, 'members disagree on GM (11 % of the cord)')
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from score_gui.progress import Progress, forward

COLUMNS = ("scan", "slice", "score", "reason")
"""Columns of the ranking (``score rank``'s TSV)."""

_TERMS = (("gm", "GM", "cord"), ("cord", "the cord border", "canal"), ("lesion", "lesions", "cord"))


def slice_uncertainty(members: Sequence[np.ndarray], disagreement: np.ndarray,
                      lesions: Sequence[np.ndarray | None] | None = None) -> dict:
    """How unsure an ensemble is on one slice: terms, ``score`` and ``reason``.

    Parameters
    ----------
    members : sequence of uint8 ndarray [H, W]
        Each member's dseg of the slice.
    disagreement : float ndarray [H, W]
        Fraction of members disagreeing with the consensus
        (:attr:`score_gui.inference.SegmentationResult.disagreement`).
    lesions : sequence of ndarray [H, W] or None, optional
        Each member's lesion map.

    Returns
    -------
    dict
        ``disagreement``, ``gm``, ``cord``, ``lesion`` (see the module docstring), ``score``
        and ``reason``.

    Examples
    --------
    >>> empty = np.zeros((4, 4), np.uint8)
    >>> slice_uncertainty([empty, empty], np.zeros((4, 4)))["reason"]
    'the models find no spinal canal'
    """
    stack = np.stack([np.asarray(m) for m in members])
    canal = (stack > 0).any(0)
    if not canal.any():
        return dict(disagreement=0.0, gm=0.0, cord=0.0, lesion=0.0, score=1.0,
                    reason="the models find no spinal canal")
    cord_any = (stack >= 2).any(0)
    areas = {"canal": int(canal.sum()), "cord": max(int(cord_any.sum()), 1)}
    votes = {"gm": (stack >= 3).mean(0), "cord": (stack >= 2).mean(0)}
    if lesions is not None and all(m is not None for m in lesions) and len(lesions):
        votes["lesion"] = np.stack([np.asarray(m) > 0 for m in lesions]).mean(0)
    values = {"disagreement": float(np.asarray(disagreement)[canal].mean())}
    for key, _, over in _TERMS:
        vote = votes.get(key)
        values[key] = 0.0 if vote is None else float(((vote > 0) & (vote < 1)).sum()) / areas[over]
    values["score"] = values["disagreement"] + values["gm"] + values["cord"] + values["lesion"]
    key, name, over = max(_TERMS, key=lambda term: values[term[0]])
    if values[key] > 0:
        reason = f"members disagree on {name} ({100 * values[key]:.0f} % of the {over})"
    elif values["disagreement"] > 0:
        reason = f"members disagree on {100 * values['disagreement']:.0f} % of the canal"
    else:
        reason = "members agree"
    values["reason"] = reason
    return values


def unlabelled_slices(entry, scan, who: str) -> np.ndarray:
    """Boolean per slice: not labelled by ``who`` (no label map, or an all-0 slice)."""
    from score_gui.labels import read_labels

    path = entry.dseg_path(who)
    if not path.exists():
        return np.ones(scan.n_slices, bool)
    return ~read_labels(path, scan).labelled_slices()


def rank_slices(study, rater: str, models="default", device: str = "cpu",
                workers: int | None = None) -> Generator[Progress, None, pd.DataFrame]:
    """Rank the rater's unlabelled slices of a study, most useful first (a progress job).

    Parameters
    ----------
    study : Study or path
    rater : str
        Rater ID (``A`` or ``raterA``).
    models : str, path or Ensemble
        ``default``, a model folder, or a loaded ensemble.
    device : str
    workers : int, optional
        Members run side by side (:func:`score_gui.inference.segment_scan`).

    Yields
    ------
    Progress
        Per member batch of each scan segmented.

    Returns
    -------
    DataFrame
        :data:`COLUMNS`, sorted by score (highest first), then scan and slice.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from score_gui.inference import make_untrained_ensemble
    >>> from score_gui.phantom import make_study
    >>> from score_gui.progress import drain
    >>> tmp = Path(tempfile.mkdtemp())
    >>> study = make_study(tmp / "study", n_hc=0, n_ms=1, n_slices=2, raters=(), shape=(48, 48))
    >>> table = drain(rank_slices(study, "A", make_untrained_ensemble(tmp / "m", n_members=2, tiny=True)))
    >>> list(table.columns), len(table)
    (['scan', 'slice', 'score', 'reason'], 2)
    """
    from score_gui.inference import Ensemble, segment_scan
    from score_gui.labels import check_who
    from score_gui.scan import read_scan
    from score_gui.study import Study
    from score_gui.naming import rater_who

    started = time.monotonic()
    who = check_who(rater_who(rater))
    study = study if isinstance(study, Study) else Study.open(study)
    ensemble = models if isinstance(models, Ensemble) else Ensemble.load(models, device=device)
    rows = []
    total = 100 * len(study.scans)
    for index, entry in enumerate(study.scans):
        scan = read_scan(entry.path)
        todo = unlabelled_slices(entry, scan, who)
        if not todo.any():
            continue
        result = yield from forward(segment_scan(scan, ensemble, members_out=True, workers=workers), base=100 * index,
                                    total=total, span=100, started=started,
                                    message=lambda m, i=index: f"scan {i + 1}/{len(study.scans)}: {m}")
        members = list(result.members.values())
        for s in np.flatnonzero(todo):
            lesions = [None if m.lesion is None else m.lesion[s] for m in members]
            values = slice_uncertainty([m.dseg[s] for m in members], result.disagreement[s], lesions)
            rows.append({"scan": entry.stem, "slice": int(s), "score": round(values["score"], 4),
                         "reason": values["reason"]})
    yield Progress(total, total, "ranked", started)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    if not table.empty:
        table = table.sort_values(["score", "scan", "slice"], ascending=[False, True, True],
                                  kind="stable").reset_index(drop=True)
    return table


def rank_scans(table: pd.DataFrame) -> pd.DataFrame:
    """Scans ranked from a slice ranking: ``scan, slices, score`` (mean slice score), highest first.

    >>> rows = pd.DataFrame({"scan": ["a", "a", "b"], "slice": [0, 1, 0], "score": [0.2, 0.4, 0.1],
    ...                      "reason": ["", "", ""]})
    >>> rank_scans(rows).values.tolist()
    [['a', 2, 0.3], ['b', 1, 0.1]]
    """
    grouped = table.groupby("scan", sort=True)["score"]
    scans = pd.DataFrame({"slices": grouped.size(), "score": grouped.mean().round(4)}).reset_index()
    return scans.sort_values(["score", "scan"], ascending=[False, True], kind="stable").reset_index(drop=True)



def ranking_path(study, rater: str) -> Path:
    """Where the application keeps a rater's last ranking: ``derivatives/score/ranking/<who>.tsv``.

    Ranking segments every scan (seconds each), so the result is kept and reopened with the
    study instead of being recomputed every session.
    """
    from score_gui.naming import rater_who

    return Path(study.derivatives) / "ranking" / f"{rater_who(rater)}.tsv"


def write_ranking(table: pd.DataFrame, path) -> Path:
    """Write a ranking as TSV (atomically: a ranking is never half-written)."""
    from score_gui.atomic import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    return path


def read_ranking(path) -> pd.DataFrame | None:
    """A ranking written by :func:`write_ranking` (None when there is none or it is unreadable)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path, sep="\t", dtype={"scan": str, "reason": str}, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    return table if list(table.columns) == list(COLUMNS) else None


def next_to_label(table: pd.DataFrame, is_labelled, skip=()) -> tuple[str, int] | None:
    """The most useful slice still unlabelled: ``(scan, slice)`` or None when none is left.

    Parameters
    ----------
    table : DataFrame
        A ranking (:func:`rank_slices`), most useful first.
    is_labelled : callable ``(scan, slice) -> bool``
        Whether the rater has labelled the slice since the ranking was made.
    skip : collection of ``(scan, slice)``
        Slices the rater has already been shown (so "next" moves on).

    >>> rows = pd.DataFrame({"scan": ["a", "b", "a"], "slice": [3, 0, 1], "score": [0.9, 0.5, 0.2],
    ...                      "reason": ["", "", ""]})
    >>> next_to_label(rows, lambda scan, s: scan == "a" and s == 3)
    ('b', 0)
    >>> next_to_label(rows, lambda scan, s: False, skip={("a", 3), ("b", 0)})
    ('a', 1)
    """
    skip = set(skip)
    for scan, index in zip(table["scan"], table["slice"]):
        key = (str(scan), int(index))
        if key not in skip and not is_labelled(*key):
            return key
    return None
