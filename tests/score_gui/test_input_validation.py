"""Input validation through the real ``score`` command: each bad input found once, early, as
exit code 2 with one line naming the file (or argument) and the problem, and no file changed.

Every case runs the installed CLI as a subprocess on real files and compares the SHA-256 of
every file under the test folder before and after.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

SCORE = str(Path(sys.executable).with_name("score"))
STEM = "sub-ms03_amira"  # score demo --seed 3


def score(*args, user: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``score ARGS`` (as ``user`` when given) and return the finished process."""
    command = [SCORE, *map(str, args)]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *command]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("SCORE_DEBUG", None)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (links not followed), by relative path."""
    found = {}
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and not path.is_symlink():
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def bad_input(proc: subprocess.CompletedProcess, *must_contain) -> str:
    """Assert exit code 2 with exactly one ``error:`` line holding every phrase; return it."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for phrase in must_contain:
        assert str(phrase) in lines[0], (phrase, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """A demo MS scan with true labels (2 slices): never modified, copied by each test."""
    folder = tmp_path_factory.mktemp("demo") / "demo"
    assert score("demo", folder, "--seed", 3, "--slices", 2).returncode == 0
    return folder


@pytest.fixture(scope="module")
def demo_study(tmp_path_factory) -> Path:
    """A demo study (9 scans of 2 slices, 64x64, raters A-C): never modified, copied by each test."""
    root = tmp_path_factory.mktemp("study") / "study"
    assert score("demo", root, "--study", "--slices", 2, "--shape", 64, 64).returncode == 0
    return root


@pytest.fixture
def work(demo, tmp_path) -> Path:
    """A copy of the demo files to damage."""
    return Path(shutil.copytree(demo, tmp_path / "work"))


def label(folder: Path, kind: str = "dseg") -> Path:
    return folder / f"{STEM}_desc-truth_{kind}.nii.gz"


def set_pixdim(path: Path, index: int, value: float) -> None:
    """Write ``pixdim[index]`` into the header bytes (nibabel would "fix" 0 and negative values)."""
    raw = bytearray(gzip.decompress(path.read_bytes()))
    assert int.from_bytes(raw[:4], "little") == 348  # NIfTI-1, little endian, as the demo writes
    raw[76 + 4 * index:80 + 4 * index] = struct.pack("<f", value)
    path.write_bytes(gzip.compress(bytes(raw)))


def shifted(affine: np.ndarray, mm: float = 5.0) -> np.ndarray:
    """The affine moved ``mm`` along x: the same grid in another place."""
    moved = affine.copy()
    moved[0, 3] += mm
    return moved


def rewrite(path: Path, change) -> None:
    """Rewrite a label file with ``change(data, affine) -> (data, affine)`` applied."""
    img = nib.load(path)
    data, affine = change(np.asanyarray(img.dataobj).copy(), img.affine.copy())
    new = nib.Nifti1Image(data, affine, img.header)
    new.set_data_dtype(data.dtype)
    nib.save(new, path)


# -- 6: pixel size --------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0.0, -0.5, float("nan"), float("inf")])
def test_bad_pixel_size_in_a_label_header_is_bad_input(work, tmp_path, value):
    dseg = label(work)
    set_pixdim(dseg, 1, value)
    before = hashes(tmp_path)
    proc = score("areas", "--dseg", dseg, "-o", work / "areas.csv")
    bad_input(proc, dseg, "invalid pixel size")
    assert hashes(tmp_path) == before  # no areas.csv in "mm²" that are pixel counts


def test_bad_pixel_size_in_a_scan_header_names_the_scan(work, tmp_path, tiny_models):
    from score_gui.errors import ScoreInputError
    from score_gui.scan import read_scan

    scan = work / f"{STEM}.nii.gz"
    for value in (0.0, -0.7, float("inf")):
        set_pixdim(scan, 2, value)
        with pytest.raises(ScoreInputError, match="invalid pixel size") as info:
            read_scan(scan)
        assert info.value.path == str(scan)
    set_pixdim(scan, 2, float("nan"))
    before = hashes(tmp_path)
    proc = score("segment", scan, "-o", tmp_path / "out", "--models", tiny_models)
    bad_input(proc, scan, "invalid pixel size")
    assert hashes(tmp_path) == before


# -- 7: one validation path for label maps -----------------------------------------------------

@pytest.mark.parametrize("damage, phrase", [
    ("value_255", "lesion map values [255] must be 0 or 1"),
    ("shifted_5mm", "lesion affine differs from the label map's"),
])
@pytest.mark.parametrize("given", [False, True])
def test_evaluate_checks_lesion_maps_as_areas_does(demo, work, tmp_path, damage, phrase, given):
    lesion = label(work, "lesion")
    if damage == "value_255":
        rewrite(lesion, lambda d, a: (np.where(d > 0, 255, 0).astype(np.uint8), a))
    else:
        rewrite(lesion, lambda d, a: (d, shifted(a)))
    before = hashes(tmp_path)
    lesion_args = ["--truth-lesion", lesion] if given else []
    proc = score("evaluate", "--pred", label(demo), "--truth", label(work), *lesion_args,
                 "-o", tmp_path / "metrics.csv")
    assert bad_input(proc, lesion, phrase) == bad_input(
        score("areas", "--dseg", label(work), "-o", tmp_path / "areas.csv"), lesion, phrase)
    assert hashes(tmp_path) == before


def test_evaluate_checks_the_scan_grid_as_areas_does(demo, work, tmp_path):
    dseg = label(work)
    for path in (dseg, label(work, "lesion")):  # both moved: only the scan disagrees
        rewrite(path, lambda d, a: (d, shifted(a)))
    before = hashes(tmp_path)
    for proc in (score("evaluate", "--pred", dseg, "--truth", label(demo), "-o", tmp_path / "m.csv"),
                 score("areas", "--dseg", dseg, "-o", tmp_path / "a.csv")):
        bad_input(proc, dseg, f"affine differs from the scan {STEM}.nii.gz")
    assert hashes(tmp_path) == before


# -- 8: a covariate that is not numeric ---------------------------------------------------------

def test_normalise_by_a_non_numeric_covariate_is_bad_input(tmp_path):
    from tests.score_gui.test_stats import build_study

    root = build_study(tmp_path / "study", np.random.default_rng(0))
    cov = tmp_path / "cov.csv"
    pd.DataFrame({"subject": [f"{i:02d}" for i in range(6)],
                  "TIV": ["1400", "1500", "1600 ml", "1450", "", "1650"]}).to_csv(cov, index=False)
    before = hashes(tmp_path)
    proc = score("stats", root, "--covariates", cov, "--normalise-by", "TIV", "-o", tmp_path / "out")
    bad_input(proc, cov, "column 'TIV' must hold numbers; subject 02 has '1600 ml'")
    assert hashes(tmp_path) == before and not (tmp_path / "out").exists()


# -- 9: numbers checked when the command line is parsed -----------------------------------------

@pytest.mark.parametrize("args, phrase", [
    (["train", "{study}", "--rater", "A", "-o", "{out}", "--iterations", "0"],
     "argument --iterations: must be at least 1, not 0"),
    (["train", "{study}", "--rater", "A", "-o", "{out}", "--iterations", "-5"],
     "argument --iterations: must be at least 1, not -5"),
    (["train", "{study}", "--rater", "A", "-o", "{out}", "--folds", "1"],
     "argument --folds: must be at least 2, not 1"),
    (["batch", "{study}", "--workers", "-3"], "argument --workers: must be at least 1, not -3"),
    (["areas", "--study", "{study}", "--workers", "0"], "argument --workers: must be at least 1, not 0"),
    (["demo", "{out}", "--seed", "-1"], "argument --seed: must be at least 0, not -1"),
    (["demo", "{out}", "--pixel-size", "nan"], "argument --pixel-size: 'nan' is not a finite number"),
    (["qc", "set", "{study}", "--scan", STEM, "--slice", "1e3", "--status", "pass", "--reviewer", "a"],
     "argument --slice: '1e3' is not a whole number"),
])
def test_bad_numbers_are_refused_before_any_work(work, tmp_path, args, phrase):
    out = tmp_path / "out"
    args = [a.format(study=work, out=out) for a in args]
    before = hashes(tmp_path)
    line = bad_input(score(*args, timeout=60), phrase)  # batch --workers -3 used to hang
    assert line.endswith(f"(see `score {args[0]}{' set' if args[0] == 'qc' else ''} --help`)")
    assert hashes(tmp_path) == before and not out.exists()


# -- 10: batch inputs checked once, before any work; one rule for bad files -------------------------

@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> Path:
    from score_gui.inference import make_untrained_ensemble

    return make_untrained_ensemble(tmp_path_factory.mktemp("models") / "tiny", n_members=2, tiny=True)


@pytest.fixture(scope="module")
def tiny_batch_study(tmp_path_factory) -> Path:
    return tiny_study(tmp_path_factory.mktemp("batch") / "study")


def tiny_study(root: Path) -> Path:
    """Three 24x24 two-slice scans (the batch tests' study) with raterA labels for each."""
    from score_gui.labels import LabelMap, write_labels
    from score_gui.scan import read_scan
    from score_gui.study import Study
    from tests.score_gui.test_batch import make_study

    make_study(root, broken=False)
    for entry in Study.open(root).scans:
        scan = read_scan(entry.path)
        dseg = np.zeros(scan.label_shape, np.uint8)
        dseg[:, 8:16, 8:16] = 1
        write_labels(scan, LabelMap(dseg, None), entry.derivatives_dir, "raterA")
    return root


@pytest.mark.parametrize("problem", ["device", "checkpoint", "scheduler"])
def test_batch_checks_device_models_and_scheduler_first(tmp_path, tiny_batch_study, tiny_models, problem):
    root = tiny_batch_study
    models = Path(shutil.copytree(tiny_models, tmp_path / "models"))
    args = ["batch", root, "--models", models, "--workers", 1]
    if problem == "device":
        args += ["--device", "tpu"]
        expected = ["unknown device 'tpu'"]
    elif problem == "checkpoint":
        checkpoint = models / "m1_fused.pt"
        checkpoint.write_bytes(checkpoint.read_bytes()[:100])
        expected = [checkpoint, "not a readable model checkpoint"]
    else:
        args += ["--scheduler", "tcp://cluster:port"]
        expected = ["tcp://cluster:port", "not a Dask scheduler address"]
    before = hashes(tmp_path), hashes(root)
    bad_input(score(*args, timeout=60), *expected)  # one line, not one per scan
    assert (hashes(tmp_path), hashes(root)) == before


def test_batch_bad_sidecar_segments_the_rest_and_writes_their_areas(tmp_path, tiny_models):
    from score_gui.study import Study

    root = tiny_study(tmp_path / "study")
    study = Study.open(root)
    bad = study.scans[1]
    sidecar = bad.path.with_name(f"{bad.stem}.json")
    sidecar.write_text('{"InversionTimes": [97.1,')
    inputs = hashes(root)
    proc = score("batch", root, "--models", tiny_models, "--workers", 1, timeout=240)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "segmented 2, skipped 0, failed 1" in proc.stdout
    assert f"failed: {bad.stem}: {sidecar}: invalid JSON" in proc.stderr
    assert f"left out of the areas: {sidecar}" in proc.stderr
    areas = pd.read_csv(study.areas_csv)
    assert sorted(set(areas["scan"])) == sorted(e.stem for e in study.scans if e is not bad)
    assert set(areas["source"]) == {"score", "raterA"}
    after = hashes(root)
    assert {k: v for k, v in after.items() if k in inputs} == inputs  # inputs untouched


# -- 11: messages that said the wrong thing ----------------------------------------------------

def test_dicom_force_onto_a_folder_is_bad_input(tmp_path):
    from tests.score_gui.test_dicom import Acquisition

    folder = Acquisition(n_slices=2, times=(100.0, 200.0)).write(tmp_path / "dicom")
    target = tmp_path / "existing"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    before = hashes(tmp_path)
    bad_input(score("dicom", folder, "-o", target, "--force"), target, "is a folder")
    assert hashes(tmp_path) == before


def test_qc_undo_with_nothing_to_undo_says_so(demo_study, tmp_path):
    study = Path(shutil.copytree(demo_study, tmp_path / "study"))
    before = hashes(tmp_path)
    bad_input(score("qc", "undo", study, "--reviewer", "nobody"), study, "nothing to undo", "'nobody'")
    assert hashes(tmp_path) == before


def test_symlink_loop_and_broken_link_are_named_as_such(work, tmp_path):
    loop = work / "loop_desc-x_dseg.nii.gz"
    loop.symlink_to(loop.name)
    broken = work / "broken_desc-x_dseg.nii.gz"
    broken.symlink_to("gone.nii.gz")
    before = hashes(tmp_path)
    bad_input(score("areas", "--dseg", loop, "-o", tmp_path / "a.csv"), loop, "symbolic link loop")
    bad_input(score("areas", "--dseg", broken, "-o", tmp_path / "a.csv"), broken,
              "broken symbolic link (points to gone.nii.gz")
    assert hashes(tmp_path) == before


def test_negative_label_values_are_named(work, tmp_path):
    dseg = label(work)
    rewrite(dseg, lambda d, a: (np.where(d == 1, -3, d.astype(np.int16)), a))
    before = hashes(tmp_path)
    line = bad_input(score("areas", "--dseg", dseg, "-o", tmp_path / "a.csv"), dseg,
                     "label values [-3] outside the table 0-6")
    assert "max" not in line
    assert hashes(tmp_path) == before


# -- 12: a reviewer who can only read the study ------------------------------------------------

def _read_only_tree(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod((mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
                   & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
                   | (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH if path.is_dir() else 0))


@pytest.fixture
def shared_folder():
    """A folder the unprivileged user ``nobody`` can reach (pytest's tmp_path is root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="score-readonly-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    shutil.rmtree(folder)


def test_read_only_reviewer_can_export_report_and_compute(demo_study, shared_folder):
    study = Path(shutil.copytree(demo_study, shared_folder / "study"))
    for subject in ("hc02", "hc03", "ms02", "ms03"):  # three scans keep the commands quick
        shutil.rmtree(study / f"sub-{subject}")
        shutil.rmtree(study / "derivatives" / "score" / f"sub-{subject}")
    decision = ["--scan", "sub-hc01_ses-1_amira", "--slice", 0, "--status", "fail", "--reason", "other"]
    assert score("qc", "set", study, *decision, "--reviewer", "ana").returncode == 0
    _read_only_tree(study)
    out = shared_folder / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    before = hashes(study)
    probe = score("qc", "set", study, *decision, "--reviewer", "nobody", user="nobody")
    bad_input(probe, "not writable")  # really read-only for this user
    for args in (["qc", "export", study, "-o", out / "qc.tsv"],
                 ["qc", "report", study, "-o", out / "report.html"],
                 ["stats", study, "--source", "truth", "-o", out / "stats"],
                 ["areas", "--study", study, "--qc", study, "-o", out / "areas.csv"]):
        proc = score(*args, user="nobody")
        assert proc.returncode == 0, (args[:2], proc.stderr)
    exported = pd.read_csv(out / "qc.tsv", sep="\t", dtype=str)
    assert exported[["scan", "slice", "status", "reviewer"]].values.tolist() == [
        ["sub-hc01_ses-1_amira", "0", "fail", "ana"]]
    areas = pd.read_csv(out / "areas.csv")
    failed = areas[areas["qc_status"] == "fail"]
    # "other" judges one source's labels (score), not the image: no other source fails with it
    assert failed[["scan", "slice", "source"]].values.tolist() == [["sub-hc01_ses-1_amira", 0, "score"]]
    assert hashes(study) == before
    assert sorted(p.name for p in (study / "derivatives/score/qc").iterdir()) == ["qc_log.sqlite"]
