"""The longitudinal view's core: a subject's sessions, their areas, and the scan-rescan band.

Every test reads real label files of a phantom study written by ``make_study`` (one healthy
subject, three sessions). Where the test needs to know the true change, the same label map is
written into every session and one session's cord is cut on one slice, so the expected
areas are pixel counts the test makes itself.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from score_gui.areas import label_file_areas
from score_gui.errors import ScoreInputError
from score_gui.labels import LabelMap, read_labels, structure_mask, write_labels
from score_gui.longitudinal import (CHANGE_COLUMNS, RESCAN_RSD_PERCENT, change_summary, changes,
                                    least_significant_change, rescan_rsd, subject_series,
                                    subject_visits)
from score_gui.phantom import make_study
from score_gui.qc.log import Decision, QCLog
from score_gui.scan import read_scan
from score_gui.study import Study

N_SLICES = 4
SUBJECT = "hc01"
STEMS = [f"sub-hc01_ses-{k}_amira" for k in (1, 2, 3)]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """sub-hc01 with 3 sessions (raters A and B, truth), never modified: tests copy it."""
    root = tmp_path_factory.mktemp("longitudinal") / "study"
    make_study(root, n_hc=1, n_ms=0, n_slices=N_SLICES, raters=("A", "B"), shape=(80, 80),
               sessions={"hc01": 3})
    return root


@pytest.fixture
def study(pristine, tmp_path):
    return Study.open(shutil.copytree(pristine, tmp_path / "study"))


def write_edit(study, cut_session: int = 3, cut_slice: int = 2, cut_rows: int = 2, subject: str = SUBJECT):
    """Write ``desc-edit``: ses-1's true labels in every session, ses-``cut_session``'s cord cut
    by ``cut_rows`` rows of pixels (made CSF) on ``cut_slice``. Returns the cord pixel counts
    ``{session: counts per slice}`` and the pixel area."""
    entries = subject_visits(study, subject)
    first = read_scan(entries[0].path)
    truth = read_labels(entries[0].dseg_path("truth"), first)
    counts = {}
    for k, entry in enumerate(entries, start=1):
        scan = read_scan(entry.path)
        dseg = truth.dseg.copy()
        if k == cut_session:
            rows = np.flatnonzero(structure_mask(dseg[cut_slice], "cord").any(axis=1))
            band = dseg[cut_slice, rows[0]:rows[0] + cut_rows]
            band[band == 2] = 1   # outer WM rows become CSF: the cord shrinks, GM stays
        write_labels(scan, LabelMap(dseg, truth.lesion.copy(), who="edit"), entry.derivatives_dir, "edit",
                     keep_previous=False)
        counts[k] = structure_mask(dseg, "cord").sum(axis=(1, 2))
    return counts, first.pixel_area_mm2


def test_lsc_is_two_point_seven_seven_times_the_rsd():
    assert least_significant_change(1.0) == pytest.approx(1.959964 * math.sqrt(2), rel=1e-6)
    assert least_significant_change(RESCAN_RSD_PERCENT["gm"]) == pytest.approx(2.7718 * 4.81, rel=1e-4)
    assert least_significant_change(2.0, confidence=0.99) == pytest.approx(2.5758 * math.sqrt(2) * 2, rel=1e-4)
    with pytest.raises(ValueError):
        least_significant_change(1.0, confidence=1.0)
    # the project's rescan benchmark, ensemble soft vote (resources/models/README.md)
    assert RESCAN_RSD_PERCENT == {"cord": 1.47, "wm": 2.14, "gm": 4.81, "anterior_horns": 9.92,
                                  "posterior_horns": 8.54}
    assert rescan_rsd("wm", {"cord": 3.0}) == 2.14 and rescan_rsd("cord", {"cord": 3.0}) == 3.0
    assert rescan_rsd("gray_commissure") is None


def test_series_reads_every_session_of_the_source_as_score_areas_does(study):
    series = subject_series(study, SUBJECT, "raterA")
    assert [e.stem for e in series.visits] == STEMS
    assert series.sessions == ["ses-1", "ses-2", "ses-3"] and series.missing == []
    assert list(series.areas["scan"].unique()) == STEMS
    assert set(series.areas["source"]) == {"raterA"} and len(series.areas) == 3 * N_SLICES
    for entry in series.visits:   # the same numbers as score areas on each file
        own = label_file_areas(entry.dseg_path("raterA"), scan_path=entry.path)
        mine = series.areas[series.areas["scan"] == entry.stem].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, own, check_dtype=False)
    assert list(series.areas["level"][:N_SLICES]) == ["C2", "C3", "C4", "C5"]


def test_cut_slice_leaves_the_band_and_nothing_else_does(study):
    counts, pixel = write_edit(study)
    series = subject_series(study, SUBJECT, "edit")
    table = series.changes("cord")
    assert list(table.columns) == CHANGE_COLUMNS
    assert len(table) == 3 * N_SLICES
    assert list(table["position"][::3]) == ["C2 s0", "C3 s1", "C4 s2", "C5 s3"]
    assert list(table["session"][:3]) == ["ses-1", "ses-2", "ses-3"]
    np.testing.assert_allclose(table["area_mm2"], np.stack([counts[k] for k in (1, 2, 3)], 1).ravel() * pixel)
    lsc = 1.959964 * math.sqrt(2) * 1.47
    assert table["lsc_percent"].iloc[0] == pytest.approx(lsc, rel=1e-5)
    np.testing.assert_allclose(table["band_low_mm2"], table["baseline_mm2"] * (1 - lsc / 100), rtol=1e-5)
    np.testing.assert_allclose(table["band_high_mm2"], table["baseline_mm2"] * (1 + lsc / 100), rtol=1e-5)
    cut = table[(table["slice"] == 2) & (table["session"] == "ses-3")].iloc[0]
    expected = (counts[3][2] - counts[1][2]) / counts[1][2] * 100
    assert cut["change_percent"] == pytest.approx(expected)
    assert expected < -lsc                                  # the cut is bigger than the band
    assert bool(cut["beyond_lsc"]) and cut["area_mm2"] < cut["band_low_mm2"]
    others = table.drop(index=cut.name)
    assert not others["beyond_lsc"].astype(bool).any()
    assert (others["change_percent"] == 0).all()            # same labels everywhere else
    # GM was not touched, so no GM change anywhere; WM lost what the cord lost
    assert (series.changes("gm")["change_percent"] == 0).all()
    wm = series.changes("wm")
    assert wm["beyond_lsc"].astype(bool).sum() == 1
    summary = change_summary(table)
    assert summary.to_dict("records") == [
        {"session": "ses-2", "scan": STEMS[1], "n_compared": 4, "n_beyond": 0, "expected_by_chance": 0.2,
         "mean_change_percent": 0.0},
        {"session": "ses-3", "scan": STEMS[2], "n_compared": 4, "n_beyond": 1, "expected_by_chance": 0.2,
         "mean_change_percent": pytest.approx(expected / 4)}]


def test_a_wider_band_or_another_baseline_changes_the_verdict(study):
    counts, _pixel = write_edit(study, cut_rows=1)
    series = subject_series(study, SUBJECT, "edit")
    change = (counts[3][2] - counts[1][2]) / counts[1][2] * 100
    wide = abs(change) / 2.77 * 1.5                                 # an RSD whose LSC covers the cut
    narrow = series.changes("cord", rsd={"cord": wide})
    assert not narrow["beyond_lsc"].astype(bool).any()
    assert series.changes("cord", rsd=abs(change) / 2.77 * 0.5)["beyond_lsc"].astype(bool).sum() == 1
    from_ses3 = series.changes("cord", baseline="ses-3")
    assert set(from_ses3["baseline"]) == {"ses-3"}
    assert from_ses3.loc[from_ses3["session"] == "ses-3", "change_percent"].eq(0).all()
    # from ses-3's point of view, both other sessions grew on slice 2
    grew = from_ses3[(from_ses3["slice"] == 2) & (from_ses3["session"] != "ses-3")]
    assert (grew["change_mm2"] > 0).all()
    assert series.changes("cord", baseline=STEMS[2]).equals(from_ses3)
    with pytest.raises(ValueError, match="baseline"):
        series.changes("cord", baseline="ses-9")
    with pytest.raises(ValueError, match="compartment"):
        series.changes("spleen")
    no_band = series.changes("gray_commissure")
    assert no_band["beyond_lsc"].isna().all() and no_band["band_low_mm2"].isna().all()
    assert no_band["area_mm2"].notna().all()


def test_failed_slices_are_shown_but_never_compared(study):
    write_edit(study)
    log = QCLog(study.root)
    # An image-level fail recorded while reviewing raterA fails the slice for every source.
    log.record(Decision(SUBJECT, "3", STEMS[2], 2, "raterA", "fail", "image_artifact", "ab"))
    table = subject_series(study, SUBJECT, "edit").changes("cord")
    cut = table[(table["slice"] == 2) & (table["session"] == "ses-3")].iloc[0]
    assert cut["qc_status"] == "fail" and math.isnan(cut["area_mm2"]) and pd.isna(cut["beyond_lsc"])
    assert not table["beyond_lsc"].astype("boolean").fillna(False).any()
    # The baseline's slice failing removes the comparison for every session on that slice.
    log.record(Decision(SUBJECT, "1", STEMS[0], 1, "edit", "fail", "segmentation_error", "ab"))
    table = subject_series(study, SUBJECT, "edit").changes("cord")
    assert table.loc[table["slice"] == 1, "beyond_lsc"].isna().all()
    assert table.loc[table["slice"] == 1, "area_mm2"].notna().sum() == 2
    ignored = subject_series(study, SUBJECT, "edit", use_qc=False).changes("cord")
    assert set(ignored["qc_status"]) == {"unreviewed"} and ignored["beyond_lsc"].astype(bool).sum() == 1


def test_levels_are_means_of_their_slices(study):
    counts, pixel = write_edit(study)
    series = subject_series(study, SUBJECT, "edit")
    # 4 slices over C2-C5: one slice per level; relabel so C3 has two slices
    for entry in series.visits:
        side = entry.path.with_name(entry.stem + ".json")
        meta = json.loads(side.read_text())
        meta["VertebralLevels"] = ["C2", "C3", "C3", "C4"]
        side.write_text(json.dumps(meta))
    series = subject_series(study, SUBJECT, "edit")
    table = series.changes("cord", by="level")
    assert list(table["position"][::3]) == ["C2", "C3", "C4"]
    c3 = table[table["position"] == "C3"].set_index("session")
    assert c3.loc["ses-3", "n_slices"] == 2 and math.isnan(c3.loc["ses-3", "slice"])
    assert c3.loc["ses-3", "area_mm2"] == pytest.approx((counts[3][1] + counts[3][2]) / 2 * pixel)
    assert c3.loc["ses-3", "change_percent"] == pytest.approx(
        ((counts[3][1] + counts[3][2]) - (counts[1][1] + counts[1][2])) / (counts[1][1] + counts[1][2]) * 100)
    with pytest.raises(ValueError, match="by"):
        series.changes("cord", by="vertebra")


def test_sessions_without_the_source_and_unreadable_files(study):
    write_edit(study)
    entries = subject_visits(study, SUBJECT)
    entries[1].dseg_path("edit").unlink()
    series = subject_series(study, SUBJECT, "edit")
    assert series.sessions == ["ses-1", "ses-3"] and series.missing == ["ses-2"]
    assert list(series.changes("cord")["session"][:2]) == ["ses-1", "ses-3"]
    entries[2].dseg_path("edit").write_bytes(b"not a nifti")
    with pytest.raises(ScoreInputError):
        subject_series(study, SUBJECT, "edit")
    errors = {}
    series = subject_series(study, SUBJECT, "edit", errors=errors)
    assert series.sessions == ["ses-1"] and list(errors) == [str(entries[2].dseg_path("edit"))]
    assert series.errors == errors
    empty = subject_series(study, SUBJECT, "raterQ")
    assert empty.areas.empty and empty.missing == ["ses-1", "ses-2", "ses-3"]
    assert empty.changes("cord").empty
    with pytest.raises(ScoreInputError, match="no scan of subject"):
        subject_series(study, "zz99", "edit")


def test_sessions_in_natural_order(tmp_path):
    for session in ("10", "2", "1"):
        folder = tmp_path / "sub-01" / f"ses-{session}" / "anat"
        folder.mkdir(parents=True)
        (folder / f"sub-01_ses-{session}_amira.nii.gz").write_bytes(b"")
    visits = subject_visits(Study(tmp_path, Study.open(tmp_path).scans), "01")
    assert [v.session for v in visits] == ["1", "2", "10"]
