"""Nothing a user had is lost (contract section 6): outputs never replace inputs or project files,
result sets and model sets are all old or all new, even under SIGKILL at a chosen instant.

Every case runs the real ``score`` command as a subprocess on files made by ``score demo`` and
compares the SHA-256 of every file before and after. Precise kills use the documented
``SCORE_PAUSE_AT`` hook of :mod:`score_gui.filesets` (the writer sleeps at a named point).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from score_gui.inference import models_root

SCORE = [sys.executable, "-m", "score_gui"]
STEM = "sub-ms01_amira"
SET_NAMES = [f"{STEM}_desc-score_dseg.nii.gz", f"{STEM}_desc-score_lesion.nii.gz", f"{STEM}_areas.csv"]


def score(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([*SCORE, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (hidden ones too), by relative path."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def one_error_line(result, *phrases) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr  # progress bars aside
    for phrase in phrases:
        assert str(phrase) in lines[0], lines[0]
    return lines[0]


def start_paused(args, point: str, log: Path, env=None) -> subprocess.Popen:
    """Start ``score`` and return once it sleeps at the pause point ``point``."""
    env = {**os.environ, "SCORE_PAUSE_AT": point, "SCORE_PAUSE_SECONDS": "300", **(env or {})}
    with open(log, "w") as err:
        proc = subprocess.Popen([*SCORE, *map(str, args)], stdout=subprocess.DEVNULL, stderr=err, env=env)
    deadline = time.monotonic() + 240
    while f"paused at {point}" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"never paused at {point} (exit {proc.poll()}): {log.read_text()[-2000:]}")
        time.sleep(0.05)
    return proc


def kill(proc: subprocess.Popen, sig=signal.SIGKILL) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout=60)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Two different demo scans with the same file name, models, and their clean results."""
    root = tmp_path_factory.mktemp("no_data_loss")
    assert score("demo", root / "a", "--seed", "1", "--slices", "2").returncode == 0
    assert score("demo", root / "b", "--seed", "5", "--slices", "2", "--pixel-size", "0.6").returncode == 0
    for file in (root / "b").glob("sub-ms05_amira*"):  # same name as a/, other anatomy and pixels
        file.rename(file.with_name(file.name.replace("sub-ms05", "sub-ms01")))
    models = root / "models"
    shutil.copytree(models_root() / "default", models)  # a fixed copy: results comparable between runs
    for name in ("a", "b"):
        result = score("segment", root / name / f"{STEM}.nii.gz", "-o", root / f"result_{name}", "--models", models)
        assert result.returncode == 0, result.stderr
    sets = {name: {n: hashes(root / f"result_{name}")[n] for n in SET_NAMES} for name in ("a", "b")}
    assert all(sets["a"][n] != sets["b"][n] for n in SET_NAMES)  # old and new are told apart
    return {"root": root, "models": models, "old": sets["a"], "new": sets["b"]}


def old_result(work, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(work["root"] / "result_a", out)
    return out


def set_hashes(out: Path) -> dict[str, str]:
    found = hashes(out)
    return {n: found.get(n) for n in SET_NAMES}


# ---------------------------------------------------------------------------------------
# 1. Outputs that are inputs or project files
# ---------------------------------------------------------------------------------------

def test_evaluate_and_areas_refuse_to_replace_label_maps_and_scans(work, tmp_path):
    folder = tmp_path / "scan"
    shutil.copytree(work["root"] / "a", folder)
    truth = folder / f"{STEM}_desc-truth_dseg.nii.gz"
    rater = folder / f"{STEM}_desc-raterA_dseg.nii.gz"
    shutil.copy(truth, rater)
    before = hashes(folder)
    for args, target, reason in (
            (("evaluate", "--pred", truth, "--truth", truth, "-o", rater), rater, "is a label map"),
            (("evaluate", "--pred", rater, "--truth", truth, "-o", truth), truth, "inputs"),
            (("areas", "--dseg", truth, "-o", truth), truth, "inputs"),
            (("areas", "--dseg", rater, "-o", folder / f"{STEM}.nii.gz"), f"{STEM}.nii.gz", "is a scan"),
            (("areas", "--dseg", rater, "-o", folder / f"{STEM}.json"), f"{STEM}.json", "sidecar")):
        one_error_line(score(*args), target, reason, "--force")
        assert hashes(folder) == before, args
    # Asked for with --force: done, and the label map is kept in .history.
    result = score("evaluate", "--pred", truth, "--truth", truth, "-o", rater, "--force")
    assert result.returncode == 0, result.stderr
    assert "dice" in pd.read_csv(rater).columns  # the metrics table (gzipped, as the name asks)
    kept = list((folder / ".history").iterdir())
    assert [p.name.endswith(rater.name) for p in kept] == [True]
    assert hashlib.sha256(kept[0].read_bytes()).hexdigest() == before[rater.name]


def test_qc_export_refuses_the_qc_log(tmp_path):
    study = tmp_path / "study"
    assert score("demo", study, "--study", "--slices", "1", "--seed", "2").returncode == 0
    result = score("qc", "set", study, "--scan", "sub-hc01_ses-1_amira", "--slice", "0", "--status", "fail",
                   "--reason", "image_artifact", "--reviewer", "ann")
    assert result.returncode == 0, result.stderr
    log = study / "derivatives" / "score" / "qc" / "qc_log.sqlite"
    assert log.is_file()
    before = hashes(log.parent)
    one_error_line(score("qc", "export", study, "-o", log), log, "QC log")
    one_error_line(score("qc", "report", study, "-o", log.with_name("qc_log.sqlite-wal")), "QC log")
    assert hashes(log.parent) == before
    result = score("qc", "export", study, "-o", tmp_path / "qc.tsv")  # the log still works
    assert result.returncode == 0, result.stderr
    assert "image_artifact" in (tmp_path / "qc.tsv").read_text()


# ---------------------------------------------------------------------------------------
# 3., 4. score segment: result sets all old or all new; same names refused
# ---------------------------------------------------------------------------------------

def test_scans_with_the_same_name_are_refused(work, tmp_path):
    scans = []
    for i in range(3):
        folder = tmp_path / f"site{i}"
        folder.mkdir()
        shutil.copy(work["root"] / ("a" if i != 1 else "b") / f"{STEM}.nii.gz", folder)
        scans.append(folder / f"{STEM}.nii.gz")
    out = tmp_path / "out"
    one_error_line(score("segment", *scans, "-o", out, "--models", work["models"]),
                   scans[1], "same name", scans[0])
    assert not out.exists() or hashes(out) == {}


def test_an_old_output_that_cannot_be_replaced_leaves_the_old_set(work, tmp_path):
    out = old_result(work, tmp_path)
    blocker = out / f"{STEM}_desc-score_disagreement.nii.gz"
    blocker.mkdir()  # a folder where the new set writes a file
    (blocker / "keep.txt").write_text("mine")
    before = hashes(out)
    one_error_line(score("segment", work["root"] / "b" / f"{STEM}.nii.gz", "-o", out, "--models",
                         work["models"], "--disagreement"), blocker, "folder")
    assert hashes(out) == before
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("point, expected", [("staged", "old"), ("manifest", "new"), ("moved-old-2", "new"),
                                             ("placed-new-1", "new")])
def test_segment_killed_between_its_writes_is_all_old_or_all_new(work, tmp_path, point, expected):
    out = old_result(work, tmp_path)
    proc = start_paused(["segment", work["root"] / "b" / f"{STEM}.nii.gz", "-o", out, "--models",
                         work["models"]], point, tmp_path / "stderr.txt")
    assert kill(proc) == -signal.SIGKILL
    if point != "staged":
        assert set_hashes(out) != work["old"] or point == "manifest"  # the kill left it mid-way
    # Any reader makes the set whole: here `score areas` on the dseg (or a later segment run).
    reader = score("areas", "--dseg", out / SET_NAMES[0], "-o", tmp_path / "areas.csv")
    assert reader.returncode == 0, reader.stderr
    assert set_hashes(out) == work[expected]
    assert [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".history"] == []
    if expected == "new":  # the whole old set is kept
        kept = {p.name.split("_", 1)[1]: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in (out / ".history").iterdir()}
        assert {n: kept.get(n) for n in SET_NAMES} == work["old"]


def test_sigterm_cleans_up_like_ctrl_c_and_stale_temporaries_go(work, tmp_path):
    out = old_result(work, tmp_path)
    # Left by earlier kills: a temporary of a process that is gone (pid 2**22 + 1 is above
    # Linux's pid_max default) and one of an older version without a pid, an hour old.
    stale = [out / f".{SET_NAMES[0]}.{2 ** 22 + 1}-abcd1234.nii.gz", out / f".{SET_NAMES[2]}.k2j3h4g5.csv"]
    for path in stale:
        path.write_bytes(b"half")
    os.utime(stale[1], (time.time() - 3600, time.time() - 3600))
    mine = out / ".my_notes.txt"
    mine.write_text("not a temporary")
    before = hashes(out)
    proc = start_paused(["segment", work["root"] / "b" / f"{STEM}.nii.gz", "-o", out, "--models",
                         work["models"]], "staged", tmp_path / "stderr.txt")
    assert kill(proc, signal.SIGTERM) == 130
    assert "interrupted" in (tmp_path / "stderr.txt").read_text()
    after = hashes(out)
    assert after == {k: v for k, v in before.items() if k not in {p.name for p in stale}}
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [mine.name]


# ---------------------------------------------------------------------------------------
# 2. score train into an existing model folder
# ---------------------------------------------------------------------------------------

def small_study(folder: Path) -> Path:
    """Two subjects, one slice each: grouped 2-fold training in seconds."""
    assert score("demo", folder, "--study", "--slices", "1", "--seed", "3").returncode == 0
    for subject in ("hc02", "hc03", "ms02", "ms03"):
        shutil.rmtree(folder / f"sub-{subject}")
        shutil.rmtree(folder / "derivatives" / "score" / f"sub-{subject}")
    shutil.rmtree(folder / "sub-hc01" / "ses-2")
    shutil.rmtree(folder / "derivatives" / "score" / "sub-hc01" / "ses-2")
    return folder


def test_train_killed_keeps_the_old_model_set_then_swaps_in_whole(work, tmp_path):
    study = small_study(tmp_path / "study")
    target = tmp_path / "models" / "mine"
    shutil.copytree(work["models"], target)
    old = hashes(target)
    staging = target.parent / ".mine.training"
    args = ["train", study, "--rater", "A", "-o", target, "--folds", "2", "--iterations", "1"]

    # Killed once fold 1 is written (where the issue saw fold1/, ensemble.json replaced).
    with open(tmp_path / "train1.txt", "w") as err:
        proc = subprocess.Popen([*SCORE, *map(str, args)], stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 240
    while not (staging / "fold1" / "ensemble.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "train1.txt").read_text()
        time.sleep(0.02)
    assert kill(proc) == -signal.SIGKILL
    assert hashes(target) == old

    # Resumed, killed between the two renames of the swap: the old set is in .history and
    # the complete new one waits; the next reader (score segment --models) puts it in place.
    proc = start_paused([*args, "--resume"], "model-swap", tmp_path / "train2.txt")
    staged = hashes(staging)
    assert kill(proc) == -signal.SIGKILL
    assert not target.exists()
    history = list((target.parent / ".history").iterdir())
    assert len(history) == 1 and hashes(history[0]) == old
    result = score("segment", study / "sub-ms01" / "anat" / f"{STEM}.nii.gz", "-o", tmp_path / "seg",
                   "--models", target)
    assert result.returncode == 0, result.stderr
    new = hashes(target)
    assert new == {k: v for k, v in staged.items() if k != ".training-complete"}
    assert not staging.exists()
    spec = json.loads((target / "ensemble.json").read_text())
    assert [m["checkpoints"] for m in spec["members"]] == [["fold1/modelAfold1.pt"], ["fold2/modelAfold2.pt"]]
    assert all((target / m["checkpoints"][0]).is_file() for m in spec["members"])


# ---------------------------------------------------------------------------------------
# 5. score dicom --force
# ---------------------------------------------------------------------------------------

def test_dicom_force_keeps_the_old_scan_and_its_sidecar(tmp_path):
    from tests.score_gui.test_dicom import Acquisition

    out = tmp_path / "scan.nii.gz"
    assert score("dicom", Acquisition(n_slices=2).write(tmp_path / "d1"), "-o", out, "--subject", "01").returncode == 0
    other = Acquisition(n_slices=3, seed=4).write(tmp_path / "d2")
    before = hashes(tmp_path)
    old = {name: before[name] for name in ("scan.nii.gz", "scan.json")}
    one_error_line(score("dicom", other, "-o", out, "--subject", "02"), out, "exists")
    assert hashes(tmp_path) == before
    result = score("dicom", other, "-o", out, "--subject", "02", "--force")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "scan.json").read_text())["SubjectID"] == "02"
    kept = {p.name.split("_", 1)[1]: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (tmp_path / ".history").iterdir()}
    assert kept == old
