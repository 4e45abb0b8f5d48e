"""Named model sets of a study (derivatives/score/models/<name>/): trained whole or not at all,
listed with their out-of-fold Dice, compared with the model they would replace, and written
by ``score train --name``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from score_gui import model_sets
from score_gui.errors import ScoreInputError
from score_gui.progress import Progress, drain
from score_gui.study import Study
from tests.score_gui.test_training import TINY, _write_study, one_thread  # noqa: F401 (autouse fixture)

FAST = {"architecture": TINY, "crop_px": 24, "pixel_size_mm": 1.0, "crop_size_px": 32,
        "localiser_iterations": 2, "early_stopping": False, "checkpoint_every": 0}


@pytest.fixture
def study(tmp_path):
    """Three subjects labelled by raters A and B (same phantom, 2 slices each)."""
    root = tmp_path / "study"
    subjects = {"01": [None], "02": [None], "03": [None]}
    _write_study(root, subjects, rater="A", seed=0)
    _write_study(root, subjects, rater="B", seed=0)
    return Study.open(root)


def _run(job):
    steps = []
    try:
        while True:
            steps.append(next(job))
    except StopIteration as stop:
        return steps, stop.value


def test_a_set_of_two_raters_is_written_listed_and_usable(study):
    from score_gui.inference import Ensemble

    steps, made = _run(model_sets.train_model_set(study, "lab1", ["A", "raterB"], folds=2, iterations=4,
                                                  init="none", compare_with="none", **FAST))
    assert made.path == study.root / "derivatives" / "score" / "models" / "lab1"
    progress = [s for s in steps if isinstance(s, Progress)]
    assert progress[-1].done == progress[-1].total
    assert all(a.done <= b.done for a, b in zip(progress, progress[1:]))       # one bar, never backwards
    assert any("raterB: fold 2/2" in s.message for s in progress)
    assert any("loss" in (s.extra or {}) for s in progress)
    # a model folder like resources/models/default: one member per rater and fold
    ensemble = Ensemble.load(made.path)
    assert [m.name for m in ensemble.members] == ["Afold1", "Afold2", "Bfold1", "Bfold2"]
    assert ensemble.localiser is not None
    info = json.loads((made.path / model_sets.SET_FILE).read_text())
    assert info["sources"] == ["raterA", "raterB"] and info["folds"] == 2 and info["init"] is None
    table = pd.read_csv(made.path / model_sets.METRICS_FILE)
    assert set(table["source"]) == {"raterA", "raterB"}
    assert {"cord", "gm", "wm"} <= set(made.metrics)
    assert 0.0 <= made.metrics["cord"]["dice"] <= 1.0
    means = table[(table["slice"] != "mean") & (table["compartment"] == "cord")]["dice"].mean()
    assert made.metrics["cord"]["dice"] == pytest.approx(means, abs=1e-4)
    listed = model_sets.list_model_sets(study)
    assert [s.name for s in listed] == ["lab1"] and listed[0].sources == ["raterA", "raterB"]
    assert listed[0].label().startswith("lab1 (raterA, raterB; GM ")
    assert not any(p.name.startswith(".lab1") for p in made.path.parent.iterdir())   # no staging left


def test_an_interrupted_set_is_invisible_until_resumed_and_then_replaces_the_old_one(study):
    first = drain(model_sets.train_model_set(study, "lab", ["A"], folds=2, iterations=3, init="none",
                                             compare_with="none", **FAST))
    old_members = sorted(p.name for p in first.path.rglob("*.pt"))
    every_step = {**FAST, "checkpoint_every": 1}
    job = model_sets.train_model_set(study, "lab", ["A"], folds=2, iterations=6, init="none",
                                     compare_with="none", seed=5, **every_step)
    for step in job:
        if "fold 2/2" in step.message:   # fold 1 finished, fold 2 under way: cancel
            break
    job.close()
    # readers still see the complete old set; the interrupted run waits to be resumed
    listed = model_sets.list_model_sets(study)
    assert [s.name for s in listed] == ["lab"] and listed[0].info["iterations"] == 3
    assert sorted(p.name for p in listed[0].path.rglob("*.pt")) == old_members
    assert model_sets.interrupted_runs(study) == ["lab"]
    staging = first.path.parent / ".lab.training"
    assert (staging / "fold1" / "modelAfold1.pt").exists()
    state = staging / "fold2" / ".member_state.pt"
    assert state.exists()            # the cancelled network's last checkpoint
    resumed_steps, made = _run(model_sets.train_model_set(study, "lab", ["A"], folds=2, iterations=6,
                                                          init="none", compare_with="none", seed=5,
                                                          resume=True, **every_step))
    assert made.info["iterations"] == 6 and model_sets.interrupted_runs(study) == []
    assert not any("fold 1/2 member" in s.message for s in resumed_steps)   # finished fold kept
    history = list((first.path.parent / ".history").iterdir())
    assert len(history) == 1 and (history[0] / model_sets.SET_FILE).exists()   # the old set, kept


def test_comparison_with_the_set_it_starts_from_and_with_the_default_models(study):
    base = drain(model_sets.train_model_set(study, "base", ["A"], folds=2, iterations=3, init="none",
                                            compare_with="none", **FAST))
    assert model_sets.baseline_for(study, "base") == "base"
    assert model_sets.baseline_for(study, "default") == "default"
    assert model_sets.baseline_for(study, "none") == "default"
    # a study set as the baseline: its own out-of-fold numbers, no segmentation
    stored = drain(model_sets.baseline_metrics(study, "base", ["raterA"]))
    assert stored["metrics"] == base.metrics and "own out-of-fold" in stored["how"]
    # the default models never saw this study: scored on every labelled scan of rater A
    steps, default = _run(model_sets.baseline_metrics(study, "default", ["A"]))
    assert steps and "scoring default on sub-01" in steps[0].message
    assert {"canal", "cord", "gm", "wm"} <= set(default["metrics"])
    assert default["metrics"]["cord"]["dice"] > 0.5, default      # the shipped models find the cord
    rows = model_sets.compare(base.metrics, default["metrics"])
    cord = next(r for r in rows if r["compartment"] == "cord")
    assert cord["difference"] == pytest.approx(cord["dice"] - cord["baseline_dice"], abs=1e-4)


def test_names_and_missing_sources_are_refused_before_anything_is_written(study):
    for bad in ("", "a b", "../x", "default", "x" * 65, "-x"):
        with pytest.raises(ScoreInputError):
            drain(model_sets.train_model_set(study, bad, ["A"], folds=2, iterations=1, **FAST))
    with pytest.raises(ScoreInputError, match="no labels of raterZ"):
        drain(model_sets.train_model_set(study, "ok", ["A", "Z"], folds=2, iterations=1, **FAST))
    with pytest.raises(ScoreInputError, match="at least one rater"):
        drain(model_sets.train_model_set(study, "ok", [], folds=2, iterations=1, **FAST))
    assert not model_sets.models_root(study).exists()


def test_a_folder_without_model_set_json_lists_its_metrics(study, tmp_path):
    folder = model_sets.models_root(study) / "plain"
    folder.mkdir(parents=True)
    (folder / "ensemble.json").write_text(json.dumps({"members": [], "localiser": None}))
    pd.DataFrame({"compartment": ["gm", "gm"], "slice": [0, "mean"], "dice": [0.5, 0.5],
                  "hd95_mm": [1.0, 1.0]}).to_csv(folder / "metrics.csv", index=False)
    (model_sets.models_root(study) / "notes").mkdir()           # not a model folder: not listed
    listed = model_sets.list_model_sets(study)
    assert [s.name for s in listed] == ["plain"] and listed[0].dice() == {"gm": 0.5}
    assert np.isnan(listed[0].comparison()[0]["baseline_dice"])


def test_score_train_name_writes_the_study_set(study, capsys):
    """The command line end to end, with the default architecture started from the default
    models (one iteration: what is checked is where the files go and what is printed)."""
    from score_gui.cli import main

    code = main(["train", str(study.root), "--rater", "A,B", "--name", "cli1", "--folds", "2",
                 "--iterations", "1", "--workers", "0", "--no-early-stopping", "--threads", "1"])
    out = capsys.readouterr()
    assert code == 0, out.err
    made = model_sets.find_model_set(study, "cli1")
    assert made is not None and made.sources == ["raterA", "raterB"]
    assert made.info["init"] == "default" and made.baseline["name"] == "default"
    assert "cord" in out.out and "default" in out.out.splitlines()[0]
    assert str(made.path) in out.err
    # the same set can start the next one, which is then compared with it
    assert model_sets.resolve_start(study, "cli1") == made.path
    assert model_sets.baseline_for(study, "cli1") == "cli1"
    # and it can be retrained on the labels as they are (its raters and folds)
    code = main(["train", str(study.root), "--retrain", "cli1", "--iterations", "1", "--workers", "0",
                 "--no-early-stopping", "--threads", "1"])
    out = capsys.readouterr()
    assert code == 0, out.err
    again = model_sets.find_model_set(study, "cli1")
    assert again.info["retrained_from"]["new_slices"] == {"raterA": 0, "raterB": 0}
    assert again.baseline["name"] == "cli1" and "retrained" in out.err


@pytest.mark.parametrize("argv, problem", [
    (["--rater", "A", "--name", "bad name"], "model set name"),
    (["--rater", "A,B", "-o", "{out}"], "several raters need --name"),
    (["--retrain", "nothing"], "no model set 'nothing'"),
    (["--name", "lab"], "--rater ID is required"),
])
def test_score_train_name_bad_input_exits_2(study, tmp_path, capsys, argv, problem):
    from score_gui.cli import main

    argv = [a.replace("{out}", str(tmp_path / "m")) for a in argv]
    assert main(["train", str(study.root), *argv]) == 2
    assert problem in capsys.readouterr().err
    assert not (tmp_path / "m").exists() and not model_sets.models_root(study).exists()


def test_score_train_takes_either_output_or_name(study, capsys):
    from score_gui.cli import main

    assert main(["train", str(study.root), "--rater", "A"]) == 2
    assert "one of the arguments -o/--output --name --retrain is required" in capsys.readouterr().err
    assert main(["train", str(study.root), "--rater", "A", "-o", "m", "--name", "x"]) == 2
    assert "not allowed with" in capsys.readouterr().err


def test_the_default_members_share_no_weights_and_segment_a_phantom_scan():
    """``resources/models/default``: every member's recorded lineage ends at its own random
    start (no shared base: the vote gains only from independent errors), and the set
    segments a scan it never saw."""
    from score_gui.inference import Ensemble, segment_scan
    from score_gui.metrics import compartment_mask, dice
    from score_gui.phantom.study import make_scan
    from score_gui.progress import drain

    ensemble = Ensemble.load("default")
    starts = set()
    for member in ensemble.members:
        lineage = member.networks[0][1]["training"]["lineage"]
        assert lineage and lineage[-1]["initialised_from"] is None
        starts.add((lineage[-1]["seed"], lineage[-1]["file"]))
    assert len(starts) == len(ensemble.members) == 3
    scan, truth, _ = make_scan("ms", seed=77, n_slices=3)
    labels = drain(segment_scan(scan, ensemble)).consensus
    for name, least in (("cord", 0.95), ("gm", 0.8)):
        assert dice(compartment_mask(labels.dseg, name), compartment_mask(truth.dseg, name)) > least
