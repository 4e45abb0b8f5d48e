"""DICOM import: synthetic AMIRA series written with pydicom, read back as a 4D NIfTI scan."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import MRImageStorage, ExplicitVRLittleEndian, generate_uid

from score_gui.cli import main
from score_gui.dicom import import_dicom_folder
from score_gui.errors import ScoreInputError
from score_gui.scan import AMIRA_INVERSION_TIMES, read_scan

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # rows toward patient left, columns toward posterior (LPS)


def _oblique(angle_deg: float) -> tuple[float, ...]:
    a = np.deg2rad(angle_deg)
    row = np.array([np.cos(a), np.sin(a), 0.0])
    col = np.array([0.0, np.cos(a / 2), np.sin(a / 2)])
    col -= row * (row @ col)
    col /= np.linalg.norm(col)
    return tuple(row) + tuple(col)


class Acquisition:
    """Ground truth for a synthetic AMIRA acquisition and its DICOM files."""

    def __init__(self, rows=10, cols=12, n_slices=4, times=AMIRA_INVERSION_TIMES, orientation=AXIAL,
                 spacing=(0.7, 0.6), step=8.0, origin=(-20.0, 15.0, 30.0), seed=0):
        rng = np.random.default_rng(seed)
        self.rows, self.cols, self.times = rows, cols, list(times)
        self.orientation = np.array(orientation, float)
        self.spacing, self.step, self.origin = spacing, step, np.array(origin, float)
        self.raw = rng.integers(0, 4000, (n_slices, len(self.times), rows, cols)).astype(np.uint16)
        # A marker at the anterior-left corner (row 0 = anterior, last column = patient left).
        self.raw[:, :, 0, cols - 1] = 4095
        self.slope, self.intercept = 0.5, -10.0
        self.normal = np.cross(self.orientation[:3], self.orientation[3:])

    def position(self, s: int) -> np.ndarray:
        return self.origin + s * self.step * self.normal

    def world_ras(self, r: int, c: int, s: int) -> np.ndarray:
        """RAS position of pixel (row r, column c) of slice s, from the DICOM definition."""
        lps = (self.position(s) + c * self.spacing[1] * self.orientation[:3]
               + r * self.spacing[0] * self.orientation[3:])
        return lps * np.array([-1, -1, 1])

    def expected(self) -> np.ndarray:
        """(X = column, Y = row, S, T) in rescaled float32."""
        values = self.raw.astype(np.float32) * np.float32(self.slope) + np.float32(self.intercept)
        return np.transpose(values, (3, 2, 0, 1))

    def dataset(self, s: int, t: int, series_uid: str, with_ti=True, instance=1) -> Dataset:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.SeriesDescription = "MR", series_uid, "AMIRA"
        ds.PatientID = "secret-id"
        ds.SeriesNumber, ds.InstanceNumber = 1, instance
        ds.ImagePositionPatient = [f"{v:.4f}" for v in self.position(s)]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in self.orientation]
        ds.PixelSpacing = [f"{v}" for v in self.spacing]
        ds.SliceThickness = "5"
        if with_ti:
            ds.InversionTime = f"{self.times[t]}"
        ds.RescaleSlope, ds.RescaleIntercept = f"{self.slope}", f"{self.intercept}"
        ds.Rows, ds.Columns = self.rows, self.cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = self.raw[s, t].tobytes()
        return ds

    def write(self, folder, series_per_ti=True, with_ti=True, skip=(), seed=1):
        """One file per slice and inversion, shuffled names, one series per TI (as scanners do)."""
        folder.mkdir(parents=True, exist_ok=True)
        uids = [generate_uid() for _ in self.times] if series_per_ti else [generate_uid()] * len(self.times)
        jobs = [(s, t) for s in range(self.raw.shape[0]) for t in range(len(self.times)) if (s, t) not in skip]
        random.Random(seed).shuffle(jobs)
        for n, (s, t) in enumerate(jobs):
            sub = folder / f"series{t if series_per_ti else 0}"
            sub.mkdir(exist_ok=True)
            ds = self.dataset(s, t, uids[t], with_ti=with_ti, instance=t * 100 + s)
            ds.save_as(sub / f"IM{n:05d}", enforce_file_format=True)
        return folder


def _import(tmp_path, acquisition, **write_kwargs):
    folder = acquisition.write(tmp_path / "dicom", **write_kwargs)
    return import_dicom_folder(folder, tmp_path / "out" / "sub-01_amira.nii.gz", subject="01")


def _check_geometry(img, acquisition):
    """NIfTI voxel (c, r, s) sits where DICOM says pixel (r, c) of slice s is."""
    for r, c, s in ((0, 0, 0), (3, 7, 2), (acquisition.rows - 1, acquisition.cols - 1, 1)):
        np.testing.assert_allclose(img.affine @ [c, r, s, 1], [*acquisition.world_ras(r, c, s), 1], atol=1e-3)


def test_axial_series_round_trip(tmp_path):
    acq = Acquisition()
    folder = acq.write(tmp_path / "dicom")
    (folder / "README.txt").write_text("not dicom")
    (folder / "thumb.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    out = import_dicom_folder(folder, tmp_path / "sub-01_amira.nii.gz", subject="01")
    img = nib.load(out)
    assert img.shape == (12, 10, 4, 8)
    np.testing.assert_array_equal(np.asarray(img.dataobj), acq.expected())
    _check_geometry(img, acq)
    np.testing.assert_allclose(img.header.get_zooms()[:3], (0.6, 0.7, 8.0), atol=1e-5)
    sidecar = json.loads((tmp_path / "sub-01_amira.json").read_text())
    assert sidecar["InversionTimes"] == list(AMIRA_INVERSION_TIMES)
    assert sidecar["SubjectID"] == "01" and len(sidecar["SeriesInstanceUIDs"]) == 8
    assert "secret-id" not in json.dumps(sidecar)
    scan = read_scan(out)
    assert scan.pixel_spacing == pytest.approx((0.7, 0.6))
    # display: anterior up, patient left on screen right: the marker is at the top right
    assert scan.images[0, 0, 0, -1] == pytest.approx(4095 * 0.5 - 10)
    np.testing.assert_array_equal(scan.images[2, 5], acq.raw[2, 5] * np.float32(0.5) - np.float32(10))


def test_oblique_descending_geometry(tmp_path):
    acq = Acquisition(orientation=_oblique(25), step=-6.5, n_slices=3, times=(100.0, 500.0))
    img = nib.load(_import(tmp_path, acq))
    # slices are sorted along the normal: file slice 0 is the acquisition's last position
    expected = acq.expected()[:, :, ::-1]
    np.testing.assert_array_equal(np.asarray(img.dataobj), expected)
    flipped = Acquisition(orientation=_oblique(25), step=6.5, n_slices=3, times=(100.0, 500.0),
                          origin=acq.position(2))
    _check_geometry(img, flipped)


def test_missing_image_names_slice_and_inversion_time(tmp_path):
    acq = Acquisition()
    with pytest.raises(ScoreInputError, match=r"slice 1 \(38 mm\) has 7 of 8 inversion times; "
                                              r"missing TI 466.5 ms"):
        _import(tmp_path, acq, skip={(1, 6)})
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_missing_slice_position_is_uneven_spacing(tmp_path):
    acq = Acquisition(n_slices=5)
    with pytest.raises(ScoreInputError, match="not evenly spaced .* gap after slice 1"):
        _import(tmp_path, acq, skip={(2, t) for t in range(8)})


def test_without_inversion_times_acquisition_order_is_used(tmp_path):
    acq = Acquisition(n_slices=2)
    out = _import(tmp_path, acq, with_ti=False)
    np.testing.assert_array_equal(np.asarray(nib.load(out).dataobj), acq.expected())
    assert "InversionTimes" not in json.loads(out.with_name("sub-01_amira.json").read_text())
    with pytest.warns(UserWarning, match="AMIRA"):
        assert read_scan(out).inversion_times == list(AMIRA_INVERSION_TIMES)


def test_multiframe_files_one_per_slice(tmp_path):
    """Legacy multi-frame: one file per slice position, frames in inversion order."""
    acq = Acquisition(n_slices=3, times=(100.0, 200.0, 300.0))
    folder = tmp_path / "mf"
    folder.mkdir()
    for s in range(3):
        ds = acq.dataset(s, 0, generate_uid(), with_ti=False)
        ds.NumberOfFrames = 3
        ds.PixelData = acq.raw[s].tobytes()
        ds.save_as(folder / f"slice{2 - s}.dcm", enforce_file_format=True)
    img = nib.load(import_dicom_folder(folder, tmp_path / "mf.nii.gz"))
    np.testing.assert_array_equal(np.asarray(img.dataobj), acq.expected())
    _check_geometry(img, acq)


def test_duplicate_and_mixed_scans_are_refused(tmp_path):
    acq = Acquisition(n_slices=2, times=(100.0, 200.0))
    folder = acq.write(tmp_path / "dup")
    acq.write(tmp_path / "dup" / "again", seed=5)
    with pytest.raises(ScoreInputError, match="has two images for TI"):
        import_dicom_folder(folder, tmp_path / "x.nii.gz")
    mixed = acq.write(tmp_path / "mixed")
    Acquisition(n_slices=2, times=(100.0, 200.0), orientation=_oblique(30)).write(mixed / "other")
    with pytest.raises(ScoreInputError, match="orientation differs"):
        import_dicom_folder(mixed, tmp_path / "x.nii.gz")


def test_folders_without_dicom(tmp_path):
    with pytest.raises(ScoreInputError, match="folder not found"):
        import_dicom_folder(tmp_path / "nope", tmp_path / "x.nii.gz")
    not_dicom = tmp_path / "notes.txt"
    not_dicom.write_text("a file that is not DICOM")
    with pytest.raises(ScoreInputError, match=r"no DICOM images found \(1 files looked at\)"):
        import_dicom_folder(not_dicom, tmp_path / "y.nii.gz")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("hello")
    with pytest.raises(ScoreInputError, match=r"no DICOM images found \(1 files looked at\)"):
        import_dicom_folder(tmp_path / "empty", tmp_path / "x.nii.gz")
    with pytest.raises(ScoreInputError, match="must end with .nii.gz"):
        import_dicom_folder(tmp_path / "empty", tmp_path / "x.png")


def test_cli_imports_and_refuses_to_overwrite(tmp_path, capsys):
    acq = Acquisition(n_slices=2)
    folder = acq.write(tmp_path / "dicom")
    out = tmp_path / "scan.nii.gz"
    assert main(["dicom", str(folder), "-o", str(out), "--subject", "07"]) == 0
    assert "2 slices x 8 images of 10x12 pixels" in capsys.readouterr().out
    before = out.read_bytes()
    assert main(["dicom", str(folder), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {out}: exists already; use --force to replace it\n"
    assert out.read_bytes() == before
    assert main(["dicom", str(folder), "-o", str(out), "--force"]) == 0
    assert len(list((tmp_path / ".history").iterdir())) == 2  # the old scan and its sidecar


def test_cli_incomplete_series_is_one_line_exit_2(tmp_path):
    folder = Acquisition(n_slices=2).write(tmp_path / "dicom", skip={(0, 0)})
    result = subprocess.run([sys.executable, "-m", "score_gui", "dicom", str(folder), "-o",
                             str(tmp_path / "o.nii.gz")], capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing TI 97.1 ms" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "o.nii.gz").exists()


def test_enhanced_multiframe_with_functional_groups(tmp_path):
    """Enhanced MR: one file, per-frame positions and inversion times in functional groups."""
    acq = Acquisition(n_slices=3, times=(97.1, 466.5), orientation=_oblique(10))
    ds = acq.dataset(0, 0, generate_uid(), with_ti=False)
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                    "RescaleSlope", "RescaleIntercept"):
        delattr(ds, keyword)
    shared = Dataset()
    orientation, measures, transform = Dataset(), Dataset(), Dataset()
    orientation.ImageOrientationPatient = [f"{v:.6f}" for v in acq.orientation]
    measures.PixelSpacing = [f"{v}" for v in acq.spacing]
    measures.SliceThickness = "8"
    transform.RescaleSlope, transform.RescaleIntercept = f"{acq.slope}", f"{acq.intercept}"
    shared.PlaneOrientationSequence = [orientation]
    shared.PixelMeasuresSequence = [measures]
    shared.PixelValueTransformationSequence = [transform]
    ds.SharedFunctionalGroupsSequence = [shared]
    order = [(s, t) for t in (1, 0) for s in (2, 0, 1)]  # frames in no particular order
    per_frame = []
    for s, t in order:
        group, position, modifier = Dataset(), Dataset(), Dataset()
        position.ImagePositionPatient = [f"{v:.4f}" for v in acq.position(s)]
        modifier.InversionTimes = [acq.times[t]]
        group.PlanePositionSequence = [position]
        group.MRModifierSequence = [modifier]
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.NumberOfFrames = len(order)
    ds.PixelData = np.stack([acq.raw[s, t] for s, t in order]).tobytes()
    folder = tmp_path / "enhanced"
    folder.mkdir()
    ds.save_as(folder / "multiframe.dcm", enforce_file_format=True)
    out = import_dicom_folder(folder / "multiframe.dcm", tmp_path / "e.nii.gz")  # a file works too
    img = nib.load(out)
    np.testing.assert_array_equal(np.asarray(img.dataobj), acq.expected())
    _check_geometry(img, acq)
    assert json.loads((tmp_path / "e.json").read_text())["InversionTimes"] == [97.1, 466.5]
