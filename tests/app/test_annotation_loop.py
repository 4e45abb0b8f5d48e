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


def test_retrain_on_an_accepted_slice_then_propose_again(window, study, qtbot, monkeypatch):
    """The loop's last step in the window: rater A's labels train a set, a proposal accepted
    on a new slice counts as new, Retrain learns it (same folds), and Propose again replaces
    only the slices that are still unreviewed proposals."""
    from qtpy.QtCore import Qt

    from score_gui import retraining
    from score_gui.labels import LabelMap, write_labels
    from score_gui.scan import read_scan
    from tests.plugins.test_train_widget import FAST

    monkeypatch.setattr(retraining, "RETRAIN_ITERATIONS", 2)
    hc, ms = study.scans[0], study.scans[2]                  # two subjects: two folds
    for entry, labelled in ((hc, 4), (ms, 2)):              # rater A drew all of hc, 2 slices of ms
        scan = read_scan(entry.path)
        truth = read_labels(entry.dseg_path("truth"), scan)
        dseg = truth.dseg.copy()
        dseg[labelled:] = 0
        lesion = None if truth.lesion is None else np.where(np.arange(scan.n_slices)[:, None, None] < labelled,
                                                             truth.lesion, 0).astype(np.uint8)
        write_labels(scan, LabelMap(dseg, lesion, truth.labelled), entry.dseg_path("raterA").parent, "raterA")
    mode = window.train_mode
    panel = mode.train_panel
    panel.training_args = {**FAST, "checkpoint_every": 0}
    window.set_mode("train")
    window.open_entry(hc)
    mode.set_study(window.study)
    panel.check_sources(["raterA"])
    panel.folds.setValue(2)
    panel.iterations.setValue(3)
    panel.set_start_model("default")
    panel.name.setText("loop")
    qtbot.mouseClick(panel.train_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not panel.running, timeout=180_000)
    assert panel.result is not None, panel.message_label.text()
    offer = mode.retrain
    assert offer.chosen_set == "loop" and offer.new_slices == {"raterA": []}
    assert "Nothing new" in offer.summary.text() and not offer.propose_button.isEnabled()

    # rater A takes the proposal on ms slices 2 and 3, accepts slice 3 only, saves
    window.open_entry(ms)
    sv = window.score_viewer
    truth = read_labels(ms.dseg_path("truth"), window.scan)
    assert sv.propose(truth)
    assert sv.editor.provenance[2:] == [PROPOSED, PROPOSED]
    sv.set_slice(3)
    window.actions_by_name["accept_slice"].trigger()
    accepted = sv.get_labels().dseg[3].copy()
    qtbot.mouseClick(offer.retrain_button, Qt.LeftButton)   # saves first, then retrains
    assert offer.new_slices == {"raterA": [f"{ms.stem}:3"]} or panel.running
    qtbot.waitUntil(lambda: not panel.running, timeout=180_000)
    again = panel.result
    assert again.name == "loop" and again.info["retrained_from"]["new_slices"] == {"raterA": 1}
    assert f"{ms.stem}:3" in again.info["trained_on"]["raterA"]
    assert offer.new_slices == {"raterA": []} and offer.propose_button.isEnabled()

    # propose again: slice 2 (still proposed) gets the retrained set's labels, 0-1 and 3 stay
    before = sv.get_labels().dseg.copy()
    window.set_mode("train")
    qtbot.mouseClick(offer.propose_button, Qt.LeftButton)
    segment = window.segmentation
    qtbot.waitUntil(lambda: not segment.running and len(segment.results) > 0, timeout=120_000)
    result = segment.results[-1].result.consensus
    after = sv.get_labels()
    assert window.segmentation.ensemble_choice == str(again.path)
    assert np.array_equal(after.dseg[3], accepted) and np.array_equal(after.dseg[:2], before[:2])
    assert np.array_equal(after.dseg[2], result.dseg[2]) and sv.editor.provenance[2] == PROPOSED
    priors = sv.click_tool.corrector.priors                 # clicks now weigh the models' probabilities
    assert set(priors) >= {"cord", "gm"} and priors["gm"].shape == window.scan.label_shape
    assert segment.results[-1].result.probabilities == {}   # not kept per scan of a cohort
    window.rater.save(explicit=True)
    window.set_mode("annotate")
