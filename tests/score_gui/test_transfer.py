"""Transfer training (issue 10, part 2): starting weights from a model set, channel
mapping, partial labels on a full head, early stopping on a held-out subject, and
iteration-seeded sampling that does not depend on the loader's workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from score_gui.errors import ScoreInputError
from score_gui.mdgru.model import MDGRUNet
from score_gui.progress import drain
from tests.score_gui.test_training import TINY, _write_study, one_thread  # noqa: F401 (autouse fixture)


def test_first_layer_mapping_gives_a_repeated_image_the_same_response():
    from score_gui.training.transfer import adapt_first_layer

    torch.manual_seed(0)
    source = MDGRUNet(8, 9, **TINY).eval()
    target = MDGRUNet(1, 9, **TINY).eval()
    target.load_state_dict(adapt_first_layer(source.state_dict(), 1))
    image = torch.randn(1, 1, 12, 12)
    with torch.no_grad():
        np.testing.assert_allclose(target(image).numpy(), source(image.repeat(1, 8, 1, 1)).numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_init_that_is_not_a_model_folder_is_bad_input(tmp_path):
    from score_gui.training.transfer import resolve_init

    (tmp_path / "empty").mkdir()
    with pytest.raises(ScoreInputError, match="not a model folder") as caught:
        resolve_init(tmp_path / "empty")
    assert "empty" in str(caught.value)
    assert resolve_init("none") is None
    assert (resolve_init("default") / "ensemble.json").is_file()


def test_transfer_to_a_single_contrast_partial_study(tmp_path):
    """An 8-image ensemble starts the folds of a 1-image study labelled with cord and GM only:
    the members keep the full tissue head, record what they came from and what they learnt,
    and segment into the contract's partial values 0 / 2 / 3."""
    from score_gui.inference import Ensemble, make_untrained_ensemble, segment_scan
    from score_gui.mdgru.checkpoint import load_model
    from score_gui.scan import read_scan
    from score_gui.study import Study
    from score_gui.training.loop import cross_validate

    source = make_untrained_ensemble(tmp_path / "source", n_members=2, architecture=TINY, crop_size_px=40,
                                     pixel_size_mm=0.8)
    root = _write_study(tmp_path / "t2s", {"01": [None], "02": [None]}, contrast="t2star", pixel=0.5,
                        shape=(64, 64), labelled={"cord", "gm"}, seed=2)
    study = Study.open(root)
    result = drain(cross_validate(study, "A", tmp_path / "m", folds=2, iterations=30, localiser_iterations=5,
                                  crop_px=32, augment="none", seed=1, init=source))
    _, meta = load_model(result.fold_models[1])
    assert meta["in_channels"] == 1 and [h["name"] for h in meta["heads"]] == ["tissue", "lesion"]
    assert meta["training"]["initialised_from"].endswith("m2_fused.pt")  # fold 2 from member 2
    assert meta["training"]["learnt_structures"] == ["cord", "gm"]
    assert meta["pixel_size_mm"] == 0.8 and meta["crop_size_px"] == 40
    assert set(result.mean_metrics()) == {"cord", "wm", "gm"}
    scan = read_scan(study.scans[0].path)
    segmented = drain(segment_scan(scan, Ensemble.load(tmp_path / "m"), members_out=True))
    assert set(np.unique(segmented.consensus.dseg).tolist()) <= {0, 2, 3}
    assert segmented.consensus.lesion is None and segmented.consensus.labelled == {"cord", "gm"}


def test_early_stopping_returns_the_best_validated_model():
    from score_gui.training.loop import TrainConfig, train_model

    net = torch.nn.Conv2d(1, 2, 1)
    scores = iter([3.0, 1.0, 2.0, 2.5, 4.0, 5.0, 6.0])
    seen = {}

    def validate(model):
        value = next(scores)
        seen[value] = model.weight.detach().clone()
        return value

    def sample(rng):
        x = torch.from_numpy(rng.normal(size=(1, 1, 4, 4)).astype("float32"))
        return x, (x[:, 0] > 0).long()

    result = drain(train_model(net, sample, torch.nn.functional.cross_entropy,
                               TrainConfig(iterations=100, learning_rate=0.05, validate_every=5, patience=3),
                               validate=validate))
    # validations at 5, 10, ..., 25: best at 10 (loss 1.0), then three worse ones -> stop at 25
    assert result.iterations == 25 and result.best_iteration == 10
    assert [v for _, v in result.validation] == [3.0, 1.0, 2.0, 2.5, 4.0]
    torch.testing.assert_close(net.weight, seen[1.0])


def test_batches_do_not_depend_on_the_loader_workers():
    from score_gui.training.loop import iteration_batches

    def sample(rng):
        return torch.from_numpy(rng.normal(size=(2, 3)).astype("float32"))

    inline = list(iteration_batches(sample, 7, 3, 9))
    parallel = list(iteration_batches(sample, 7, 3, 9, workers=2))
    assert len(inline) == len(parallel) == 6
    for a, b in zip(inline, parallel):
        torch.testing.assert_close(a, b)
    resumed = list(iteration_batches(sample, 7, 5, 9))  # a resumed run draws what the killed one would have
    torch.testing.assert_close(resumed[0], inline[2])


def test_checkpoints_with_an_unusable_grid_or_heads_are_bad_input(tmp_path):
    from score_gui.mdgru.checkpoint import load_model, read_checkpoint
    from score_gui.mdgru.model import small_architecture

    net = MDGRUNet(8, 9, **small_architecture())
    from score_gui.mdgru.checkpoint import save_model
    good = save_model(tmp_path / "good.pt", net, {"name": "A"})
    content = read_checkpoint(good)
    for name, change in (("zero", {"pixel_size_mm": 0.0}), ("nan", {"pixel_size_mm": float("nan")}),
                         ("crop", {"crop_size_px": -4}),
                         ("heads", {"heads": content["meta"]["heads"][:1]})):
        bad = tmp_path / f"{name}.pt"
        torch.save({**content, "meta": {**content["meta"], **change}}, bad)
        with pytest.raises(ScoreInputError) as caught:
            load_model(bad)
        assert str(bad) in str(caught.value) and "\n" not in str(caught.value)


def test_score_train_with_an_init_that_is_not_a_model_exits_2(tmp_path, capsys):
    from score_gui.cli import main

    root = _write_study(tmp_path / "study", {"01": [None], "02": [None]})
    (tmp_path / "notmodels").mkdir()
    code = main(["train", str(root), "--rater", "A", "-o", str(tmp_path / "out"), "--init",
                 str(tmp_path / "notmodels")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "notmodels" in err[0] and "not a model folder" in err[0]
    assert not (tmp_path / "out").exists()


def test_soft_dice_rewards_gm_when_only_cord_and_gm_are_labelled():
    """Partial labels on the full 7-class head: GM pixels allow {3, 4, 5, 6}. A network that
    puts them in GM must score better than one that calls them WM (the Dice once pushed
    every GM class to zero here, and transferred models never predicted GM)."""
    from score_gui.mdgru.heads import targets_from_labels
    from score_gui.training.losses import soft_dice

    dseg = np.array([[0, 2, 2, 3, 3, 0]], np.uint8)
    allowed = torch.from_numpy(targets_from_labels(dseg, None, {"cord", "gm"}, ("tissue",))["tissue"])[None]
    right, wrong = torch.zeros(1, 7, 1, 6), torch.zeros(1, 7, 1, 6)
    right[0, 0, 0, [0, 5]] = 1; right[0, 2, 0, [1, 2]] = 1; right[0, 4, 0, [3, 4]] = 1
    wrong[0, 0, 0, [0, 5]] = 1; wrong[0, 2, 0, 1:5] = 1
    assert float(soft_dice(right, allowed)) > 0.99 and float(soft_dice(wrong, allowed)) < 0.8
