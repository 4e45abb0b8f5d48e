"""Retraining a model set on the slices labelled since: the folds are kept, the new slices
counted, each network fine-tuned from its own weights, the set replaced and compared."""

from __future__ import annotations

import json

import numpy as np
import pytest

from score_gui import model_sets, retraining
from score_gui.errors import ScoreInputError
from score_gui.labels import read_labels, write_labels
from score_gui.mdgru.checkpoint import read_checkpoint
from score_gui.progress import drain
from score_gui.scan import read_scan
from score_gui.study import Study
from tests.score_gui.test_model_sets import FAST
from tests.score_gui.test_training import _write_study, one_thread  # noqa: F401 (autouse fixture)


@pytest.fixture
def study(tmp_path):
    """Four subjects of rater A, 2 slices each; slice 1 of subject 04 is not labelled yet."""
    root = tmp_path / "study"
    _write_study(root, {"01": [None], "02": [None], "03": [None], "04": [None]}, rater="A", seed=0)
    study = Study.open(root)
    entry = study.find("sub-04_amira")
    scan = read_scan(entry.path)
    labels = read_labels(entry.dseg_path("raterA"), scan)
    labels.dseg[1] = 0
    labels.lesion[1] = 0
    write_labels(scan, labels, entry.dseg_path("raterA").parent, "raterA")
    return study


def _label_slice_again(study, stem: str, index: int, provenance: str) -> None:
    from score_gui.phantom import make_slice

    entry = study.find(stem)
    scan = read_scan(entry.path)
    labels = read_labels(entry.dseg_path("raterA"), scan)
    made = make_slice(np.random.default_rng(index), level="C4", kind="ms", shape=scan.images.shape[-2:],
                      pixel_size=0.8, degrade="none")
    labels.dseg[index] = made.dseg
    labels.provenance = [provenance if s == index else (p or "drawn")
                         for s, p in enumerate(labels.provenance or [""] * scan.n_slices)]
    write_labels(scan, labels, entry.dseg_path("raterA").parent, "raterA")


def test_a_retrained_set_keeps_its_folds_learns_the_new_slices_and_replaces_the_old(study):
    first = drain(model_sets.train_model_set(study, "lab", ["A"], folds=2, iterations=3, init="none",
                                             compare_with="none", **FAST))
    assert retraining.slices_since(study, first) == {"raterA": []}
    assert len(first.info["trained_on"]["raterA"]) == 7
    folds_before = retraining.fold_assignment(first.path)
    assert sorted(folds_before) == ["01", "02", "03", "04"] and set(folds_before.values()) == {0, 1}

    _label_slice_again(study, "sub-04_amira", 1, "proposed")          # an unreviewed proposal: not new
    assert retraining.slices_since(study, first) == {"raterA": []}
    _label_slice_again(study, "sub-04_amira", 1, "proposed-accepted")
    assert retraining.slices_since(study, first) == {"raterA": ["sub-04_amira:1"]}

    weights_before = {p.name: read_checkpoint(p)["state_dict"] for p in first.path.rglob("model*.pt")}
    again = drain(retraining.retrain_model_set(study, "lab", iterations=2, **FAST))
    assert again.path == first.path
    assert retraining.fold_assignment(again.path) == folds_before    # the same subjects in each fold
    assert retraining.slices_since(study, again) == {"raterA": []}
    info = json.loads((again.path / model_sets.SET_FILE).read_text())
    assert info["retrained_from"]["name"] == "lab" and info["retrained_from"]["new_slices"] == {"raterA": 1}
    assert info["compared_with"]["name"] == "lab" and info["iterations"] == 2
    for path in again.path.rglob("model*.pt"):                      # fine-tuned, not copied
        meta = read_checkpoint(path)["meta"]
        assert meta["training"]["iterations"] == 2
        changed = [not np.allclose(v, weights_before[path.name][k]) for k, v in read_checkpoint(path)["state_dict"].items()]
        assert any(changed)
    history = study.root / "derivatives" / "score" / "models" / ".history"
    assert any(history.rglob("model_set.json"))                    # the old set is kept


def test_retraining_refuses_a_missing_set_and_one_without_folds(study, tmp_path):
    with pytest.raises(ScoreInputError, match="no model set 'nothing'"):
        drain(retraining.retrain_model_set(study, "nothing"))
    folder = study.root / "derivatives" / "score" / "models" / "copied"
    folder.mkdir(parents=True)
    (folder / model_sets.ENSEMBLE_FILE).write_text('{"members": []}')
    with pytest.raises(ScoreInputError, match="not trained by cross-validation"):
        drain(retraining.retrain_model_set(study, "copied"))
