"""Retrain a study's model set on the slices labelled since it was trained.

The last step of the annotation loop: the models propose, a rater accepts or corrects the
proposals, and the set that proposed them learns from the result. :func:`retrain_model_set`
fine-tunes every network of the set from its own weights on the labels as they are now,
for few iterations (:data:`RETRAIN_ITERATIONS`; minutes on a laptop CPU instead of the
first run's hour), and keeps every subject in the fold it had, so each fold model is still
scored on subjects it never saw (subjects labelled since join the lightest fold). The set
is replaced (the old one is kept in ``models/.history``) unless a new name is given, and is
compared with the set it came from.

:func:`slices_since` tells what is new: per source, the reviewed slices (drawn, or
proposed and then accepted or edited) that the set did not learn.

Examples
--------
>>> assignment_of_members([{"fold": 2, "test_subjects": ["03"]}, {"fold": 1, "test_subjects": ["01", "02"]}])
{'03': 1, '01': 0, '02': 0}
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path

import numpy as np

from score_gui.errors import ScoreInputError
from score_gui.model_sets import ENSEMBLE_FILE, ModelSet, find_model_set, train_model_set
from score_gui.progress import Progress
from score_gui.study import Study

RETRAIN_ITERATIONS = 150
"""Fine-tuning steps per fold network when a set learns the slices labelled since."""


def reviewed_slice_names(study, source: str) -> list[str]:
    """``stem:slice`` of every slice training would learn from ``source`` (its reviewed
    labelled slices, as :func:`score_gui.training.data.load_scan_slices` picks them),
    read from the label files without the images."""
    from score_gui.labels import LabelMap, lesion_file_beside, load_label_volume, read_sidecar_provenance
    from score_gui.training.data import rater_scans, rater_who

    study = study if isinstance(study, Study) else Study.open(study)
    who = rater_who(source)
    names = []
    for entry in rater_scans(study, source):
        path = entry.dseg_path(who)
        dseg = np.moveaxis(np.asarray(load_label_volume(path)[1]), -1, 0)
        lesion_file = lesion_file_beside(path)
        lesion = (None if lesion_file is None
                  else np.moveaxis(np.asarray(load_label_volume(lesion_file, "lesion map")[1]), -1, 0))
        labels = LabelMap(dseg=dseg, lesion=lesion, provenance=read_sidecar_provenance(path, dseg.shape[0]))
        names += [f"{entry.stem}:{s}" for s in np.flatnonzero(labels.reviewed_slices())]
    return names


def slices_since(study, model_set: ModelSet) -> dict[str, list[str]] | None:
    """Per source of the set: reviewed slices it did not learn (None: the set does not
    record what it learnt, e.g. one trained before this was recorded)."""
    trained_on = model_set.info.get("trained_on")
    if not isinstance(trained_on, dict):
        return None
    out = {}
    for source in model_set.sources:
        learnt = set(trained_on.get(source) or [])
        try:
            now = reviewed_slice_names(study, source)
        except ScoreInputError:
            now = []   # the source's labels are gone: nothing new to learn
        out[source] = [name for name in now if name not in learnt]
    return out


def assignment_of_members(metas: list[dict]) -> dict[str, int]:
    """Subject -> 0-based fold from fold networks' training records (``fold``, ``test_subjects``)."""
    assignment = {}
    for meta in metas:
        fold = int(meta["fold"]) - 1
        for subject in meta.get("test_subjects") or []:
            assignment[str(subject)] = fold
    return assignment


def source_folder(model_set: ModelSet, source: str) -> Path:
    """The folder of a set holding ``source``'s fold networks (its own ``ensemble.json``)."""
    sub = model_set.path / source
    return sub if len(model_set.sources) > 1 and (sub / ENSEMBLE_FILE).is_file() else model_set.path


def fold_assignment(folder) -> dict[str, int]:
    """Subject -> fold of the fold networks listed in ``folder/ensemble.json``."""
    from score_gui.mdgru.checkpoint import read_checkpoint

    folder = Path(folder)
    spec = json.loads((folder / ENSEMBLE_FILE).read_text(encoding="utf-8"))
    metas = []
    for member in spec.get("members", []):
        training = read_checkpoint(folder / member["checkpoints"][0])["meta"].get("training", {})
        if "fold" in training:
            metas.append(training)
    return assignment_of_members(metas)


def retrain_model_set(study, name: str, *, new_name: str | None = None,
                      iterations: int = RETRAIN_ITERATIONS, **training_args) -> Generator[Progress, None, ModelSet]:
    """Fine-tune set ``name`` on its sources' labels as they are now; return the new set.

    Parameters
    ----------
    study : Study or path
    name : str
        The study's model set to retrain.
    new_name : str, optional
        Save under this name (default: replace ``name``).
    iterations : int
        Steps per fold network (the localisers get a quarter).
    training_args
        Passed to :func:`score_gui.model_sets.train_model_set` (``batch_size``, ...).

    Raises
    ------
    ScoreInputError
        No such set, or one without folds to keep (not trained by cross-validation).
    """
    study = study if isinstance(study, Study) else Study.open(study)
    model_set = find_model_set(study, name)
    if model_set is None:
        raise ScoreInputError(study.root, f"no model set {name!r} to retrain")
    folds = int(model_set.info.get("folds") or 0)
    if folds < 2 or not model_set.sources:
        raise ScoreInputError(model_set.path, "not trained by cross-validation in this study: train a new set instead")
    init = {source: str(source_folder(model_set, source)) for source in model_set.sources}
    fixed = {source: fold_assignment(folder) for source, folder in init.items()}
    new = slices_since(study, model_set)
    extra = {"retrained_from": {"name": name, "created": model_set.created,
                                "new_slices": None if new is None else {s: len(v) for s, v in new.items()}}}
    return (yield from train_model_set(study, new_name or name, model_set.sources, folds=folds,
                                       iterations=iterations, init=init, compare_with=name,
                                       fixed_folds=fixed, extra_info=extra, **training_args))
