"""Saving and loading SCORE MDGRU models with the metadata inference needs.

A checkpoint is one ``torch.save`` file (``*.pt``) holding ``{"format": "score-mdgru",
"meta": {...}, "state_dict": {...}}``. It is read without PyTorch
(:mod:`score_gui.mdgru.ptfile`, which, like ``torch.load(weights_only=True)``, runs no
pickled code); :func:`load_network` gives the network inference runs (numpy on the CPU,
PyTorch on CUDA), :func:`load_model` the PyTorch module training needs. ``meta`` keys:

======================  ==================================================================
``format_version``      :data:`FORMAT_VERSION`
``score_version``       ``score_gui.__version__`` that wrote it
``architecture``        :class:`~score_gui.mdgru.model.MDGRUNet` keyword arguments
``in_channels``         number of input images
``channel_names``       inversion times as strings (``"TI97.1"``) or ``["T2*"]``
``heads``               :meth:`HeadSpec.to_meta` of each head, in logit order
``pixel_size_mm``       the model's fixed in-plane pixel size
``crop_size_px``        side of the square crop the model sees (0: whole image)
``normalisation``       ``{"method": "zscore", ...}``
``training``            summary filled by training (rater, iterations, loss, folds ...)
``date``                ISO 8601 time of writing
``name``                short name (e.g. the rater), used for ``desc-model<NAME>``
======================  ==================================================================

Examples
--------
>>> import tempfile, pathlib
>>> from score_gui.mdgru.model import MDGRUNet, small_architecture
>>> net = MDGRUNet(8, 9, **small_architecture())
>>> path = pathlib.Path(tempfile.mkdtemp()) / "m.pt"
>>> _ = save_model(path, net, {"name": "A"})
>>> model, meta = load_model(path)
>>> meta["in_channels"], meta["heads"][0]["name"], model.training
(8, 'tissue', False)
>>> network, _ = load_network(path)
>>> type(network).__name__, network.n_outputs
('NumpyMDGRU', 9)
"""

from __future__ import annotations

import math
import pickle
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import numpy as np

from score_gui.atomic import atomic_path
from score_gui.errors import ScoreInputError
from score_gui.mdgru import ptfile
from score_gui.mdgru.heads import DEFAULT_TASK, HeadSpec, resolve_heads
from score_gui.mdgru.numpy_net import NumpyMDGRU
from score_gui.scan import AMIRA_INVERSION_TIMES

def score_version() -> str:
    """SCORE Studio's version (also when ``score_gui`` resolves oddly, e.g. under bare ``pytest``)."""
    try:
        from score_gui import __version__
        return __version__
    except ImportError:
        from importlib.metadata import version

        return version("score-studio")


FORMAT = "score-mdgru"
FORMAT_VERSION = 1
DEFAULT_PIXEL_SIZE_MM = 0.6
"""In-plane pixel size of the default models (the scan is resampled to it and back): close
to AMIRA's usual 0.67 mm, so little is interpolated, and fine enough for the horns."""
DEFAULT_CROP_SIZE_PX = 64
"""Side of the square crop around the canal that the default models see: 38 mm at 0.6 mm,
room for a 24 mm canal plus 7 mm of localisation error either way. On the evaluation-only
generator the localiser's largest error was 7.9 mm and the canal then reached 15.7 mm from
the centre used (half the crop: 19.2 mm). An 80 px crop gave the same Dice on both
generators at 1.56 times the work (``benchmarks/bench_generalisation.py``)."""


def channel_names_for(inversion_times) -> list[str]:
    """Channel names from inversion times (``None`` -> single contrast ``T2*``).

    >>> channel_names_for([97.1, 158.7])
    ['TI97.1', 'TI158.7']
    """
    if inversion_times is None:
        return ["T2*"]
    return [f"TI{float(t):g}" for t in inversion_times]


def default_meta(model, heads=None) -> dict:
    """Metadata with every key filled by a sensible default for ``model``."""
    heads = resolve_heads(heads if heads is not None else DEFAULT_TASK.networks[0].heads)
    channels = model.in_channels
    names = channel_names_for(AMIRA_INVERSION_TIMES) if channels == len(AMIRA_INVERSION_TIMES) else (
        ["T2*"] if channels == 1 else [f"image{i + 1}" for i in range(channels)])
    return {
        "format_version": FORMAT_VERSION,
        "score_version": score_version(),
        "architecture": dict(model.architecture),
        "in_channels": channels,
        "channel_names": names,
        "heads": [h.to_meta() for h in heads],
        "pixel_size_mm": DEFAULT_PIXEL_SIZE_MM,
        "crop_size_px": DEFAULT_CROP_SIZE_PX,
        "normalisation": {"method": "zscore", "scope": "slice"},
        "training": {},
        "date": "",
        "name": "model",
    }


def save_model(path, model, meta: dict | None = None) -> Path:
    """Write ``model`` (an MDGRUNet) and its metadata atomically; missing meta keys get defaults.

    ``heads`` in ``meta`` may be names or :class:`HeadSpec`; they must add up to the
    model's outputs.
    """
    import torch

    full = default_meta(model, (meta or {}).get("heads"))
    full.update({k: v for k, v in (meta or {}).items() if k != "heads"})
    full["architecture"] = dict(model.architecture)
    full["in_channels"] = model.in_channels
    full["format_version"] = FORMAT_VERSION
    full["score_version"] = score_version()
    full["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    n_head_outputs = sum(len(h["classes"]) for h in full["heads"])
    if n_head_outputs != model.n_outputs:
        raise ValueError(f"heads need {n_head_outputs} outputs, the model has {model.n_outputs}")
    if len(full["channel_names"]) != model.in_channels:
        raise ValueError(f"{len(full['channel_names'])} channel names for {model.in_channels} inputs")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "meta": full, "state_dict": state}, tmp)
    return path


def read_checkpoint(path) -> dict:
    """Load and check a checkpoint file's raw content (weights as numpy arrays);
    ScoreInputError when it is not ours."""
    path = Path(path)
    if not path.is_file():
        raise ScoreInputError(path, "model file not found")
    try:
        content = ptfile.load(path)
    except (EOFError, OSError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError, AttributeError,
            KeyError, IndexError, TypeError) as exc:
        raise ScoreInputError(path, f"not a readable model checkpoint ({type(exc).__name__})") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise ScoreInputError(path, "not a SCORE MDGRU checkpoint (foreign or corrupt file)")
    meta = content.get("meta")
    if not isinstance(meta, dict) or not isinstance(content.get("state_dict"), dict):
        raise ScoreInputError(path, "checkpoint lacks metadata or weights")
    if int(meta.get("format_version", -1)) > FORMAT_VERSION:
        raise ScoreInputError(path, f"checkpoint format {meta.get('format_version')} is newer than this "
                                    f"SCORE Studio understands ({FORMAT_VERSION}); update SCORE Studio")
    return content


class Network(Protocol):
    """What inference runs: crops ``[B, in_channels, H, W]`` (float32 numpy) in, logits
    ``[B, n_outputs, H, W]`` out (:class:`NumpyMDGRU`, :class:`~score_gui.mdgru.model.OnDevice`)."""

    in_channels: int
    n_outputs: int

    def __call__(self, crops: np.ndarray) -> np.ndarray: ...


def load_network(path, device: str = "cpu") -> tuple[Network, dict]:
    """The network inference runs and its metadata: :class:`NumpyMDGRU` on ``cpu`` (no
    PyTorch import), a PyTorch module on a CUDA device (:class:`~score_gui.mdgru.model.OnDevice`)."""
    if str(device) != "cpu":
        from score_gui.mdgru.model import OnDevice

        model, meta = load_model(path, device)
        return OnDevice(model), meta
    return _validated(path, lambda content: NumpyMDGRU(content["meta"]["architecture"], content["state_dict"]))


def load_model(path, device="cpu") -> tuple:
    """Rebuild the PyTorch network (MDGRUNet) from a checkpoint, in eval mode on ``device``;
    return ``(model, meta)``."""
    import torch

    from score_gui.mdgru.model import MDGRUNet

    def build(content):
        model = MDGRUNet(**dict(content["meta"]["architecture"]))
        model.load_state_dict({k: torch.from_numpy(v) for k, v in content["state_dict"].items()})
        return model

    model, meta = _validated(path, build)
    model.eval()
    return model.to(device), meta


def _validated(path, build) -> tuple:
    """``(build(content), meta)`` for a checkpoint whose heads and grid are usable; any
    mismatch (architecture, weights, heads, grid) is a ScoreInputError naming the file."""
    content = read_checkpoint(path)
    meta = content["meta"]
    try:
        network = build(content)
        heads = [HeadSpec.from_meta(h) for h in meta["heads"]]
        if sum(h.n_classes for h in heads) != network.n_outputs:
            raise ValueError(f"heads have {sum(h.n_classes for h in heads)} classes, the network "
                             f"{network.n_outputs} outputs")
        _check_grid(meta)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise ScoreInputError(path, f"checkpoint does not describe a valid model "
                                    f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    return network, meta


def _check_grid(meta: dict) -> None:
    """The model grid must be usable: a positive finite pixel size, a crop of 0 (whole field) or more."""
    pixel = float(meta["pixel_size_mm"])
    if not math.isfinite(pixel) or pixel <= 0:
        raise ValueError(f"pixel size {meta['pixel_size_mm']!r} mm is not a positive number")
    crop = meta.get("crop_size_px", 0)
    if isinstance(crop, bool) or int(crop) != crop or int(crop) < 0:
        raise ValueError(f"crop size {crop!r} px is not a whole number >= 0")


def head_specs(meta: dict) -> list[HeadSpec]:
    """The heads of a checkpoint, in logit order."""
    return [HeadSpec.from_meta(h) for h in meta["heads"]]


def broadcasts_single_contrast(meta: dict, n_images: int) -> bool:
    """Whether a model takes a single-contrast scan on all its inputs.

    Only models trained for it say so (``meta["single_contrast_broadcast"]``): the default
    models saw every input set to one contrast in training (channel collapse and the
    phantom's T2*-weighted contrast), so a T2*w image repeated on their 8 inputs is an
    input they know. Any other model keeps its strict channel count.

    >>> broadcasts_single_contrast({"in_channels": 8, "single_contrast_broadcast": True}, 1)
    True
    >>> broadcasts_single_contrast({"in_channels": 8}, 1)
    False
    """
    return n_images == 1 and int(meta["in_channels"]) > 1 and bool(meta.get("single_contrast_broadcast"))


def check_fits_scan(meta: dict, scan, model_path=None) -> None:
    """ScoreInputError naming the scan when the model's input channels do not match it."""
    expected = int(meta["in_channels"])
    if scan.n_images != expected and not broadcasts_single_contrast(meta, scan.n_images):
        names = ", ".join(meta.get("channel_names", [])[:8])
        where = scan.path if scan.path is not None else model_path
        raise ScoreInputError(where, f"scan has {scan.n_images} image(s) but the model "
                                     f"{meta.get('name', '')!s} expects {expected} ({names}); "
                                     "train models for this contrast with 'score train --init default'")
