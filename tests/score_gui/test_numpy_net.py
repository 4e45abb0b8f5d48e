"""The numpy inference pass computes what the PyTorch MDGRU computes, and refuses weights that do not fit."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from score_gui.mdgru.checkpoint import load_model, load_network, save_model
from score_gui.mdgru.model import DEFAULT_ARCHITECTURE, LOCALISER_ARCHITECTURE, MDGRUNet, OnDevice, small_architecture
from score_gui.mdgru.numpy_net import NumpyMDGRU, softmax
from score_gui.mdgru.preprocess import model_grid, sample_crops, zscore_slices
from score_gui.phantom.study import make_scan


def _randomised(net: MDGRUNet, seed: int) -> MDGRUNet:
    """Every parameter random, biases included (the initial gate bias of 1 and zero 1x1
    biases would leave parts of the computation untested)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.4)
    return net.eval()


def _state(net: MDGRUNet) -> dict:
    return {k: v.numpy() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("architecture", [small_architecture(), LOCALISER_ARCHITECTURE, DEFAULT_ARCHITECTURE],
                         ids=["small", "localiser", "default"])
@pytest.mark.parametrize("shape", [(3, 16, 16), (2, 9, 14), (1, 1, 5)], ids=["square", "oblong", "one-row"])
def test_numpy_network_equals_the_pytorch_module(architecture, shape):
    net = _randomised(MDGRUNet(3, 5, **architecture), seed=sum(shape))
    x = np.random.default_rng(1).standard_normal((shape[0], 3, *shape[1:])).astype(np.float32)
    with torch.inference_mode():
        expected = net(torch.from_numpy(x)).numpy()
    got = NumpyMDGRU(net.architecture, _state(net))(x)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(OnDevice(net)(x), expected, rtol=1e-6, atol=1e-6)


def test_shipped_member_gives_the_same_labels_on_a_phantom_scan():
    """The default member A on a real 12-slice phantom scan: the same logits within float32
    rounding, so the same labels, through either engine."""
    from score_gui.inference import models_root

    checkpoint = models_root() / "default" / "raterA.pt"
    network, meta = load_network(checkpoint)
    model, _ = load_model(checkpoint)
    scan, _, _ = make_scan("ms", seed=5, n_slices=12)
    centre = ((scan.shape_hw[0] - 1) / 2, (scan.shape_hw[1] - 1) / 2)
    grid = model_grid(scan.pixel_spacing, scan.shape_hw, centre, meta["pixel_size_mm"], meta["crop_size_px"])
    crops = sample_crops(zscore_slices(scan.images), [grid] * scan.n_slices)
    with torch.inference_mode():
        expected = model(torch.from_numpy(crops)).numpy()
    got = network(crops)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    tissue = slice(0, 7)
    assert (got[:, tissue].argmax(1) == expected[:, tissue].argmax(1)).mean() > 0.9999
    # a real segmentation: outside, CSF, WM, both horns and the commissure
    assert {0, 1, 2, 4, 5, 6} <= set(np.unique(got[:, tissue].argmax(1)).tolist())


def test_weights_that_do_not_fit_the_architecture_are_refused():
    net = MDGRUNet(2, 3, **small_architecture())
    state = _state(net)
    with pytest.raises(ValueError, match="missing.*layers.0.cells.0.w_x"):
        NumpyMDGRU(net.architecture, {k: v for k, v in state.items() if k != "layers.0.cells.0.w_x"})
    with pytest.raises(ValueError, match="unexpected.*extra"):
        NumpyMDGRU(net.architecture, {**state, "extra": np.zeros(1)})
    with pytest.raises(ValueError, match="fcs.1.weight has shape"):
        NumpyMDGRU(net.architecture, {**state, "fcs.1.weight": np.zeros((3, 2, 1, 1), np.float32)})
    with pytest.raises(ValueError, match=r"expected \[B, 2, H, W\]"):
        NumpyMDGRU(net.architecture, state)(np.zeros((1, 3, 4, 4), np.float32))


def test_a_checkpoint_loads_as_the_numpy_network_on_the_cpu(tmp_path):
    net = _randomised(MDGRUNet(8, 9, **small_architecture()), seed=3)
    path = save_model(tmp_path / "m.pt", net, {"name": "A"})
    network, meta = load_network(path)
    assert isinstance(network, NumpyMDGRU) and meta["name"] == "A"
    x = np.random.default_rng(2).standard_normal((2, 8, 12, 12)).astype(np.float32)
    with torch.inference_mode():
        expected = torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(softmax(network(x)), expected, atol=1e-5)


def test_score_segment_runs_without_pytorch(tmp_path):
    """The reason for the numpy network: ``score segment`` on the CPU starts without PyTorch's
    2-3 s import (nor pydicom's, pandas' or scipy.ndimage's, which it does not need either).
    Run in a fresh interpreter (this one has PyTorch loaded) on a real scan file with a real
    ensemble."""
    from score_gui.inference import make_untrained_ensemble
    from score_gui.scan import write_scan

    models = make_untrained_ensemble(tmp_path / "models", n_members=2, tiny=True)
    scan, _, _ = make_scan("hc", seed=2, n_slices=2)
    scan_path = write_scan(scan, tmp_path / "sub-01_amira.nii.gz")
    code = ("import sys; from score_gui.cli import main; "
            f"code = main(['segment', {str(scan_path)!r}, '-o', {str(tmp_path / 'out')!r}, '--models', {str(models)!r}]); "
            "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'pydicom', 'pandas'}), 'scipy.ndimage' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "0 [] False", done.stderr
    assert (tmp_path / "out" / "sub-01_amira_desc-score_dseg.nii.gz").is_file()
