"""The one device picker: where models run and train (``cpu`` by default, ``cuda`` on request).

Inference, training and batch runs all go through :func:`check_device`, so every command
accepts the same names and reports a missing GPU with the same one-line error (contract
section 6: exit code 2). Only a CUDA name imports PyTorch (to ask whether a GPU is
there): inference on the CPU runs without it.

Examples
--------
>>> check_device("CPU")
'cpu'
>>> pick_device("cpu")
device(type='cpu')
>>> check_device("tpu")
Traceback (most recent call last):
...
score_gui.errors.ScoreInputError: unknown device 'tpu'; use cpu or cuda
"""

from __future__ import annotations

from score_gui.errors import ScoreInputError


def check_device(device: str | None = "cpu") -> str:
    """The device's name, ``cpu`` or ``cuda[:N]``; a clear error when CUDA is asked for but missing."""
    name = str(device or "cpu").lower()
    if name.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ScoreInputError(None, f"--device {name}: no CUDA GPU is available "
                                        "(this PyTorch build or machine has none); use --device cpu")
        return name
    if name != "cpu":
        raise ScoreInputError(None, f"unknown device {name!r}; use cpu or cuda")
    return "cpu"


def pick_device(device: str | None = "cpu"):
    """``torch.device`` for :func:`check_device`'s name (for training)."""
    import torch

    return torch.device(check_device(device))
