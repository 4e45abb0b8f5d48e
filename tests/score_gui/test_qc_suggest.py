"""Automatic QC suggestions on synthetic scans with known degraded slices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from score_gui.cli import main
from score_gui.labels import LabelMap, write_labels
from score_gui.phantom import make_slice, random_subject
from score_gui.phantom.anatomy import SLICE_SPACING_MM
from score_gui.progress import drain
from score_gui.qc.suggest import (KIND_REASONS, area_outliers, disagreement_per_slice, image_quality,
                                  label_suggestions, noise_sigma, posterior_csf_mm, slice_areas,
                                  study_suggestions_job, suggest_scan, suggestions_table)
from score_gui.scan import Scan, write_scan
from score_gui.study import ScanEntry, Study, scan_path

IMAGE_KINDS = {"low_snr", "ghosting", "arch_contact"}
DEGRADED = {2: "arch_contact", 4: "motion", 6: "low_snr"}


@pytest.fixture(scope="module")
def degraded_scan():
    """8 slices of one subject: slice 2 touches the arch, 4 has motion ghosts, 6 is noisy."""
    rng = np.random.default_rng(7)
    subject = random_subject(rng, "hc", n_slices=8)
    slices = [make_slice(rng, level=subject.level_of(s, 8), subject=subject, z_mm=s * SLICE_SPACING_MM,
                         degrade=DEGRADED.get(s, "none")) for s in range(8)]
    assert [s.info["degraded"] for s in slices] == [DEGRADED.get(i) for i in range(8)]
    images = np.stack([s.images for s in slices])
    dseg = np.stack([s.dseg for s in slices])
    return images, dseg, slices[0].info["pixel_size"]


def test_catches_arch_contact_ghosting_and_noise_and_spares_good_slices(degraded_scan):
    images, dseg, spacing = degraded_scan
    found = suggest_scan(images.mean(axis=1), dseg, spacing)
    kinds = {s: {h.kind for h in hints} for s, hints in found.items()}
    assert "arch_contact" in kinds.get(2, set())
    assert "ghosting" in kinds.get(4, set())
    assert "low_snr" in kinds.get(6, set())
    for s in set(range(8)) - set(DEGRADED):
        assert not kinds.get(s, set()) & IMAGE_KINDS, (s, found.get(s))
    for hints in found.values():
        for hint in hints:
            assert hint.reason == KIND_REASONS[hint.kind] and 0 < hint.score <= 1 and hint.detail
    assert found[2][0].reason == "posterior_arch_contact"


def test_posterior_csf_thickness_measures_the_ring(degraded_scan):
    _, dseg, spacing = degraded_scan
    assert posterior_csf_mm(dseg[2], spacing[0]) < 0.35
    assert posterior_csf_mm(dseg[0], spacing[0]) > 1.0


def test_image_quality_numbers(degraded_scan):
    images, dseg, _ = degraded_scan
    clean = image_quality(images[0].mean(0), dseg[0] >= 2)
    noisy = image_quality(images[6].mean(0), dseg[6] >= 2)
    assert noisy.snr < 0.65 * clean.snr
    assert np.isfinite(clean.ghost_ratio) and clean.ghost_ratio > 1


def test_noise_sigma_ignores_edges():
    rng = np.random.default_rng(1)
    image = np.zeros((128, 128))
    image[30:90, 20:100] = 100.0  # a sharp-edged bright block
    assert abs(noise_sigma(image + rng.normal(0, 3.0, image.shape)) - 3.0) < 0.3


def _cord_slice():
    dseg = np.zeros((30, 30), np.uint8)
    yy, xx = np.mgrid[:30, :30]
    dseg[(yy - 15) ** 2 / 100 + (xx - 15) ** 2 / 121 <= 1] = 1
    dseg[(yy - 14) ** 2 / 36 + (xx - 15) ** 2 / 64 <= 1] = 2
    dseg[(yy - 14) ** 2 / 4 + (xx - 15) ** 2 / 16 <= 1] = 3
    return dseg


def test_good_label_slice_has_no_suggestion():
    assert label_suggestions(_cord_slice(), (0.6, 0.6)) == []


@pytest.mark.parametrize("damage, words", [
    (lambda d: d.__setitem__((slice(None), 15), np.where(d[:, 15] >= 3, 2, d[:, 15])), "gray matter in 2 pieces"),
    (lambda d: d.__setitem__((11, 12), 1), "cord not closed"),
    (lambda d: d.__setitem__((slice(None), slice(14, 16)), np.where(d[:, 14:16] >= 2, 1, d[:, 14:16])),
     "cord in 2 pieces"),
    (lambda d: d.__setitem__((14, 11), 1), "gray matter touches"),
])
def test_topology_problems_are_named(damage, words):
    dseg = _cord_slice()
    damage(dseg)
    hints = label_suggestions(dseg, (0.6, 0.6))
    assert [h.kind for h in hints] == ["topology"] and words in hints[0].detail


def test_area_outlier_against_neighbours():
    cord = [40.0, 41.0, 42.0, 20.0, 43.0, 42.0, 41.0]
    areas = pd.DataFrame({"cord": cord, "gm": [8.0] * 7})
    found = area_outliers(areas)
    assert set(found) == {3} and "-5" in found[3][0].detail  # about -52 %


def test_session_outliers_compare_the_same_slice(degraded_scan):
    _, dseg, spacing = degraded_scan
    areas = slice_areas(dseg, spacing[0] * spacing[1])
    shrunk = dseg.copy()
    shrunk[5][shrunk[5] >= 2] = 1  # session 2 lost its cord on slice 5
    images = np.ones((8, 20, 20), np.float32)
    found = suggest_scan(images, shrunk, spacing, other_sessions=[areas])
    assert any(h.kind == "session_outlier" for h in found[5])
    assert not any(h.kind == "session_outlier" for s in found if s != 5 for h in found[s])


def test_disagreement_from_members_and_from_map(degraded_scan):
    _, dseg, _ = degraded_scan
    wrong = dseg.copy()
    wrong[3][wrong[3] >= 3] = 2  # one member misses the GM on slice 3
    members = [dseg, dseg, wrong]
    per_slice = disagreement_per_slice(dseg, members)
    assert np.argmax(per_slice) == 3 and per_slice[0] == 0
    mapped = np.mean([m != dseg for m in members], axis=0).astype(np.float32)
    assert np.allclose(disagreement_per_slice(dseg, disagreement=mapped), per_slice)
    strong = [dseg, np.where(dseg[None] >= 2, 1, dseg)[0], np.where(dseg >= 2, 1, dseg)]
    found = suggest_scan(np.ones(dseg.shape, np.float32), dseg, members=strong)
    assert all(any(h.kind == "disagreement" for h in found[s]) for s in range(8))


def test_study_job_and_cli_use_files(tmp_path, degraded_scan, capsys):
    images, dseg, spacing = degraded_scan
    scan = Scan.from_arrays(images, pixel_spacing=spacing, subject="01")
    path = write_scan(scan, scan_path(tmp_path, "01"))
    scan.path = path
    write_labels(scan, LabelMap(dseg, who="score"), ScanEntry(tmp_path, path).derivatives_dir, "score")
    study = Study.open(tmp_path)
    found = drain(study_suggestions_job(study))
    table = suggestions_table(found)
    assert {(2, "arch_contact"), (4, "ghosting"), (6, "low_snr")} <= set(zip(table["slice"], table["kind"]))
    out = tmp_path / "suggestions.tsv"
    assert main(["qc", "suggest", str(tmp_path), "-o", str(out)]) == 0
    written = pd.read_csv(out, sep="\t")
    assert list(written.columns) == ["scan", "slice", "kind", "reason", "score", "detail"]
    assert len(written) == len(table)
    assert main(["qc", "suggest", str(tmp_path), "--scan", "sub-09_amira"]) == 2
