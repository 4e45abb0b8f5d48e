"""Label maps: grid and affine checks, values, partial labels, masks, validation and repair."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from score_gui.errors import ScoreInputError
from score_gui.labels import (CSF, GM, GRAY_COMMISSURE, LABELLED_STRUCTURE_KEYS, LESION_VALUE, OUTSIDE,
                              WM, LabelMap, constrain_paint, dseg_from_masks, dseg_tsv_text,
                              empty_labels, masks_from_dseg, read_labels, repair_labels,
                              validate_labels, write_labels)
from score_gui.scan import Scan, read_scan, write_scan


def _nested_slice(h=12, w=14) -> np.ndarray:
    """One slice with canal > cord > GM > horns and commissure, all properly nested."""
    dseg = np.zeros((h, w), np.uint8)
    dseg[1:11, 1:13] = CSF
    dseg[2:10, 2:12] = WM
    dseg[4:8, 4:10] = GM
    dseg[4, 4:6] = 4
    dseg[7, 4:6] = 5
    dseg[5:7, 7] = GRAY_COMMISSURE
    return dseg


@pytest.fixture
def scan(tmp_path):
    images = np.random.default_rng(0).random((3, 8, 12, 14)).astype(np.float32)
    # RAS affine: the file grid is flipped relative to the display, so mistakes show.
    src = Scan.from_arrays(images, pixel_spacing=(0.5, 0.6), affine=np.diag([0.6, 0.5, 8.0, 1.0]))
    return read_scan(write_scan(src, tmp_path / "sub-01_amira.nii.gz"))


def test_write_then_read_is_exact_and_on_the_scan_grid(scan, tmp_path):
    dseg = np.stack([_nested_slice(), np.zeros((12, 14), np.uint8), _nested_slice()])
    lesion = np.zeros_like(dseg)
    lesion[0, 5, 3] = 1
    written = write_labels(scan, LabelMap(dseg, lesion), tmp_path / "out", "raterA")
    assert written["dseg"].name == "sub-01_amira_desc-raterA_dseg.nii.gz"
    assert written["lesion"].name == "sub-01_amira_desc-raterA_lesion.nii.gz"
    img = nib.load(written["dseg"])
    assert img.get_data_dtype() == np.uint8 and img.shape == scan.file_shape
    np.testing.assert_allclose(img.affine, scan.affine)
    assert img.header.get_zooms() == pytest.approx((0.6, 0.5, 8.0))
    # the file voxel under display (row 5, col 3) is the one written there
    np.testing.assert_array_equal(np.asarray(img.dataobj), scan.to_file_grid(dseg))
    back = read_labels(written["dseg"], scan)
    np.testing.assert_array_equal(back.dseg, dseg)
    np.testing.assert_array_equal(back.lesion, lesion)
    assert back.who == "raterA" and back.labelled == set(LABELLED_STRUCTURE_KEYS)
    assert back.labelled_slices().tolist() == [True, False, True]
    assert (tmp_path / "out" / "dseg.tsv").read_text() == dseg_tsv_text()
    assert not (tmp_path / "out" / "sub-01_amira_desc-raterA_dseg.json").exists()


def test_without_lesion_file_lesion_is_not_labelled(scan, tmp_path):
    written = write_labels(scan, LabelMap(empty_labels(scan).dseg), tmp_path, "score")
    labels = read_labels(written["dseg"], scan)
    assert labels.lesion is None and "lesion" not in labels.labelled


def test_partial_labels_round_trip_and_stale_sidecar_is_replaced(scan, tmp_path):
    partial = LabelMap(empty_labels(scan).dseg, labelled={"cord", "gm"})
    written = write_labels(scan, partial, tmp_path, "raterB")
    side = tmp_path / "sub-01_amira_desc-raterB_dseg.json"
    assert json.loads(side.read_text()) == {"LabelledStructures": ["cord", "gm"]}
    assert read_labels(written["dseg"], scan).labelled == {"cord", "gm"}
    # Saving again with everything labelled must not leave "cord, gm" behind.
    write_labels(scan, LabelMap(empty_labels(scan).dseg, empty_labels(scan).lesion), tmp_path, "raterB")
    assert read_labels(written["dseg"], scan).labelled == set(LABELLED_STRUCTURE_KEYS)


@pytest.mark.parametrize("content, problem", [
    ({"LabelledStructures": ["cord", "spleen"]}, "unknown LabelledStructures"),
    ({"LabelledStructures": "cord"}, "must be a list"),
])
def test_bad_label_sidecar(scan, tmp_path, content, problem):
    written = write_labels(scan, empty_labels(scan), tmp_path, "raterC")
    (tmp_path / "sub-01_amira_desc-raterC_dseg.json").write_text(json.dumps(content))
    with pytest.raises(ScoreInputError, match=problem):
        read_labels(written["dseg"], scan)


def _save(path, data, affine):
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_label_map_on_another_grid_is_refused(scan, tmp_path):
    shape = scan.file_shape
    wrong_shape = _save(tmp_path / "a_dseg.nii.gz", np.zeros((shape[0] + 1, *shape[1:]), np.uint8), scan.affine)
    with pytest.raises(ScoreInputError, match="does not match the scan"):
        read_labels(wrong_shape, scan)
    shifted = scan.affine.copy()
    shifted[0, 3] += 2.0
    wrong_affine = _save(tmp_path / "b_dseg.nii.gz", np.zeros(shape, np.uint8), shifted)
    with pytest.raises(ScoreInputError, match="affine differs"):
        read_labels(wrong_affine, scan)


@pytest.mark.parametrize("values, problem", [
    ((9, 2), r"label values \[9\] outside the table 0-6 \(1 voxels, first on slice 2\)"),
    ((-1, 1), r"outside the table"),
    ((2.5, 1), r"non-integer"),
    ((np.nan, 1), r"NaN or Inf"),
])
def test_label_values_outside_the_table(scan, tmp_path, values, problem):
    data = np.zeros(scan.file_shape, np.float32)
    data[0, 0, values[1]] = values[0]
    path = _save(tmp_path / "x_dseg.nii.gz", data, scan.affine)
    with pytest.raises(ScoreInputError, match=problem):
        read_labels(path, scan)


def test_lesion_map_values_must_be_binary(scan, tmp_path):
    dseg = _save(tmp_path / "s_desc-r_dseg.nii.gz", np.zeros(scan.file_shape, np.uint8), scan.affine)
    lesion = np.zeros(scan.file_shape, np.uint8)
    lesion[1, 1, 1] = 2
    _save(tmp_path / "s_desc-r_lesion.nii.gz", lesion, scan.affine)
    with pytest.raises(ScoreInputError, match="0 or 1"):
        read_labels(dseg, scan)


def test_write_refuses_labels_that_could_not_be_read_back(scan, tmp_path):
    with pytest.raises(ScoreInputError, match="do not fit"):
        write_labels(scan, LabelMap(np.zeros((3, 5, 5), np.uint8)), tmp_path, "x")
    bad = empty_labels(scan).dseg
    bad[0, 0, 0] = LESION_VALUE
    with pytest.raises(ScoreInputError, match="outside 0-6"):
        write_labels(scan, LabelMap(bad), tmp_path, "x")
    with pytest.raises(ScoreInputError, match="alphanumeric"):
        write_labels(scan, empty_labels(scan), tmp_path, "rater_A")
    assert list(tmp_path.glob("*.nii.gz")) == [tmp_path / "sub-01_amira.nii.gz"]


def test_masks_and_dseg_convert_both_ways():
    dseg = _nested_slice()
    masks = masks_from_dseg(dseg, lesion=(dseg == 4))
    assert masks["canal"].sum() == (dseg > 0).sum()
    assert masks["cord"].sum() == (dseg >= 2).sum() and masks["gm"].sum() == (dseg >= 3).sum()
    assert masks["lesion"].sum() == 2 and masks["csf"].sum() == (dseg == 1).sum()
    rebuilt = dseg_from_masks(masks["canal"], masks["cord"], masks["gm"], masks["anterior_horns"],
                              masks["posterior_horns"], masks["gray_commissure"])
    np.testing.assert_array_equal(rebuilt, dseg)
    np.testing.assert_array_equal(dseg_from_masks(shape=(2, 2)), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError):
        dseg_from_masks()


def test_validate_reports_each_violation_by_slice():
    good = _nested_slice()
    gm_touching_csf = good.copy()
    gm_touching_csf[4:8, 2:4] = GM  # GM reaches the cord border at column 2
    too_high = good.copy()
    too_high[0, 0] = 9
    stack = np.stack([good, gm_touching_csf, too_high])
    lesion = np.zeros_like(stack)
    lesion[2, 0, 0] = 1  # outside the cord
    found = [str(v) for v in validate_labels(stack, lesion)]
    assert found == ["slice 1: gray matter not enclosed by white matter (4 voxels)",
                     "slice 2: label values above 6 (1 voxels)",
                     "slice 2: lesion outside the cord (1 voxels)"]
    assert validate_labels(good[None]) == []


def test_repair_clears_what_validate_reports():
    dseg = np.stack([_nested_slice()])
    dseg[0, 0, 0] = 8
    lesion = np.zeros_like(dseg)
    lesion[0, 0, 1] = 1
    lesion[0, 5, 5] = 1  # inside the cord: kept
    fixed, fixed_lesion = repair_labels(dseg, lesion)
    assert validate_labels(fixed, fixed_lesion) == []
    assert fixed[0, 0, 0] == OUTSIDE and fixed_lesion.sum() == 1 and fixed_lesion[0, 5, 5] == 1
    assert dseg[0, 0, 0] == 8  # the input is untouched


def test_constrain_paint_follows_nesting():
    dseg = _nested_slice()
    assert constrain_paint(dseg, WM).all() and constrain_paint(dseg, OUTSIDE).all()
    np.testing.assert_array_equal(constrain_paint(dseg, GM), dseg >= 2)
    np.testing.assert_array_equal(constrain_paint(dseg, 4), dseg >= 3)
    np.testing.assert_array_equal(constrain_paint(dseg, LESION_VALUE), dseg >= 2)
    with pytest.raises(ValueError):
        constrain_paint(dseg, 12)


def test_label_header_is_clean_of_the_scans_scaling_and_intent(tmp_path):
    img = nib.Nifti1Image(np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4), np.diag([-1, -1, 8, 1]))
    img.header.set_slope_inter(2.0, 10.0)
    img.header["cal_max"] = 5
    img.header.set_intent("vector")
    nib.save(img, tmp_path / "s.nii.gz")
    scan = read_scan(tmp_path / "s.nii.gz")
    labels = np.random.default_rng(0).integers(0, 7, scan.label_shape).astype(np.uint8)
    written = write_labels(scan, LabelMap(labels), tmp_path, "r")["dseg"]
    header = nib.load(written).header
    assert header.get_slope_inter() == (None, None) and header["cal_max"] == 0
    assert header.get_intent()[0] == "label"
    np.testing.assert_array_equal(read_labels(written, scan).dseg, labels)
