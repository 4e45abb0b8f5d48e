"""Atomic writes: the target is the old version or the complete new one, never half."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest

from score_gui.atomic import HISTORY_DIR, atomic_path, ensure_writable_dir, write_text_atomic
from score_gui.errors import ScoreInputError
from score_gui.labels import LabelMap, write_labels
from score_gui.scan import Scan, write_scan


def test_previous_version_is_kept_in_history(tmp_path):
    target = tmp_path / "notes.txt"
    write_text_atomic(target, "first", keep_previous=True)
    assert not (tmp_path / HISTORY_DIR).exists()  # nothing to keep yet
    write_text_atomic(target, "second", keep_previous=True)
    write_text_atomic(target, "third", keep_previous=True)
    assert target.read_text() == "third"
    kept = sorted((tmp_path / HISTORY_DIR).iterdir())
    assert [p.read_text() for p in kept] == ["first", "second"]
    assert all(p.name.endswith("_notes.txt") for p in kept)


def test_failure_mid_write_leaves_target_and_no_temp_file(tmp_path):
    target = tmp_path / "labels.txt"
    target.write_text("precious")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_path(target, keep_previous=True) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("disk on fire")
    assert target.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.txt"]  # no temp, no backup


def test_label_save_failing_inside_nibabel_keeps_old_labels(tmp_path, monkeypatch):
    scan = Scan.from_arrays(np.ones((2, 8, 4, 5), np.float32))
    scan.path = tmp_path / "s.nii.gz"
    first = write_labels(scan, LabelMap(np.ones((2, 4, 5), np.uint8)), tmp_path, "raterA")["dseg"]
    before = first.read_bytes()

    def broken_save(img, filename):
        with open(filename, "wb") as handle:
            handle.write(b"\x1f\x8b partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nib, "save", broken_save)
    with pytest.raises(OSError, match="No space"):
        write_labels(scan, LabelMap(np.full((2, 4, 5), 2, np.uint8)), tmp_path, "raterA")
    assert first.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".s_")]


def test_write_scan_temp_file_keeps_nifti_suffix(tmp_path, monkeypatch):
    seen = []
    real_save = nib.save
    monkeypatch.setattr(nib, "save", lambda img, name: (seen.append(name), real_save(img, name)))
    write_scan(Scan.from_arrays(np.ones((1, 1, 2, 2))), tmp_path / "sub-1_ses-1.5_x.nii.gz")
    assert seen[0].endswith(".nii.gz") and os.path.basename(seen[0]).startswith(".")


def test_unwritable_places_are_input_errors(tmp_path):
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    with pytest.raises(ScoreInputError, match=f"cannot create folder: {a_file} is a file"):
        write_text_atomic(a_file / "out" / "x.txt", "y")
    with pytest.raises(ScoreInputError, match="is a folder"):
        write_text_atomic(tmp_path, "y")
    assert ensure_writable_dir(tmp_path / "new" / "deep").is_dir()


def test_two_backups_in_the_same_instant_do_not_collide(tmp_path, monkeypatch):
    import score_gui.atomic as atomic

    class Frozen:
        @staticmethod
        def now():
            from datetime import datetime
            return datetime(2026, 1, 1)

    monkeypatch.setattr(atomic, "datetime", Frozen)
    target = tmp_path / "a.txt"
    for text in ("1", "2", "3"):
        write_text_atomic(target, text, keep_previous=True)
    assert sorted(p.read_text() for p in (tmp_path / HISTORY_DIR).iterdir()) == ["1", "2"]


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    from score_gui.atomic import write_text_atomic

    old = os.umask(0o022)
    try:
        out = write_text_atomic(tmp_path / "report.html", "<html></html>")
    finally:
        os.umask(old)
    assert oct(out.stat().st_mode & 0o777) == oct(0o644)
