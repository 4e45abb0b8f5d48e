"""Inter-rater agreement, accuracy vs the consensus, scan-rescan reproducibility."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from score_gui.areas import COLUMNS, QcDecisions
from score_gui.agreement import (agreement_summary, pair_rsd, reproducibility, reproducibility_summary,
                                 scan_agreement, study_agreement)
from score_gui.labels import LabelMap, write_labels
from score_gui.scan import Scan, write_scan
from score_gui.study import Study, scan_path


def disc_labels(shape, shift=0):
    s, h, w = shape
    yy, xx = np.mgrid[:h, :w]
    r2 = (yy - h / 2) ** 2 + (xx - w / 2 - shift) ** 2
    plane = np.select([r2 < 16, r2 < 49, r2 < 100], [3, 2, 1], 0).astype(np.uint8)
    dseg = np.repeat(plane[None], s, axis=0)
    lesion = np.zeros(shape, np.uint8)
    lesion[:, h // 2 - 5:h // 2 - 3, w // 2:w // 2 + 2] = 1  # in the wm
    return dseg, lesion


@pytest.fixture()
def study(tmp_path):
    root = tmp_path / "study"
    path = scan_path(root, "01")
    path.parent.mkdir(parents=True)
    scan = Scan.from_arrays(np.ones((2, 1, 24, 26), np.float32), pixel_spacing=(0.5, 0.7),
                            levels=["C2", "C3"], path=path)
    write_scan(scan, path)
    entry = Study.open(root).scans[0]
    shape = scan.label_shape
    for who, shift in (("raterA", 0), ("raterB", 0), ("raterC", 2), ("score", 1)):
        dseg, lesion = disc_labels(shape, shift)
        write_labels(scan, LabelMap(dseg, lesion), entry.derivatives_dir, who)
    return Study.open(root)


def test_pairs_consensus_and_accuracy(study):
    table = study_agreement(study)
    kinds = table.groupby("kind")[["source", "reference"]].apply(
        lambda f: sorted(set(map(tuple, f.values)))).to_dict()
    assert kinds["inter-rater"] == [("raterA", "raterB"), ("raterA", "raterC"), ("raterB", "raterC")]
    assert kinds["score-consensus"] == [("score", "consensus")]
    assert len(kinds["rater-consensus"]) == 3 and len(kinds["score-rater"]) == 3
    cord = table[table["compartment"] == "cord"]
    # Two of three raters agree exactly: the majority vote is their labels.
    a_vs_cons = cord[(cord["source"] == "raterA") & (cord["reference"] == "consensus")]
    assert (a_vs_cons["dice"] == 1.0).all() and (a_vs_cons["hausdorff_mm"] == 0).all()
    c_vs_cons = cord[(cord["source"] == "raterC") & (cord["reference"] == "consensus")]
    assert (c_vs_cons["dice"] < 1).all()
    assert c_vs_cons["hausdorff_mm"].iloc[0] == pytest.approx(1.4)  # 2 columns of 0.7 mm
    score = cord[cord["kind"] == "score-consensus"]
    assert score["hausdorff_mm"].iloc[0] == pytest.approx(0.7)
    assert score["level"].tolist() == ["C2", "C3"]
    assert {"na_wm", "na_gm", "lesion"} <= set(table["compartment"])
    summary = agreement_summary(table).set_index(["kind", "compartment"])
    assert summary.loc[("score-consensus", "cord"), "dice_count"] == 2
    assert summary.loc[("inter-rater", "cord"), "dice_mean"] < 1


def test_existing_consensus_is_used_and_failed_slices_are_left_out(study):
    entry = study.scans[0]
    from score_gui.scan import read_scan

    scan = read_scan(entry.path)
    dseg, lesion = disc_labels(scan.label_shape, shift=-3)
    write_labels(scan, LabelMap(dseg, lesion), entry.derivatives_dir, "consensus")
    qc = QcDecisions(pd.DataFrame({"scan": [entry.stem], "slice": [1], "source": ["score"],
                                   "status": ["fail"], "reason": ["image_artifact"], "time": ["t"]}))
    table = scan_agreement(entry, qc)
    score = table[(table["kind"] == "score-consensus") & (table["compartment"] == "cord")]
    assert score["hausdorff_mm"].iloc[0] == pytest.approx(4 * 0.7)  # shift 1 vs -3
    assert score["qc_status"].tolist() == ["ok", "fail"]
    rater = table[table["source"] == "raterA"]   # image_artifact judges the image: every source
    assert (rater["qc_status"] == np.where(rater["slice"] == 1, "fail", "ok")).all()
    summary = agreement_summary(table).set_index(["kind", "compartment"])
    assert summary.loc[("score-consensus", "cord"), "dice_count"] == 1
    own = QcDecisions(pd.DataFrame({"scan": [entry.stem], "slice": [1], "source": ["score"],
                                    "status": ["fail"], "reason": ["segmentation_error"], "time": ["t"]}))
    table = scan_agreement(entry, own)                # a segmentation fail stays with score
    assert (table.loc[table["source"] == "raterA", "qc_status"] == "ok").all()
    assert table.loc[table["kind"] == "score-consensus", "qc_status"].eq("fail").any()


def areas_row(subject, session, scan, slice_index, **areas):
    row = {c: np.nan for c in COLUMNS}
    row.update(subject=subject, session=session, scan=scan, source="score", slice=slice_index,
               level=f"C{slice_index + 2}", qc_status="pass", qc_reason="", pixel_area_mm2=0.45)
    row.update(areas)
    return row


def test_reproducibility_intra_and_inter_session():
    rows = []
    values = {"sub-01_ses-1_run-1_amira": 100.0, "sub-01_ses-1_run-2_amira": 102.0,
              "sub-01_ses-2_amira": 96.0}
    for scan, wm in values.items():
        session = "2" if "ses-2" in scan else "1"
        for s in range(3):
            rows.append(areas_row("01", session, scan, s, wm=wm + s, gm=20.0, cord=wm + s + 20))
    table = pd.DataFrame(rows)[COLUMNS]
    table.loc[(table["scan"] == "sub-01_ses-2_amira") & (table["slice"] == 2), "qc_status"] = "fail"
    pairs = reproducibility(table, compartments=("wm", "gm"))
    intra = pairs[(pairs["kind"] == "intra-session") & (pairs["compartment"] == "wm")]
    assert len(intra) == 3
    assert intra["rsd_percent"].iloc[0] == pytest.approx(np.std([100, 102], ddof=1) / 101 * 100)
    inter = pairs[(pairs["kind"] == "inter-session") & (pairs["compartment"] == "wm")]
    assert len(inter) == 2 * 2  # two pairs, the failed slice left out
    assert (pairs.loc[pairs["compartment"] == "gm", "rsd_percent"] == 0).all()
    summary = reproducibility_summary(pairs).set_index(["kind", "compartment", "level"])
    assert summary.loc[("intra-session", "gm", "all"), "rsd_mean_percent"] == 0
    assert ("inter-session", "wm", "C4") not in summary.index  # slice 2 failed in ses-2
    assert summary.loc[("intra-session", "wm", "C2"), "n"] == 1


def test_truth_pairs_in_synthetic_studies():
    from score_gui.agreement import comparison_pairs

    pairs = comparison_pairs(["raterA", "score", "truth"], False)
    assert ("rater-truth", "raterA", "truth") in pairs and ("score-truth", "score", "truth") in pairs


def test_pair_rsd_equals_sample_cv():
    a, b = np.array([50.0, 10.0]), np.array([55.0, 10.0])
    expected = [np.std([50, 55], ddof=1) / 52.5 * 100, 0.0]
    np.testing.assert_allclose(pair_rsd(a, b), expected)
