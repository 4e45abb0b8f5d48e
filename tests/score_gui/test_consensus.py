"""Majority vote per structure: tie rules, nesting, partial labels, unlabelled slices, disagreement."""

from __future__ import annotations

import numpy as np
import pytest

from score_gui.consensus import disagreement_map, majority_vote
from score_gui.labels import LabelMap, validate_labels


def lm(dseg, lesion=None, labelled=("canal", "cord", "gm", "horns", "lesion")):
    dseg = np.asarray(dseg, np.uint8).reshape(1, 1, -1)
    lesion = None if lesion is None else np.asarray(lesion, np.uint8).reshape(1, 1, -1)
    return LabelMap(dseg, lesion, labelled=set(labelled))


def test_odd_count_majority_per_structure_and_nesting():
    maps = [lm([0, 1, 2, 3, 4]), lm([1, 1, 2, 3, 5]), lm([0, 2, 3, 4, 5])]
    result = majority_vote(maps, who="score")
    assert result.dseg[0, 0].tolist() == [0, 1, 2, 3, 5]
    assert result.who == "score" and result.labelled == {"canal", "cord", "gm", "horns"}


def test_even_count_ties_are_out_and_horn_ties_go_to_the_lowest_value():
    two = [lm([1, 2, 4, 5, 6]), lm([0, 1, 5, 6, 4])]
    result = majority_vote(two)
    # canal: px0 1 of 2 -> out; cord: px1 1 of 2 -> out (but canal 2 of 2 -> CSF);
    # px2..4 both GM, horns tie -> lowest value.
    assert result.dseg[0, 0].tolist() == [0, 1, 4, 5, 4]
    four = [lm([3]), lm([4]), lm([4]), lm([3])]
    assert majority_vote(four).dseg.ravel().tolist() == [3]    # 2 vs 2 -> undivided GM (lowest)
    three = [lm([5]), lm([6]), lm([4])]
    assert majority_vote(three).dseg.ravel().tolist() == [4]


def test_inner_structures_stay_inside_outer_votes():
    # Canal: voted by the two full maps, 1 of 2 -> out. Cord: 2 of 3 (the cord-only map
    # votes too) -> in by itself, but it must lie inside the voted canal, so it is out.
    full_in = lm([2, 2], [1, 0])
    full_out = lm([0, 2], [1, 0])
    cord_only = lm([2, 3], labelled=("cord", "gm"))
    result = majority_vote([full_in, full_out, cord_only])
    assert result.dseg[0, 0].tolist() == [0, 2]
    assert result.lesion[0, 0].tolist() == [0, 0]       # lesion voted 2 of 2 at px0, but outside the cord
    assert validate_labels(result.dseg, result.lesion) == []


def test_partial_labels_vote_only_on_what_each_map_labelled():
    full = lm([1, 2, 3, 0], [0, 0, 0, 0])
    cord_gm_only = lm([0, 2, 3, 2], labelled=("cord", "gm"))
    another = lm([1, 2, 4, 0], [0, 1, 0, 0])
    result = majority_vote([full, cord_gm_only, another])
    # canal: voted by 2 maps (full, another): px0 in for both; px3 out for both.
    # cord px3: 1 of 3 -> out. horns: voted by the two full maps at px2: 3 vs 4 tie -> 3.
    assert result.dseg[0, 0].tolist() == [1, 2, 3, 0]
    # lesion: voted by the two maps with lesion labelled; px1 1 of 2 -> out.
    assert result.lesion[0, 0].tolist() == [0, 0, 0, 0]
    only_cord = majority_vote([lm([0, 2], labelled=("cord",)), lm([2, 2], labelled=("cord",))])
    assert only_cord.labelled == {"cord"} and only_cord.lesion is None
    assert only_cord.dseg[0, 0].tolist() == [0, 2]


def test_unlabelled_slices_do_not_vote():
    labelled_slice = np.array([[[1, 2, 3]]], np.uint8)
    empty = np.zeros((1, 1, 3), np.uint8)
    a = LabelMap(np.concatenate([labelled_slice, labelled_slice]), None)
    b = LabelMap(np.concatenate([labelled_slice, empty]), None)  # b did not label slice 1
    c = LabelMap(np.concatenate([empty, empty]), None)
    result = majority_vote([a, b, c])
    # slice 0: a and b vote (c labelled nothing there); slice 1: only a votes.
    assert result.dseg[0, 0].tolist() == [1, 2, 3] and result.dseg[1, 0].tolist() == [1, 2, 3]
    nobody = majority_vote([c, c])
    assert not nobody.dseg.any()
    # Ensemble members: an empty slice is a vote for "nothing here" (1 of 3 -> out).
    members = majority_vote([a, b, c], skip_unlabelled_slices=False)
    assert members.dseg[0, 0].tolist() == [1, 2, 3] and not members.dseg[1].any()


def test_disagreement_counts_members_off_the_vote():
    maps = [lm([0, 2, 2], [0, 0, 0]), lm([0, 2, 2], [0, 0, 1]), lm([1, 3, 2], [0, 0, 0])]
    vote = majority_vote(maps)
    np.testing.assert_allclose(disagreement_map(maps, vote)[0, 0], [1 / 3, 1 / 3, 1 / 3])
    same = [lm([0, 2, 3])] * 3
    assert disagreement_map(same).max() == 0
    assert disagreement_map(maps).dtype == np.float32


def test_shapes_must_match():
    with pytest.raises(ValueError):
        majority_vote([lm([0, 1]), lm([0, 1, 2])])
    with pytest.raises(ValueError):
        majority_vote([])


def test_raters_consensus_of_a_study_scan_is_written_on_its_grid(tmp_path):
    from score_gui.consensus import write_raters_consensus
    from score_gui.labels import read_labels, write_labels
    from score_gui.scan import Scan, read_scan, write_scan
    from score_gui.study import Study

    scan_file = tmp_path / "sub-01" / "anat" / "sub-01_amira.nii.gz"
    scan_file.parent.mkdir(parents=True)
    write_scan(Scan.from_arrays(np.zeros((2, 8, 6, 6), np.float32)), scan_file)
    entry = Study.open(tmp_path).scans[0]
    scan = read_scan(scan_file)
    base = np.zeros((2, 6, 6), np.uint8)
    base[:, 1:5, 1:5] = 1
    base[:, 2:4, 2:4] = 2
    variants = []
    for extra in ((0, 0), (4, 4), (1, 1)):
        dseg = base.copy()
        dseg[0, extra[0], extra[1]] = 3 if extra != (0, 0) else 0
        variants.append(dseg)
    variants[1][0, 2, 2] = 3
    variants[2][0, 2, 2] = 3
    for rater, dseg in zip("ABC", variants):
        write_labels(scan, LabelMap(dseg, None), entry.derivatives_dir, f"rater{rater}")
    written = write_raters_consensus(entry)
    consensus = read_labels(written["dseg"], scan)
    expected = base.copy()
    expected[0, 2, 2] = 3                                   # 2 of 3 raters
    np.testing.assert_array_equal(consensus.dseg, expected)
    assert "consensus" in entry.label_sources()
