"""Transfer training: start a lab's models from an existing model set (by default SCORE's own).

A lab that labels a handful of its own scans should not train from random weights: the
default members already know the cord's shape, its gray matter and the canal around it.
:func:`initial_networks` turns the members and the localiser of a model set into starting
weights for new networks:

* **Input channels** may differ (8 AMIRA images -> 1 T2*-weighted image, or any other
  count): :func:`adapt_first_layer` maps the first layer so that a scan of ``C`` images
  excites the network as the source model's images all set to their mean would. The
  default models are trained with whole-slice channel collapse (every input image the
  same mix, :func:`score_gui.training.augment.augment_channels`), so this is an input
  they have learnt, not an extrapolation.
* **Heads**: the member keeps its 7-class tissue head (and the lesion head) whatever the
  lab labelled; partial labels become set-valued targets (:mod:`score_gui.mdgru.heads`),
  so a study with only cord and GM trains exactly what it labelled and the rest keeps
  what the source model knew. What the lab's labels taught is recorded as
  ``learnt_structures`` in the model's metadata and inference reports only those
  (:func:`score_gui.mdgru.heads.restrict_to_learnt`). A localiser whose head cannot
  express the lab's labels (cord vs rest against a canal head) gets a fresh last layer.

Examples
--------
>>> import torch
>>> from score_gui.mdgru.model import MDGRUNet, small_architecture
>>> net = MDGRUNet(8, 9, **small_architecture())
>>> state = adapt_first_layer(net.state_dict(), 1)
>>> tuple(state["layers.0.cells.0.w_x"].shape)
(12, 1, 3)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from score_gui.errors import ScoreInputError

INIT_CHOICES_HELP = "default (the shipped models), a model folder or set name, or none (random weights)"


@dataclass
class InitialNetwork:
    """Starting weights of one new network and where they came from.

    Attributes
    ----------
    state_dict : dict
        Weights adapted to the new network's input channels.
    meta : dict
        The source checkpoint's metadata (architecture, heads, pixel size, crop).
    source : str
        ``"<model folder>/<checkpoint>"``, recorded in the new model's metadata.
    """

    state_dict: dict
    meta: dict
    source: str

    @property
    def architecture(self) -> dict:
        """MDGRUNet keyword arguments without the channel counts."""
        arch = dict(self.meta["architecture"])
        arch.pop("in_channels", None)
        arch.pop("n_outputs", None)
        return arch


def resolve_init(init) -> Path | None:
    """``"none"`` -> None; ``"default"``, a model set name or a folder -> the folder.

    Raises
    ------
    ScoreInputError
        When the folder holds no ``ensemble.json`` (naming the folder).

    >>> resolve_init("none") is None
    True
    """
    if init is None or str(init).lower() == "none":
        return None
    from score_gui.inference import resolve_models
    try:
        return resolve_models(init)
    except ScoreInputError as exc:
        raise ScoreInputError(exc.path, f"--init: not a model folder ({exc.problem})") from None


def adapt_first_layer(state_dict: dict, in_channels: int) -> dict:
    """``state_dict`` with the first MDGRU layer's input weights mapped to ``in_channels``.

    The source's input weights ``[3H, C_src, k]`` are summed over the channels and spread
    evenly over the new ones, so an image repeated on all new inputs gives the response
    that the same image repeated on all source inputs gave. With equal counts nothing
    changes.

    >>> import torch
    >>> w = torch.ones(3, 8, 5)
    >>> adapt_first_layer({"layers.0.cells.0.w_x": w}, 2)["layers.0.cells.0.w_x"][0, :, 0].tolist()
    [4.0, 4.0]
    """
    out = dict(state_dict)
    for key, weight in state_dict.items():
        if not (key.startswith("layers.0.cells.") and key.endswith(".w_x")):
            continue
        if weight.shape[1] == in_channels:
            continue
        summed = weight.sum(dim=1, keepdim=True)
        out[key] = (summed / in_channels).repeat(1, in_channels, 1).contiguous()
    return out


def _checkpoint_files(folder: Path) -> tuple[list[tuple[str, str]], str | None]:
    """``([(member name, checkpoint file)], localiser file)`` of a model folder."""
    spec_path = folder / "ensemble.json"
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        members = []
        for i, entry in enumerate(spec["members"]):
            entry = entry if isinstance(entry, dict) else {"checkpoints": [entry]}
            files = entry.get("checkpoints") or [entry.get("checkpoint")]
            if len(files) != 1:
                raise ValueError("transfer needs members of one fused network each")
            members.append((str(entry.get("name") or f"m{i + 1}"), str(files[0])))
        if not members:
            raise ValueError("no members")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ScoreInputError(spec_path, f"--init: cannot use this model set ({exc})") from None
    return members, spec.get("localiser")


def _initial(folder: Path, file: str, in_channels: int) -> InitialNetwork:
    from score_gui.mdgru.checkpoint import read_checkpoint

    content = read_checkpoint(folder / file)      # weights as numpy arrays (read without PyTorch)
    state = adapt_first_layer({k: torch.from_numpy(v) for k, v in content["state_dict"].items()}, in_channels)
    return InitialNetwork(state_dict=state, meta=content["meta"], source=f"{folder}/{file}")


def initial_networks(folder: Path, in_channels: int) -> tuple[list[InitialNetwork], InitialNetwork | None]:
    """The members' and the localiser's starting weights from a model folder.

    Parameters
    ----------
    folder : Path
        A model folder (``ensemble.json``), e.g. from :func:`resolve_init`.
    in_channels : int
        Images per slice of the lab's scans.
    """
    members, localiser = _checkpoint_files(Path(folder))
    starts = [_initial(Path(folder), file, in_channels) for _, file in members]
    return starts, (_initial(Path(folder), localiser, in_channels) if localiser else None)


def load_initial(model: torch.nn.Module, start: InitialNetwork, keep_last_layer: bool = True) -> None:
    """Copy ``start``'s weights into ``model``; a fresh last layer when ``keep_last_layer`` is False.

    Raises
    ------
    ScoreInputError
        When the architectures differ (naming the source checkpoint).
    """
    state = dict(start.state_dict)
    if not keep_last_layer:
        last = max(int(k.split(".")[1]) for k in state if k.startswith("fcs."))
        for suffix in ("weight", "bias"):
            state[f"fcs.{last}.{suffix}"] = model.state_dict()[f"fcs.{last}.{suffix}"]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ScoreInputError(start.source, "--init: the model does not fit the new network "
                                            f"({str(exc).splitlines()[0][:120]})") from None
