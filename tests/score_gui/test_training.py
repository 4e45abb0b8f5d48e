"""Training: grouped folds, augmentation alignment, loop (loss decreases, resume),
cross-validation end to end and partial labels (issue 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from score_gui.training.augment import (AugmentConfig, augment_intensity, augment_slice,
                                        sampling_grid, warp_images, warp_labels)
from score_gui.training.folds import check_no_leak, grouped_folds


# ---------------------------------------------------------------------------------------
# Folds
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n_folds", [2, 3, 4])
def test_grouped_folds_never_leak_a_subject(seed, n_folds):
    rng = np.random.default_rng(seed)
    # 10 subjects with 1-3 sessions each, in shuffled order
    subjects = [f"{s:02d}" for s in range(10) for _ in range(int(rng.integers(1, 4)))]
    rng.shuffle(subjects)
    folds = grouped_folds(subjects, n_folds=n_folds, seed=seed)
    assert len(folds) == n_folds
    tested = []
    for fold in folds:
        train_subjects = {subjects[i] for i in fold.train}
        test_subjects = {subjects[i] for i in fold.test}
        assert test_subjects and train_subjects
        assert not train_subjects & test_subjects
        assert set(fold.test_subjects) == test_subjects
        tested += fold.test
    assert sorted(tested) == list(range(len(subjects)))
    sizes = [len(f.test) for f in folds]
    assert max(sizes) - min(sizes) <= 3  # balanced up to one subject's sessions


def test_leak_check_catches_a_leak():
    from score_gui.training.folds import Fold

    subjects = ["a", "a", "b", "c"]
    leaky = [Fold(0, (1, 2), (0, 3), ("a", "c")), Fold(1, (0, 3), (1, 2), ("a", "b"))]
    with pytest.raises(AssertionError, match="subjects"):
        check_no_leak(leaky, subjects)


def test_too_few_subjects_is_a_clear_error():
    from score_gui.errors import ScoreInputError

    with pytest.raises(ScoreInputError, match="cannot fill 3 folds"):
        grouped_folds(["a", "a", "b"], n_folds=3)


# ---------------------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------------------

def _disc_scene(shape=(80, 80)):
    """Labels: an off-centre ellipse (1) with an eccentric inner blob (3); image = label * 100."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    dseg = np.zeros(shape, np.uint8)
    dseg[((yy - 38) / 18.0) ** 2 + ((xx - 42) / 26.0) ** 2 < 1] = 1
    dseg[((yy - 32) / 6.0) ** 2 + ((xx - 52) / 8.0) ** 2 < 1] = 3
    images = np.stack([dseg * 100.0, dseg * 50.0 + 10]).astype(np.float32)
    return images, dseg


def test_geometric_augmentation_keeps_image_and_labels_aligned():
    images, dseg = _disc_scene()
    geometric = AugmentConfig(rotation_deg=40, scaling=1.3, anisotropy=1.2, elastic_px=3.0,
                              mirror_lr=True, gamma=1.0, ti_shift=0, ti_tilt=0, bias=0, noise=0)
    for seed in range(10):
        rng = np.random.default_rng(seed)
        coords = sampling_grid((64, 64), (40.0, 40.0), 0.8, rng, geometric)
        warped = warp_images(images, coords)
        labels = warp_labels(dseg, coords)
        assert set(np.unique(labels)) <= {0, 1, 3}
        # away from edges (where bilinear blends) the image reads back the label exactly
        interior = ~(np.abs(warped[0] / 100.0 - np.round(warped[0] / 100.0)) > 1e-3)
        agree = np.round(warped[0] / 100.0).astype(int) == labels
        assert agree[interior].mean() > 0.99
        assert agree.mean() > 0.93
        assert (labels == 3).sum() > 20  # the inner structure survived


def test_rotation_moves_structure_with_the_image():
    images, dseg = _disc_scene()
    rotate = AugmentConfig(rotation_deg=90, scaling=1.0, anisotropy=1.0, elastic_px=0, mirror_lr=False,
                           gamma=1.0, ti_shift=0, ti_tilt=0, bias=0, noise=0)
    plain = warp_labels(dseg, sampling_grid((80, 80), (39.5, 39.5), 1.0, np.random.default_rng(0),
                                            AugmentConfig.none()))
    assert np.array_equal(plain, dseg)  # identity grid reproduces the slice
    rotated = None
    for seed in range(50):  # find a draw with a large rotation
        rng = np.random.default_rng(seed)
        coords = sampling_grid((80, 80), (39.5, 39.5), 1.0, rng, rotate)
        labels = warp_labels(dseg, coords)
        if abs(np.mean(np.nonzero(labels == 3)[0]) - np.mean(np.nonzero(dseg == 3)[0])) > 8:
            rotated = (warp_images(images, coords), labels)
            break
    assert rotated is not None, "a 90-degree range must move the inner blob"
    image, labels = rotated
    assert np.mean(np.abs(np.round(image[0] / 100) - labels) > 0) < 0.05


def test_augment_slice_label_values_and_intensity_changes():
    images, dseg = _disc_scene()
    lesion = (dseg == 3).astype(np.uint8)
    out, out_dseg, out_lesion = augment_slice(images, dseg, lesion, (40.0, 40.0), 1.0, (48, 48),
                                              np.random.default_rng(3), AugmentConfig())
    assert out.shape == (2, 48, 48) and out.dtype == np.float32
    assert set(np.unique(out_dseg)) <= {0, 1, 3} and set(np.unique(out_lesion)) <= {0, 1}
    assert np.all(out_lesion <= (out_dseg == 3))  # lesion stays inside its structure
    changed = augment_intensity(images, np.random.default_rng(1), AugmentConfig())
    assert changed.shape == images.shape and np.all(changed >= 0)
    assert not np.allclose(changed, images)
    assert np.array_equal(augment_intensity(images, np.random.default_rng(1), AugmentConfig.none()), images)
