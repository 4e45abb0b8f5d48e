"""Inference: resampling, canal localisation, ensembles, segment_scan/segment_files, score segment."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from score_gui.areas import COLUMNS
from score_gui.cli import main
from score_gui.consensus import majority_vote
from score_gui.errors import ScoreInputError
from score_gui.devices import pick_device
from score_gui.inference import Ensemble, make_untrained_ensemble, models_root, resolve_models, segment_files, segment_scan
from score_gui.labels import read_labels, validate_labels
from score_gui.mdgru.checkpoint import load_model, save_model
from score_gui.mdgru.model import MDGRUNet, OnDevice
from score_gui.mdgru.numpy_net import NumpyMDGRU
from score_gui.mdgru.preprocess import find_canal, model_grid, sample_crops, to_native, zscore_slices
from score_gui.progress import drain
from score_gui.scan import Scan, read_scan, write_scan


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("SCORE_THREADS", "1")


def disc_labels(shape, centre, radii=(10, 7, 4)):
    """Nested discs: canal, cord, GM (radii in pixels)."""
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    dist = np.hypot(rr - centre[0], cc - centre[1])
    dseg = np.zeros(shape, np.uint8)
    for value, radius in zip((1, 2, 3), radii):
        dseg[dist <= radius] = value
    return dseg


def disc_scan(n_slices=3, shape=(40, 44), spacing=(0.5, 0.5), centre=(20, 22), n_images=8, seed=0):
    rng = np.random.default_rng(seed)
    dseg = disc_labels(shape, centre)
    contrast = np.array([0.0, 3.0, 1.5, 1.0], np.float32)[dseg]
    images = contrast[None, None] + rng.normal(0, 0.05, (n_slices, n_images, *shape)).astype(np.float32)
    return Scan.from_arrays(images, pixel_spacing=spacing), dseg


# -- resampling ----------------------------------------------------------------------

@pytest.mark.parametrize("native", [0.5, 0.67, 0.4])
def test_labels_survive_native_to_model_to_native(native):
    shape = (int(24 / native), int(26 / native))
    centre = (shape[0] / 2 + 1.3, shape[1] / 2 - 2.1)
    dseg = disc_labels(shape, centre, radii=(8 / native, 5 / native, 2.5 / native))
    grid = model_grid((native, native), shape, centre, pixel_size_mm=0.5, crop_size_px=40)
    one_hot = np.eye(7, dtype=np.float32)[dseg].transpose(2, 0, 1)[None]   # [1, 7, H, W]
    on_model = sample_crops(one_hot, [grid])[0]
    back = to_native(on_model, grid, shape).argmax(0)
    if native == 0.5:
        np.testing.assert_array_equal(back, dseg)                         # same grid: exact
    for value in (1, 2, 3):
        a, b = back == value, dseg == value
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.93
    # Outside the 20 mm crop everything is "outside the canal".
    far = model_grid((native, native), shape, (0, 0), 0.5, 8)
    assert to_native(on_model[:, :8, :8], far, shape).argmax(0)[-1, -1] == 0


def test_model_grid_geometry():
    grid = model_grid((0.8, 0.4), (50, 100), centre=(25.0, 50.0), pixel_size_mm=0.8, crop_size_px=10)
    assert grid.step == (1.0, 2.0) and grid.shape == (10, 10)
    assert grid.rows.mean() == pytest.approx(25.0) and grid.cols.mean() == pytest.approx(50.0)
    whole = model_grid((0.5, 0.5), (30, 40), pixel_size_mm=1.0)
    assert whole.shape == (15, 20)


def test_zscore_is_per_slice_and_image():
    images = np.random.default_rng(0).normal(5, 3, (2, 3, 10, 10)).astype(np.float32)
    out = zscore_slices(images)
    np.testing.assert_allclose(out.mean(axis=(2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(2, 3)), 1, atol=1e-4)
    assert np.all(np.isfinite(zscore_slices(np.zeros((1, 1, 4, 4), np.float32))))


# -- canal localisation --------------------------------------------------------------

def thresholding_localiser(in_channels: int) -> MDGRUNet:
    """A hand-set MDGRU whose 'canal' logit is large where image 0 is bright.

    State weights 0 and update gates shut (z ~ 0) make every cell output tanh(4 x); the
    mean of the four is the same, and the 1x1 layer thresholds it.
    """
    net = MDGRUNet(in_channels, 2, hidden=(1,), fc=(), kernel=3).eval()
    with torch.no_grad():
        for cell in net.layers[0].cells:
            cell.w_x.zero_()
            cell.w_h.zero_()
            cell.b_x.copy_(torch.tensor([-20.0, 0.0, 0.0]))
            cell.w_x[2, 0, 1] = 4.0
        net.fcs[0].weight.copy_(torch.tensor([[[[-10.0]]], [[[10.0]]]]))
        net.fcs[0].bias.copy_(torch.tensor([5.0, -5.0]))
    return net


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_find_canal_with_a_localiser_and_the_fallback(engine):
    shape = (96, 96)
    centres = [(30.0, 60.0), (32.0, 62.0), (31.0, 58.0)]
    images = np.zeros((3, 8, *shape), np.float32)
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    for s, (r, c) in enumerate(centres):
        images[s, :, np.hypot(rr - r, cc - c) <= 8] = 10.0
    images[2, :] = 0.0                                           # nothing on slice 2
    scan = Scan.from_arrays(images, pixel_spacing=(0.6, 0.6))
    meta = {"pixel_size_mm": 2.0}
    net = thresholding_localiser(8)
    localiser = NumpyMDGRU(net.architecture, {k: v.numpy() for k, v in net.state_dict().items()}) \
        if engine == "numpy" else OnDevice(net)
    found = find_canal(scan, (localiser, meta))
    np.testing.assert_allclose(found[:2], centres[:2], atol=1.5)
    np.testing.assert_allclose(found[2], np.median(found[:2], axis=0), atol=1e-6)  # filled by the median
    fallback = find_canal(scan, None)
    np.testing.assert_allclose(fallback, [[47.5, 47.5]] * 3)


# -- ensembles -----------------------------------------------------------------------

def test_ensemble_load_by_folder_name_and_env(tmp_path, monkeypatch):
    make_untrained_ensemble(tmp_path / "sets" / "default", n_members=2, tiny=True)
    monkeypatch.setenv("SCORE_MODELS", str(tmp_path / "sets"))
    assert models_root() == tmp_path / "sets"
    ensemble = Ensemble.load("default")
    assert [m.name for m in ensemble.members] == ["m1", "m2"] and ensemble.localiser is not None
    assert resolve_models(tmp_path / "sets" / "default") == tmp_path / "sets" / "default"
    with pytest.raises(ScoreInputError, match="ensemble.json"):
        Ensemble.load("nonexistent")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "ensemble.json").write_text("{not json")
    with pytest.raises(ScoreInputError, match="not a valid ensemble"):
        Ensemble.load(tmp_path / "broken")
    (tmp_path / "broken" / "ensemble.json").write_text(json.dumps({"members": ["missing.pt"]}))
    with pytest.raises(ScoreInputError, match="missing.pt"):
        Ensemble.load(tmp_path / "broken")


def test_cuda_request_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        assert pick_device("cuda").type == "cuda"
    else:
        with pytest.raises(ScoreInputError, match="no CUDA"):
            pick_device("cuda")
    with pytest.raises(ScoreInputError, match="unknown device"):
        pick_device("tpu")


def test_segment_scan_end_to_end_nesting_members_and_progress(tmp_path):
    scan, _ = disc_scan()
    ensemble = Ensemble.load(make_untrained_ensemble(tmp_path / "m", n_members=3, tiny=True))
    steps = []
    job = segment_scan(scan, ensemble, members_out=True)
    try:
        while True:
            steps.append(next(job))
    except StopIteration as stop:
        result = stop.value
    # One step for the canal, then one per member: a member sees the scan's slices in one batch.
    assert len(steps) == 1 + 3 and steps[-1].done == steps[-1].total == 9
    assert [s.done for s in steps] == [0, 3, 6, 9]
    assert result.consensus.dseg.shape == scan.label_shape and result.consensus.who == "score"
    assert sorted(result.members) == ["m1", "m2", "m3"]
    for label_map in [result.consensus, *result.members.values()]:
        assert label_map.dseg.max() <= 6
        assert not [v for v in validate_labels(label_map.dseg, label_map.lesion) if "lesion" in v.rule]
    assert result.disagreement.shape == scan.label_shape
    assert set(np.unique(np.round(result.disagreement * 3)).tolist()) <= {0.0, 1.0, 2.0, 3.0}
    assert result.timing["total"] > 0 and result.centres.shape == (3, 2)
    # A one-member ensemble's consensus is that member's labels.
    single = Ensemble(members=ensemble.members[:1], localiser=None)
    alone = drain(segment_scan(scan, single, members_out=True))
    np.testing.assert_array_equal(alone.consensus.dseg, alone.members["m1"].dseg)
    assert alone.disagreement.max() == 0


def test_soft_vote_decides_on_mean_probabilities_and_hard_vote_on_majorities(tmp_path):
    scan, _ = disc_scan()
    ensemble = Ensemble.load(make_untrained_ensemble(tmp_path / "m", n_members=3, tiny=True))
    soft = drain(segment_scan(scan, ensemble, members_out=True))
    hard = drain(segment_scan(scan, ensemble, members_out=True, vote="hard"))
    np.testing.assert_array_equal(hard.consensus.dseg,
                                  majority_vote(list(hard.members.values()), skip_unlabelled_slices=False).dseg)
    # Where all members agree, the mean of their probabilities agrees too.
    members = np.stack([m.dseg for m in soft.members.values()])
    unanimous = (members == members[0]).all(axis=0)
    np.testing.assert_array_equal(soft.consensus.dseg[unanimous], members[0][unanimous])
    with pytest.raises(ValueError, match="vote"):
        drain(segment_scan(scan, ensemble, vote="average"))
    # The soft vote's structure probabilities (click correction's prior) decide as it does.
    probs = soft.probabilities
    assert set(probs) >= {"cord", "gm"} and hard.probabilities == {}
    for name, p in probs.items():
        assert p.shape == scan.label_shape and p.dtype == np.float32 and 0 <= p.min() and p.max() <= 1
    assert (probs["gm"] <= probs["cord"] + 1e-6).all()                 # GM lies inside the cord
    cord = soft.consensus.dseg >= 2
    assert (probs["cord"][cord] > 0.5).mean() > 0.95 and (probs["cord"][~cord] <= 0.5).mean() > 0.95


def test_separate_paper_networks_segment_too(tmp_path):
    from score_gui.mdgru.heads import PAPER_TASK

    scan, _ = disc_scan(n_slices=2)
    folder = make_untrained_ensemble(tmp_path / "paper", n_members=1, task=PAPER_TASK, tiny=True,
                                     localiser=False)
    ensemble = Ensemble.load(folder)
    assert len(ensemble.members[0].networks) == 4
    result = drain(segment_scan(scan, ensemble))
    assert result.consensus.dseg.shape == scan.label_shape and result.consensus.lesion is not None


def test_segment_files_writes_contract_files_on_the_scan_grid(tmp_path):
    scan, _ = disc_scan(n_slices=3, shape=(36, 40), spacing=(0.7, 0.6))
    # A non-trivial affine (oblique-free but flipped and offset) must be kept on every output.
    affine = np.array([[0.0, 0.6, 0, -10], [-0.7, 0, 0, 20], [0, 0, 8.0, -30], [0, 0, 0, 1]])
    scan = Scan.from_arrays(scan.images, pixel_spacing=(0.7, 0.6), affine=affine)
    path = write_scan(scan, tmp_path / "sub-07_ses-2_amira.nii.gz", {"VertebralLevels": ["C2", "C3", "C4"]})
    models = make_untrained_ensemble(tmp_path / "models", n_members=2, tiny=True)
    outputs = drain(segment_files([path], tmp_path / "out", models=models, members=True, disagreement=True))
    written = outputs[0]
    reread = read_scan(path)
    names = sorted(p.name for p in (tmp_path / "out").glob("*.nii.gz"))
    expected = [f"sub-07_ses-2_amira_desc-{who}_{kind}.nii.gz"
                for who in ("score", "modelm1", "modelm2") for kind in ("dseg", "lesion")]
    assert names == sorted(expected + ["sub-07_ses-2_amira_desc-score_disagreement.nii.gz"])
    labels = read_labels(written["score_dseg"], reread)          # checks grid and affine
    assert labels.dseg.shape == reread.label_shape and labels.lesion is not None
    for kind in ("score_dseg", "score_lesion", "disagreement"):
        img = nib.load(written[kind])
        np.testing.assert_allclose(img.affine, reread.affine, atol=1e-5)
        assert img.shape == reread.file_shape
    assert nib.load(written["score_dseg"]).get_data_dtype() == np.uint8
    assert nib.load(written["disagreement"]).get_data_dtype() == np.float32
    table = pd.read_csv(written["areas"], keep_default_na=False, dtype={"subject": str, "session": str})
    assert list(table.columns) == COLUMNS and len(table) == 3
    assert set(table["source"]) == {"score"} and table["level"].tolist() == ["C2", "C3", "C4"]
    assert table["scan"].iloc[0] == "sub-07_ses-2_amira" and table["subject"].iloc[0] == "07"
    assert (tmp_path / "out" / "dseg.tsv").exists()


def _cli_scan(tmp_path, n_images):
    scan, _ = disc_scan(n_slices=2, n_images=n_images)
    return write_scan(scan, tmp_path / f"scan{n_images}.nii.gz")


def test_cli_segments_and_reports_a_model_that_does_not_fit(tmp_path, capsys):
    models = make_untrained_ensemble(tmp_path / "models", n_members=2, tiny=True)
    good = _cli_scan(tmp_path, 8)
    assert main(["segment", str(good), "-o", str(tmp_path / "out"), "--models", str(models)]) == 0
    assert (tmp_path / "out" / "scan8_desc-score_dseg.nii.gz").exists()
    assert (tmp_path / "out" / "scan8_areas.csv").exists()
    assert not list((tmp_path / "out").glob("*desc-model*"))      # members only on request

    single_contrast = _cli_scan(tmp_path, 1)
    capsys.readouterr()
    code = main(["segment", str(good), str(single_contrast), "-o", str(tmp_path / "out2"),
                 "--models", str(models)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and "expects 8" in err[-1]
    assert str(single_contrast) in err[-1]
    assert not (tmp_path / "out2").exists() or not list((tmp_path / "out2").iterdir())  # nothing written

    assert main(["segment", str(good), "-o", str(tmp_path / "o3"), "--models", str(tmp_path / "nowhere")]) == 2
    if not torch.cuda.is_available():
        assert main(["segment", str(good), "-o", str(tmp_path / "o4"), "--models", str(models),
                     "--device", "cuda"]) == 2


def test_a_foreign_checkpoint_in_the_ensemble_is_reported(tmp_path, capsys):
    models = make_untrained_ensemble(tmp_path / "models", n_members=1, tiny=True, localiser=False)
    torch.save({"weights": torch.zeros(3)}, models / "m1_fused.pt")
    code = main(["segment", str(_cli_scan(tmp_path, 8)), "-o", str(tmp_path / "out"), "--models", str(models)])
    assert code == 2 and "not a SCORE MDGRU checkpoint" in capsys.readouterr().err
    save_model(models / "m1_fused.pt", MDGRUNet(8, 9, hidden=(2,), fc=(), kernel=3))
    assert main(["segment", str(_cli_scan(tmp_path, 8)), "-o", str(tmp_path / "out"), "--models", str(models)]) == 0


def test_members_in_parallel_give_the_same_labels_as_in_sequence(tmp_path, monkeypatch):
    scan, _ = disc_scan(n_slices=2)
    ensemble = Ensemble.load(make_untrained_ensemble(tmp_path / "m", n_members=3, tiny=True))
    sequential = drain(segment_scan(scan, ensemble, members_out=True))
    monkeypatch.setenv("SCORE_THREADS", "2")
    job = segment_scan(scan, ensemble, members_out=True)
    steps = []
    try:
        while True:
            steps.append(next(job))
    except StopIteration as stop:
        parallel = stop.value
    # 3 members on 2 workers: each member's slices are split in halves, so both cores stay busy
    assert [s.done for s in steps] == list(range(0, 7))
    for name in ("m1", "m2", "m3"):
        np.testing.assert_array_equal(parallel.members[name].dseg, sequential.members[name].dseg)
    np.testing.assert_array_equal(parallel.consensus.dseg, sequential.consensus.dseg)
    # Stopping early (a cancelled job) returns promptly, and the BLAS thread count (1 per
    # call while member threads run side by side) is what it was before.
    with threadpool_limits(2, user_api="blas"):
        job = segment_scan(scan, ensemble)
        next(job), next(job)
        assert {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"} == {1}
        job.close()
        assert {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"} == {2}


def test_single_contrast_scan_repeated_on_models_trained_for_it(tmp_path):
    """Models whose metadata says so (the default ones) take a T2*w scan on all their inputs;
    the result is exactly that of the image repeated as an 8-image scan."""
    from score_gui.mdgru.checkpoint import read_checkpoint

    folder = make_untrained_ensemble(tmp_path / "m", n_members=2, tiny=True)
    for path in folder.glob("*.pt"):
        content = read_checkpoint(path)
        model, meta = load_model(path)
        save_model(path, model, {**content["meta"], "single_contrast_broadcast": True})
    scan, _ = disc_scan(n_slices=2)
    single = Scan.from_arrays(scan.images[:, :1], pixel_spacing=scan.pixel_spacing)
    repeated = Scan.from_arrays(np.repeat(scan.images[:, :1], 8, axis=1), pixel_spacing=scan.pixel_spacing)
    ensemble = Ensemble.load(folder)
    np.testing.assert_array_equal(drain(segment_scan(single, ensemble)).consensus.dseg,
                                  drain(segment_scan(repeated, ensemble)).consensus.dseg)
    three = Scan.from_arrays(scan.images[:, :3], pixel_spacing=scan.pixel_spacing)
    with pytest.raises(ScoreInputError, match="expects 8"):
        drain(segment_scan(three, ensemble))


def make_default_models_script(monkeypatch):
    """``scripts/make_default_models.py`` imported as a module (it is not a package's)."""
    import importlib.util
    import sys

    script = models_root().parent.parent / "scripts" / "make_default_models.py"
    spec = importlib.util.spec_from_file_location("make_default_models", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def test_default_models_get_a_new_inference_crop_without_new_weights(tmp_path, monkeypatch):
    """``make_default_models.py --assemble --inference-crop`` changes what the members see, keeps
    their weights, records the change, and leaves a model set that loads."""
    import shutil

    module = make_default_models_script(monkeypatch)
    folder = tmp_path / "default"
    shutil.copytree(models_root() / "default", folder)
    before = torch.load(folder / "raterA.pt", weights_only=True)
    assert module.main(["--out", str(folder), "--work", str(tmp_path / "work"), "--assemble",
                        "--inference-crop", "40"]) == 0
    after = torch.load(folder / "raterA.pt", weights_only=True)
    assert after["meta"]["crop_size_px"] == 40
    assert after["meta"]["training"]["inference_crop_history"][-1]["from"] == before["meta"]["crop_size_px"]
    assert all(torch.equal(after["state_dict"][k], v) for k, v in before["state_dict"].items())
    assert {m.crop_size_px for m in Ensemble.load(folder).members} == {40}


def test_default_member_records_its_lineage_back_to_random_weights(tmp_path, monkeypatch):
    """A member trained in two stages names both in its checkpoint, the first from random
    weights: whether members share an ancestor can be read off them."""
    module = make_default_models_script(monkeypatch)
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--part", "A", "--iterations", "2", "--crop", "24", "--batch-size", "2", "--log-every", "1"]
    assert module.main([*common, "--out", str(first), "--work", str(tmp_path / "w1")]) == 0
    assert module.main([*common, "--init", str(first / "raterA.pt"), "--seed-offset", "7",
                        "--out", str(second), "--work", str(tmp_path / "w2")]) == 0
    training = torch.load(second / "raterA.pt", weights_only=True)["meta"]["training"]
    assert training["data"]["initialised_from"] == "raterA.pt"
    (stage,) = training["lineage"]
    assert stage["initialised_from"] is None and stage["iterations"] == 2
    assert "--out " + str(first) in stage["command"]
    assert torch.load(first / "raterA.pt", weights_only=True)["meta"]["training"]["lineage"] == []
