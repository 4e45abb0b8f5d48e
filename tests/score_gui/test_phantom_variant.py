"""The evaluation-only AMIRA generator: labels, anatomy, contrast, lesions, rescans, independence."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

import score_gui.phantom_variant as variant
from score_gui.labels import structure_mask, validate_labels
from score_gui.phantom import make_scan
from score_gui.phantom_variant import make_variant_scan, render_slice, variant_subject

SHAPE = (96, 96)


def _core(mask: np.ndarray) -> np.ndarray:
    """A mask without its border pixels (no partial volume)."""
    return ndimage.binary_erosion(mask)


def test_scan_shapes_dtypes_and_fully_subdivided_valid_labels():
    scan, truth, info = make_variant_scan("hc", seed=920001, n_slices=3, shape=SHAPE)
    assert scan.images.shape == (3, 8, *SHAPE) and scan.images.dtype == np.float32
    assert truth.dseg.shape == (3, *SHAPE) and truth.dseg.dtype == np.uint8
    assert truth.lesion.dtype == np.uint8 and not truth.lesion.any()
    assert truth.who == "truth" and scan.subject == "hc920001"
    assert scan.pixel_spacing == (0.67, 0.67) and len(scan.levels) == 3
    assert info["generator"] == "variant" and info["degraded"] == [None, None, None]
    assert validate_labels(truth.dseg, truth.lesion) == []
    for s in range(3):
        assert set(np.unique(truth.dseg[s])) == {0, 1, 2, 4, 5, 6}  # 3 (undivided GM) never used
    assert np.isfinite(scan.images).all() and scan.images.min() >= 0


def test_gm_fraction_and_cord_size_plausible_over_subjects():
    rng = np.random.default_rng(7)
    fractions, cord_areas = [], []
    for _ in range(6):
        subject = variant_subject(rng, "hc", n_slices=8)
        for index in (0, 7):
            s = render_slice(subject, rng, index, shape=(80, 80), pixel_size=(0.67, 0.67))
            cord = (s.dseg >= 2).sum()
            fractions.append((s.dseg >= 3).sum() / cord)
            cord_areas.append(cord * 0.67 * 0.67)
    assert 0.12 <= min(fractions) and max(fractions) <= 0.30, fractions
    assert 45 < min(cord_areas) and max(cord_areas) < 140, cord_areas
    assert np.std(cord_areas) > 2.0  # subjects differ in size


def test_ms_lesions_inside_the_cord_and_keep_their_tissue_class():
    scan, truth, info = make_variant_scan("ms", seed=920101, n_slices=4, shape=SHAPE)
    lesion = truth.lesion > 0
    assert lesion.any() and info["n_plaques"] >= 1
    assert not (lesion & ~structure_mask(truth.dseg, "cord")).any()
    assert set(np.unique(truth.dseg[lesion])) <= {2, 4, 5, 6}
    assert validate_labels(truth.dseg, truth.lesion) == []
    # Lesions (long T1) are brighter than the WM around them in the late average.
    s = int(np.argmax(lesion.reshape(4, -1).sum(1)))
    late = scan.images[s, 5:].mean(0)
    wm = _core(truth.dseg[s] == 2) & ~ndimage.binary_dilation(lesion[s], iterations=2)
    assert late[_core(lesion[s]) | lesion[s]].mean() > 1.5 * late[wm].mean()


def test_same_seed_same_scan_other_seed_other_scan():
    a, ta, _ = make_variant_scan("ms", seed=920003, n_slices=2, shape=(72, 72))
    b, tb, _ = make_variant_scan("ms", seed=920003, n_slices=2, shape=(72, 72))
    c, tc, _ = make_variant_scan("ms", seed=920004, n_slices=2, shape=(72, 72))
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(ta.dseg, tb.dseg)
    np.testing.assert_array_equal(ta.lesion, tb.lesion)
    assert not np.array_equal(a.images, c.images) and not np.array_equal(ta.dseg, tc.dseg)


def test_differs_from_the_project_phantom_and_shares_no_code():
    scan, truth, _ = make_variant_scan("hc", seed=5, n_slices=2, shape=SHAPE)
    other, other_truth, _ = make_scan("hc", seed=5, n_slices=2, shape=SHAPE)
    assert scan.images.shape == other.images.shape
    assert not np.array_equal(truth.dseg, other_truth.dseg)
    assert np.abs(scan.images - other.images).mean() > 0.1 * other.images.mean()
    package = Path(variant.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name != "score_gui.phantom" and not name.startswith("score_gui.phantom."), (path, name)


def test_amira_contrast_gm_over_wm_early_csf_bright_late():
    scan, truth, _ = make_variant_scan("hc", seed=920007, n_slices=2, shape=SHAPE)
    for s in range(2):
        early, late = scan.images[s, :5].mean(0), scan.images[s, 5:].mean(0)
        d = truth.dseg[s]
        gm, wm, csf = d >= 3, _core(d == 2), _core(d == 1)
        assert early[gm].mean() > 1.1 * early[wm].mean()
        assert early[csf].mean() < early[gm].mean()
        assert late[csf].mean() > 1.6 * late[wm].mean()


def test_t2star_is_one_image_with_gm_brighter_than_wm_and_bright_csf():
    scan, truth, _ = make_variant_scan("hc", seed=920008, n_slices=2, shape=SHAPE, contrast="t2star")
    assert scan.images.shape == (2, 1, *SHAPE) and scan.inversion_times is None
    for s in range(2):
        image, d = scan.images[s, 0], truth.dseg[s]
        gm, wm, csf = d >= 3, _core(d == 2), _core(d == 1)
        assert image[gm].mean() > 1.15 * image[wm].mean()
        assert image[csf].mean() > image[gm].mean()


def test_rescan_of_one_subject_new_noise_and_repositioning():
    subject = variant_subject(np.random.default_rng(3), "hc", n_slices=2)
    first, t1, _ = make_variant_scan(seed=1, subject=subject, shape=SHAPE)
    second, t2, _ = make_variant_scan(seed=2, subject=subject, shape=SHAPE)
    moved, t3, info = make_variant_scan(seed=3, subject=subject, shape=SHAPE, reposition=(1.6, 0.0, 4.0))
    np.testing.assert_array_equal(t1.dseg, t2.dseg)
    assert not np.array_equal(first.images, second.images)
    noise = np.abs(first.images - second.images).mean() / first.images.mean()
    assert 0.005 < noise < 0.5
    assert not np.array_equal(t1.dseg, t3.dseg) and info["reposition"] == (1.6, 0.0, 4.0)
    # The move is rigid: areas barely change, the canal centre shifts about 1.6 mm (2.4 px).
    cord1, cord3 = ((t.dseg >= 2).sum(axis=(1, 2)) for t in (t1, t3))
    assert np.all(np.abs(cord3 - cord1) <= 0.06 * cord1)
    shift = np.array(ndimage.center_of_mass(t3.dseg[0] >= 1)) - ndimage.center_of_mass(t1.dseg[0] >= 1)
    assert 1.6 < np.hypot(*shift) < 3.4


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="kind"):
        make_variant_scan("xx", seed=1, n_slices=1, shape=(48, 48))
    with pytest.raises(ValueError, match="contrast"):
        make_variant_scan("hc", seed=1, n_slices=1, shape=(48, 48), contrast="t1")
