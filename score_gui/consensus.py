"""Majority vote of label maps (ensemble members or raters) and where they disagree.

:func:`majority_vote` votes **per structure**, from the outside in, so the result obeys
the nesting rules:

* canal, cord, gray matter and lesion: a pixel is in when **more than half** of the
  voters put it in (with an even number of voters a tie, e.g. 1 of 2, is out), and only
  inside the structure that encloses it (cord inside canal, GM inside cord, lesions
  inside the cord);
* horns (anterior 4, posterior 5, commissure 6, or undivided GM 3): inside the voted GM,
  the most frequent of these values among the voters that have GM there; **ties go to
  the lowest value** (so undivided GM 3 beats any horn, anterior beats posterior beats
  commissure), a conservative rule that never invents a subdivision the voters split on.

Who votes: on each slice, the label maps that labelled that slice (not all 0) and that
labelled the structure (``LabelMap.labelled``, contract's ``LabelledStructures``). A
structure nobody labelled stays unlabelled in the result.

Examples
--------
>>> import numpy as np
>>> from score_gui.labels import LabelMap
>>> a = LabelMap(np.array([[[0, 1, 2, 4]]], np.uint8), np.zeros((1, 1, 4), np.uint8))
>>> b = LabelMap(np.array([[[1, 1, 2, 5]]], np.uint8), np.zeros((1, 1, 4), np.uint8))
>>> c = LabelMap(np.array([[[0, 2, 3, 5]]], np.uint8), np.zeros((1, 1, 4), np.uint8))
>>> majority_vote([a, b, c]).dseg.tolist()
[[[0, 1, 2, 5]]]
>>> (disagreement_map([a, b, c]) * 3).tolist()   # one of three differs everywhere
[[[1.0, 1.0, 1.0, 1.0]]]
"""

from __future__ import annotations

import numpy as np

from score_gui.labels import CSF, GM, LABELLED_STRUCTURE_KEYS, WM, LabelMap

_HORN_CHOICES = (3, 4, 5, 6)


def _slice_labelled(label_map: LabelMap) -> np.ndarray:
    return np.asarray(label_map.labelled_slices(), bool)


def _vote(masks: list[np.ndarray], voters: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Strict majority of ``masks`` [S, H, W] among per-slice voters [S]; also 'anyone voted' [S]."""
    shape = masks[0].shape
    yes = np.zeros(shape, np.int32)
    count = np.zeros(shape[0], np.int32)
    for mask, votes in zip(masks, voters):
        yes += mask & votes[:, None, None]
        count += votes
    return yes * 2 > count[:, None, None], count > 0


def majority_vote(label_maps: list[LabelMap], who: str = "consensus",
                  skip_unlabelled_slices: bool = True) -> LabelMap:
    """Per-structure strict-majority vote with nesting (see the module notes for ties).

    Parameters
    ----------
    label_maps : list of LabelMap
        On the same grid ``[S, H, W]``.
    who : str
        ``who`` of the result (``"score"`` for the ensemble, ``"consensus"`` for raters).
    skip_unlabelled_slices : bool
        A map votes only on slices it labelled (right for raters). False for ensemble
        members, whose empty slice is a vote for "no canal here".
    """
    if not label_maps:
        raise ValueError("majority_vote needs at least one label map")
    shape = label_maps[0].dseg.shape
    if any(m.dseg.shape != shape for m in label_maps):
        raise ValueError("label maps to vote on have different shapes: "
                         + ", ".join(str(m.dseg.shape) for m in label_maps))
    slice_votes = [_slice_labelled(m) if skip_unlabelled_slices else np.ones(shape[0], bool)
                   for m in label_maps]
    labelled, masks = set(), {}
    enclosing = None
    for structure, lowest in (("canal", CSF), ("cord", WM), ("gm", GM)):
        voters = [v if structure in m.labelled else np.zeros_like(v) for m, v in zip(label_maps, slice_votes)]
        if not any(v.any() for v in voters):
            continue
        mask, _ = _vote([m.dseg >= lowest for m in label_maps], voters)
        if enclosing is not None:
            mask &= enclosing
        masks[structure] = enclosing = mask
        labelled.add(structure)
    dseg = np.zeros(shape, np.uint8)
    for structure, value in (("canal", CSF), ("cord", WM), ("gm", GM)):
        if structure in masks:
            dseg[masks[structure]] = value
    if "gm" in masks and any("horns" in m.labelled for m in label_maps):
        dseg = _vote_horns(label_maps, slice_votes, dseg, masks["gm"])
        labelled.add("horns")
    lesion = _vote_lesion(label_maps, slice_votes, masks.get("cord"))
    if lesion is not None:
        labelled.add("lesion")
    return LabelMap(dseg=dseg, lesion=lesion, labelled=labelled, who=who)


def _vote_horns(label_maps, slice_votes, dseg, gm_mask):
    counts = np.zeros((len(_HORN_CHOICES), *dseg.shape), np.int32)
    for m, votes in zip(label_maps, slice_votes):
        if "horns" not in m.labelled:
            continue
        for k, value in enumerate(_HORN_CHOICES):
            counts[k] += (m.dseg == value) & votes[:, None, None]
    # argmax returns the first maximum: ties go to the lowest value.
    winner = np.asarray(_HORN_CHOICES, np.uint8)[np.argmax(counts, axis=0)]
    dseg = dseg.copy()
    dseg[gm_mask] = winner[gm_mask]
    return dseg


def _vote_lesion(label_maps, slice_votes, cord_mask):
    voting = [(m, v) for m, v in zip(label_maps, slice_votes) if "lesion" in m.labelled and m.lesion is not None]
    if not voting:
        return None
    mask, _ = _vote([m.lesion > 0 for m, _ in voting], [v for _, v in voting])
    if cord_mask is not None:
        mask &= cord_mask
    return mask.astype(np.uint8)


def disagreement_map(label_maps: list[LabelMap], consensus: LabelMap | None = None) -> np.ndarray:
    """Fraction of label maps whose dseg value or lesion flag differs from the vote, float32 [S, H, W].

    0 where everybody agrees with the consensus; with 3 members the values are 0, 1/3,
    2/3 (and 1 only where no member has the consensus value, e.g. after a horn tie).
    """
    consensus = consensus if consensus is not None else majority_vote(label_maps)
    differ = np.zeros(consensus.dseg.shape, np.float32)
    for m in label_maps:
        diff = m.dseg != consensus.dseg
        if m.lesion is not None and consensus.lesion is not None:
            diff |= (m.lesion > 0) != (consensus.lesion > 0)
        differ += diff
    return differ / max(len(label_maps), 1)


def full_structures() -> set[str]:
    """Every labelled-structure key (what an ensemble's consensus covers)."""
    return set(LABELLED_STRUCTURE_KEYS)


def raters_consensus(entry, scan=None) -> tuple[LabelMap, dict]:
    """Majority vote of a study scan's raters' saved labels, written as ``desc-consensus``
    beside them (the previous consensus kept in ``.history``).

    Parameters
    ----------
    entry : score_gui.study.ScanEntry
    scan : Scan, optional
        The entry's scan, if already read.

    Returns
    -------
    (LabelMap, dict)
        The consensus (``who = "consensus"``) and the files written, ``{"dseg": path,
        "lesion": path}`` (lesion only when some rater labelled lesions).

    Raises
    ------
    ScoreInputError
        Fewer than two raters labelled the scan, or a rater's labels cannot be read.
    """
    from score_gui.errors import ScoreInputError
    from score_gui.labels import read_labels, write_labels
    from score_gui.scan import read_scan

    raters = entry.raters()
    if len(raters) < 2:
        raise ScoreInputError(entry.path, f"consensus needs labels of at least 2 raters; "
                                          f"{entry.stem} has {len(raters)}")
    scan = scan if scan is not None else read_scan(entry.path)
    maps = [read_labels(entry.dseg_path(f"rater{r}"), scan) for r in raters]
    consensus = majority_vote(maps, who="consensus")
    return consensus, write_labels(scan, consensus, entry.derivatives_dir, "consensus")


def write_raters_consensus(entry, scan=None) -> dict:
    """:func:`raters_consensus`'s files; empty when the scan has fewer than two raters."""
    if len(entry.raters()) < 2:
        return {}
    return raters_consensus(entry, scan)[1]
