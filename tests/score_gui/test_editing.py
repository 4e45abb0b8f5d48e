"""LabelEditor without a viewer: nesting, lesions, fill, strokes, undo/redo, copy, provenance."""

from __future__ import annotations

import numpy as np
import pytest

from score_gui import labels as lab
from score_gui.editing import DRAWN, PROPOSED, LabelEditor, compose_overlay, split_overlay
from score_gui.labels import LESION_VALUE, LabelMap


def _box(s: int, r0: int, r1: int, c0: int, c1: int) -> tuple:
    return (slice(s, s + 1), slice(r0, r1), slice(c0, c1))


def _disc(shape, centre, radius) -> np.ndarray:
    rows, cols = np.ogrid[:shape[0], :shape[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius ** 2


@pytest.fixture
def cord_labels() -> LabelMap:
    """Three slices of 20 x 20: canal disc, cord disc inside it, GM disc inside that; a lesion
    in the WM of slice 1; slice 2 unlabelled."""
    dseg = np.zeros((3, 20, 20), np.uint8)
    for s in (0, 1):
        dseg[s][_disc((20, 20), (10, 10), 8)] = lab.CSF
        dseg[s][_disc((20, 20), (10, 10), 6)] = lab.WM
        dseg[s][_disc((20, 20), (10, 10), 3)] = lab.GM
    lesion = np.zeros_like(dseg)
    lesion[1, 5, 10] = 1
    return LabelMap(dseg=dseg, lesion=lesion, labelled=set(lab.LABELLED_STRUCTURE_KEYS), who="raterA")


@pytest.fixture
def editor(cord_labels) -> LabelEditor:
    editor = LabelEditor(cord_labels.dseg.shape)
    editor.set_labels(cord_labels)
    return editor


def test_labels_round_trip_and_provenance_of_loaded_slices(editor, cord_labels):
    out = editor.get_labels()
    np.testing.assert_array_equal(out.dseg, cord_labels.dseg)
    np.testing.assert_array_equal(out.lesion, cord_labels.lesion)
    assert out.who == "raterA" and out.labelled == cord_labels.labelled
    assert editor.overlay[1, 5, 10] == LESION_VALUE and editor.under[1, 5, 10] == lab.WM
    assert editor.provenance == [DRAWN, DRAWN, ""]
    assert not editor.can_undo
    editor.set_labels(cord_labels, provenance=PROPOSED)
    assert editor.provenance == [PROPOSED, PROPOSED, ""]
    with pytest.raises(ValueError):
        editor.set_labels(LabelMap(np.zeros((2, 20, 20), np.uint8)))
    with pytest.raises(ValueError):
        editor.set_labels(cord_labels, provenance="guessed")


def test_overlay_helpers_invert_each_other(cord_labels):
    overlay, under = compose_overlay(cord_labels.dseg, cord_labels.lesion)
    dseg, lesion = split_overlay(overlay, under)
    np.testing.assert_array_equal(dseg, cord_labels.dseg)
    np.testing.assert_array_equal(lesion, cord_labels.lesion)


def test_nesting_restricts_gray_matter_horns_and_lesions(editor):
    everything = np.ones((1, 20, 20), bool)
    before = editor.overlay.copy()
    cord = lab.structure_mask(before[0], "cord")
    gm = lab.structure_mask(before[0], "gm")
    changed = editor.paint(_box(0, 0, 20, 0, 20), everything, lab.GM)
    assert changed is not None and (editor.overlay[0][changed[0]] == lab.GM).all()
    assert (lab.structure_mask(editor.overlay[0], "gm") == cord).all()   # the cord, not beyond
    editor.commit()
    editor.undo()
    editor.paint(_box(0, 0, 20, 0, 20), everything, lab.ANTERIOR_HORNS)
    assert ((editor.overlay[0] == lab.ANTERIOR_HORNS) == gm).all()
    editor.commit()
    editor.undo()
    editor.paint(_box(0, 0, 20, 0, 20), everything, LESION_VALUE)
    assert ((editor.overlay[0] == LESION_VALUE) == cord).all()
    # the tissue under the new lesions is kept
    np.testing.assert_array_equal(editor.get_labels().dseg[0], before[0])
    editor.commit()
    editor.undo()
    # Outside the canal, gray matter is refused entirely: no change, nothing staged.
    assert editor.paint(_box(0, 0, 2, 0, 2), np.ones((1, 2, 2), bool), lab.GM) is None
    assert not editor.stroke_open
    editor.nesting_aware = False
    editor.paint(_box(0, 0, 2, 0, 2), np.ones((1, 2, 2), bool), lab.GM)
    assert (editor.overlay[0, :2, :2] == lab.GM).all()


def test_lesions_keep_tissue_and_the_lesion_eraser_removes_only_lesions(editor):
    point = _box(1, 5, 6, 10, 11)
    one = np.ones((1, 1, 1), bool)
    editor.paint(point, one, lab.GM)            # tissue painted over a lesion: the class under it
    assert editor.overlay[1, 5, 10] == LESION_VALUE and editor.get_labels().dseg[1, 5, 10] == lab.GM
    editor.paint(point, one, 0, selected=LESION_VALUE)
    assert editor.overlay[1, 5, 10] == lab.GM and not editor.get_labels().lesion.any()
    editor.paint(_box(1, 9, 12, 9, 12), np.ones((1, 3, 3), bool), 0, selected=LESION_VALUE)
    assert (editor.overlay[1, 9:12, 9:12] == lab.GM).all()    # no lesion there: nothing erased
    editor.paint(_box(1, 9, 12, 9, 12), np.ones((1, 3, 3), bool), 0, selected=lab.WM)
    assert not editor.overlay[1, 9:12, 9:12].any() and not editor.under[1, 9:12, 9:12].any()


def test_a_stroke_of_many_pieces_is_one_undo_step(editor):
    start = editor.overlay.copy()
    for col in range(2, 8):
        editor.paint(_box(2, 3, 5, col, col + 2), np.ones((1, 2, 2), bool), lab.CSF)
    assert editor.stroke_open and not editor.can_undo
    assert editor.commit() and not editor.commit()
    assert editor.provenance[2] == DRAWN
    assert (editor.overlay[2, 3:5, 2:9] == lab.CSF).all()
    key = editor.undo()
    np.testing.assert_array_equal(editor.overlay, start)
    assert key == (slice(2, 3), slice(3, 5), slice(2, 9))
    assert editor.provenance[2] == "" and editor.can_redo
    assert editor.redo() == key and (editor.overlay[2, 3:5, 2:9] == lab.CSF).all()
    assert editor.undo() and editor.undo() is None      # nothing before the stroke
    assert editor.labelled >= {"canal"}


def test_undo_across_structures_and_history_limit(editor):
    editor.nesting_aware = False
    editor.history_limit = 3
    values = [lab.CSF, lab.POSTERIOR_HORNS, LESION_VALUE, lab.WM, lab.GRAY_COMMISSURE]
    snapshots = []
    for value in values:
        snapshots.append(editor.overlay.copy())
        editor.paint(_box(2, 0, 4, 0, 4), np.ones((1, 4, 4), bool), value)
        editor.commit()
    for snapshot in reversed(snapshots[-3:]):
        assert editor.undo() is not None
        np.testing.assert_array_equal(editor.overlay, snapshot)
    assert editor.undo() is None                # older steps fell off the history
    editor.redo()
    editor.paint(_box(0, 0, 1, 0, 1), np.ones((1, 1, 1), bool), lab.CSF)
    editor.commit()
    assert not editor.can_redo                  # a new edit drops the redo branch


def test_fill_floods_one_region_of_one_slice(editor):
    key = editor.fill(0, (0, 0), lab.CSF)       # the outside of slice 0 becomes CSF
    assert key is not None and key[0] == slice(0, 1)
    outside_before = editor.get_labels().dseg[1] == 0
    assert (editor.overlay[0][outside_before] == lab.CSF).all()
    assert not (editor.overlay[1] == lab.CSF)[outside_before].any()   # other slices untouched
    editor.undo()
    assert editor.overlay[0, 0, 0] == 0
    assert editor.fill(0, (10, 10), lab.ANTERIOR_HORNS) is not None   # the GM disc, inside GM
    assert (editor.overlay[0][_disc((20, 20), (10, 10), 3)] == lab.ANTERIOR_HORNS).all()
    assert editor.fill(0, (0, 0), lab.GM) is None                       # outside the cord: refused


def test_copy_from_neighbour_clear_and_reset(editor):
    assert editor.copy_from_neighbour(2, -1) == (slice(2, 3), slice(0, 20), slice(0, 20))
    np.testing.assert_array_equal(editor.overlay[2], editor.overlay[1])
    np.testing.assert_array_equal(editor.under[2], editor.under[1])
    assert editor.provenance[2] == DRAWN
    editor.undo()
    assert not editor.overlay[2].any() and editor.provenance[2] == ""
    assert editor.copy_from_neighbour(0, -1) is None and editor.copy_from_neighbour(2, +1) is None
    with pytest.raises(ValueError):
        editor.copy_from_neighbour(1, 2)
    editor.clear()
    assert not editor.overlay.any() and editor.can_undo
    editor.undo()
    assert editor.overlay.any()
    arrays = editor.overlay
    assert not editor.reset(editor.shape) and editor.overlay is arrays and not arrays.any()
    assert editor.reset((2, 8, 8)) and editor.shape == (2, 8, 8) and editor.provenance == ["", ""]
    assert not editor.can_undo and editor.labelled == set()
