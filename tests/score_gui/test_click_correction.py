"""Clicks applied to a LabelEditor: each click one undo step, the session following the
editor through undo and strokes, and the models' probabilities used as the prior."""

from __future__ import annotations

import numpy as np

from score_gui import labels as lab
from score_gui.click_correction import ClickCorrector
from score_gui.editing import LabelEditor
from score_gui.phantom.study import make_scan


def _editor_with_missed_gm():
    scan, truth, _ = make_scan("hc", seed=3, n_slices=2, shape=(96, 96))
    s = 1
    gm = lab.structure_mask(truth.dseg[s], "gm")
    rows, cols = np.nonzero(gm)
    missed = truth.dseg.copy()
    right = cols > np.median(cols)
    missed[s, rows[right], cols[right]] = lab.WM
    editor = LabelEditor(scan.label_shape)
    editor.set_labels(lab.LabelMap(missed, truth.lesion, truth.labelled))
    target = np.argmax(np.where(right, cols, -1))
    return scan, truth, editor, s, (int(rows[target]), int(cols[target]) - 2)


def _gm(editor, s):
    return lab.structure_mask(np.where(editor.overlay[s] == lab.LESION_VALUE, editor.under[s], editor.overlay[s]), "gm")


def test_clicks_are_undo_steps_and_the_session_follows_undo_and_strokes():
    scan, truth, editor, s, (row, col) = _editor_with_missed_gm()
    corrector = ClickCorrector(editor, scan.images, scan.pixel_spacing)
    start = editor.overlay.copy()
    assert corrector.click(s, row, col, True, "gm") is not None
    after_one = editor.overlay.copy()
    assert _gm(editor, s).sum() > lab.structure_mask(start[s], "gm").sum()
    assert np.array_equal(editor.overlay[0], start[0])                # the other slice untouched
    assert editor.provenance[s] == lab.DRAWN and len(corrector.clicks) == 1
    editor.undo()
    assert np.array_equal(editor.overlay, start)
    corrector.click(s, row, col, True, "gm")                            # continues from no click
    assert len(corrector.clicks) == 1 and np.array_equal(editor.overlay, after_one)
    # A brush stroke in between: the next click starts a new session from what is shown.
    key = (slice(s, s + 1), slice(0, 3), slice(0, 3))
    editor.paint(key, np.ones((1, 3, 3), bool), lab.CSF)
    editor.commit()
    corrector.click(s, row, col - 1, True, "gm")
    assert len(corrector.clicks) == 1 and (editor.overlay[s, :3, :3] == lab.CSF).all()


def test_the_models_probabilities_become_the_prior_of_the_slice_clicked():
    scan, truth, editor, s, (row, col) = _editor_with_missed_gm()
    corrector = ClickCorrector(editor, scan.images, scan.pixel_spacing)
    gm_truth = lab.structure_mask(truth.dseg, "gm").astype(np.float32)
    corrector.set_priors({"gm": gm_truth, "cord": np.zeros((1, 2, 2), np.float32)})   # wrong shape: dropped
    assert set(corrector.priors) == {"gm"}
    corrector.click(s, row, col, True, "gm")
    np.testing.assert_array_equal(corrector.session.prior, gm_truth[s])
    with_prior = _gm(editor, s)
    truth_s = gm_truth[s] > 0
    dice = 2 * (with_prior & truth_s).sum() / (with_prior.sum() + truth_s.sum())
    assert dice > 0.9, dice
    corrector.set_priors(None)
    assert corrector.priors == {} and corrector.session is None
