"""Reading and writing scans: orientation, 3D scans, sidecars and averages."""

from __future__ import annotations

import itertools
import json
import warnings

import nibabel as nib
import numpy as np
import pytest

from score_gui.errors import ScoreInputError
from score_gui.scan import (AMIRA_INVERSION_TIMES, InPlaneOrientation, Scan, ScanWarning, read_scan,
                            write_scan)


def _in_plane_affine(swap: bool, sign0: int, sign1: int, spacing=(0.5, 0.8), thickness=8.0,
                     angle_deg: float = 0.0) -> np.ndarray:
    """An affine whose file axes 0/1 point along +-x / +-y (or swapped), optionally rotated."""
    d0, d1 = spacing
    axis0 = np.array([sign0, 0.0, 0.0]) if not swap else np.array([0.0, sign0, 0.0])
    axis1 = np.array([0.0, sign1, 0.0]) if not swap else np.array([sign1, 0.0, 0.0])
    theta = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, 0] = rot @ axis0 * d0
    affine[:3, 1] = rot @ axis1 * d1
    affine[:3, 2] = [0, 0, thickness]
    affine[:3, 3] = [12.0, -30.0, 5.0]
    return affine


AFFINES = {
    f"swap{int(swap)}_{s0:+d}_{s1:+d}": _in_plane_affine(swap, s0, s1)
    for swap, s0, s1 in itertools.product((False, True), (1, -1), (1, -1))
}
AFFINES["oblique_lps"] = _in_plane_affine(False, -1, -1, angle_deg=12)
AFFINES["oblique_transposed"] = _in_plane_affine(True, 1, -1, angle_deg=-20)


def _world_xy_volume(affine: np.ndarray, shape=(9, 7, 3)) -> np.ndarray:
    """File-grid volume (X, Y, S, 2) holding each voxel's world x and y (RAS mm)."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    return world[..., :2].astype(np.float32)


@pytest.mark.parametrize("name", sorted(AFFINES))
def test_display_is_anterior_up_and_patient_left_on_screen_right(tmp_path, name):
    affine = AFFINES[name]
    data = _world_xy_volume(affine)
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    scan = read_scan(path)
    world_x, world_y = scan.images[0, 0], scan.images[0, 1]
    # Rows run anterior (top) -> posterior: world y (anterior +) falls down each column.
    assert np.all(np.diff(world_y, axis=0) < 0)
    # Columns run patient right -> left: world x (right +) falls along each row.
    assert np.all(np.diff(world_x, axis=1) < 0)
    # Pixel spacing follows the display axes.
    expected_rows = abs(np.diff(world_y, axis=0)).mean()
    spacing = np.array(scan.pixel_spacing)
    assert set(np.round(spacing, 3)) == {0.5, 0.8}
    if "oblique" not in name:
        assert scan.pixel_spacing[0] == pytest.approx(expected_rows, abs=1e-4)
    assert scan.pixel_area_mm2 == pytest.approx(0.4)


@pytest.mark.parametrize("name", sorted(AFFINES))
def test_anterior_left_marker_lands_top_right_and_round_trips(tmp_path, name):
    affine = AFFINES[name]
    world = _world_xy_volume(affine)
    # The voxel furthest anterior (+y) and left (-x) in RAS gets the marker.
    score = world[..., 1] - world[..., 0]
    data = np.zeros(world.shape[:3], np.float32)
    i, j = np.unravel_index(np.argmax(score[..., 0]), score[..., 0].shape)
    data[i, j, :] = 100.0
    path = tmp_path / "marker.nii"
    nib.save(nib.Nifti1Image(data, affine), path)
    scan = read_scan(path)
    h, w = scan.shape_hw
    if "oblique" not in name:  # exact corner only for axis-aligned grids
        assert scan.images[0, 0, 0, w - 1] == 100.0
    row, col = np.unravel_index(np.argmax(scan.images[0, 0]), (h, w))
    assert row < h / 2 and col >= w / 2
    # display -> file is voxel-exact
    display = np.random.default_rng(0).integers(0, 7, scan.label_shape).astype(np.uint8)
    on_file = scan.to_file_grid(display)
    assert on_file.shape == scan.file_shape == data.shape
    np.testing.assert_array_equal(scan.to_display_grid(on_file), display)
    np.testing.assert_array_equal(scan.to_file_grid(scan.images[:, 0]), data)


@pytest.mark.parametrize("name", ["swap0_+1_+1", "swap1_-1_+1", "oblique_transposed"])
def test_write_scan_keeps_file_grid_affine_and_spacing(tmp_path, name):
    affine = AFFINES[name]
    data = np.random.default_rng(1).random((9, 7, 3, 8)).astype(np.float32)
    src = tmp_path / "in.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), src)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScanWarning)
        scan = read_scan(src)
    out = write_scan(scan, tmp_path / "out.nii.gz")
    img = nib.load(out)
    np.testing.assert_array_equal(np.asarray(img.dataobj), data)
    np.testing.assert_allclose(img.affine, affine, atol=1e-5)
    np.testing.assert_allclose(img.header.get_zooms()[:3], nib.load(src).header.get_zooms()[:3], atol=1e-6)
    assert json.loads((tmp_path / "out.json").read_text())["InversionTimes"] == list(AMIRA_INVERSION_TIMES)


def test_orientation_maps_lps_to_transpose():
    orient = InPlaneOrientation.from_affine(np.diag([-0.5, -0.5, 8, 1]))
    assert orient == InPlaneOrientation(rows_axis=1, flip_rows=False, flip_cols=False)
    orient = InPlaneOrientation.from_affine(np.diag([0.5, 0.5, 8, 1]))  # RAS: both flipped
    assert orient == InPlaneOrientation(rows_axis=1, flip_rows=True, flip_cols=True)


def test_3d_scan_is_one_image(tmp_path):
    data = np.arange(4 * 5 * 2, dtype=np.int16).reshape(4, 5, 2)
    nib.save(nib.Nifti1Image(data, np.diag([-0.6, -0.6, 5, 1])), tmp_path / "t2s.nii.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sidecar warning for a single contrast
        scan = read_scan(tmp_path / "t2s.nii.gz")
    assert (scan.n_slices, scan.n_images, scan.shape_hw) == (2, 1, (5, 4))
    assert scan.inversion_times is None and scan.image_titles() == ["image"]
    assert list(scan.averages()) == ["all"]
    np.testing.assert_array_equal(scan.images[:, 0], np.transpose(data, (2, 1, 0)))
    out = write_scan(scan, tmp_path / "copy.nii.gz")
    assert nib.load(out).shape == (4, 5, 2)
    assert not (tmp_path / "copy.json").exists()


def test_trailing_unit_axes_are_squeezed(tmp_path):
    data = np.ones((4, 5, 2, 1, 1), np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "s.nii.gz")
    assert read_scan(tmp_path / "s.nii.gz").images.shape == (2, 1, 5, 4)


def _scan_file(tmp_path, t=8, s=3, sidecar=None, name="sub-07_ses-2_amira"):
    data = np.random.default_rng(2).random((6, 5, s, t)).astype(np.float32)
    path = tmp_path / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([-0.7, -0.7, 8, 1])), path)
    if sidecar is not None:
        (tmp_path / f"{name}.json").write_text(json.dumps(sidecar))
    return path


def test_sidecar_fields_are_read(tmp_path):
    times = [100.0, 150.0, 200.0, 250.0, 300.0, 350.0, 400.0, 450.0]
    path = _scan_file(tmp_path, sidecar={"InversionTimes": times, "VertebralLevels": ["C2", "C3", "C4"],
                                         "SubjectID": "P12", "SessionID": "base"})
    scan = read_scan(path)
    assert scan.inversion_times == times
    assert [scan.level(i) for i in range(4)] == ["C2", "C3", "C4", ""]
    assert (scan.subject, scan.session) == ("P12", "base")
    assert scan.image_titles()[0] == "TI1 100 ms"


def test_subject_and_session_fall_back_to_the_file_name(tmp_path):
    scan = read_scan(_scan_file(tmp_path, sidecar={"InversionTimes": list(AMIRA_INVERSION_TIMES),
                                                   "SubjectID": None}))
    assert (scan.subject, scan.session) == ("07", "2")


def test_missing_sidecar_with_8_images_assumes_amira_times(tmp_path):
    with pytest.warns(ScanWarning, match="AMIRA"):
        scan = read_scan(_scan_file(tmp_path))
    assert scan.inversion_times == list(AMIRA_INVERSION_TIMES)


def test_missing_sidecar_with_other_counts_has_no_times(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scan = read_scan(_scan_file(tmp_path, t=3))
    assert scan.inversion_times is None and scan.image_titles() == ["image 1", "image 2", "image 3"]


@pytest.mark.parametrize("sidecar, problem", [
    ({"InversionTimes": [1.0, 2.0]}, "2 InversionTimes but the scan has 8 volumes"),
    ({"InversionTimes": "97,158"}, "must be a list of numbers"),
    ({"InversionTimes": [97.1, "x", 1, 1, 1, 1, 1, 1]}, "must be a list of numbers"),
    ({"InversionTimes": [-5, 1, 1, 1, 1, 1, 1, 1]}, "must be a list of numbers"),
    ({"VertebralLevels": ["C2"]}, "VertebralLevels has 1 entries but the scan has 3 slices"),
    (["not", "an", "object"], "expected a JSON object"),
])
def test_bad_sidecars_name_the_sidecar(tmp_path, sidecar, problem):
    path = _scan_file(tmp_path, sidecar=sidecar)
    with pytest.raises(ScoreInputError, match=problem) as info:
        read_scan(path)
    assert info.value.path.endswith("sub-07_ses-2_amira.json")


def test_invalid_json_sidecar(tmp_path):
    path = _scan_file(tmp_path)
    (tmp_path / "sub-07_ses-2_amira.json").write_text("{InversionTimes: [1,")
    with pytest.raises(ScoreInputError, match="invalid JSON"):
        read_scan(path)


def test_averages_match_numpy_means():
    images = np.random.default_rng(3).random((2, 8, 4, 4)).astype(np.float32)
    scan = Scan.from_arrays(images)
    averages = scan.averages()
    np.testing.assert_allclose(averages["1-5"], images[:, :5].mean(1), rtol=1e-6)
    np.testing.assert_allclose(averages["6-8"], images[:, 5:].mean(1), rtol=1e-6)
    np.testing.assert_allclose(averages["all"], images.mean(1), rtol=1e-6)
    np.testing.assert_allclose(scan.average([0, 7]), (images[:, 0] + images[:, 7]) / 2, rtol=1e-6)
    np.testing.assert_allclose(scan.average([3]), images[:, 3])
    for bad in ([], [8], [-1]):
        with pytest.raises(ValueError, match="outside"):
            scan.average(bad)


def test_nan_and_inf_are_missing_with_a_warning(tmp_path):
    data = np.ones((4, 5, 2, 8), np.float32)
    data[1, 2, 0, 3] = np.nan
    data[0, 0, 1, 7] = np.inf
    nib.save(nib.Nifti1Image(data, np.diag([-1, -1, 8, 1])), tmp_path / "n.nii.gz")
    with pytest.warns(ScanWarning) as record:
        scan = read_scan(tmp_path / "n.nii.gz")
    assert any("2 NaN/Inf voxels" in str(w.message) for w in record)
    assert np.isfinite(scan.images).all() and scan.missing.sum() == 2
    assert scan.missing[0, 3, 2, 1] and scan.images[0, 3, 2, 1] == 0


def test_scaled_integer_scan_reads_scaled_values(tmp_path):
    img = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    img.header.set_slope_inter(2.0, 10.0)
    nib.save(img, tmp_path / "scaled.nii")
    scan = read_scan(tmp_path / "scaled.nii")
    assert scan.images.max() == pytest.approx(23 * 2 + 10)
