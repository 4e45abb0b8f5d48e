"""Areas of label map files and studies: contract columns, unlabelled/partial slices,
lesion arithmetic, QC, Excel, CLI errors."""

from __future__ import annotations


import nibabel as nib
import numpy as np
import openpyxl
import pandas as pd
import pytest

from score_gui.areas import (AREA_COLUMNS, COLUMNS, label_file_areas, parse_label_name, passed,
                             read_qc, study_areas, summary_table, write_areas_table)
from score_gui.cli import main
from score_gui.labels import LabelMap, write_labels
from score_gui.scan import Scan, write_scan
from score_gui.study import Study, scan_path

CONTRACT_COLUMNS = ("subject, session, scan, source, slice, level, qc_status, qc_reason, pixel_area_mm2, "
                    "canal, csf, cord, wm, gm, anterior_horns, posterior_horns, gray_commissure, lesion, "
                    "lesion_wm, lesion_gm, na_wm, na_gm, na_anterior_horns, na_posterior_horns, "
                    "na_gray_commissure").split(", ")
SPACING = (0.5, 0.8)  # display rows, columns (mm): non-square pixels, 0.4 mm²
LEVELS = ["C2", "C3", "C4"]


def make_scan(path, n_slices=3, levels=LEVELS):
    images = np.random.default_rng(0).random((n_slices, 1, 16, 20)).astype(np.float32)
    scan = Scan.from_arrays(images, pixel_spacing=SPACING, levels=levels, path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_scan(scan, path)
    return scan


def ring_labels(shape, lesion_slice=0):
    """Slice 0 and 2 labelled (known pixel counts), slice 1 unlabelled."""
    dseg = np.zeros(shape, np.uint8)
    for s in (0, 2):
        dseg[s, 2:14, 2:18] = 1          # canal 12 x 16 = 192
        dseg[s, 4:12, 4:16] = 2          # cord 8 x 12 = 96
        dseg[s, 6:10, 6:14] = 3          # gm 4 x 8 = 32
        dseg[s, 6:8, 6:8] = 4            # anterior horns 4
        dseg[s, 8:10, 6:8] = 5           # posterior horns 4
        dseg[s, 6:10, 9:10] = 6          # gray commissure 4
    lesion = np.zeros(shape, np.uint8)
    lesion[lesion_slice, 4:7, 4:8] = 1   # 12 px: 10 wm + 2 gm (both anterior horn)
    return dseg, lesion


@pytest.fixture()
def study(tmp_path):
    root = tmp_path / "study"
    for subject, session in (("01", "1"), ("01", "2"), ("02", None)):
        path = scan_path(root, subject, session)
        scan = make_scan(path)
        dseg, lesion = ring_labels(scan.label_shape)
        entry = Study.open(root).find(scan.stem)
        write_labels(scan, LabelMap(dseg, lesion), entry.derivatives_dir, "score")
        write_labels(scan, LabelMap(dseg, None), entry.derivatives_dir, "raterA")
    return Study.open(root)


def test_columns_follow_the_contract(study):
    table = label_file_areas(study.scans[0].dseg_path("score"))
    assert list(table.columns) == CONTRACT_COLUMNS == COLUMNS


def test_areas_of_a_label_file(study):
    entry = study.scans[0]
    table = label_file_areas(entry.dseg_path("score"))
    assert table["subject"].tolist() == ["01"] * 3 and table["session"].tolist() == ["1"] * 3
    assert table["scan"].iat[0] == entry.stem and table["source"].iat[0] == "score"
    assert table["level"].tolist() == LEVELS  # from the scan's sidecar, found through the study
    assert table["pixel_area_mm2"].iat[0] == pytest.approx(0.4)
    row = table.iloc[0]
    expected = {"canal": 192, "csf": 96, "cord": 96, "wm": 64, "gm": 32, "anterior_horns": 4,
                "posterior_horns": 4, "gray_commissure": 4, "lesion": 12, "lesion_wm": 10, "lesion_gm": 2,
                "na_wm": 54, "na_gm": 30, "na_anterior_horns": 2, "na_posterior_horns": 4,
                "na_gray_commissure": 4}
    for column, pixels in expected.items():
        assert row[column] == pytest.approx(pixels * 0.4), column


def test_unlabelled_slices_are_empty_not_zero(study, tmp_path):
    table = label_file_areas(study.scans[0].dseg_path("score"))
    assert table.loc[1, AREA_COLUMNS].isna().all()
    assert table.loc[2, "lesion"] == 0.0  # labelled slice without lesion: a true zero
    out = tmp_path / "a.csv"
    write_areas_table(table, out)
    line = out.read_text().splitlines()[2]  # slice 1
    assert line.endswith(",,,,"), line
    assert ",0.0000," not in line


def test_lesion_arithmetic(study):
    table = label_file_areas(study.scans[0].dseg_path("score"))
    row = table.iloc[0]
    assert row["na_wm"] + row["lesion_wm"] == pytest.approx(row["wm"])
    assert row["na_gm"] + row["lesion_gm"] == pytest.approx(row["gm"])
    assert row["lesion_wm"] + row["lesion_gm"] == pytest.approx(row["lesion"])
    assert row["csf"] + row["cord"] == pytest.approx(row["canal"])
    assert row["anterior_horns"] + row["posterior_horns"] + row["gray_commissure"] == pytest.approx(
        row["gm"] - 20 * 0.4)  # 20 px of undivided gm (value 3)


def test_without_lesion_map_lesion_columns_are_unknown(study):
    table = label_file_areas(study.scans[0].dseg_path("raterA"))
    assert table.loc[0, ["lesion", "na_wm", "lesion_gm"]].isna().all()
    assert table.loc[0, "wm"] == pytest.approx(64 * 0.4)


def test_partial_labels_leave_unlabelled_structures_empty(study):
    entry = study.scans[2]
    scan_file = entry.path
    dseg = np.zeros((3, 16, 20), np.uint8)
    dseg[0, 4:12, 4:16] = 2
    dseg[0, 6:10, 6:14] = 3
    from score_gui.scan import read_scan

    scan = read_scan(scan_file)
    write_labels(scan, LabelMap(dseg, None, labelled={"cord", "gm"}), entry.derivatives_dir, "raterB")
    table = label_file_areas(entry.dseg_path("raterB"))
    assert table.loc[0, "cord"] == pytest.approx(96 * 0.4)
    assert table.loc[0, "gm"] == pytest.approx(32 * 0.4)
    assert table.loc[0, ["canal", "csf", "anterior_horns", "lesion"]].isna().all()


def test_qc_failed_slices_kept_but_excluded(study, tmp_path):
    entry = study.scans[0]
    qc_file = tmp_path / "qc.tsv"
    pd.DataFrame([
        dict(subject="01", session="1", scan=entry.stem, slice=0, source="score", status="pass",
             reason="", reviewer="x", time="2026-01-01T09:00:00", comment=""),
        dict(subject="01", session="1", scan=entry.stem, slice=0, source="score", status="fail",
             reason="image_artifact", reviewer="x", time="2026-01-01T10:00:00", comment=""),
    ]).to_csv(qc_file, sep="\t", index=False)
    table = study_areas(study, qc=read_qc(qc_file))
    mine = table[(table["scan"] == entry.stem) & (table["source"] == "score")]
    assert mine["qc_status"].tolist() == ["fail", "unreviewed", "unreviewed"]
    assert mine["qc_reason"].iat[0] == "image_artifact"
    other_source = table[(table["scan"] == entry.stem) & (table["source"] == "raterA")]
    # image_artifact judges the image: the slice fails for the rater's labels too
    assert other_source["qc_status"].tolist() == ["fail", "unreviewed", "unreviewed"]
    assert len(passed(mine)) == 2
    summary = summary_table(table)
    cord = summary.query("source == 'score' and compartment == 'cord'").iloc[0]
    assert cord["n_slices"] == 5  # 3 scans x 2 labelled slices, minus the failed one


def test_study_areas_every_source_and_excel(study, tmp_path):
    table = study_areas(study)
    assert sorted(table["source"].unique()) == ["raterA", "score"]
    assert len(table) == 3 * 2 * 3
    assert table.loc[table["subject"] == "02", "session"].eq("").all()
    out = tmp_path / "areas.xlsx"
    write_areas_table(table, out)
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["areas", "summary"]
    header = [c.value for c in book["areas"][1]]
    assert header == CONTRACT_COLUMNS
    assert book["areas"].max_row == len(table) + 1
    parallel = study_areas(study, workers=2)
    pd.testing.assert_frame_equal(parallel, table)


def test_parse_label_name():
    names = parse_label_name("/x/sub-A1_amira_desc-consensus_dseg.nii")
    assert (names.subject, names.session, names.stem, names.source) == ("A1", "", "sub-A1_amira", "consensus")


def test_cli_single_file_and_study(study, tmp_path, capsys):
    entry = study.scans[1]
    out = tmp_path / "one.csv"
    assert main(["areas", "--dseg", str(entry.dseg_path("score")), "-o", str(out)]) == 0
    table = pd.read_csv(out, dtype={"subject": str, "session": str})
    assert list(table.columns) == CONTRACT_COLUMNS and len(table) == 3
    assert main(["areas", "--study", str(study.root), "--sources", "score", "-o",
                 str(tmp_path / "s.xlsx")]) == 0
    assert openpyxl.load_workbook(tmp_path / "s.xlsx")["areas"].max_row == 3 * 3 + 1
    assert main(["areas", "--study", str(study.root)]) == 0
    assert study.areas_csv.exists()


def test_cli_bad_input_exit_2(study, tmp_path, capsys):
    entry = study.scans[0]
    assert main(["areas", "--dseg", str(tmp_path / "missing_desc-x_dseg.nii.gz"), "-o",
                 str(tmp_path / "o.csv")]) == 2
    assert "file not found" in capsys.readouterr().err
    wrong = tmp_path / "wrong_lesion.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((5, 5, 3), np.uint8), np.eye(4)), str(wrong))
    assert main(["areas", "--dseg", str(entry.dseg_path("score")), "--lesion", str(wrong), "-o",
                 str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not match" in err
    # A label map on another grid than its scan.
    bad = entry.derivatives_dir / f"{entry.stem}_desc-raterZ_dseg.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 3), np.uint8), np.eye(4)), str(bad))
    assert main(["areas", "--dseg", str(bad), "-o", str(tmp_path / "o.csv")]) == 2
    assert "does not match the scan" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()
    qc_bad = tmp_path / "qc.tsv"
    qc_bad.write_text("scan\tslice\tstatus\nx\t0\tmaybe\n")
    assert main(["areas", "--dseg", str(entry.dseg_path("score")), "--qc", str(qc_bad), "-o",
                 str(tmp_path / "o.csv")]) == 2


def test_sidecar_levels_missing_scan_gives_empty_level(tmp_path):
    img = nib.Nifti1Image(np.full((6, 5, 2), 2, np.uint8), np.diag([0.6, 0.7, 5, 1]))
    path = tmp_path / "loose_desc-raterA_dseg.nii.gz"
    nib.save(img, str(path))
    table = label_file_areas(path)
    assert table["level"].tolist() == ["", ""]
    assert table["pixel_area_mm2"].iat[0] == pytest.approx(0.42)
    assert table["cord"].iat[0] == pytest.approx(30 * 0.42)
    assert table["subject"].tolist() == ["loose"] * 2 and table["source"].iat[0] == "raterA"


def test_areas_csv_is_written_as_pandas_would_write_it(tmp_path):
    """``score segment`` writes its areas CSV without pandas; the bytes are those of pandas'
    ``to_csv(float_format="%.4f")`` of the same table (NaN empty, reasons quoted where needed)."""
    from score_gui.areas import areas_table, write_areas_csv
    from score_gui import slice_areas

    dseg = np.zeros((4, 10, 10), np.uint8)
    dseg[0, 2:8, 2:8] = 2
    dseg[0, 4:6, 3:7] = 4
    dseg[1, 3:7, 3:7] = 1
    lesion = np.zeros_like(dseg)
    lesion[0, 4, 4] = 1
    names = {"subject": "sub-01", "scan": "sub-01_amira", "source": "score", "levels": ["C2", "C3"],
             "labelled": {"canal", "cord", "gm", "horns", "lesion"},
             "qc": {1: ("fail", 'motion, "ghost"'), 2: ("pass", "")}}
    rows = slice_areas.area_rows(dseg, lesion, 0.4489, **names)
    slice_areas.write_areas_csv(rows, tmp_path / "rows.csv")
    table = areas_table(dseg, lesion, 0.4489, **names)
    write_areas_csv(table, tmp_path / "table.csv")
    table[COLUMNS].to_csv(tmp_path / "pandas.csv", index=False, float_format="%.4f")
    expected = (tmp_path / "pandas.csv").read_bytes()
    assert (tmp_path / "rows.csv").read_bytes() == expected == (tmp_path / "table.csv").read_bytes()
    assert b'"motion, ""ghost"""' in expected and b",,," in expected      # quoted reason; empty areas
