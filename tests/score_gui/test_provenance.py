"""Proposals with provenance: the models' labels copied into a rater's working labels as
``proposed``, edited (``proposed-edited``) or accepted (``proposed-accepted``) per slice,
recorded in the label map's sidecar, and left out of training while unreviewed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from score_gui import labels as lab
from score_gui.editing import LabelEditor
from score_gui.errors import ScoreInputError
from score_gui.labels import (DRAWN, PROPOSED, PROPOSED_ACCEPTED, PROPOSED_EDITED, LabelMap, read_labels,
                              write_labels)
from score_gui.scan import Scan, read_scan, write_scan
from score_gui.study import Study, scan_path


def _disc_labels(n_slices=4, shape=(24, 24), radius=7):
    """A cord (WM) disc with a GM core on every slice."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    r = np.hypot(yy - shape[0] / 2, xx - shape[1] / 2)
    plane = np.where(r < radius + 3, lab.CSF, 0)
    plane = np.where(r < radius, lab.WM, plane)
    plane = np.where(r < radius / 2, lab.GM, plane).astype(np.uint8)
    dseg = np.repeat(plane[None], n_slices, axis=0)
    return LabelMap(dseg, np.zeros_like(dseg), who="score")


@pytest.fixture
def proposal():
    return _disc_labels()


def test_proposal_fills_unlabelled_slices_and_keeps_drawn_ones(proposal):
    editor = LabelEditor(proposal.dseg.shape)
    editor.who = "raterA"
    mine = (slice(1, 2), slice(2, 6), slice(2, 6))
    editor.paint(mine, np.ones((1, 4, 4), bool), lab.WM)
    editor.commit()
    assert editor.provenance == ["", DRAWN, "", ""]

    box = editor.propose(proposal)
    assert box is not None
    assert editor.provenance == [PROPOSED, DRAWN, PROPOSED, PROPOSED]
    assert editor.unreviewed_slices() == [0, 2, 3]
    np.testing.assert_array_equal(editor.overlay[0], proposal.dseg[0])
    assert int((editor.overlay[1] > 0).sum()) == 16          # the rater's slice is untouched
    # proposing again replaces only the unreviewed proposals; with replace_drawn all of them
    assert editor.propose(proposal, slices=[1]) is None
    editor.propose(proposal, slices=[1], replace_drawn=True)
    np.testing.assert_array_equal(editor.overlay[1], proposal.dseg[1])
    assert editor.provenance[1] == PROPOSED

    # undo takes the proposal back, labels and provenance together
    editor.undo()
    assert editor.provenance == [PROPOSED, DRAWN, PROPOSED, PROPOSED]
    assert int((editor.overlay[1] > 0).sum()) == 16
    editor.undo()
    assert editor.provenance == ["", DRAWN, "", ""] and not editor.overlay[0].any()
    editor.redo()
    assert editor.provenance == [PROPOSED, DRAWN, PROPOSED, PROPOSED]


def test_editing_a_proposed_slice_marks_it_edited_and_accept_marks_it_accepted(proposal):
    editor = LabelEditor(proposal.dseg.shape)
    editor.propose(proposal)
    # a brush stroke on slice 0: proposed -> proposed-edited; undo gives "proposed" back
    editor.paint((slice(0, 1), slice(0, 3), slice(0, 3)), np.ones((1, 3, 3), bool), lab.CSF)
    editor.commit()
    assert editor.provenance[0] == PROPOSED_EDITED
    editor.undo()
    assert editor.provenance[0] == PROPOSED
    editor.redo()
    # fill and copy from the neighbour are edits too
    editor.fill(2, (0, 0), lab.CSF)
    assert editor.provenance[2] == PROPOSED_EDITED
    assert editor.accept([0, 1, 3]) == [1, 3]                # slice 0 was edited: stays edited
    assert editor.provenance == [PROPOSED_EDITED, PROPOSED_ACCEPTED, PROPOSED_EDITED, PROPOSED_ACCEPTED]
    editor.copy_from_neighbour(3, -1)
    assert editor.provenance[3] == PROPOSED_EDITED           # accepted, then changed after all
    assert editor.unreviewed_slices() == []
    with pytest.raises(ValueError):
        editor.propose(LabelMap(np.zeros((2, 24, 24), np.uint8)))


def _scan(n_slices=4, shape=(24, 24)):
    rng = np.random.default_rng(0)
    return Scan.from_arrays(rng.normal(100, 10, (n_slices, 8, *shape)).astype(np.float32),
                            pixel_spacing=(0.7, 0.7))


def test_provenance_is_saved_in_the_sidecar_and_read_back(tmp_path, proposal):
    scan = _scan()
    editor = LabelEditor(proposal.dseg.shape)
    editor.who = "raterA"
    editor.propose(proposal, slices=[0, 1, 2])
    editor.paint((slice(1, 2), slice(0, 2), slice(0, 2)), np.ones((1, 2, 2), bool), lab.CSF)
    editor.commit()
    editor.accept([2])
    saved = editor.get_labels()
    assert saved.provenance == [PROPOSED, PROPOSED_EDITED, PROPOSED_ACCEPTED, ""]
    written = write_labels(scan, saved, tmp_path, "raterA")
    side = json.loads((tmp_path / f"{scan.stem}_desc-raterA_dseg.json").read_text())
    assert side["SliceProvenance"] == ["proposed", "proposed-edited", "proposed-accepted", ""]
    assert set(side["LabelledStructures"]) >= {"canal", "cord", "gm"}

    back = read_labels(written["dseg"], scan)
    assert back.provenance == saved.provenance
    assert back.reviewed_slices().tolist() == [False, True, True, False]
    again = LabelEditor(proposal.dseg.shape)
    again.set_labels(back)
    assert again.provenance == [PROPOSED, PROPOSED_EDITED, PROPOSED_ACCEPTED, ""]

    # labels saved as all drawn drop the key from the sidecar (no stale proposals)
    drawn_only = LabelMap(back.dseg, back.lesion, who="raterA", provenance=[DRAWN] * 4)
    write_labels(scan, drawn_only, tmp_path, "raterA")
    side = json.loads((tmp_path / f"{scan.stem}_desc-raterA_dseg.json").read_text())
    assert "SliceProvenance" not in side
    assert read_labels(written["dseg"], scan).slice_provenance() == [DRAWN, DRAWN, DRAWN, ""]


def test_labels_without_proposals_write_no_sidecar(tmp_path, proposal):
    scan = _scan()
    editor = LabelEditor(proposal.dseg.shape)
    editor.set_labels(LabelMap(proposal.dseg, proposal.lesion, who="raterA"))
    write_labels(scan, editor.get_labels(), tmp_path, "raterA")
    assert not (tmp_path / f"{scan.stem}_desc-raterA_dseg.json").exists()   # the old format, unchanged


@pytest.mark.parametrize("value, problem", [
    (["drawn", "drawn"], "lists 2 slices"),
    (["drawn", "guessed", "", ""], "unknown SliceProvenance"),
    ("proposed", "must be a list"),
])
def test_a_bad_slice_provenance_is_bad_input(tmp_path, proposal, value, problem):
    scan = _scan()
    written = write_labels(scan, proposal, tmp_path, "raterA")
    side = tmp_path / f"{scan.stem}_desc-raterA_dseg.json"
    side.write_text(json.dumps({"SliceProvenance": value}))
    with pytest.raises(ScoreInputError, match=problem):
        read_labels(written["dseg"], scan)


def test_training_data_skips_slices_still_proposed(tmp_path, proposal):
    """A rater's map with two unreviewed proposed slices: training reads only the other two,
    and after the rater accepts one of them, three."""
    from score_gui.training.data import load_rater_slices

    root = tmp_path / "study"
    scan = _scan()
    path = scan_path(root, "01")
    path.parent.mkdir(parents=True)
    write_scan(scan, path)
    scan = read_scan(path)
    study = Study.open(root)
    entry = study.scans[0]
    editor = LabelEditor(proposal.dseg.shape)
    editor.who = "raterA"
    editor.propose(proposal)
    editor.paint((slice(0, 1), slice(0, 2), slice(0, 2)), np.ones((1, 2, 2), bool), lab.CSF)
    editor.commit()
    editor.accept([3])
    write_labels(scan, editor.get_labels(), entry.derivatives_dir, "raterA")
    assert [s.slice_index for s in load_rater_slices(study, "A")] == [0, 3]

    labels = read_labels(entry.dseg_path("raterA"), scan)
    editor.set_labels(labels)
    editor.accept([1])
    write_labels(scan, editor.get_labels(), entry.derivatives_dir, "raterA")
    assert [s.slice_index for s in load_rater_slices(Study.open(root), "A")] == [0, 1, 3]

    # only proposals left: no slice to learn, said clearly
    only = LabelEditor(proposal.dseg.shape)
    only.who = "raterA"
    only.propose(proposal)
    write_labels(scan, only.get_labels(), entry.derivatives_dir, "raterA")
    with pytest.raises(ScoreInputError, match="no labelled slice"):
        load_rater_slices(Study.open(root), "A")
