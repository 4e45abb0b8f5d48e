"""The annotation loop in the application: train and over-time modes, proposals marked
until accepted or edited, and the next slice to label from the ranking."""

from __future__ import annotations

import numpy as np
import pytest

from score_gui.inference import make_untrained_ensemble
from score_gui.labels import PROPOSED, PROPOSED_ACCEPTED, PROPOSED_EDITED, read_labels
from score_gui.phantom.study import make_scan

from tests.app.test_main_window import centre_row_cols, paint_stroke

pytestmark = pytest.mark.gui


def test_train_and_over_time_modes_follow_the_study(window, study):
    window.set_mode("train")
    assert window.mode == "train"
    assert window.train_mode.train_panel.study_root == study.root.resolve()
    window.set_mode("longitudinal")
    widget = window.longitudinal_mode.widget
    assert widget.study.root == study.root and widget.subject == window.entry.subject
    window.score_viewer.set_slice(2)
    assert widget.shown_slice() == 2                       # follows the slice on screen
    window.set_mode("annotate")


def test_proposal_marked_until_accepted_or_edited_and_saved_with_provenance(window, study, qtbot):
    sv = window.score_viewer
    window.open_entry(study.scans[1])                      # rater A has not labelled this scan
    assert not sv.get_labels().dseg.any()
    _, truth, _ = make_scan("hc", seed=1, n_slices=window.scan.n_slices, shape=window.scan.shape_hw)
    assert sv.propose(truth)
    assert sv.editor.provenance == [PROPOSED] * window.scan.n_slices and window.rater.dirty
    sv.set_slice(0)                                        # (a slice change autosaves)
    assert sv.proposal_marker.shown
    window.actions_by_name["accept_slice"].trigger()
    assert sv.editor.provenance[0] == PROPOSED_ACCEPTED and not sv.proposal_marker.shown
    sv.set_slice(1)
    assert sv.proposal_marker.shown
    window.set_layout("single")
    row, cols = centre_row_cols(window)
    assert paint_stroke(window, qtbot, 2, row, cols, size=3).any()      # the rater corrects the GM border
    assert sv.editor.provenance[1] == PROPOSED_EDITED and not sv.proposal_marker.shown
    window.save_labels()
    saved = read_labels(study.scans[1].dseg_path("raterA"), window.scan)
    assert saved.provenance[:2] == [PROPOSED_ACCEPTED, PROPOSED_EDITED]
    assert list(saved.reviewed_slices()) == [True, True] + [False] * (window.scan.n_slices - 2)
    sv.undo()                                              # the stroke
    window.set_layout("working")


def test_next_slice_to_label_from_the_ranking(window, study, tmp_path, qtbot):
    mode = window.train_mode
    mode.ranking.models = str(make_untrained_ensemble(tmp_path / "models", n_members=2, tiny=True))
    window.set_mode("train")
    mode.ranking.start()
    qtbot.waitUntil(lambda: mode.ranking.table is not None and not mode.ranking.running, timeout=120_000)
    table = mode.ranking.table
    assert len(table) > 0
    assert {item.text(4) for item in window.browser.scan_items()} >= {"#1"}
    window.actions_by_name["next_to_label"].trigger()
    stem, index = next(iter(mode.ranking.shown))
    assert window.mode == "annotate"
    assert window.entry.stem == stem and window.score_viewer.current_slice == index
    labels = window.score_viewer.get_labels()
    assert not labels.labelled_slices()[index]
    assert np.isin(table["scan"], [e.stem for e in study.scans]).all()
