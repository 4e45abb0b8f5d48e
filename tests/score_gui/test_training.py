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


# ---------------------------------------------------------------------------------------
# Loop, cross-validation, partial labels
# ---------------------------------------------------------------------------------------

TINY = {"hidden": (6, 6), "fc": (8,), "kernel": 3, "dropconnect_keep": 0.5}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """One torch thread: on a shared 2-core machine more threads only spin against each other."""
    monkeypatch.setenv("SCORE_THREADS", "1")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _write_study(root, subjects, contrast="amira", pixel=0.8, shape=(40, 40), n_slices=2,
                 labelled=None, rater="A", seed=0):
    """A small study of phantom scans with a rater's labels (optionally partial)."""
    from score_gui.labels import LabelMap, write_labels
    from score_gui.phantom import make_slice
    from score_gui.scan import Scan, write_scan
    from score_gui.study import scan_path

    rng = np.random.default_rng(seed)
    for subject, sessions in subjects.items():
        for session in sessions:
            made = [make_slice(rng, level=lvl, kind="ms", shape=shape, pixel_size=pixel, contrast=contrast,
                               degrade="none") for lvl in ("C3", "C4")[:n_slices]]
            scan = Scan.from_arrays(np.stack([m.images for m in made]), pixel_spacing=(pixel, pixel),
                                    subject=subject, session=session)
            path = scan_path(root, subject, session)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_scan(scan, path)
            scan.path = path
            dseg = np.stack([m.dseg for m in made])
            lesion = np.stack([m.lesion for m in made])
            if labelled is not None:  # partial: only cord (2) and GM (3), 0 elsewhere
                dseg = np.where(dseg >= 3, 3, np.where(dseg == 2, 2, 0)).astype(np.uint8)
            labels = LabelMap(dseg, lesion if labelled is None else None,
                              set(labelled) if labelled is not None else
                              {"canal", "cord", "gm", "horns", "lesion"})
            rel = path.parent.relative_to(root)
            write_labels(scan, labels, root / "derivatives" / "score" / rel, f"rater{rater}")
    return root


def test_loss_decreases_on_a_fixed_tiny_problem():
    """Real learning check: the MDGRU fits a fixed slice's labels (loss falls by > 60 %)."""
    from score_gui.mdgru.heads import targets_from_labels
    from score_gui.training.losses import set_loss, stack_targets
    from score_gui.mdgru.model import MDGRUNet
    from score_gui.phantom import make_slice
    from score_gui.progress import drain
    from score_gui.training.data import normalise_slice
    from score_gui.training.loop import TrainConfig, train_model

    torch.set_num_threads(1)
    made = make_slice(np.random.default_rng(1), level="C3", shape=(24, 24), pixel_size=1.0, degrade="none")
    inputs = torch.from_numpy(normalise_slice(made.images)[None])
    targets = stack_targets([targets_from_labels(made.dseg, made.lesion, heads=("tissue", "lesion"))])
    torch.manual_seed(0)
    net = MDGRUNet(8, 9, **TINY)
    result = drain(train_model(net, lambda rng: (inputs, targets), set_loss,
                               TrainConfig(iterations=60, learning_rate=0.02, seed=0)))
    first, last = np.mean(result.losses[:5]), np.mean(result.losses[-5:])
    assert last < 0.4 * first, (first, last)


def test_resume_continues_from_the_saved_iteration(tmp_path):
    from score_gui.progress import drain
    from score_gui.training.loop import TrainConfig, train_model

    def sample(rng):
        x = torch.from_numpy(rng.normal(size=(1, 2, 6, 6)).astype(np.float32))
        return x, (x[:, 0] > x[:, 1]).long()

    state = tmp_path / "state.pt"
    config = TrainConfig(iterations=30, checkpoint_every=10, learning_rate=0.05, seed=3)
    # uninterrupted reference run
    torch.manual_seed(0)
    reference = drain(train_model(torch.nn.Conv2d(2, 2, 1), sample, torch.nn.functional.cross_entropy, config))
    # a run killed after 17 iterations (last checkpoint at 10), then resumed
    torch.manual_seed(0)
    job = train_model(torch.nn.Conv2d(2, 2, 1), sample, torch.nn.functional.cross_entropy, config, state)
    for _ in range(17):
        step = next(job)
    job.close()
    assert step.done == 17
    resumed_job = train_model(torch.nn.Conv2d(2, 2, 1), sample, torch.nn.functional.cross_entropy, config, state)
    first = next(resumed_job)
    assert first.done == 11  # continues after the checkpoint at 10
    result = drain(resumed_job)
    assert result.resumed_from == 10 and result.iterations == 30 and len(result.losses) == 30
    np.testing.assert_allclose(result.losses, reference.losses, rtol=1e-5)  # same samples, same path
    for a, b in zip(result.model.parameters(), reference.model.parameters()):
        torch.testing.assert_close(a, b)


def test_cross_validation_end_to_end(tmp_path):
    import pandas as pd

    from score_gui.inference import Ensemble
    from score_gui.mdgru.checkpoint import load_model
    from score_gui.progress import drain
    from score_gui.study import Study
    from score_gui.training.loop import cross_validate

    torch.set_num_threads(1)
    root = _write_study(tmp_path / "study", {"01": ["1", "2"], "02": [None], "03": [None], "04": [None]})
    study = Study.open(root)
    out = tmp_path / "models"
    steps = []
    job = cross_validate(study, "A", out, folds=3, iterations=6, localiser_iterations=3, architecture=TINY,
                         crop_px=24, pixel_size_mm=1.0, crop_size_px=32, seed=0)
    try:
        while True:
            steps.append(next(job))
    except StopIteration as stop:
        result = stop.value
    assert steps[-1].done == steps[-1].total and "loss" in steps[0].extra
    assert len(result.fold_models) == 3 and all(p.exists() for p in result.fold_models)
    # every scan predicted exactly once, by the fold that never trained on its subject
    predicted = sorted(p.name for p in result.predictions)
    assert len(predicted) == len(study.scans) == 5
    for path in result.predictions:
        fold = int(path.name.split("fold")[1][0])
        _, meta = load_model(result.fold_models[fold - 1])
        subject = path.name.split("_")[0][4:]
        assert subject in meta["training"]["test_subjects"]
        assert subject not in meta["training"]["data"]["subjects"]
        assert "_desc-modelAfold" in path.name
    table = pd.read_csv(result.metrics_csv)
    assert {"subject", "scan", "fold", "compartment", "slice", "dice", "hd95_mm"} <= set(table.columns)
    assert set(table.loc[table["slice"] != "mean", "scan"]) == {s.stem for s in study.scans}
    assert {"cord", "gm", "wm", "lesion"} <= set(table["compartment"])
    _, meta = load_model(result.fold_models[0])
    assert meta["training"]["rater"] == "raterA" and meta["training"]["iterations"] == 6
    assert "cross_validation" in meta["training"] and meta["training"]["augmentation"]["rotation_deg"] > 0
    # the output folder is an ensemble of the fold models
    assert len(Ensemble.load(out).members) == 3
    # resuming a finished run retrains nothing
    again = drain(cross_validate(study, "A", out, folds=3, iterations=6, localiser_iterations=3,
                                 architecture=TINY, crop_px=24, pixel_size_mm=1.0, crop_size_px=32, seed=0))
    assert len(again.predictions) == 5


def test_partial_labels_t2star_train_and_segment(tmp_path):
    """Issue 3 done-when: a 1-channel T2*w study at 0.5 mm with only cord + GM labelled
    trains, and the model segments a scan into 0 / 2 (WM) / 3 (GM) with the labelled cord found."""
    from score_gui.inference import Ensemble, segment_scan
    from score_gui.labels import read_labels
    from score_gui.progress import drain
    from score_gui.scan import read_scan
    from score_gui.study import Study
    from score_gui.training.loop import cross_validate

    torch.set_num_threads(1)
    root = _write_study(tmp_path / "t2s", {"01": [None], "02": [None]}, contrast="t2star", pixel=0.5,
                        shape=(64, 64), labelled={"cord", "gm"}, seed=2)
    study = Study.open(root)
    result = drain(cross_validate(study, "A", tmp_path / "m", folds=2, iterations=100, localiser_iterations=20,
                                  architecture=TINY, crop_px=32, pixel_size_mm=0.8, crop_size_px=40,
                                  augment="none", learning_rate=0.02, seed=1))
    means = result.mean_metrics()
    assert set(means) == {"cord", "wm", "gm"}  # canal, horns, lesions were not labelled
    assert means["cord"]["dice"] > 0.5, means  # out of fold: learnt from the other subject
    ensemble = Ensemble.load(tmp_path / "m")
    _, meta = ensemble.members[0].networks[0]
    assert meta["in_channels"] == 1 and meta["heads"][0]["name"] == "gm_wm" and len(meta["heads"]) == 1
    entry = study.scans[0]
    scan = read_scan(entry.path)
    segmented = drain(segment_scan(scan, ensemble))
    values = set(np.unique(segmented.consensus.dseg).tolist())
    assert values <= {0, 2, 3} and 2 in values
    truth = read_labels(entry.dseg_path("raterA"), scan)
    cord_pred, cord_truth = segmented.consensus.dseg >= 2, truth.dseg >= 2
    assert 2 * (cord_pred & cord_truth).sum() / (cord_pred.sum() + cord_truth.sum()) > 0.5
    written = sorted(p.name for p in result.predictions)
    assert len(written) == 2 and all("_desc-modelAfold" in name for name in written)


def test_shipped_default_ensemble_segments_an_unseen_synthetic_scan():
    """The committed weights in resources/models/default work: cord, WM and GM found on a new subject."""
    from score_gui.inference import Ensemble, segment_scan
    from score_gui.labels import structure_mask
    from score_gui.metrics import dice
    from score_gui.phantom import make_scan
    from score_gui.progress import drain

    ensemble = Ensemble.load("default")
    assert [m.name for m in ensemble.members] == ["A", "B", "C"] and ensemble.localiser is not None
    meta = ensemble.members[0].networks[0][1]
    assert meta["training"]["iterations"] > 0 and "augmentation" in meta["training"]
    scan, truth, _ = make_scan("hc", seed=920001, n_slices=2, shape=(128, 128), pixel_size=0.67)
    result = drain(segment_scan(scan, ensemble))
    for name, minimum in (("cord", 0.9), ("wm", 0.8), ("gm", 0.6)):
        assert dice(structure_mask(result.consensus.dseg, name), structure_mask(truth.dseg, name)) > minimum


def test_member_loss_gives_lesion_dice_only_where_a_lesion_is():
    from score_gui.mdgru.heads import targets_from_labels
    from score_gui.training.losses import set_loss, stack_targets
    from score_gui.training.loop import member_loss

    dseg = np.zeros((8, 8), np.uint8)
    dseg[2:6, 2:6] = 2
    logits = torch.randn(1, 9, 8, 8, generator=torch.Generator().manual_seed(0))
    no_lesion = stack_targets([targets_from_labels(dseg, np.zeros_like(dseg))])
    tissue_only = set_loss(logits, {"tissue": no_lesion["tissue"]}, dice_weight=0.5)
    lesion_ce = set_loss(logits, {"lesion": no_lesion["lesion"]})
    torch.testing.assert_close(member_loss(logits, no_lesion, ("tissue", "lesion"), 0.5), tissue_only + lesion_ce)
    lesion = np.zeros_like(dseg)
    lesion[3, 3] = 1
    with_lesion = stack_targets([targets_from_labels(dseg, lesion)])
    plain = set_loss(logits, {"tissue": with_lesion["tissue"]}, dice_weight=0.5) + set_loss(
        logits, {"lesion": with_lesion["lesion"]})
    assert float(member_loss(logits, with_lesion, ("tissue", "lesion"), 0.5)) > float(plain)
