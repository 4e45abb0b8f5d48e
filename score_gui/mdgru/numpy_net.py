"""The MDGRU network's inference pass in numpy: segmentation on the CPU without PyTorch.

PyTorch is for training. Importing it takes 2-3 s on a 2-core machine, longer than the
whole segmentation of a 12-slice scan, so ``score segment`` on the CPU runs this instead
(:func:`score_gui.mdgru.checkpoint.load_network`); CUDA runs the PyTorch module. It
computes what :class:`score_gui.mdgru.model.MDGRUNet` computes in eval mode (no
DropConnect), equal within float32 rounding (``tests/score_gui/test_numpy_net.py``).

Layout and order of work (why it is fast on a CPU):

* Activations are kept as ``[C, H, B, W]`` (channels, rows, slices, columns). A row scan
  then steps along axis 1 and every step is a contiguous ``[C, B, W]`` block; the column
  scan works on the spatially transposed copy.
* The two cells that scan one axis (forward and backward) step together. At step ``t``
  the forward cell reads row ``t`` and the backward one row ``T - 1 - t``.
* Each step is two stacked matrix products, input and state, each over an im2col
  view of a zero-padded ``[C, B, W + 2p]`` block, so the 1-D "same" convolutions along
  the other axis become one BLAS call per cell. The input term is computed per step,
  not for all steps beforehand: it stays in the cache instead of a 40 MB array.
* The mean of the four cells is folded into the following 1x1 layer's weights.

Measured on one member and 12 crops of 64 px (layers 16/24/32, kernel 5, one thread;
``benchmarks/bench_segment.py``): 0.49-0.59 s against 0.68-0.90 s for the PyTorch module in
inference mode, on the same machine in the same hour.

Examples
--------
>>> import numpy as np
>>> from score_gui.mdgru.model import MDGRUNet, small_architecture
>>> net = MDGRUNet(2, 3, **small_architecture())
>>> runner = NumpyMDGRU(net.architecture, {k: v.numpy() for k, v in net.state_dict().items()})
>>> runner(np.zeros((1, 2, 6, 5), np.float32)).shape
(1, 3, 6, 5)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

CELL_ORDER = ((0, False), (0, True), (1, False), (1, True))
"""(axis, reverse) of ``layers.<i>.cells.<j>`` in an MDGRUNet state dict."""


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    """Softmax along ``axis`` in float32.

    >>> softmax(np.array([[0.0, np.log(3.0)]]), axis=1).round(3).tolist()
    [[0.25, 0.75]]
    """
    shifted = np.asarray(logits, np.float32) - np.max(logits, axis=axis, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=axis, keepdims=True)
    return shifted


def _sigmoid_of_double_(x: np.ndarray) -> None:
    """``sigmoid(2 x)`` in place, as ``(1 + tanh(x)) / 2``: three passes where
    ``1 / (1 + exp(-2 x))`` takes four; the gate rows of the weights are halved for it."""
    np.tanh(x, out=x)
    x += 1.0
    x *= 0.5


def _windows(padded: np.ndarray, kernel: int) -> np.ndarray:
    """``[..., B, L + 2p]`` -> read-only view ``[..., kernel, B, L]``: tap ``j`` is the
    block shifted by ``j``, so a copy of it is the im2col matrix of a 1-D convolution.

    >>> _windows(np.arange(5.0).reshape(1, 5), 3).tolist()
    [[[0.0, 1.0, 2.0]], [[1.0, 2.0, 3.0]], [[2.0, 3.0, 4.0]]]
    """
    *lead, batch, padded_length = padded.shape
    strides = padded.strides
    return as_strided(padded, (*lead, kernel, batch, padded_length - kernel + 1),
                      (*strides[:-2], strides[-1], strides[-2], strides[-1]), writeable=False)


@dataclass
class AxisCells:
    """The cells of one MDGRU layer that scan the same axis, their weights stacked.

    Attributes
    ----------
    w_in : [G, 3H, C*k]
        Input weights per cell (rows z, r, candidate), flattened over (channel, tap); the
        gate rows (z, r) halved, as in ``bias`` and ``w_state`` (see :func:`_sigmoid_of_double_`).
    bias : [G, 3H, 1]
    w_state : [G, 3H, H*k]
    reverse : tuple of bool
        Which cells scan from the last row (or column) to the first.
    """

    w_in: np.ndarray
    bias: np.ndarray
    w_state: np.ndarray
    reverse: tuple[bool, ...]

    @property
    def hidden(self) -> int:
        return self.w_state.shape[1] // 3

    @property
    def kernel(self) -> int:
        return self.w_state.shape[2] // self.hidden

    def summed_states(self, x: np.ndarray) -> np.ndarray:
        """Run the cells over ``x`` ``[C, T, B, L]`` (steps along T); the sum of their
        states ``[H, T, B, L]``."""
        channels, steps, batch, length = x.shape
        groups, hidden, kernel = len(self.reverse), self.hidden, self.kernel
        pad = kernel // 2
        x_padded = np.zeros((channels, steps, batch, length + 2 * pad), np.float32)
        x_padded[..., pad:pad + length] = x
        x_windows = _windows(x_padded, kernel)       # [C, T, k, B, L]
        in_cols = np.empty((groups, channels, kernel, batch, length), np.float32)
        h_padded = np.zeros((groups, hidden, batch, length + 2 * pad), np.float32)
        h_windows = _windows(h_padded, kernel)
        h_cols = np.empty((groups, hidden, kernel, batch, length), np.float32)
        pre = np.empty((groups, 3 * hidden, batch * length), np.float32)
        rec = np.empty_like(pre)
        states = np.empty((steps, groups, hidden, batch * length), np.float32)
        for t in range(steps):
            for g, backwards in enumerate(self.reverse):
                in_cols[g] = x_windows[:, steps - 1 - t if backwards else t]
            np.matmul(self.w_in, in_cols.reshape(groups, -1, batch * length), out=pre)
            pre += self.bias
            z, r, c = pre[:, :hidden], pre[:, hidden:2 * hidden], pre[:, 2 * hidden:]
            new = states[t]
            if t == 0:  # h_{-1} = 0: no state term, h = (1 - z) c
                _sigmoid_of_double_(z)
                np.tanh(c, out=c)
                np.subtract(1.0, z, out=new)
                new *= c
                continue
            h = states[t - 1]
            h_padded[..., pad:pad + length] = h.reshape(groups, hidden, batch, length)
            h_cols[...] = h_windows
            np.matmul(self.w_state, h_cols.reshape(groups, -1, batch * length), out=rec)
            gates = pre[:, :2 * hidden]
            gates += rec[:, :2 * hidden]
            _sigmoid_of_double_(gates)
            reset_state = rec[:, 2 * hidden:]
            reset_state *= r                    # the reset acts after the state convolution
            c += reset_state
            np.tanh(c, out=c)
            np.subtract(h, c, out=new)          # h_t = c + z (h_{t-1} - c)
            new *= z
            new += c
        total = np.zeros((hidden, steps, batch, length), np.float32)
        for g, backwards in enumerate(self.reverse):
            cell = states[:, g].reshape(steps, hidden, batch, length)
            total += (cell[::-1] if backwards else cell).transpose(1, 0, 2, 3)
        return total


@dataclass
class Layer:
    """One MDGRU layer (row and column cells) and the 1x1 layer after it."""

    rows: AxisCells
    columns: AxisCells
    fc_weight: np.ndarray  # [O, H], times 1/4: the mean of the four cells
    fc_bias: np.ndarray    # [O]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``[C, H, B, W]`` -> ``[O, H, B, W]`` (before the tanh)."""
        total = self.rows.summed_states(x)
        columns = self.columns.summed_states(np.ascontiguousarray(x.transpose(0, 3, 2, 1)))
        total += columns.transpose(0, 3, 2, 1)
        hidden = total.shape[0]
        out = (self.fc_weight @ total.reshape(hidden, -1)).reshape(-1, *total.shape[1:])
        out += self.fc_bias[:, None, None, None]
        return out


class NumpyMDGRU:
    """An MDGRUNet for inference, from its architecture and state dict (numpy arrays).

    Parameters
    ----------
    architecture : dict
        ``MDGRUNet.architecture`` (``in_channels``, ``n_outputs``, ``hidden``, ``fc``, ``kernel``).
    state : dict of str to ndarray
        The network's ``state_dict`` as arrays; every key, and no other, with its shape.

    Raises
    ------
    ValueError
        When ``state`` does not match ``architecture``.
    """

    def __init__(self, architecture: dict, state: dict):
        self.architecture = dict(architecture)
        self.in_channels = int(architecture["in_channels"])
        self.n_outputs = int(architecture["n_outputs"])
        hidden = [int(h) for h in architecture["hidden"]]
        widths = [int(f) for f in architecture["fc"]] + [self.n_outputs]
        kernel = int(architecture["kernel"])
        if len(widths) != len(hidden):
            raise ValueError(f"need {len(hidden) - 1} fc sizes for {len(hidden)} MDGRU layers")
        expected = {}
        channels = self.in_channels
        for i, (hid, out) in enumerate(zip(hidden, widths)):
            for j in range(len(CELL_ORDER)):
                expected[f"layers.{i}.cells.{j}.w_x"] = (3 * hid, channels, kernel)
                expected[f"layers.{i}.cells.{j}.b_x"] = (3 * hid,)
                expected[f"layers.{i}.cells.{j}.w_h"] = (3 * hid, hid, kernel)
            expected[f"fcs.{i}.weight"] = (out, hid, 1, 1)
            expected[f"fcs.{i}.bias"] = (out,)
            channels = out
        _check_state(state, expected)
        self.layers = [self._layer(state, i) for i in range(len(hidden))]

    @staticmethod
    def _layer(state: dict, i: int) -> Layer:
        def stacked(name: str, cells: list[int]) -> np.ndarray:
            """[G, 3H, ...] with the gate rows halved (see :func:`_sigmoid_of_double_`)."""
            out = np.stack([np.asarray(state[f"layers.{i}.cells.{j}.{name}"], np.float32) for j in cells])
            out = out.reshape(*out.shape[:2], -1).copy()
            out[:, : 2 * (out.shape[1] // 3)] *= 0.5
            return out

        def axis_cells(axis: int) -> AxisCells:
            cells = [j for j, (a, _) in enumerate(CELL_ORDER) if a == axis]
            return AxisCells(w_in=stacked("w_x", cells), bias=stacked("b_x", cells), w_state=stacked("w_h", cells),
                             reverse=tuple(CELL_ORDER[j][1] for j in cells))

        fc = np.asarray(state[f"fcs.{i}.weight"], np.float32)[:, :, 0, 0]
        return Layer(rows=axis_cells(0), columns=axis_cells(1), fc_weight=np.ascontiguousarray(fc * 0.25),
                     fc_bias=np.asarray(state[f"fcs.{i}.bias"], np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``x`` [B, C, H, W] -> logits [B, n_outputs, H, W] (float32)."""
        x = np.asarray(x, np.float32)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected [B, {self.in_channels}, H, W], got {list(x.shape)}")
        act = np.ascontiguousarray(x.transpose(1, 2, 0, 3))
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            act = layer(act)
            if i < last:
                np.tanh(act, out=act)
        return np.ascontiguousarray(act.transpose(2, 0, 1, 3))


def _check_state(state: dict, expected: dict) -> None:
    """ValueError naming the first missing, unexpected or misshapen weight (as PyTorch's
    strict ``load_state_dict`` would)."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ValueError(f"weights do not match the architecture (missing {missing[:3]}, unexpected {extra[:3]})")
    for key, shape in expected.items():
        if tuple(np.shape(state[key])) != shape:
            raise ValueError(f"weight {key} has shape {list(np.shape(state[key]))}, the architecture needs {list(shape)}")
