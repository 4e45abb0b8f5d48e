"""The cross-source QC rule end to end (contract section 4), through the ``score`` command.

An image-level fail on one source fails the slice for every source of the scan, a
segmentation-level fail stays with its source, a pass clears an image-level fail; the
export writes image-level fails with source ``*``; ``score areas --qc`` and ``score stats``
give the same answer from the log and from the export.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from score_gui.phantom import make_study
from score_gui.qc.log import COLUMNS, Decision, QCLog, decision_in_force
from score_gui.study import Study

STEM = "sub-hc01_ses-1_amira"
SOURCES = ["raterA", "raterB", "raterC", "truth"]
SCORE = str(Path(sys.executable).with_name("score"))   # the installed console script


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("cross-source"), n_hc=1, n_ms=0, n_slices=4, shape=(80, 80))


def score(*args, ok=True):
    result = subprocess.run([SCORE, *map(str, args)], capture_output=True, text=True, timeout=300)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def qc_set(root, slice_index, status, source, reason="", reviewer="ana"):
    args = ["qc", "set", root, "--scan", STEM, "--slice", slice_index, "--status", status,
            "--source", source, "--reviewer", reviewer]
    return score(*args, *(["--reason", reason] if reason else [])).stdout


def areas(root, qc, out):
    score("areas", "--study", root, "--qc", qc, "-o", out, "--force")
    table = pd.read_csv(out, keep_default_na=False)
    table = table[table["scan"] == STEM]
    return {(row.source, int(row.slice)): (row.qc_status, row.qc_reason) for row in table.itertuples()}


def test_image_fail_counts_for_every_source_segmentation_fail_for_its_own(study, tmp_path):
    root = study.root
    out = qc_set(root, 1, "fail", "raterA", "image_artifact")
    assert "every source" in out
    qc_set(root, 2, "fail", "raterA", "segmentation_error")
    qc_set(root, 3, "pass", "raterB")
    qc_set(root, 3, "fail", "truth", "poor_image_quality", reviewer="ben")   # later: the image fails
    qc_set(root, 0, "fail", "raterC", "posterior_arch_contact")
    out = qc_set(root, 0, "pass", "raterB", reviewer="ben")                 # later pass: image fine after all
    assert "clears the image-level fail (posterior_arch_contact, raterC)" in out

    export = tmp_path / "qc.tsv"
    assert "image-level" in score("qc", "export", root, "-o", export).stdout
    table = pd.read_csv(export, sep="\t", dtype=str, keep_default_na=False)
    assert list(table.columns) == COLUMNS
    rows = {(r.source, int(r.slice)): (r.status, r.reason) for r in table.itertuples()}
    assert rows == {("*", 1): ("fail", "image_artifact"), ("raterA", 2): ("fail", "segmentation_error"),
                    ("*", 3): ("fail", "poor_image_quality"), ("raterB", 0): ("pass", "")}

    expected = {}
    for source in SOURCES:
        expected[(source, 0)] = ("pass", "") if source == "raterB" else ("unreviewed", "")
        expected[(source, 1)] = ("fail", "image_artifact")
        expected[(source, 2)] = ("fail", "segmentation_error") if source == "raterA" else ("unreviewed", "")
        expected[(source, 3)] = ("fail", "poor_image_quality")
    from_log = areas(root, root, tmp_path / "from-log.csv")
    from_export = areas(root, export, tmp_path / "from-export.csv")
    assert from_log == expected
    assert from_export == expected            # the export reads back to the same decisions

    # the log kept every decision, unchanged and append-only
    history = QCLog(root).decisions()
    assert len(history) == 6 and set(history["source"]) == {"raterA", "raterB", "raterC", "truth"}
    with sqlite3.connect(QCLog(root).path) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE decisions SET source = '*'")

    # statistics leave the image-failed slices out for every source, the segmentation fail for raterA
    stats = tmp_path / "stats"
    score("stats", root, "--qc", export, "-o", stats)
    table = pd.read_csv(stats / "areas.csv", keep_default_na=False)
    failed = table[(table["scan"] == STEM) & (table["qc_status"] == "fail")]
    assert sorted(zip(failed["source"], failed["slice"])) == sorted(
        [(s, 1) for s in SOURCES] + [(s, 3) for s in SOURCES] + [("raterA", 2)])
    summary = pd.read_csv(stats / "summary.csv").set_index(["source", "compartment"])
    for source in SOURCES:
        rows = table[(table["source"] == source) & (table["qc_status"] != "fail")]
        assert summary.loc[(source, "cord"), "n_slices"] == pd.to_numeric(rows["cord"], errors="coerce").notna().sum()
    assert summary.loc[("raterA", "cord"), "n_slices"] == summary.loc[("raterB", "cord"), "n_slices"] - 1


def test_undo_of_an_image_fail_restores_every_source(tmp_path):
    root = make_study(tmp_path / "s", n_hc=1, n_ms=0, n_slices=2, shape=(64, 64), raters=("A",)).root
    qc_set(root, 0, "fail", "raterA", "segmentation_error")
    qc_set(root, 0, "fail", "truth", "image_artifact", reviewer="ben")
    log = QCLog(root)
    assert log.status_map(STEM, "raterA") == {0: ("fail", "image_artifact")}
    assert "slice 0 is unreviewed again" in score("qc", "undo", root, "--reviewer", "ben").stdout
    assert log.status_map(STEM, "raterA") == {0: ("fail", "segmentation_error")}
    assert log.status_map(STEM, "truth") == {}
    assert log.reviewed_counts("truth") == {} and log.reviewed_counts("raterA") == {STEM: 1}
    assert len(log.decisions()) == 3          # the undo is appended, nothing removed


def test_logs_and_exports_from_before_the_rule_still_read(study, tmp_path):
    # a TSV as the per-source export used to write it: image_artifact on score only,
    # and an empty source (older files: applies to every source)
    old = tmp_path / "old.tsv"
    pd.DataFrame([
        dict(subject="hc01", session="1", scan=STEM, slice=1, source="score", status="fail",
             reason="image_artifact", reviewer="x", time="2026-01-01T10:00:00+00:00", comment=""),
        dict(subject="hc01", session="1", scan=STEM, slice=2, source="", status="fail",
             reason="other", reviewer="x", time="2026-01-01T10:00:00+00:00", comment=""),
        dict(subject="hc01", session="1", scan=STEM, slice=3, source="raterA", status="fail",
             reason="lesion_misclassified", reviewer="x", time="2026-01-01T10:00:00+00:00", comment=""),
    ]).to_csv(old, sep="\t", index=False)
    got = areas(study.root, old, tmp_path / "old.csv")
    assert got[("raterB", 1)] == ("fail", "image_artifact")
    assert got[("raterB", 2)] == ("fail", "other")
    assert got[("raterA", 3)] == ("fail", "lesion_misclassified")
    assert got[("raterB", 3)] == ("unreviewed", "")


def test_a_pass_on_one_source_leaves_the_others_own_fails():
    rows = [dict(source="raterA", status="fail", reason="segmentation_error"),
            dict(source="raterB", status="fail", reason="image_artifact"),
            dict(source="raterC", status="pass", reason="")]
    assert decision_in_force(rows, "raterA")["reason"] == "segmentation_error"
    assert decision_in_force(rows, "raterB") is None        # its only decision was about the image
    assert decision_in_force(rows, "raterC")["status"] == "pass"
    rows.append(dict(source="*", status="fail", reason="image_artifact"))
    assert all(decision_in_force(rows, s)["reason"] == "image_artifact" for s in ("raterA", "x"))


def test_a_decision_on_star_applies_to_every_source_and_undoes(tmp_path):
    log = QCLog(tmp_path)
    log.record(Decision("hc01", "1", STEM, 0, "*", "pass", "", "cy"))
    log.record(Decision("hc01", "1", STEM, 1, "*", "fail", "poor_image_quality", "cy"))
    assert log.status_map(STEM, "anything") == {0: ("pass", ""), 1: ("fail", "poor_image_quality")}
    assert list(log.in_force()["source"]) == ["*", "*"]
    log.undo_last("cy")
    assert log.status_map(STEM, "raterA") == {0: ("pass", "")}


def test_score_demo_study_includes_the_ensemble_result(tmp_path):
    out = score("demo", tmp_path / "demo", "--study", "--slices", "2", "--shape", "96", "96").stdout
    study = Study.open(tmp_path / "demo")
    assert len(study.scans) == 9 and "score" in out
    for entry in study.scans:
        assert entry.label_sources() == ["raterA", "raterB", "raterC", "score", "truth"]
        assert (entry.derivatives_dir / f"{entry.stem}_areas.csv").is_file()   # as score segment writes it
    score("demo", tmp_path / "raters-only", "--study", "--slices", "1", "--shape", "64", "64", "--models", "none")
    assert all("score" not in e.label_sources() for e in Study.open(tmp_path / "raters-only").scans)
    bad = score("demo", tmp_path / "bad", "--study", "--models", tmp_path / "no-models", ok=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.splitlines()) == 1
    assert not any((tmp_path / "bad").glob("sub-*"))                             # nothing half-written
