"""Property-based tests (hypothesis) of the scan and label readers and writers."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from score_gui.errors import ScoreInputError
from score_gui.labels import LabelMap, read_labels, write_labels
from score_gui.scan import Scan, read_scan, write_scan

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def affines(draw):
    """In-plane axes along +-x/+-y (either order) or slightly rotated, any spacing and origin."""
    swap = draw(st.booleans())
    signs = draw(st.tuples(st.sampled_from([-1, 1]), st.sampled_from([-1, 1]), st.sampled_from([-1, 1])))
    spacing = draw(st.tuples(*[st.floats(0.3, 1.5) for _ in range(2)], st.floats(1.0, 10.0)))
    angle = np.deg2rad(draw(st.floats(-30, 30)))
    origin = draw(st.tuples(*[st.floats(-100, 100)] * 3))
    axes = [np.array([1.0, 0, 0]), np.array([0, 1.0, 0])]
    if swap:
        axes.reverse()
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    for i in range(2):
        affine[:3, i] = rot @ axes[i] * signs[i] * spacing[i]
    affine[:3, 2] = [0, 0, signs[2] * spacing[2]]
    affine[:3, 3] = origin
    return affine


@st.composite
def volumes(draw):
    shape = (draw(st.integers(1, 9)), draw(st.integers(1, 9)), draw(st.integers(1, 4)),
             draw(st.sampled_from([1, 2, 8])))
    dtype = draw(st.sampled_from([np.float32, np.int16, np.uint8, np.float64]))
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        elements = st.integers(int(info.min), int(info.max))
    else:
        elements = st.floats(-1e4, 1e4, width=32)
    return draw(arrays(dtype, shape, elements=elements))


@FAST
@given(data=volumes(), affine=affines())
def test_scan_file_round_trip_is_exact(data, affine):
    with tempfile.TemporaryDirectory() as folder:
        src = Path(folder) / "in.nii.gz"
        file_data = data[..., 0] if data.shape[-1] == 1 else data
        nib.save(nib.Nifti1Image(file_data, affine), src)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scan = read_scan(src)
            assert scan.images.shape == (data.shape[2], data.shape[3], *scan.shape_hw)
            out = write_scan(scan, Path(folder) / "out.nii.gz")
            again = read_scan(out)
        img = nib.load(out)
        np.testing.assert_array_equal(np.asarray(img.dataobj), file_data.astype(np.float32))
        np.testing.assert_allclose(img.affine, affine, atol=1e-4)
        np.testing.assert_array_equal(again.images, scan.images)
        assert again.pixel_spacing == scan.pixel_spacing
        np.testing.assert_array_equal(scan.to_file_grid(scan.images[:, 0]), file_data.reshape(data.shape)[..., 0])


@FAST
@given(affine=affines(), shape=st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 4)),
       seed=st.integers(0, 2**16), partial=st.booleans())
def test_label_round_trip_is_exact(affine, shape, seed, partial):
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as folder:
        src = Path(folder) / "scan.nii.gz"
        nib.save(nib.Nifti1Image(rng.random(shape, dtype=np.float32), affine), src)
        scan = read_scan(src)
        dseg = rng.integers(0, 7, scan.label_shape).astype(np.uint8)
        lesion = (rng.random(scan.label_shape) < 0.2).astype(np.uint8)
        labelled = {"cord", "gm"} if partial else {"canal", "cord", "gm", "horns", "lesion"}
        written = write_labels(scan, LabelMap(dseg, lesion, labelled=labelled), folder, "raterA")
        back = read_labels(written["dseg"], scan)
        np.testing.assert_array_equal(back.dseg, dseg)
        np.testing.assert_array_equal(back.lesion, lesion)
        assert back.labelled == labelled
        img = nib.load(written["dseg"])
        assert img.shape == shape and img.get_data_dtype() == np.uint8
        np.testing.assert_allclose(img.affine, affine, atol=1e-4)


@FAST
@given(images=arrays(np.float32, st.tuples(st.integers(1, 3), st.sampled_from([1, 8]), st.integers(1, 7),
                                           st.integers(1, 7)), elements=st.floats(-100, 100, width=32)),
       spacing=st.tuples(st.floats(0.3, 1.0), st.floats(0.3, 1.0)))
def test_arrays_to_file_and_back(images, spacing):
    scan = Scan.from_arrays(images, pixel_spacing=spacing)
    with tempfile.TemporaryDirectory() as folder:
        again = read_scan(write_scan(scan, Path(folder) / "s.nii.gz"))
    np.testing.assert_array_equal(again.images, images)
    np.testing.assert_allclose(again.pixel_spacing, spacing, rtol=1e-6)
    assert again.inversion_times == scan.inversion_times


def _reference_files(folder: Path) -> dict[str, bytes]:
    data = np.random.default_rng(0).random((6, 5, 2, 8)).astype(np.float32)
    files = {}
    for name in ("ref.nii.gz", "ref.nii"):
        nib.save(nib.Nifti1Image(data, np.diag([-0.7, -0.7, 8, 1])), folder / name)
        files[name] = (folder / name).read_bytes()
    return files


REFERENCE = _reference_files(Path(tempfile.mkdtemp()))


def _read_or_input_error(path: Path) -> None:
    """The only acceptable outcomes: a scan, or a ScoreInputError naming the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read_scan(path)
        except ScoreInputError as exc:
            assert exc.path in (str(path), str(path.with_suffix("").with_suffix(".json")))
            assert "\n" not in str(exc)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(REFERENCE)), flips=st.lists(
    st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=6))
def test_random_byte_corruption_is_an_input_error_or_a_scan(name, flips):
    blob = bytearray(REFERENCE[name])
    for where, mask in flips:
        blob[int(where * len(blob))] ^= mask
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(bytes(blob))
        _read_or_input_error(path)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(REFERENCE)), keep=st.floats(0, 1, exclude_max=True))
def test_truncation_is_always_an_input_error(name, keep):
    blob = REFERENCE[name]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(blob[: int(keep * len(blob))])
        try:
            read_scan(path)
        except ScoreInputError as exc:
            assert exc.path == str(path)
        else:
            raise AssertionError(f"a file cut to {keep:.0%} was read without error")


@st.composite
def dicom_geometries(draw):
    """A random orthonormal image plane (any orientation), spacing, slice step and origin."""
    angles = [draw(st.floats(-np.pi, np.pi)) for _ in range(3)]
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rotation = (np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
                @ np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]))
    return dict(orientation=tuple(rotation[:, 0]) + tuple(rotation[:, 1]),
                spacing=(draw(st.floats(0.3, 1.2)), draw(st.floats(0.3, 1.2))),
                step=draw(st.sampled_from([-1, 1])) * draw(st.floats(2.0, 10.0)),
                origin=tuple(draw(st.floats(-50, 50)) for _ in range(3)),
                n_slices=draw(st.integers(2, 4)), times=draw(st.sampled_from([(300.0,), (97.1, 528.0)])),
                rows=draw(st.integers(2, 6)), cols=draw(st.integers(2, 6)))


@settings(max_examples=10, deadline=None)
@given(geometry=dicom_geometries(), seed=st.integers(0, 1000))
def test_dicom_import_places_every_pixel_where_dicom_says(geometry, seed):
    from tests.score_gui.test_dicom import Acquisition  # the synthetic DICOM writer of the DICOM tests

    from score_gui.dicom import import_dicom_folder

    acquisition = Acquisition(seed=seed, **geometry)
    with tempfile.TemporaryDirectory() as folder:
        acquisition.write(Path(folder) / "dicom", seed=seed)
        img = nib.load(import_dicom_folder(Path(folder) / "dicom", Path(folder) / "s.nii.gz"))
        data = np.asarray(img.dataobj)
    ascending = acquisition.step > 0  # the file grid starts at the lowest position along the normal
    expected = acquisition.expected() if ascending else acquisition.expected()[:, :, ::-1]
    np.testing.assert_array_equal(data.reshape(expected.shape), expected)  # T = 1 is written 3D
    n = acquisition.raw.shape[0]
    for r, c, s in ((0, 0, 0), (acquisition.rows - 1, acquisition.cols - 1, n - 1), (1, 0, n // 2)):
        file_slice = s if ascending else n - 1 - s
        np.testing.assert_allclose(img.affine @ [c, r, file_slice, 1], [*acquisition.world_ras(r, c, s), 1],
                                   atol=2e-3)
