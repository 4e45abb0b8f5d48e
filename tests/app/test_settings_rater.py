"""Settings, rater identity, recovery files and the rater session (real files, real Qt timers)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from score_gui.labels import LabelMap, read_labels
from score_gui.scan import read_scan
from score_studio.rater import RaterSession, RecoveryStore, normalize_rater_id
from score_studio.settings import MAX_RECENT, AppSettings, score_home, settings_file


def test_settings_round_trip_and_recent_list(tmp_path):
    settings_file().unlink(missing_ok=True)            # other tests' windows saved theirs
    settings = AppSettings.load()
    assert settings.rater_id == "" and settings.mode == "annotate"
    for i in range(MAX_RECENT + 3):
        settings.add_recent(tmp_path / f"s{i}")
    settings.add_recent(tmp_path / "s5")            # moves to the front, no duplicate
    settings.rater_id = "JD2"
    settings.save()
    again = AppSettings.load()
    assert again.rater_id == "JD2"
    assert again.recent[0] == str(tmp_path / "s5") and len(again.recent) == MAX_RECENT
    assert len(set(again.recent)) == MAX_RECENT
    assert settings_file().parent == score_home()


def test_damaged_settings_give_defaults():
    settings_file().parent.mkdir(parents=True, exist_ok=True)
    settings_file().write_text("{not json")
    assert AppSettings.load() == AppSettings()
    settings_file().write_text(json.dumps({"rater_id": "B", "unknown_key": 1}))
    assert AppSettings.load().rater_id == "B"


@pytest.mark.parametrize("typed, expected", [("A", "A"), (" jd2 ", "jd2"), ("raterC", "C"),
                                              ("a b", None), ("é", None), ("", None), ("A-1", None)])
def test_rater_ids_are_alphanumeric(typed, expected):
    assert normalize_rater_id(typed) == expected


def test_recovery_store_round_trip(tmp_path):
    store = RecoveryStore(tmp_path / "rec")
    dseg = np.zeros((3, 5, 6), np.uint8)
    dseg[1, 2:4, 2:5] = 2
    lesion = np.zeros_like(dseg)
    lesion[1, 2, 2] = 1
    record = store.write(tmp_path / "scan.nii.gz", "raterA", LabelMap(dseg, lesion, {"cord", "lesion"}))
    assert store.find(tmp_path / "scan.nii.gz", "raterA") == record
    assert store.find(tmp_path / "scan.nii.gz", "raterB") is None
    back = store.load(record)
    np.testing.assert_array_equal(back.dseg, dseg)
    np.testing.assert_array_equal(back.lesion, lesion)
    assert back.labelled == {"cord", "lesion"} and back.who == "raterA"
    (tmp_path / "rec" / "junk.npz").write_bytes(b"not a zip")   # damaged files are skipped
    assert [r.who for r in store.pending()] == ["raterA"]
    store.discard(record)
    assert store.find(tmp_path / "scan.nii.gz", "raterA") is None


def test_recovery_keeps_which_slices_are_proposals(tmp_path):
    store = RecoveryStore(tmp_path / "rec")
    dseg = np.zeros((3, 5, 6), np.uint8)
    dseg[:2, 2:4, 2:5] = 2
    provenance = ["proposed", "proposed-edited", ""]
    record = store.write(tmp_path / "scan.nii.gz", "raterA", LabelMap(dseg, None, provenance=provenance))
    back = store.load(record)
    assert back.provenance == provenance
    assert list(back.reviewed_slices()) == [False, True, False]   # the proposal stays unreviewed


def test_rater_session_recovery_autosave_and_history(qtbot, tmp_path, study_builder):
    study = study_builder(tmp_path / "study", n_hc=0, n_ms=1, raters=())
    entry = study.scans[0]
    scan = read_scan(entry.path)
    truths = [read_labels(entry.dseg_path("truth"), scan)]
    current = {"labels": LabelMap(np.zeros(scan.label_shape, np.uint8), np.zeros(scan.label_shape, np.uint8))}
    session = RaterSession(lambda: current["labels"], RecoveryStore(tmp_path / "rec"))
    session.start(scan, entry, "A")
    assert session.autosave() is None and not entry.dseg_path("raterA").exists()   # nothing to save

    current["labels"] = truths[0]
    with qtbot.waitSignal(session.dirty_changed, timeout=1000):
        session.mark_dirty()
    qtbot.waitUntil(lambda: session.recovery.find(entry.path, "raterA") is not None, timeout=2000)
    np.testing.assert_array_equal(session.recovery.load(session.recovery.find(entry.path, "raterA")).dseg,
                                  truths[0].dseg)

    written = session.autosave()
    assert written["dseg"] == entry.dseg_path("raterA")
    np.testing.assert_array_equal(read_labels(written["dseg"], scan).dseg, truths[0].dseg)
    assert not session.dirty and session.recovery.pending() == []    # a clean save drops recovery

    # An explicit save keeps the previous version in .history.
    changed = truths[0].dseg.copy()
    changed[0] = 0
    current["labels"] = LabelMap(changed, truths[0].lesion)
    session.mark_dirty()
    session.save(explicit=True)
    history = list((entry.derivatives_dir / ".history").glob("*_desc-raterA_dseg.nii.gz"))
    assert len(history) == 1
    np.testing.assert_array_equal(read_labels(history[0], scan).dseg, truths[0].dseg)
    session.finish()
    assert not session.active and not session.autosave_timer.isActive()
