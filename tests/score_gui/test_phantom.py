"""The synthetic AMIRA phantom: determinism, anatomy, contrast, lesions, raters, files, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from score_gui.cli import main as score_main
from score_gui.labels import (ANTERIOR_HORNS, GRAY_COMMISSURE, POSTERIOR_HORNS, read_labels,
                              structure_mask, validate_labels)
from score_gui.phantom import (DEGRADATIONS, LEVELS, ensure_demo_study, make_scan, make_slice,
                               make_study, random_subject, simulate_rater, write_demo)
from score_gui.scan import AMIRA_INVERSION_TIMES, read_scan
from score_gui.study import Study

PIXEL_AREA = 0.67 * 0.67


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2 * (a & b).sum() / total) if total else float("nan")


@pytest.fixture(scope="module")
def hc_slices():
    """Twelve clean slices per level from several healthy subjects."""
    rng = np.random.default_rng(11)
    subjects = [random_subject(rng, "hc") for _ in range(6)]
    return {level: [make_slice(rng, level=level, subject=subjects[i % 6], degrade="none")
                    for i in range(12)] for level in LEVELS}


def test_same_seed_same_scan_other_seed_other_scan():
    first, truth1, info1 = make_scan("ms", seed=4, n_slices=3, shape=(96, 96))
    again, truth2, info2 = make_scan("ms", seed=4, n_slices=3, shape=(96, 96))
    other, truth3, _ = make_scan("ms", seed=5, n_slices=3, shape=(96, 96))
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(truth1.dseg, truth2.dseg)
    assert info1 == info2
    assert not np.array_equal(first.images, other.images)
    assert not np.array_equal(truth1.dseg, truth3.dseg)


def test_make_slice_is_deterministic_per_generator_state():
    one = make_slice(np.random.default_rng(7), level="C5", kind="ms", shape=(80, 96))
    two = make_slice(np.random.default_rng(7), level="C5", kind="ms", shape=(80, 96))
    np.testing.assert_array_equal(one.images, two.images)
    np.testing.assert_array_equal(one.lesion, two.lesion)
    assert one.images.shape == (8, 80, 96) and one.images.dtype == np.float32
    assert one.dseg.dtype == np.uint8 and one.dseg.shape == (80, 96)


def test_subjects_vary_in_anatomy_and_acquisition():
    rng = np.random.default_rng(0)
    subjects = [random_subject(rng, "hc") for _ in range(8)]
    cord_rl = {round(s.levels["C3"].cord_rl, 3) for s in subjects}
    flips = [s.signal.flip_angle_deg for s in subjects]
    cycles = [s.signal.cycle_ms for s in subjects]
    snrs = [s.snr_gm for s in subjects]
    assert len(cord_rl) == 8
    assert 45 <= min(flips) and max(flips) <= 55 and np.ptp(flips) > 3
    assert 2400 <= min(cycles) and max(cycles) <= 3400 and np.ptp(cycles) > 300
    assert 20 <= min(snrs) and max(snrs) <= 40
    positions = {make_slice(rng, subject=s, degrade="none").info["canal_center_px"] for s in subjects}
    assert len(positions) == 8


def test_labels_obey_the_nesting_rules_on_many_slices():
    rng = np.random.default_rng(3)
    for i in range(24):
        s = make_slice(rng, level=LEVELS[i % 4], kind=("hc", "ms")[i % 2],
                       pixel_size=(0.5, 0.75) if i % 3 == 0 else 0.67)
        assert validate_labels(s.dseg[None], s.lesion[None]) == [], s.info
        for value in (ANTERIOR_HORNS, POSTERIOR_HORNS, GRAY_COMMISSURE):
            assert (s.dseg == value).any(), (value, s.info)


def test_areas_per_level_are_plausible(hc_slices):
    for level, slices in hc_slices.items():
        cord = np.array([structure_mask(s.dseg, "cord").sum() for s in slices]) * PIXEL_AREA
        gm = np.array([structure_mask(s.dseg, "gm").sum() for s in slices]) * PIXEL_AREA
        csf = np.array([structure_mask(s.dseg, "csf").sum() for s in slices]) * PIXEL_AREA
        assert np.all((cord > 60) & (cord < 90)), (level, cord)
        assert np.all((gm / cord > 0.15) & (gm / cord < 0.25)), (level, gm / cord)
        assert np.all(csf > 70), (level, csf)
    c2 = np.mean([structure_mask(s.dseg, "cord").sum() for s in hc_slices["C2"]])
    c5_rl = np.mean([np.ptp(np.nonzero(structure_mask(s.dseg, "cord"))[1]) for s in hc_slices["C5"]])
    c2_rl = np.mean([np.ptp(np.nonzero(structure_mask(s.dseg, "cord"))[1]) for s in hc_slices["C2"]])
    assert c2 > 0 and c5_rl > c2_rl  # the cervical enlargement is wider


def test_csf_ring_surrounds_the_cord(hc_slices):
    from scipy import ndimage

    for s in hc_slices["C3"]:
        cord = structure_mask(s.dseg, "cord")
        ring = ndimage.binary_dilation(cord, iterations=2) & ~cord
        assert structure_mask(s.dseg, "csf")[ring].mean() > 0.9


def test_amira_contrast_gm_over_wm_early_csf_over_cord_late(hc_slices):
    for s in hc_slices["C4"]:
        early, late = s.images[:5].mean(0), s.images[5:].mean(0)
        gm = np.isin(s.dseg, (4, 5, 6))
        wm = s.dseg == 2
        csf = s.dseg == 1
        cord = structure_mask(s.dseg, "cord")
        assert np.median(early[gm]) > 1.15 * np.median(early[wm])
        assert np.median(late[csf]) > 3 * np.median(late[cord])


def test_t2star_and_half_millimetre_variants():
    rng = np.random.default_rng(5)
    t2 = make_slice(rng, level="C3", contrast="t2star", degrade="none")
    assert t2.images.shape == (1, 192, 192)
    image = t2.images[0]
    gm, wm, csf = np.isin(t2.dseg, (4, 5, 6)), t2.dseg == 2, t2.dseg == 1
    assert np.median(image[gm]) > 1.15 * np.median(image[wm])
    assert np.median(image[csf]) > 1.5 * np.median(image[wm])
    fine = make_slice(rng, level="C3", pixel_size=0.5, shape=(256, 256), degrade="none")
    cord_mm2 = structure_mask(fine.dseg, "cord").sum() * 0.25
    assert 60 < cord_mm2 < 90
    assert validate_labels(fine.dseg[None], fine.lesion[None]) == []


def test_ms_scans_have_lesions_inside_the_cord_and_controls_none():
    lesions_seen = 0
    for seed in range(3):
        scan, truth, info = make_scan("ms", seed=seed, n_slices=12, shape=(96, 96))
        cord = structure_mask(truth.dseg, "cord")
        assert not (truth.lesion.astype(bool) & ~cord).any()
        lesions_seen += int(truth.lesion.any())
        for slice_info in info["slices"]:
            for lesion in slice_info["lesions"]:
                assert lesion["column"] in ("lateral", "dorsal", "anterior")
                assert 0.5 < lesion["area_mm2"] < 14
        # Lesion voxels keep their tissue class (WM or GM) in the dseg.
        assert set(np.unique(truth.dseg[truth.lesion > 0])) <= {2, 3, 4, 5, 6}
    assert lesions_seen == 3
    _, hc_truth, _ = make_scan("hc", seed=0, n_slices=4, shape=(96, 96))
    assert not hc_truth.lesion.any()


def test_lesions_are_brighter_than_white_matter():
    rng = np.random.default_rng(8)
    subject = random_subject(rng, "ms")
    z = subject.plaques[0].z_center
    s = make_slice(rng, level=subject.level_of(int(round(z / 8))), subject=subject, z_mm=z,
                   degrade="none")
    lesion = s.lesion > 0
    assert lesion.any()
    wm = (s.dseg == 2) & ~lesion
    late = s.images[5:].mean(0)
    assert np.median(late[lesion]) > 1.5 * np.median(late[wm])


def test_forced_degradations_are_recorded_and_change_the_image():
    rng = np.random.default_rng(2)
    subject = random_subject(rng, "hc")
    clean = make_slice(np.random.default_rng(1), subject=subject, level="C4", degrade="none")
    for reason in DEGRADATIONS:
        bad = make_slice(np.random.default_rng(1), subject=subject, level="C4", degrade=reason)
        assert bad.info["degraded"] == reason
        assert validate_labels(bad.dseg[None], bad.lesion[None]) == []
    contact = make_slice(np.random.default_rng(1), subject=subject, level="C4", degrade="arch_contact")
    cord = structure_mask(contact.dseg, "cord")
    rows = np.nonzero(cord.any(axis=1))[0]
    behind = contact.dseg[rows.max() + 1: rows.max() + 3]
    assert (behind == 1).sum() < (clean.dseg[rows.max() + 1: rows.max() + 3] == 1).sum() + 1
    low = make_slice(np.random.default_rng(1), subject=subject, level="C4", degrade="low_snr")
    assert low.info["snr_gm"] < 0.5 * clean.info["snr_gm"]
    rates = [make_slice(rng, subject=subject, shape=(24, 24)).info["degraded"] for _ in range(150)]
    assert 2 <= sum(r is not None for r in rates) <= 20  # about 5 %


def test_rater_labels_differ_from_truth_and_each_other_realistically():
    rng = np.random.default_rng(21)
    inter = {"cord": [], "wm": [], "gm": []}
    to_truth = []
    for i in range(16):
        s = make_slice(rng, level=LEVELS[i % 4], kind="ms", degrade="none")
        a = simulate_rater(s.dseg, s.lesion, "A", rng)
        b = simulate_rater(s.dseg, s.lesion, "B", rng)
        c = simulate_rater(s.dseg, s.lesion, "C", rng)
        for labels in (a, b, c):
            assert validate_labels(labels[0][None], labels[1][None]) == []
        for name in inter:
            for x, y in ((a, b), (b, c), (a, c)):
                inter[name].append(dice(structure_mask(x[0], name), structure_mask(y[0], name)))
        to_truth.append(dice(structure_mask(a[0], "gm"), structure_mask(s.dseg, "gm")))
    assert 0.95 < np.mean(inter["cord"]) < 0.99
    assert 0.90 < np.mean(inter["wm"]) < 0.97
    assert 0.80 < np.mean(inter["gm"]) < 0.93
    assert 0.85 < np.mean(to_truth) < 0.98


def test_rater_habits_are_systematic():
    s = make_slice(np.random.default_rng(4), level="C4", degrade="none")
    first = simulate_rater(s.dseg, s.lesion, "A", np.random.default_rng(0))
    again = simulate_rater(s.dseg, s.lesion, "A", np.random.default_rng(0))
    other = simulate_rater(s.dseg, s.lesion, "B", np.random.default_rng(0))
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], other[0])


def test_write_demo_files_read_back(tmp_path):
    written = write_demo(tmp_path, kind="ms", seed=1, n_slices=4, shape=(96, 96))
    assert written["scan"].name == "sub-ms01_amira.nii.gz"
    scan = read_scan(written["scan"])
    assert scan.images.shape == (4, 8, 96, 96)
    assert scan.inversion_times == list(AMIRA_INVERSION_TIMES)
    assert scan.levels == ["C2", "C3", "C4", "C5"]
    meta = json.loads(written["sidecar"].read_text())
    assert meta["SubjectID"] == "ms01" and len(meta["SimulatedDegradation"]) == 4
    labels = read_labels(written["dseg"], scan)
    assert labels.lesion is not None
    assert validate_labels(labels.dseg, labels.lesion) == []
    expected, truth, _ = make_scan("ms", seed=1, n_slices=4, shape=(96, 96))
    np.testing.assert_array_equal(labels.dseg, truth.dseg)
    np.testing.assert_allclose(scan.images, expected.images)


def test_score_demo_command(tmp_path, capsys):
    assert score_main(["demo", str(tmp_path), "--kind", "hc", "--seed", "2", "--slices", "3",
                       "--shape", "80", "96", "--pixel-size", "0.5"]) == 0
    out = capsys.readouterr().out
    scan_file = tmp_path / "sub-hc02_amira.nii.gz"
    assert str(scan_file) in out
    scan = read_scan(scan_file)
    assert scan.shape_hw == (80, 96) and scan.pixel_spacing == pytest.approx((0.5, 0.5))
    labels = read_labels(tmp_path / "sub-hc02_amira_desc-truth_dseg.nii.gz", scan)
    assert structure_mask(labels.dseg, "cord").any() and not labels.lesion.any()
    assert score_main(["demo", str(tmp_path), "--contrast", "t2star", "--slices", "2"]) == 0
    t2 = read_scan(tmp_path / "sub-ms01_T2starw.nii.gz")
    assert t2.n_images == 1
    assert score_main(["demo", str(tmp_path), "--slices", "0"]) == 2
    assert "--slices" in capsys.readouterr().err


def test_make_study_and_demo_study(tmp_path, monkeypatch):
    study = make_study(tmp_path / "study", n_hc=1, n_ms=1, n_slices=3, shape=(80, 80))
    stems = [entry.stem for entry in study.scans]
    assert stems == ["sub-hc01_ses-1_amira", "sub-hc01_ses-2_amira", "sub-ms01_amira"]
    for entry in study.scans:
        assert entry.label_sources() == ["raterA", "raterB", "raterC", "truth"]
        scan = read_scan(entry.path)
        for who in entry.label_sources():
            labels = read_labels(entry.dseg_path(who), scan)
            assert validate_labels(labels.dseg, labels.lesion) == []
    ses1, ses2 = (read_scan(e.path) for e in study.scans[:2])
    truth1 = read_labels(study.scans[0].dseg_path("truth"), ses1)
    truth2 = read_labels(study.scans[1].dseg_path("truth"), ses2)
    areas1 = structure_mask(truth1.dseg, "cord").sum(axis=(1, 2))
    areas2 = structure_mask(truth2.dseg, "cord").sum(axis=(1, 2))
    assert np.all(np.abs(areas1 - areas2) <= 0.12 * areas1)  # same anatomy, rescanned
    assert not np.array_equal(ses1.images, ses2.images)

    monkeypatch.setenv("SCORE_HOME", str(tmp_path / "home"))
    import score_gui.phantom.study as phantom_study

    monkeypatch.setattr(phantom_study, "make_study",
                        lambda root, **kw: make_study(root, n_hc=1, n_ms=0, n_slices=2, shape=(96, 96), **kw))
    (tmp_path / "home" / "demo-study").mkdir(parents=True)
    (tmp_path / "home" / "demo-study" / ".phantom-version").write_text("1\n")  # an older cache
    demo = ensure_demo_study()
    assert demo == tmp_path / "home" / "demo-study"
    assert (demo / ".phantom-version").read_text().strip() == str(phantom_study.DEMO_STUDY_VERSION)
    scans = Study.open(demo).scans
    assert len(scans) == 2
    for entry in scans:   # the default ensemble's result, for QC and export out of the box
        assert entry.label_sources() == ["raterA", "raterB", "raterC", "score", "truth"]
        assert structure_mask(read_labels(entry.dseg_path("score"), read_scan(entry.path)).dseg, "cord").any()
    stamp = (demo / "sub-hc01" / "ses-1" / "anat" / "sub-hc01_ses-1_amira.nii.gz").stat().st_mtime_ns
    assert ensure_demo_study() == demo
    assert (demo / "sub-hc01" / "ses-1" / "anat" / "sub-hc01_ses-1_amira.nii.gz").stat().st_mtime_ns == stamp
    assert [p.name for p in demo.parent.iterdir()] == ["demo-study"]  # no half-built leftovers
