"""Study discovery: subjects, sessions, derivatives and label sources."""

from __future__ import annotations

import numpy as np
import pytest

from score_gui.errors import ScoreInputError
from score_gui.labels import LabelMap, write_labels
from score_gui.scan import Scan, write_scan
from score_gui.study import Study, scan_path


@pytest.fixture
def study_root(tmp_path):
    root = tmp_path / "study"
    scan = Scan.from_arrays(np.ones((2, 8, 4, 5), np.float32))
    for subject, session in (("01", None), ("02", "base"), ("02", "fu1")):
        path = write_scan(scan, scan_path(root, subject, session))
        scan.path = path
        entry_dir = root / "derivatives" / "score" / path.parent.relative_to(root)
        for who in ("score", "raterA", "raterB") if session != "fu1" else ("score",):
            write_labels(scan, LabelMap(np.zeros((2, 4, 5), np.uint8)), entry_dir, who)
    # noise that must not count as scans
    (root / "sub-01" / "anat" / ".hidden.nii.gz").write_bytes(b"")
    (root / "sub-01" / "anat" / "notes.txt").write_text("x")
    (root / "README").write_text("x")
    write_labels(scan, LabelMap(np.ones((2, 4, 5), np.uint8)), entry_dir, "score")  # makes .history
    return root


def test_scan_path_layout(tmp_path):
    assert scan_path(tmp_path, "01").relative_to(tmp_path).as_posix() == "sub-01/anat/sub-01_amira.nii.gz"
    assert scan_path(tmp_path, "02", "fu1").relative_to(tmp_path).as_posix() == \
        "sub-02/ses-fu1/anat/sub-02_ses-fu1_amira.nii.gz"


def test_discovery_with_sessions_and_derivatives(study_root):
    study = Study.open(study_root)
    assert [s.stem for s in study.scans] == ["sub-01_amira", "sub-02_ses-base_amira", "sub-02_ses-fu1_amira"]
    assert study.subjects() == ["01", "02"]
    assert study.sessions("02") == ["base", "fu1"] and study.sessions("01") == [None]
    base = study.find("sub-02_ses-base_amira")
    assert base.derivatives_dir == study_root.resolve() / "derivatives/score/sub-02/ses-base/anat"
    assert base.label_sources() == ["raterA", "raterB", "score"]
    assert base.raters() == ["A", "B"]
    assert base.dseg_path("raterA").exists() and not base.lesion_path("raterA").exists()
    fu1 = study.find("sub-02_ses-fu1_amira.nii.gz")
    assert fu1.label_sources() == ["score"] and (fu1.derivatives_dir / ".history").is_dir()
    assert study.qc_dir == study_root.resolve() / "derivatives/score/qc"
    assert study.areas_csv.name == "areas.csv"


def test_missing_study_and_unknown_scan(study_root, tmp_path):
    with pytest.raises(ScoreInputError, match="study folder not found"):
        Study.open(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ScoreInputError, match="not a folder"):
        Study.open(tmp_path / "file")
    with pytest.raises(ScoreInputError, match="no scan named 'sub-09'"):
        Study.open(study_root).find("sub-09")


def test_empty_folder_has_no_scans(tmp_path):
    assert Study.open(tmp_path).scans == []
