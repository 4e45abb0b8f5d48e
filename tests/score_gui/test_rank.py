"""Ranking a rater's unlabelled slices (score_gui.rank, ``score rank``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from score_gui.cli import main
from score_gui.inference import make_untrained_ensemble
from score_gui.labels import LabelMap, read_labels, write_labels
from score_gui.phantom import make_study
from score_gui.rank import COLUMNS, slice_uncertainty
from score_gui.scan import read_scan


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Three scans labelled by rater A: one complete, one with slice 1 cleared, one with no labels."""
    root = tmp_path_factory.mktemp("rank") / "study"
    study = make_study(root, n_hc=1, n_ms=1, n_slices=2, raters=("A",), shape=(64, 64))
    by_stem = {entry.stem: entry for entry in study.scans}
    partly = by_stem["sub-hc01_ses-1_amira"]
    scan = read_scan(partly.path)
    labels = read_labels(partly.dseg_path("raterA"), scan)
    labels.dseg[1] = 0
    labels.lesion[1] = 0
    write_labels(scan, LabelMap(labels.dseg, labels.lesion), partly.derivatives_dir, "raterA", keep_previous=False)
    unlabelled = by_stem["sub-ms01_amira"]
    unlabelled.dseg_path("raterA").unlink()
    unlabelled.lesion_path("raterA").unlink()
    models = make_untrained_ensemble(tmp_path_factory.mktemp("models"), n_members=3, tiny=True)
    return root, models


def test_score_rank_lists_only_unlabelled_slices_by_score(study, tmp_path, capsys):
    root, models = study
    out = tmp_path / "ranking.tsv"
    assert main(["rank", str(root), "--rater", "A", "--models", str(models), "-o", str(out)]) == 0
    assert "3 unlabelled slices in 2 scans" in capsys.readouterr().out
    table = pd.read_csv(out, sep="\t")
    assert list(table.columns) == list(COLUMNS)
    assert set(zip(table["scan"], table["slice"])) == {("sub-hc01_ses-1_amira", 1), ("sub-ms01_amira", 0),
                                                       ("sub-ms01_amira", 1)}
    assert list(table["score"]) == sorted(table["score"], reverse=True)
    assert table["reason"].str.len().gt(0).all()


def test_score_rank_of_a_rater_with_everything_labelled_is_empty(study, tmp_path, capsys):
    root, models = study
    out = tmp_path / "ranking.tsv"
    assert main(["rank", str(root), "--rater", "B", "--models", str(models), "-o", str(out)]) == 0
    assert len(pd.read_csv(out, sep="\t")) == 6  # rater B labelled nothing: every slice
    capsys.readouterr()


@pytest.mark.parametrize("argv, phrase", [
    (["--rater", "A-1"], "must be alphanumeric"),
    (["--rater", "A", "--models", "/no/such/models"], "ensemble"),
])
def test_score_rank_bad_input_exits_2(study, tmp_path, capsys, argv, phrase):
    root, _ = study
    code = main(["rank", str(root), *argv, "-o", str(tmp_path / "r.tsv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error:") and phrase in err[-1], err
    assert not (tmp_path / "r.tsv").exists()


def test_score_rank_missing_study_exits_2(tmp_path, capsys):
    assert main(["rank", str(tmp_path / "nothing"), "--rater", "A", "-o", str(tmp_path / "r.tsv")]) == 2
    assert "study folder not found" in capsys.readouterr().err


def test_more_member_disagreement_on_gm_scores_higher():
    cord = np.zeros((16, 16), np.uint8)
    cord[2:14, 2:14] = 1
    cord[3:13, 3:13] = 2
    cord[6:10, 6:10] = 3
    small, large = cord.copy(), cord.copy()
    small[6:10, 10] = 3
    large[5:11, 5:11] = 3
    none = np.zeros((16, 16), np.float32)
    agree = slice_uncertainty([cord, cord, cord], none)
    some = slice_uncertainty([cord, cord, small], none)
    much = slice_uncertainty([cord, cord, large], none)
    assert agree["score"] == 0 and agree["reason"] == "members agree"
    assert 0 < some["score"] < much["score"]
    assert much["reason"].startswith("members disagree on GM")
