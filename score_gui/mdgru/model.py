"""MDGRU network (Andermatt et al. 2016) for 2D slices, in PyTorch.

Semantics follow the reference implementation (zubata88/mdgru, see
``docs/mdgru_reference.md`` sections 1-2):

* :class:`CGRU` scans one axis in one direction. Per step ``t`` (``*`` = 1-D "same"
  convolution along the other axis)::

      z, r = sigmoid(Wx_g * x_t + b_g + Wh_g * h_{t-1})      # z first, r second
      c    = tanh(Wx_c * x_t + b_c + r . (Wh_c * h_{t-1}))    # reset AFTER the state conv
      h_t  = z . h_{t-1} + (1 - z) . c                        # z keeps the old state

  with ``h_{-1} = 0``, gate bias 1, candidate bias 0, Xavier-normal weights and Gaussian
  DropConnect ``N(1, sigma^2)``, ``sigma = sqrt((1 - p) / p)`` (``p`` = keep rate) on the
  gate weights only, drawn once per forward pass and only in training mode.
* :class:`MDGRULayer` runs 4 independent cells (rows forward/backward, columns
  forward/backward) and returns the **mean** of their outputs.
* :class:`MDGRUNet` stacks MDGRU layers, each followed by a 1x1 convolution; tanh after
  every 1x1 except the last, whose output are the logits.

Speed (CPU): the input convolutions of all steps run at once (one conv2d per axis for
both directions), the recurrence of several cells runs together (all 4 cells when the
image is square), per-step tensors come from ``torch.unbind`` of contiguous permuted
tensors, and the state update is written as ``c + z (h - c)``. With autograd (training)
each step is one grouped conv1d; without (inference) one batched GEMM over an im2col
view of a padded state buffer written straight into a preallocated output, and square
inputs skip most layout copies (:func:`_square_scan_inference`): about 30 % faster per
member-scan (1.9 s versus 2.7 s, 1 thread, busy machine), equal to 1e-7. bf16
convolutions were measured no faster on this CPU for these small shapes (4.05 s versus
4.27 s per member-scan under load, probabilities within 1.5e-4), so there is only the
fp32 path.

Examples
--------
>>> import torch
>>> net = MDGRUNet(in_channels=8, n_outputs=9, **small_architecture())
>>> net(torch.zeros(1, 8, 12, 12)).shape
torch.Size([1, 9, 12, 12])
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

DEFAULT_ARCHITECTURE = {"hidden": (16, 24, 32), "fc": (24, 32), "kernel": 5, "dropconnect_keep": 0.5}
"""Architecture of SCORE's default models (smaller than the reference's (16, 32, 64) /
(25, 45) / kernel 7, chosen by ``benchmarks/bench_segment.py`` to meet the 5 s per scan
budget of a 3-member ensemble on a 2-core CPU)."""

REFERENCE_ARCHITECTURE = {"hidden": (16, 32, 64), "fc": (25, 45), "kernel": 7, "dropconnect_keep": 0.5}
"""The reference implementation's default network (mdgru_channels, fc_channels, filter size)."""

LOCALISER_ARCHITECTURE = {"hidden": (8, 12), "fc": (12,), "kernel": 3, "dropconnect_keep": 0.5}
"""A tiny MDGRU for finding the spinal canal on a coarse grid (see ``preprocess.find_canal``)."""


def small_architecture() -> dict:
    """A very small architecture for tests and doctests."""
    return {"hidden": (4, 4), "fc": (5,), "kernel": 3, "dropconnect_keep": 0.5}


def dropconnect_sigma(keep: float) -> float:
    """Standard deviation of the Gaussian DropConnect factor for keep rate ``keep``.

    Examples
    --------
    >>> dropconnect_sigma(0.5)
    1.0
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"DropConnect keep rate must be in (0, 1], got {keep}")
    return math.sqrt((1.0 - keep) / keep)


class CGRU(nn.Module):
    """One convolutional GRU scanning one axis of a 2D image in one direction.

    Parameters
    ----------
    in_channels, hidden : int
        Input and state channels.
    kernel : int
        Length of the 1-D convolutions along the axis that is not scanned (odd).
    axis : int
        0 scans rows (steps go down the image, convolutions run along columns);
        1 scans columns.
    reverse : bool
        Scan from the last row/column to the first.
    dropconnect_keep : float
        Keep rate ``p`` of the Gaussian DropConnect on the gate weights (1 = off).

    Attributes
    ----------
    w_x : Parameter [3H, C, k]
        Input weights, rows ``z`` (H), ``r`` (H), candidate (H).
    b_x : Parameter [3H]
        Input bias: 1 for the gates, 0 for the candidate.
    w_h : Parameter [3H, H, k]
        State weights (no bias), same row order.
    """

    def __init__(self, in_channels: int, hidden: int, kernel: int = 7, axis: int = 0,
                 reverse: bool = False, dropconnect_keep: float = 0.5):
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"kernel must be odd, got {kernel}")
        if axis not in (0, 1):
            raise ValueError(f"axis must be 0 or 1, got {axis}")
        self.in_channels, self.hidden, self.kernel = int(in_channels), int(hidden), int(kernel)
        self.axis, self.reverse = int(axis), bool(reverse)
        self.dropconnect_sigma = dropconnect_sigma(dropconnect_keep)
        self.w_x = nn.Parameter(torch.empty(3 * hidden, in_channels, kernel))
        self.b_x = nn.Parameter(torch.empty(3 * hidden))
        self.w_h = nn.Parameter(torch.empty(3 * hidden, hidden, kernel))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-normal per weight tensor (gates and candidate separately); bias 1 / 0."""
        hidden = self.hidden
        with torch.no_grad():
            for weight in (self.w_x, self.w_h):
                nn.init.xavier_normal_(weight[: 2 * hidden])
                nn.init.xavier_normal_(weight[2 * hidden:])
            self.b_x[: 2 * hidden].fill_(1.0)
            self.b_x[2 * hidden:].zero_()

    def effective_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w_x, w_h)`` with DropConnect applied to the gate rows when training.

        One Gaussian factor per weight element, drawn at each call (= once per forward
        pass), shared by every step and batch item.
        """
        if not self.training or self.dropconnect_sigma == 0.0:
            return self.w_x, self.w_h
        hidden = self.hidden
        out = []
        for weight in (self.w_x, self.w_h):
            gates = weight[: 2 * hidden]
            noise = torch.randn_like(gates).mul_(self.dropconnect_sigma).add_(1.0)
            out.append(torch.cat([gates * noise, weight[2 * hidden:]], dim=0))
        return out[0], out[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [B, C, H, W] -> states [B, hidden, H, W]."""
        w_x, w_h = self.effective_weights()
        return _directional_scan(x, [(w_x, self.b_x, w_h, self.reverse)], self.axis, self.kernel)[0]


def _input_conv(x: torch.Tensor, w_x: torch.Tensor, bias: torch.Tensor, axis: int) -> torch.Tensor:
    """Input term of every step at once: conv along the axis that is not scanned."""
    k = w_x.shape[-1]
    if axis == 0:  # steps along rows, convolve along columns
        return F.conv2d(x, w_x.unsqueeze(2), bias, padding=(0, k // 2))
    return F.conv2d(x, w_x.unsqueeze(3), bias, padding=(k // 2, 0))


def _to_steps(term: torch.Tensor, axis: int) -> torch.Tensor:
    """[B, C, H, W] -> [L, B, C, M] contiguous, L the scanned axis."""
    order = (2, 0, 1, 3) if axis == 0 else (3, 0, 1, 2)
    return term.permute(order).contiguous()


def _from_steps(states: torch.Tensor, axis: int) -> torch.Tensor:
    """[L, B, C, M] -> [B, C, H, W]."""
    order = (1, 2, 0, 3) if axis == 0 else (1, 2, 3, 0)
    return states.permute(order)


def _recurrence(inputs: torch.Tensor, w_h: torch.Tensor, groups: int) -> torch.Tensor:
    """Run ``groups`` independent cells over precomputed input terms.

    Parameters
    ----------
    inputs : [L, B, groups * 3H, M]
        Input terms per step (bias included), each group's rows ordered z, r, candidate.
    w_h : [groups * 3H, H, k]
        State weights of the groups, stacked.

    Returns
    -------
    [L, B, groups * H, M]
    """
    if not torch.is_grad_enabled():
        return _recurrence_gemm(inputs, w_h, groups)
    steps, batch, rows, length = inputs.shape
    hidden = rows // (3 * groups)
    pad = w_h.shape[-1] // 2
    outputs = []
    h = None
    for x_t in torch.unbind(inputs, 0):
        x_t = x_t.view(batch, groups, 3, hidden, length)
        if h is None:  # h_{-1} = 0: the state convolution vanishes
            z = torch.sigmoid(x_t[:, :, 0])
            h = (1.0 - z) * torch.tanh(x_t[:, :, 2])
        else:
            conv = F.conv1d(h.reshape(batch, groups * hidden, length), w_h, padding=pad, groups=groups)
            conv = conv.view(batch, groups, 3, hidden, length)
            zr = torch.sigmoid(x_t[:, :, :2] + conv[:, :, :2])
            c = torch.tanh(x_t[:, :, 2] + zr[:, :, 1] * conv[:, :, 2])
            h = c + zr[:, :, 0] * (h - c)
        outputs.append(h.reshape(batch, groups * hidden, length))
    return torch.stack(outputs, 0)


def _recurrence_gemm(inputs: torch.Tensor, w_h: torch.Tensor, groups: int) -> torch.Tensor:
    """Inference version of :func:`_recurrence` (same layout in and out); see :func:`_gemm_steps`."""
    steps, batch, rows, length = inputs.shape
    hidden = rows // (3 * groups)
    x_all = inputs.view(steps, batch, groups, 3 * hidden, length).permute(0, 2, 3, 1, 4).contiguous()
    states = _gemm_steps(x_all, w_h, groups)               # [steps, G, H, B, L]
    return states.permute(0, 3, 1, 2, 4).reshape(steps, batch, groups * hidden, length)


def _gemm_steps(x_all: torch.Tensor, w_h: torch.Tensor, groups: int) -> torch.Tensor:
    """The recurrence without autograd: one batched matrix product per step.

    Parameters
    ----------
    x_all : [steps, G, 3H, B, L]
        Input terms (bias included) per step, group, row (z, r, candidate), batch item, position.
    w_h : [G * 3H, H, k]

    Returns
    -------
    [steps, G, H, B, L]

    Notes
    -----
    The state of every batch item lives in one zero-padded buffer ``[G, H, B, L + 2p]``;
    a strided view of it is the im2col matrix ``[G, H*k, B*L]``, so each step is a single
    ``bmm`` with ``[G, 3H, H*k]`` instead of a grouped conv1d, and the new state is
    written straight into the output. Writes in place, hence no autograd.
    """
    steps, _, rows, batch, length = x_all.shape
    hidden = rows // 3
    kernel = w_h.shape[-1]
    pad = kernel // 2
    weight = w_h.reshape(groups, 3 * hidden, hidden * kernel)
    padded = x_all.new_zeros(groups, hidden, batch, length + 2 * pad)
    s_g, s_h, s_b, _ = padded.stride()
    columns_view = padded.as_strided((groups, hidden, kernel, batch, length), (s_g, s_h, 1, s_b, 1))
    states = x_all.new_empty(steps, groups, hidden, batch, length)
    h = None
    for t, x_t in enumerate(torch.unbind(x_all, 0)):      # [G, 3H, B, L]
        if h is None:
            torch.mul(1.0 - torch.sigmoid(x_t[:, :hidden]), torch.tanh(x_t[:, 2 * hidden:]), out=states[t])
        else:
            padded[..., pad:pad + length] = h
            conv = torch.bmm(weight, columns_view.reshape(groups, hidden * kernel, batch * length))
            conv = conv.view(groups, 3 * hidden, batch, length)
            zr = torch.sigmoid(x_t[:, :2 * hidden] + conv[:, :2 * hidden])
            c = torch.tanh(x_t[:, 2 * hidden:] + zr[:, hidden:] * conv[:, 2 * hidden:])
            torch.addcmul(c, zr[:, :hidden], h - c, out=states[t])
        h = states[t]
    return states


def _square_scan_inference(x: torch.Tensor, cells) -> torch.Tensor:
    """Mean of the four cells without autograd on a square image, with few layout copies.

    Backward cells scan the input flipped along their axis (the input convolution runs
    along the other axis, so it commutes with the flip); their states are flipped back.
    """
    batch, _, size, _ = x.shape
    hidden = cells[0][0].hidden
    x_all = x.new_empty(size, 4, 3 * hidden, batch, size)
    flipped = {}
    w_h = []
    for g, (cell, w_x, cell_w_h) in enumerate(cells):
        source = x
        if cell.reverse:
            source = flipped.setdefault(cell.axis, x.flip(2 + cell.axis))
        term = _input_conv(source, w_x, cell.b_x, cell.axis)          # [B, 3H, H, W]
        x_all[:, g] = term.permute(2, 1, 0, 3) if cell.axis == 0 else term.permute(3, 1, 0, 2)
        w_h.append(cell_w_h)
    states = _gemm_steps(x_all, torch.cat(w_h, 0), 4)                  # [L, 4, H, B, M]
    total = None
    for g, (cell, _, _) in enumerate(cells):
        state = states[:, g].flip(0) if cell.reverse else states[:, g]  # [L, H, B, M]
        image = state.permute(2, 1, 0, 3) if cell.axis == 0 else state.permute(2, 1, 3, 0)
        total = image.contiguous() if total is None else total.add_(image)
    return total.mul_(0.25)


def _directional_scan(x: torch.Tensor, cells, axis: int, kernel: int) -> list[torch.Tensor]:
    """Run cells ``[(w_x, b_x, w_h, reverse), ...]`` that scan the same axis; one state map each."""
    w_x = torch.cat([c[0] for c in cells], 0)
    bias = torch.cat([c[1] for c in cells], 0)
    w_h = torch.cat([c[2] for c in cells], 0)
    steps = _to_steps(_input_conv(x, w_x, bias, axis), axis)
    steps = _flip_reversed(steps, [c[3] for c in cells])
    states = _flip_reversed(_recurrence(steps, w_h, len(cells)), [c[3] for c in cells])
    return list(_from_steps(states, axis).chunk(len(cells), dim=1))


def _flip_reversed(steps: torch.Tensor, reverse: list[bool]) -> torch.Tensor:
    """Reverse the step order of the channel groups whose cell scans backwards."""
    if not any(reverse):
        return steps
    groups = steps.chunk(len(reverse), dim=2)
    return torch.cat([g.flip(0) if rev else g for g, rev in zip(groups, reverse)], dim=2).contiguous()


class MDGRULayer(nn.Module):
    """Four CGRUs (rows and columns, both directions); output = mean of the four.

    Examples
    --------
    >>> import torch
    >>> layer = MDGRULayer(2, 3, kernel=3)
    >>> layer(torch.zeros(1, 2, 5, 7)).shape
    torch.Size([1, 3, 5, 7])
    """

    def __init__(self, in_channels: int, hidden: int, kernel: int = 7, dropconnect_keep: float = 0.5):
        super().__init__()
        self.hidden = int(hidden)
        self.kernel = int(kernel)
        self.cells = nn.ModuleList([
            CGRU(in_channels, hidden, kernel, axis=axis, reverse=reverse, dropconnect_keep=dropconnect_keep)
            for axis in (0, 1) for reverse in (False, True)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] == x.shape[3] and not torch.is_grad_enabled():
            return _square_scan_inference(x, [(cell, *cell.effective_weights()) for cell in self.cells])
        weights = [(*cell.effective_weights(), cell) for cell in self.cells]
        by_axis = {0: [], 1: []}
        for w_x, w_h, cell in weights:
            by_axis[cell.axis].append((w_x, cell.b_x, w_h, cell.reverse))
        if x.shape[2] == x.shape[3]:
            states = self._square_scan(x, by_axis)
        else:
            states = [s for axis in (0, 1) for s in _directional_scan(x, by_axis[axis], axis, self.kernel)]
        return torch.stack(states, 0).sum(0) * 0.25

    def _square_scan(self, x: torch.Tensor, by_axis) -> list[torch.Tensor]:
        """All four cells in one grouped recurrence (possible when H == W)."""
        steps = []
        reverse = []
        for axis in (0, 1):
            cells = by_axis[axis]
            w_x = torch.cat([c[0] for c in cells], 0)
            bias = torch.cat([c[1] for c in cells], 0)
            steps.append(_to_steps(_input_conv(x, w_x, bias, axis), axis))
            reverse += [c[3] for c in cells]
        steps = _flip_reversed(torch.cat(steps, 2), reverse)
        w_h = torch.cat([c[2] for axis in (0, 1) for c in by_axis[axis]], 0)
        states = _flip_reversed(_recurrence(steps.contiguous(), w_h, 4), reverse)
        rows, cols = states.chunk(2, dim=2)
        return list(_from_steps(rows, 0).chunk(2, dim=1)) + list(_from_steps(cols, 1).chunk(2, dim=1))


class MDGRUNet(nn.Module):
    """Stack of MDGRU blocks: MDGRU -> 1x1 conv (-> tanh, except the last) -> logits.

    Parameters
    ----------
    in_channels : int
        Input images (8 inversion times for AMIRA, 1 for T2*w).
    n_outputs : int
        Logit channels (sum of the heads' class counts, see :mod:`score_gui.mdgru.heads`).
    hidden : tuple of int
        State channels of each MDGRU layer.
    fc : tuple of int
        Channels of the 1x1 layers between MDGRU layers (``len(hidden) - 1`` values);
        the last 1x1 layer maps to ``n_outputs``.
    kernel : int
        Convolution length inside the cells.
    dropconnect_keep : float
        DropConnect keep rate (training only).
    """

    def __init__(self, in_channels: int, n_outputs: int, hidden=(16, 32, 64), fc=(25, 45),
                 kernel: int = 7, dropconnect_keep: float = 0.5):
        super().__init__()
        hidden, fc = tuple(int(h) for h in hidden), tuple(int(f) for f in fc)
        if len(fc) != len(hidden) - 1:
            raise ValueError(f"need {len(hidden) - 1} fc sizes for {len(hidden)} MDGRU layers, got {fc}")
        self.architecture = {"in_channels": int(in_channels), "n_outputs": int(n_outputs),
                             "hidden": list(hidden), "fc": list(fc), "kernel": int(kernel),
                             "dropconnect_keep": float(dropconnect_keep)}
        self.layers = nn.ModuleList()
        self.fcs = nn.ModuleList()
        channels = int(in_channels)
        for hid, out in zip(hidden, fc + (int(n_outputs),)):
            self.layers.append(MDGRULayer(channels, hid, kernel, dropconnect_keep))
            conv = nn.Conv2d(hid, out, 1)
            nn.init.xavier_normal_(conv.weight)
            nn.init.zeros_(conv.bias)
            self.fcs.append(conv)
            channels = out

    @property
    def in_channels(self) -> int:
        return self.architecture["in_channels"]

    @property
    def n_outputs(self) -> int:
        return self.architecture["n_outputs"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [B, C, H, W] -> logits [B, n_outputs, H, W]."""
        last = len(self.layers) - 1
        for i, (layer, fc) in enumerate(zip(self.layers, self.fcs)):
            x = fc(layer(x))
            if i < last:
                x = torch.tanh(x)
        return x


class OnDevice:
    """An MDGRUNet in eval mode on a PyTorch device, called as
    :class:`~score_gui.mdgru.numpy_net.NumpyMDGRU` is: numpy crops in, numpy logits out.

    Examples
    --------
    >>> import numpy as np
    >>> runner = OnDevice(MDGRUNet(2, 3, **small_architecture()))
    >>> runner(np.zeros((1, 2, 4, 4), np.float32)).dtype
    dtype('float32')
    """

    def __init__(self, model: MDGRUNet):
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.in_channels, self.n_outputs = model.in_channels, model.n_outputs

    def __call__(self, x):
        with torch.inference_mode():
            return self.model(torch.from_numpy(x).to(self.device)).float().cpu().numpy()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters.

    Examples
    --------
    >>> count_parameters(MDGRUNet(8, 3, **REFERENCE_ARCHITECTURE))
    774905
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
