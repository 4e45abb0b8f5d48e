"""MDGRU network: recurrence checked by hand, direction handling, DropConnect, checkpoints, heads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from score_gui.errors import ScoreInputError
from score_gui.mdgru.checkpoint import check_fits_scan, load_model, save_model
from score_gui.mdgru.heads import HEADS, PAPER_TASK, labels_from_probabilities, targets_from_labels
from score_gui.mdgru.model import (CGRU, DEFAULT_ARCHITECTURE, REFERENCE_ARCHITECTURE, MDGRULayer,
                                   MDGRUNet, count_parameters, small_architecture)
from score_gui.scan import Scan
from score_gui.training.losses import set_loss, split_logits, stack_targets


def sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def _set_cell(cell, w_x, b_x, w_h):
    with torch.no_grad():
        cell.w_x.copy_(torch.tensor(w_x, dtype=torch.float32).view_as(cell.w_x))
        cell.b_x.copy_(torch.tensor(b_x, dtype=torch.float32))
        cell.w_h.copy_(torch.tensor(w_h, dtype=torch.float32).view_as(cell.w_h))


def test_cgru_matches_hand_computed_line():
    # One row of length 3, one input and one state channel, kernel 1: scalar GRU by hand.
    cell = CGRU(1, 1, kernel=1, axis=1).eval()
    a_z, a_r, a_c = 0.5, -1.0, 2.0
    u_z, u_r, u_c = 1.0, 0.5, -1.0
    _set_cell(cell, [a_z, a_r, a_c], [1.0, 1.0, 0.0], [u_z, u_r, u_c])
    xs = [1.0, 2.0, -1.0]
    h, expected = 0.0, []
    for x in xs:
        z = sigmoid(a_z * x + 1.0 + u_z * h)
        r = sigmoid(a_r * x + 1.0 + u_r * h)
        c = math.tanh(a_c * x + r * (u_c * h))       # reset applied after the state product
        h = z * h + (1 - z) * c                       # z keeps the old state
        expected.append(h)
    out = cell(torch.tensor(xs).view(1, 1, 1, 3))
    assert out.shape == (1, 1, 1, 3)
    np.testing.assert_allclose(out.view(-1).detach().numpy(), expected, rtol=1e-6, atol=1e-6)
    # The first step by itself: z = sigmoid(1.5), c = tanh(2), h = (1 - z) c.
    assert expected[0] == pytest.approx((1 - sigmoid(1.5)) * math.tanh(2.0))

    backward = CGRU(1, 1, kernel=1, axis=1, reverse=True).eval()
    _set_cell(backward, [a_z, a_r, a_c], [1.0, 1.0, 0.0], [u_z, u_r, u_c])
    flipped = backward(torch.tensor(xs[::-1]).view(1, 1, 1, 3)).view(-1).detach().numpy()
    np.testing.assert_allclose(flipped[::-1], expected, rtol=1e-6, atol=1e-6)


def _naive_cgru(cell: CGRU, x: np.ndarray) -> np.ndarray:
    """Plain numpy loops over steps, pixels and kernel taps: an independent reference."""
    w_x, b_x, w_h = (t.detach().double().numpy() for t in (cell.w_x, cell.b_x, cell.w_h))
    hid, k = cell.hidden, cell.kernel
    img = x[0].astype(np.float64)                      # [C, H, W]
    if cell.axis == 1:
        img = img.transpose(0, 2, 1)                   # steps along axis 1 -> rows
    n_steps, length = img.shape[1], img.shape[2]
    order = range(n_steps - 1, -1, -1) if cell.reverse else range(n_steps)

    def conv(weight, line):                            # weight [O, I, k], line [I, L] -> [O, L]
        out = np.zeros((weight.shape[0], length))
        for pos in range(length):
            for tap in range(k):
                src = pos + tap - k // 2
                if 0 <= src < length:
                    out[:, pos] += weight[:, :, tap] @ line[:, src]
        return out

    h = np.zeros((hid, length))
    states = np.zeros((hid, n_steps, length))
    for t in order:
        xin = conv(w_x, img[:, t]) + b_x[:, None]
        hh = conv(w_h, h)
        z = 1 / (1 + np.exp(-(xin[:hid] + hh[:hid])))
        r = 1 / (1 + np.exp(-(xin[hid:2 * hid] + hh[hid:2 * hid])))
        c = np.tanh(xin[2 * hid:] + r * hh[2 * hid:])
        h = z * h + (1 - z) * c
        states[:, t] = h
    return states.transpose(0, 2, 1) if cell.axis == 1 else states


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("grad", [True, False])  # training path (conv1d) and inference path (GEMM)
def test_cgru_matches_naive_loops(axis, reverse, grad):
    torch.manual_seed(axis * 2 + reverse)
    cell = CGRU(2, 3, kernel=3, axis=axis, reverse=reverse).eval()
    x = np.random.default_rng(0).normal(size=(2, 2, 4, 5)).astype(np.float32)
    with torch.set_grad_enabled(grad):
        out = cell(torch.from_numpy(x)).detach().numpy()
    for b in range(2):
        np.testing.assert_allclose(out[b], _naive_cgru(cell, x[b:b + 1]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(6, 6), (5, 7)])
def test_layer_is_mean_of_four_independent_cells(shape):
    torch.manual_seed(1)
    layer = MDGRULayer(3, 4, kernel=3).eval()
    x = torch.randn(2, 3, *shape)
    expected = sum(cell(x) for cell in layer.cells) / 4
    assert [(c.axis, c.reverse) for c in layer.cells] == [(0, False), (0, True), (1, False), (1, True)]
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-6)
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), expected.detach(), rtol=1e-5, atol=1e-6)


def test_initialisation_biases_and_xavier_scale():
    torch.manual_seed(0)
    cell = CGRU(16, 32, kernel=7)
    assert torch.all(cell.b_x[:64] == 1) and torch.all(cell.b_x[64:] == 0)
    expected_std = math.sqrt(2 / (7 * (32 + 64)))     # xavier on the [2H, H, k] gate block
    assert cell.w_h[:64].std().item() == pytest.approx(expected_std, rel=0.1)


def test_network_shapes_gradients_and_parameter_counts():
    torch.manual_seed(0)
    net = MDGRUNet(8, 9, **small_architecture())
    x = torch.randn(2, 8, 10, 12, requires_grad=True)
    out = net(x)
    assert out.shape == (2, 9, 10, 12)
    out.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    # Reference network size (docs/mdgru_reference.md section 2).
    assert count_parameters(MDGRUNet(8, 3, **REFERENCE_ARCHITECTURE)) == 774_905
    assert count_parameters(MDGRUNet(16, 3, **REFERENCE_ARCHITECTURE)) == 785_657
    MDGRUNet(8, 9, **DEFAULT_ARCHITECTURE)(torch.zeros(1, 8, 8, 8))


def test_every_output_pixel_sees_the_whole_image():
    torch.manual_seed(0)
    net = MDGRUNet(1, 2, **small_architecture()).eval()
    x = torch.zeros(1, 1, 9, 9, requires_grad=True)
    net(x)[0, 0, 0, 0].backward()
    assert (x.grad.abs() > 0).float().mean() > 0.9     # far corner included


def test_dropconnect_only_in_training_and_only_on_gates():
    torch.manual_seed(0)
    cell = CGRU(2, 3, kernel=3)
    cell.train()
    w_x, w_h = cell.effective_weights()
    assert not torch.equal(w_x[:6], cell.w_x[:6]) and not torch.equal(w_h[:6], cell.w_h[:6])
    assert torch.equal(w_x[6:], cell.w_x[6:]) and torch.equal(w_h[6:], cell.w_h[6:])
    # Factors ~ N(1, 1) for keep rate 0.5.
    big = CGRU(64, 64, kernel=7)
    factors = (big.effective_weights()[1][:128] / big.w_h[:128]).detach()
    assert factors.mean().item() == pytest.approx(1.0, abs=0.05)
    assert factors.std().item() == pytest.approx(1.0, abs=0.05)

    net = MDGRUNet(2, 3, **small_architecture())
    x = torch.randn(1, 2, 6, 6)
    net.train()
    assert not torch.allclose(net(x), net(x))
    net.eval()
    torch.testing.assert_close(net(x), net(x))
    off = MDGRUNet(2, 3, hidden=(4, 4), fc=(5,), kernel=3, dropconnect_keep=1.0).train()
    torch.testing.assert_close(off(x), off(x))


def test_checkpoint_round_trip_keeps_weights_and_metadata(tmp_path):
    torch.manual_seed(0)
    net = MDGRUNet(8, 9, **small_architecture())
    path = save_model(tmp_path / "a" / "m.pt", net, {"name": "raterA", "training": {"iterations": 12},
                                                     "pixel_size_mm": 0.6, "crop_size_px": 48})
    model, meta = load_model(path)
    assert not model.training
    for key, value in net.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)
    assert meta["architecture"] == net.architecture
    assert meta["training"] == {"iterations": 12} and meta["name"] == "raterA"
    assert meta["pixel_size_mm"] == 0.6 and meta["crop_size_px"] == 48
    assert meta["channel_names"][0] == "TI97.1" and meta["format_version"] == 1
    assert [h["name"] for h in meta["heads"]] == ["tissue", "lesion"]
    assert meta["normalisation"]["method"] == "zscore" and meta["date"]
    x = torch.randn(1, 8, 7, 7)
    torch.testing.assert_close(model(x), net.eval()(x))


def test_checkpoint_errors_are_one_line(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {}}, foreign)
    truncated = tmp_path / "truncated.pt"
    save_model(tmp_path / "ok.pt", MDGRUNet(1, 9, **small_architecture()))
    truncated.write_bytes((tmp_path / "ok.pt").read_bytes()[:200])
    for bad in (garbage, foreign, truncated, tmp_path / "missing.pt"):
        with pytest.raises(ScoreInputError) as info:
            load_model(bad)
        assert str(bad) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError):
        save_model(tmp_path / "x.pt", MDGRUNet(1, 5, **small_architecture()))  # 5 != 9 outputs


def test_model_that_does_not_fit_the_scan_is_reported():
    _, meta = None, {"in_channels": 8, "channel_names": ["TI97.1"], "name": "A"}
    scan = Scan.from_arrays(np.zeros((2, 1, 6, 6), np.float32), path=None)
    with pytest.raises(ScoreInputError, match="expects 8"):
        check_fits_scan(meta, scan, "m.pt")


# -- heads ---------------------------------------------------------------------------

def test_targets_for_full_and_partial_labels():
    dseg = np.array([[0, 1, 2, 3, 4, 5, 6]], np.uint8)
    lesion = np.array([[0, 0, 1, 0, 0, 0, 0]], np.uint8)
    full = targets_from_labels(dseg, lesion, {"canal", "cord", "gm", "horns", "lesion"})
    np.testing.assert_array_equal(full["tissue"][:, 0].T, np.eye(7, dtype=bool))
    assert full["lesion"][1, 0].tolist() == [False, False, True, False, False, False, False]

    partial = targets_from_labels(np.array([0, 2, 3]), None, {"cord", "gm"})
    as_sets = [set(np.flatnonzero(partial["tissue"][:, i])) for i in range(3)]
    assert as_sets == [{0, 1}, {2}, {3, 4, 5, 6}]
    assert partial["lesion"].all()
    no_horns = targets_from_labels(np.array([3, 4]), None, {"canal", "cord", "gm", "horns"})
    assert [set(np.flatnonzero(no_horns["tissue"][:, i])) for i in range(2)] == [{3}, {4}]
    canal_only = targets_from_labels(np.array([0, 1]), None, {"canal"})
    assert [set(np.flatnonzero(canal_only["tissue"][:, i])) for i in range(2)] == [{0}, {1, 2, 3, 4, 5, 6}]
    coarse = targets_from_labels(np.array([0, 2, 5]), None, {"cord", "gm"}, heads=["canal_cord", "horns"])
    assert coarse["canal_cord"][:, 0].tolist() == [True, True, False]
    assert coarse["horns"][:, 2].tolist() == [False, True, True, True, True]


def test_set_loss_equals_cross_entropy_for_full_labels_and_ignores_unknown():
    torch.manual_seed(0)
    logits = torch.randn(2, 9, 4, 4, requires_grad=True)
    dseg = np.random.default_rng(1).integers(0, 7, (2, 4, 4))
    lesion = (np.random.default_rng(2).random((2, 4, 4)) > 0.7).astype(np.uint8)
    targets = stack_targets([targets_from_labels(d, l) for d, l in zip(dseg, lesion)])
    heads = split_logits(logits)
    expected = (torch.nn.functional.cross_entropy(heads["tissue"], torch.from_numpy(dseg).long())
                + torch.nn.functional.cross_entropy(heads["lesion"], torch.from_numpy(lesion).long()))
    loss = set_loss(logits, targets)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    # Partial labels: the set loss is lower than forcing one class, and unknown lesions add nothing.
    partial = stack_targets([targets_from_labels(d, None, {"cord", "gm"}) for d in dseg])
    assert float(set_loss(logits, partial)) < float(expected)
    with_dice = set_loss(logits, targets, dice_weight=0.5)
    assert torch.isfinite(with_dice) and float(with_dice) != float(expected)


def test_training_on_a_partial_target_learns_the_allowed_set():
    torch.manual_seed(0)
    logits = torch.zeros(1, 9, 1, 1, requires_grad=True)
    target = stack_targets([targets_from_labels(np.array([[3]]), None, {"cord", "gm"})])
    optimiser = torch.optim.SGD([logits], lr=1.0)
    for _ in range(50):
        optimiser.zero_grad()
        set_loss(logits, target).backward()
        optimiser.step()
    probs = torch.softmax(logits[0, :7, 0, 0], 0)
    assert probs[3:].sum() > 0.95 and logits.grad[0, 7:].abs().sum() == 0


def test_labels_from_separate_paper_heads_are_nested():
    rng = np.random.default_rng(0)
    probs = {}
    for net in PAPER_TASK.networks:
        for name in net.heads:
            raw = rng.random((HEADS[name].n_classes, 5, 5)).astype(np.float32)
            probs[name] = raw / raw.sum(0)
    dseg, lesion = labels_from_probabilities(probs)
    assert dseg.shape == (5, 5) and dseg.max() <= 6
    assert not np.any(lesion.astype(bool) & (dseg < 2))
    # A pixel whose canal/cord head says "outside" with certainty is 0 whatever the others say.
    probs["canal_cord"][:, 0, 0] = [1.0, 0.0, 0.0]
    assert labels_from_probabilities(probs)[0][0, 0] == 0
