"""Bad input (contract section 6): exit code 2, one line naming the file and the problem,
no traceback, nothing the user had is lost."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import warnings

import nibabel as nib
import numpy as np
import pytest

from score_gui.cli import main
from score_gui.errors import ScoreInputError
from score_gui.labels import LabelMap, read_labels, write_labels
from score_gui.scan import AMIRA_INVERSION_TIMES, Scan, ScanWarning, read_scan, write_scan

AFFINE = np.diag([-0.7, -0.7, 8.0, 1.0])


def _nifti_bytes(tmp_path, data, name="good.nii.gz") -> bytes:
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data, AFFINE), path)
    return path.read_bytes()


def _make_bad(tmp_path, kind: str):
    """A bad input file of the given kind and a phrase its error message must contain."""
    path = tmp_path / f"{kind}.nii.gz"
    good = np.random.default_rng(0).integers(0, 7, (16, 16, 3, 8)).astype(np.float32)
    if kind == "missing":
        return path, "file not found"
    if kind == "text":
        path.write_text("subject,area\n01,78.1\n")
        return path, "not a NIfTI file (a text file, not gzip-compressed)"
    if kind == "png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
        return path, "not a NIfTI file (a PNG image)"
    if kind == "empty":
        path.write_bytes(b"")
        return path, "not a NIfTI file (empty file)"
    if kind == "folder":
        path.mkdir()
        return path, "is a folder"
    if kind == "plain_nii_named_gz":
        raw = tmp_path / "raw.nii"
        nib.save(nib.Nifti1Image(good, AFFINE), raw)
        path.write_bytes(raw.read_bytes())
        return path, "not gzip-compressed"
    if kind == "gzip_of_text":
        path.write_bytes(gzip.compress(b"just some text, not a header" * 20))
        return path, "NIfTI"
    blob = _nifti_bytes(tmp_path, good)
    if kind == "truncated":
        path.write_bytes(blob[: len(blob) // 2])
        return path, "truncated or corrupt gzip data"
    if kind == "truncated_header":
        path.write_bytes(gzip.compress(gzip.decompress(blob)[:200]))
        return path, "NIfTI"
    if kind == "corrupt":
        damaged = bytearray(blob)
        for i in range(len(blob) // 3, len(blob) // 3 + 64):
            damaged[i] ^= 0xA5
        path.write_bytes(bytes(damaged))
        return path, "corrupt gzip data"
    if kind == "truncated_raw":
        path = tmp_path / "truncated_raw.nii"
        raw = tmp_path / "raw.nii"
        nib.save(nib.Nifti1Image(good, AFFINE), raw)
        path.write_bytes(raw.read_bytes()[:5000])
        return path, "truncated image data"
    if kind == "2d":
        nib.save(nib.Nifti1Image(good[:, :, 0, 0], AFFINE), path)
        return path, "got 2D"
    if kind == "5d":
        nib.save(nib.Nifti1Image(np.stack([good, good], axis=-1), AFFINE), path)
        return path, "got 5D"
    if kind == "zero_axis":
        nib.save(nib.Nifti1Image(np.zeros((16, 0, 3), np.float32), AFFINE), path)
        return path, "axis 1 has size 0"
    raise AssertionError(kind)


BAD_FILES = ["missing", "text", "png", "empty", "folder", "plain_nii_named_gz", "gzip_of_text",
             "truncated", "truncated_header", "corrupt", "truncated_raw", "2d", "5d", "zero_axis"]


def _one_error_line(err: str, must_name) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and str(must_name) in lines[0]
    return lines[0]


@pytest.mark.parametrize("kind", BAD_FILES)
def test_reader_names_file_and_problem(tmp_path, kind):
    path, phrase = _make_bad(tmp_path, kind)
    with pytest.raises(ScoreInputError) as info:
        read_scan(path)
    assert info.value.path == str(path) and phrase in info.value.problem
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kind", BAD_FILES)
def test_cli_areas_bad_label_file(tmp_path, kind, capsys):
    path, phrase = _make_bad(tmp_path, kind)
    if kind in ("2d", "5d"):  # the label reader says it as a grid or shape mismatch
        phrase = "grid" if kind == "2d" else "shape"
    out = tmp_path / "areas.csv"
    out.write_text("earlier results\n")
    assert main(["areas", "--dseg", str(path), "-o", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err, path)
    assert phrase in line
    assert out.read_text() == "earlier results\n"  # nothing the user had is lost


def test_real_binary_prints_one_line_without_traceback(tmp_path):
    path, _ = _make_bad(tmp_path, "png")
    result = subprocess.run([sys.executable, "-m", "score_gui", "areas", "--dseg", str(path), "-o",
                             str(tmp_path / "a.csv")], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    _one_error_line(result.stderr, path)


def test_nan_and_inf_voxels_warn_and_are_missing(tmp_path):
    data = np.ones((8, 8, 2, 8), np.float32)
    data[2, 3, 1, 4] = np.nan
    data[0, 0, 0, 0] = -np.inf
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, AFFINE), path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scan = read_scan(path)
    messages = [str(w.message) for w in caught if issubclass(w.category, ScanWarning)]
    assert any("2 NaN/Inf voxels treated as missing" in m and str(path) in m for m in messages)
    assert int(scan.missing.sum()) == 2 and np.isfinite(scan.images).all()


@pytest.fixture
def scan_on_disk(tmp_path):
    images = np.random.default_rng(1).random((3, 8, 10, 12)).astype(np.float32)
    return read_scan(write_scan(Scan.from_arrays(images), tmp_path / "sub-01_amira.nii.gz"))


def test_label_map_on_another_grid_through_cli(scan_on_disk, tmp_path, capsys):
    good = write_labels(scan_on_disk, LabelMap(np.ones(scan_on_disk.label_shape, np.uint8)),
                        tmp_path / "a", "raterA")["dseg"]
    other = tmp_path / "b" / "sub-01_amira_desc-raterB_dseg.nii.gz"
    other.parent.mkdir()
    nib.save(nib.Nifti1Image(np.ones((12, 10, 4), np.uint8), AFFINE), other)
    assert main(["evaluate", "--pred", str(other), "--truth", str(good), "-o",
                 str(tmp_path / "m.csv")]) == 2
    _one_error_line(capsys.readouterr().err, "sub-01_amira_desc-raterB_dseg.nii.gz")
    with pytest.raises(ScoreInputError, match="does not match the scan"):
        read_labels(other, scan_on_disk)
    shifted = AFFINE.copy()
    shifted[:3, 3] = [5, 0, 0]
    nib.save(nib.Nifti1Image(np.ones(scan_on_disk.file_shape, np.uint8), shifted), other)
    with pytest.raises(ScoreInputError, match="affine differs"):
        read_labels(other, scan_on_disk)


def test_label_values_outside_the_table_through_cli(scan_on_disk, tmp_path, capsys):
    data = np.zeros(scan_on_disk.file_shape, np.uint8)
    data[3, 4, 2] = 12
    path = tmp_path / "sub-01_amira_desc-raterA_dseg.nii.gz"
    nib.save(nib.Nifti1Image(data, scan_on_disk.affine), path)
    with pytest.raises(ScoreInputError, match=r"label values \[12\] outside the table 0-6"):
        read_labels(path, scan_on_disk)
    assert main(["areas", "--dseg", str(path), "-o", str(tmp_path / "a.csv")]) == 2
    _one_error_line(capsys.readouterr().err, path)


@pytest.mark.parametrize("content, phrase", [
    (json.dumps({"InversionTimes": [97.1, 158.7, 220.2]}), "3 InversionTimes but the scan has 8 volumes"),
    ("{\"InversionTimes\": [97.1, 158.7,", "invalid JSON"),
    ("\xff\xfe garbage", "invalid JSON"),
])
def test_bad_sidecars(scan_on_disk, content, phrase):
    side = scan_on_disk.path.with_name("sub-01_amira.json")
    side.write_text(content, encoding="latin-1")
    with pytest.raises(ScoreInputError, match=phrase) as info:
        read_scan(scan_on_disk.path)
    assert info.value.path == str(side)


def test_sidecar_times_match_volumes(scan_on_disk):
    side = scan_on_disk.path.with_name("sub-01_amira.json")
    side.write_text(json.dumps({"InversionTimes": list(AMIRA_INVERSION_TIMES)}))
    assert read_scan(scan_on_disk.path).inversion_times == list(AMIRA_INVERSION_TIMES)


@pytest.fixture
def blocked_folder(tmp_path):
    """An output folder that cannot be created even by root: its parent is a regular file."""
    a_file = tmp_path / "afile"
    a_file.write_text("keep me")
    return a_file / "out"


def test_unwritable_output_folder_demo(blocked_folder, capsys):
    assert main(["demo", str(blocked_folder), "--slices", "1"]) == 2
    line = _one_error_line(capsys.readouterr().err, blocked_folder)
    assert "is a file" in line
    assert blocked_folder.parent.read_text() == "keep me"


def test_unwritable_output_dicom_and_areas(blocked_folder, scan_on_disk, tmp_path, capsys):
    from tests.score_gui.test_dicom import Acquisition  # the synthetic DICOM writer of the DICOM tests

    folder = Acquisition(n_slices=2, times=(100.0, 200.0)).write(tmp_path / "dicom")
    assert main(["dicom", str(folder), "-o", str(blocked_folder / "s.nii.gz")]) == 2
    _one_error_line(capsys.readouterr().err, blocked_folder)
    dseg = write_labels(scan_on_disk, LabelMap(np.ones(scan_on_disk.label_shape, np.uint8)),
                        tmp_path, "raterA")["dseg"]
    assert main(["areas", "--dseg", str(dseg), "-o", str(blocked_folder / "areas.csv")]) == 2
    _one_error_line(capsys.readouterr().err, blocked_folder)
    assert blocked_folder.parent.read_text() == "keep me"


def test_unwritable_output_for_labels_and_scans(blocked_folder, scan_on_disk):
    with pytest.raises(ScoreInputError, match="is a file"):
        write_labels(scan_on_disk, LabelMap(np.zeros(scan_on_disk.label_shape, np.uint8)), blocked_folder, "x")
    with pytest.raises(ScoreInputError, match="is a file"):
        write_scan(scan_on_disk, blocked_folder / "s.nii.gz")


def test_argparse_problems_are_one_line(capsys):
    assert main(["areas"]) == 2
    assert _one_error_line(capsys.readouterr().err, "score areas").endswith("(see `score areas --help`)")
    assert main(["no-such-command"]) == 2
    _one_error_line(capsys.readouterr().err, "invalid choice: 'no-such-command'")


def test_nibabel_header_fixups_do_not_reach_stderr(tmp_path, capfd):
    path = tmp_path / "fixup.nii"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 2), np.float32), AFFINE), path)
    blob = bytearray(path.read_bytes())
    blob[252:254] = (30000).to_bytes(2, "little")  # qform_code out of range: nibabel "fixes" it
    path.write_bytes(bytes(blob))
    read_scan(path)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("kind", ["missing", "png", "truncated", "corrupt", "2d", "zero_axis"])
def test_cli_segment_bad_scan(tmp_path, kind, capsys):
    path, phrase = _make_bad(tmp_path, kind)
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier_areas.csv").write_text("kept\n")
    assert main(["segment", str(path), "-o", str(out)]) == 2
    assert phrase in _one_error_line(capsys.readouterr().err, path)
    assert [p.name for p in out.iterdir()] == ["earlier_areas.csv"]
    assert (out / "earlier_areas.csv").read_text() == "kept\n"
