"""Statistics on synthetic areas tables with known effects: mixed model, FDR, normalisation."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from score_gui.areas import COLUMNS
from score_gui.errors import ScoreInputError
from score_gui.stats import (feltz_miller, group_comparison, intersubject_rsd, long_areas,
                             normalisation_table, read_covariates, read_groups, relative_sd,
                             residual_normalise)

LEVELS = [f"C{2 + i // 2}" if i % 2 == 0 else f"C{2 + i // 2}/{3 + i // 2}" for i in range(12)]


def synthetic_areas(seed=0, n_per_group=10, wm_effect=-8.0, fail_every=7, tiv_slope=0.04):
    """Areas per slice: level profile + subject effect + TIV dependence + MS effect on WM only."""
    rng = np.random.default_rng(seed)
    rows, covariates = [], []
    profile = 10 * np.sin(np.linspace(0, np.pi, 12))  # cervical enlargement
    for i in range(2 * n_per_group):
        group = "HC" if i < n_per_group else "MS"
        subject = f"{i:02d}"
        tiv = rng.normal(1500, 120)
        covariates.append({"participant_id": f"sub-{subject}", "TIV": tiv, "age": rng.normal(45, 10)})
        subject_effect = rng.normal(0, 1.5)
        for s in range(12):
            tiv_part = tiv_slope * (tiv - 1500)  # areas depend on TIV
            wm = 60 + profile[s] + subject_effect + tiv_part + rng.normal(0, 1.0)
            gm = 15 + 0.2 * profile[s] + 0.3 * subject_effect + rng.normal(0, 0.5)
            if group == "MS":
                wm += wm_effect
            row = {c: "" for c in COLUMNS}
            row.update(subject=subject, session="", scan=f"sub-{subject}_amira", source="score", slice=s,
                       level=LEVELS[s], qc_status="pass", qc_reason="", pixel_area_mm2=0.45,
                       wm=wm, gm=gm, cord=wm + gm)
            rows.append(row)
    table = pd.DataFrame(rows)[COLUMNS]
    # A failed slice with an absurd area must not move anything.
    failed = table.index[::fail_every]
    table.loc[failed, "qc_status"] = "fail"
    table.loc[failed, ["wm", "gm", "cord"]] = 1e6
    groups = {f"{i:02d}": ("HC" if i < n_per_group else "MS") for i in range(2 * n_per_group)}
    return table, pd.DataFrame(covariates), groups


def test_mixed_model_detects_a_known_group_effect():
    table, cov, groups = synthetic_areas()
    long = long_areas(table, compartments=("wm", "gm", "cord"), groups=groups)
    assert long["area"].max() < 1000  # failed slices left out
    long = long.merge(read_covariates_frame(cov)[["subject", "TIV"]], on="subject")
    started = time.perf_counter()
    result = group_comparison(long, covariates=("TIV",)).set_index("compartment")
    assert time.perf_counter() - started < 60
    wm = result.loc["wm"]
    assert wm["difference"] == pytest.approx(-8.0, abs=2.5)
    assert wm["ci_low"] < -8.0 < wm["ci_high"]
    assert wm["p_fdr"] < 0.01 and bool(wm["significant"])
    assert result.loc["gm", "p_value"] > 0.05 and not bool(result.loc["gm", "significant"])
    assert (result["n_hc"] == 10).all() and (result["n_ms"] == 10).all()
    expected = multipletests(result["p_value"], method="fdr_bh")[1]
    np.testing.assert_allclose(result["p_fdr"], expected)
    assert (result["p_fdr"] >= result["p_value"] - 1e-12).all()


def read_covariates_frame(cov):
    return cov.assign(subject=cov["participant_id"].str[4:])


def test_group_effect_without_covariates_when_subjects_vary_little():
    table, _cov, groups = synthetic_areas(seed=2, tiv_slope=0.005)
    result = group_comparison(long_areas(table, compartments=("wm", "gm"), groups=groups))
    wm = result.set_index("compartment").loc["wm"]
    assert wm["difference"] == pytest.approx(-8.0, abs=2.0) and wm["p_fdr"] < 0.01


def test_no_effect_no_detection():
    table, _cov, groups = synthetic_areas(seed=3, wm_effect=0.0)
    result = group_comparison(long_areas(table, compartments=("wm",), groups=groups))
    assert result["p_value"].iat[0] > 0.05


def test_normalisation_reduces_rsd_when_areas_depend_on_the_covariate(tmp_path):
    table, covariates, groups = synthetic_areas(seed=1)
    path = tmp_path / "cov.csv"
    covariates.to_csv(path, index=False)
    cov = read_covariates(path)
    assert cov["subject"].iat[0] == "00"
    long = long_areas(table, compartments=("wm", "gm"), groups=groups)
    report = normalisation_table(long, cov, ["TIV", "age"]).set_index(["compartment", "covariate"])
    wm_tiv = report.loc[("wm", "TIV")]
    assert wm_tiv["slope"] == pytest.approx(0.04, abs=0.015)
    assert wm_tiv["rsd_norm_percent"] < wm_tiv["rsd_raw_percent"] - 1.0
    assert 7 <= wm_tiv["n_subjects"] <= 10  # controls only, per level (failed slices out)
    # gm does not depend on TIV: no real change; age is noise for wm: no real change.
    assert abs(report.loc[("gm", "TIV"), "rsd_change_percent"]) < 0.5
    assert abs(report.loc[("wm", "age"), "rsd_change_percent"]) < 1.0
    normalised, fits = residual_normalise(long, cov, "TIV")
    hc = normalised[(normalised["group"] == "HC") & (normalised["compartment"] == "wm")]
    # Centred on the controls' mean TIV: the mean over control subjects is unchanged.
    per_subject = hc.groupby("subject")[["area", "area_norm"]].mean().mean()
    assert per_subject["area_norm"] == pytest.approx(per_subject["area"], rel=1e-9)


def test_rsd_helpers():
    assert relative_sd([10, 10, 10]) == 0.0 and np.isnan(relative_sd([5]))
    long = pd.DataFrame({"level": ["C2"] * 3 + ["C3"] * 3, "subject": list("abc") * 2,
                         "area": [9, 10, 11, 18, 20, 22]})
    rsd, n = intersubject_rsd(long)
    assert rsd == pytest.approx(10.0) and n == 3
    assert feltz_miller([0.1, 0.1001], [20, 20])[1] > 0.9


def test_groups_from_participants_tsv_or_file(tmp_path):
    (tmp_path / "participants.tsv").write_text("participant_id\tgroup\tage\nsub-01\tHC\t30\nsub-02\tMS\t40\n")
    assert read_groups(tmp_path) == {"01": "HC", "02": "MS"}
    other = tmp_path / "g.csv"
    other.write_text("subject,group\n03,ms\n")
    assert read_groups(tmp_path, other) == {"03": "MS"}  # case-insensitive, as the demo writes 'ms'
    with pytest.raises(ScoreInputError, match="participants.tsv"):
        read_groups(tmp_path / "nowhere")
    bad = tmp_path / "bad.csv"
    bad.write_text("subject,diagnosis\n01,MS\n")
    with pytest.raises(ScoreInputError, match="group"):
        read_groups(None, bad)


def build_study(root, rng):
    """6 subjects (3 HC, 3 MS; MS with smaller WM), HC 01 scanned twice, two raters on 01."""
    from score_gui.labels import LabelMap, write_labels
    from score_gui.scan import Scan, write_scan
    from score_gui.study import Study, scan_path

    rows = ["participant_id\tgroup"]
    for i in range(6):
        subject, group = f"{i:02d}", ("HC" if i < 3 else "MS")
        rows.append(f"sub-{subject}\t{group}")
        for session in (("1", "2") if i == 0 else ("1",)):
            path = scan_path(root, subject, session)
            path.parent.mkdir(parents=True, exist_ok=True)
            scan = Scan.from_arrays(np.ones((4, 1, 30, 30), np.float32), pixel_spacing=(0.6, 0.6),
                                    levels=["C2", "C3", "C4", "C5"], path=path)
            write_scan(scan, path)
            entry = Study.open(root).find(scan.stem)
            yy, xx = np.mgrid[:30, :30]
            r2 = (yy - 15) ** 2 + (xx - 15) ** 2
            cord_r = (8.5 if group == "HC" else 7.0) + rng.normal(0, 0.2)
            plane = np.select([r2 < 9, r2 < cord_r ** 2, r2 < 144], [3, 2, 1], 0).astype(np.uint8)
            dseg = np.repeat(plane[None], 4, axis=0)
            write_labels(scan, LabelMap(dseg, np.zeros_like(dseg)), entry.derivatives_dir, "score")
            if i == 0 and session == "1":
                write_labels(scan, LabelMap(dseg, None), entry.derivatives_dir, "raterA")
                write_labels(scan, LabelMap(np.roll(dseg, 1, axis=2), None), entry.derivatives_dir, "raterB")
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    return root


def test_cli_stats_writes_every_table(tmp_path):
    import openpyxl

    from score_gui.cli import main

    root = build_study(tmp_path / "study", np.random.default_rng(0))
    cov = tmp_path / "cov.csv"
    pd.DataFrame({"subject": [f"{i:02d}" for i in range(6)], "TIV": [1400, 1500, 1600, 1450, 1550, 1650],
                  "age": [30, 40, 50, 35, 45, 55]}).to_csv(cov, index=False)
    out = tmp_path / "stats"
    assert main(["stats", str(root), "--covariates", str(cov), "--normalise-by", "TIV", "-o", str(out)]) == 0
    for name in ("areas", "summary", "agreement", "agreement_summary", "reproducibility",
                 "reproducibility_summary", "normalisation", "group_comparison"):
        assert (out / f"{name}.csv").is_file(), name
    comparison = pd.read_csv(out / "group_comparison.csv")
    wm = comparison[(comparison["compartment"] == "wm") & (comparison["value"] == "area")].iloc[0]
    assert wm["difference"] < 0 and wm["p_fdr"] < 0.05
    assert set(comparison["value"]) == {"area", "area_norm"}
    agreement = pd.read_csv(out / "agreement.csv")
    assert set(agreement["kind"]) == {"inter-rater", "score-rater"}  # two raters: no consensus vote
    assert "intra-session" not in set(pd.read_csv(out / "reproducibility.csv")["kind"])
    book = openpyxl.load_workbook(out / "stats.xlsx", read_only=True)
    assert {"areas", "group_comparison", "normalisation"} <= set(book.sheetnames)


def test_cli_stats_bad_input(tmp_path, capsys):
    from score_gui.cli import main

    assert main(["stats", str(tmp_path / "none"), "-o", str(tmp_path / "o")]) == 2
    root = build_study(tmp_path / "study", np.random.default_rng(1))
    assert main(["stats", str(root), "--covariates", str(tmp_path / "missing.csv"), "-o",
                 str(tmp_path / "o")]) == 2
    assert "missing.csv: file not found" in capsys.readouterr().err
