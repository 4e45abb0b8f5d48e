"""Output heads, set-valued targets for partial labels, and labels from probabilities.

A network's logits are split into **heads**; each head is a softmax over classes, and
each class is a set of label values (dseg values 0-6 for tissue heads, 0/1 for the
lesion head). The default network is one fused network with two heads:

* ``tissue``: 7 classes, the dseg values 0..6;
* ``lesion``: 2 classes, no lesion / lesion;

so ``n_outputs = 9``. The paper's separate networks (canal/cord, GM/WM, lesion, GM
subdivision) are a :class:`TaskConfig` whose networks predict coarser heads
(:data:`PAPER_TASK`); :func:`labels_from_probabilities` combines any set of heads.

Partial labels (contract section 2, ``LabelledStructures``): a pixel's target is the
**set** of classes consistent with what was labelled, and the loss is
``-log(sum of the softmax probabilities over that set)`` (:mod:`score_gui.training.losses`),
which is the usual cross-entropy for full labels and 0 for a pixel about which nothing is known.

Examples
--------
>>> import numpy as np
>>> dseg = np.array([[0, 2, 3]], np.uint8)
>>> t = targets_from_labels(dseg, None, {"cord", "gm"})
>>> t["tissue"][:, 0, 0].astype(int).tolist()   # "not cord": outside or CSF
[1, 1, 0, 0, 0, 0, 0]
>>> t["tissue"][:, 0, 2].astype(int).tolist()   # gray matter, horns unknown
[0, 0, 0, 1, 1, 1, 1]
>>> bool(t["lesion"].all())                      # lesions not labelled: ignored
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from score_gui.labels import CSF, GM, GRAY_COMMISSURE, LABELLED_STRUCTURE_KEYS, OUTSIDE, WM

TISSUE_VALUES = tuple(range(OUTSIDE, GRAY_COMMISSURE + 1))
HORN_VALUES = (4, 5, 6)


@dataclass(frozen=True)
class HeadSpec:
    """One softmax head.

    Attributes
    ----------
    name : str
    kind : str
        ``"tissue"`` (classes are sets of dseg values) or ``"lesion"`` (sets of 0/1).
    classes : tuple of tuple of int
        The label values each class stands for; together they cover every value once.
    class_names : tuple of str
    """

    name: str
    kind: str
    classes: tuple[tuple[int, ...], ...]
    class_names: tuple[str, ...]

    def __post_init__(self):
        values = sorted(v for c in self.classes for v in c)
        expected = list(TISSUE_VALUES) if self.kind == "tissue" else [0, 1]
        if self.kind not in ("tissue", "lesion") or values != expected:
            raise ValueError(f"head {self.name!r}: classes {self.classes} must cover {expected} once")
        if len(self.class_names) != len(self.classes):
            raise ValueError(f"head {self.name!r}: {len(self.class_names)} names for {len(self.classes)} classes")

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def to_meta(self) -> dict:
        """JSON-able description stored in checkpoints."""
        return {"name": self.name, "kind": self.kind, "classes": [list(c) for c in self.classes],
                "class_names": list(self.class_names)}

    @classmethod
    def from_meta(cls, meta: dict) -> "HeadSpec":
        return cls(name=str(meta["name"]), kind=str(meta["kind"]),
                   classes=tuple(tuple(int(v) for v in c) for c in meta["classes"]),
                   class_names=tuple(str(n) for n in meta["class_names"]))


HEADS = {
    "tissue": HeadSpec("tissue", "tissue", tuple((v,) for v in TISSUE_VALUES),
                       ("outside", "csf", "white_matter", "gray_matter", "anterior_horns",
                        "posterior_horns", "gray_commissure")),
    "lesion": HeadSpec("lesion", "lesion", ((0,), (1,)), ("no_lesion", "lesion")),
    # Coarser heads for the paper's separate networks and the canal localiser.
    "canal": HeadSpec("canal", "tissue", ((0,), (1, 2, 3, 4, 5, 6)), ("outside", "canal")),
    "canal_cord": HeadSpec("canal_cord", "tissue", ((0,), (1,), (2, 3, 4, 5, 6)), ("outside", "csf", "cord")),
    "gm_wm": HeadSpec("gm_wm", "tissue", ((0, 1), (2,), (3, 4, 5, 6)), ("not_cord", "white_matter", "gray_matter")),
    "horns": HeadSpec("horns", "tissue", ((0, 1, 2), (3,), (4,), (5,), (6,)),
                      ("not_gm", "gray_matter", "anterior_horns", "posterior_horns", "gray_commissure")),
}
"""Built-in heads by name."""


@dataclass(frozen=True)
class NetworkSpec:
    """One network of a task: its name and the heads (in logit order) it predicts."""

    name: str
    heads: tuple[str, ...]

    def head_specs(self) -> list[HeadSpec]:
        return [HEADS[h] for h in self.heads]

    @property
    def n_outputs(self) -> int:
        return sum(HEADS[h].n_classes for h in self.heads)


@dataclass(frozen=True)
class TaskConfig:
    """The networks that make up one ensemble member (default: one fused network)."""

    networks: tuple[NetworkSpec, ...] = field(
        default_factory=lambda: (NetworkSpec("fused", ("tissue", "lesion")),))

    def to_meta(self) -> list[dict]:
        return [{"name": n.name, "heads": list(n.heads)} for n in self.networks]


DEFAULT_TASK = TaskConfig()
"""One fused network predicting ``tissue`` (7 classes) and ``lesion`` (2): 9 outputs."""

PAPER_TASK = TaskConfig((NetworkSpec("canal_cord", ("canal_cord",)), NetworkSpec("gm_wm", ("gm_wm",)),
                         NetworkSpec("lesion", ("lesion",)), NetworkSpec("gm_subdivision", ("horns",))))
"""Separate networks as in the SCORE paper: canal/cord, GM/WM, lesions, GM subdivision."""

LOCALISER_TASK = TaskConfig((NetworkSpec("localiser", ("canal",)),))
"""The canal localiser: canal vs rest on a coarse grid."""


def resolve_heads(heads) -> list[HeadSpec]:
    """Head names, specs or checkpoint dicts -> list of :class:`HeadSpec`."""
    out = []
    for head in heads:
        if isinstance(head, HeadSpec):
            out.append(head)
        elif isinstance(head, dict):
            out.append(HeadSpec.from_meta(head))
        else:
            out.append(HEADS[head])
    return out


def n_outputs(heads=("tissue", "lesion")) -> int:
    """Logit channels for these heads.

    >>> n_outputs()
    9
    """
    return sum(h.n_classes for h in resolve_heads(heads))


# ---------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------

def _in_structure(values: np.ndarray, structure: str) -> np.ndarray:
    """Membership of dseg values in a labelled structure (horns: which horn class, -1 none)."""
    if structure == "canal":
        return values >= CSF
    if structure == "cord":
        return values >= WM
    if structure == "gm":
        return values >= GM
    if structure == "horns":
        return np.where(np.isin(values, HORN_VALUES), values, -1)
    raise ValueError(f"unknown structure {structure!r}")


def allowed_tissue_values(dseg: np.ndarray, labelled) -> np.ndarray:
    """Which true dseg values (0..6) agree with a possibly partial label map.

    A true value ``v`` is allowed at a pixel when, for every labelled structure, ``v``
    and the pixel's label ``d`` are both in it or both out of it (for ``horns``: the same
    horn class or both none).

    Returns
    -------
    bool array ``[7, *dseg.shape]``
    """
    dseg = np.asarray(dseg).astype(np.int16)
    allowed = np.ones((len(TISSUE_VALUES), *dseg.shape), bool)
    values = np.asarray(TISSUE_VALUES, np.int16)
    for structure in set(labelled) & {"canal", "cord", "gm", "horns"}:
        observed = _in_structure(dseg, structure)
        for v in TISSUE_VALUES:
            allowed[v] &= observed == _in_structure(values[v], structure)
    return allowed


def targets_from_labels(dseg: np.ndarray, lesion: np.ndarray | None, labelled=LABELLED_STRUCTURE_KEYS,
                        heads=("tissue", "lesion")) -> dict[str, np.ndarray]:
    """Per head, the set of classes consistent with the labels, as bool ``[K, *dseg.shape]``.

    Parameters
    ----------
    dseg : int array (any shape, e.g. ``[H, W]`` or ``[B, H, W]``)
    lesion : int array or None
        Lesion map; ignored unless ``"lesion"`` is labelled (then None means no lesions).
    labelled : iterable of str
        ``LabelledStructures`` (canal, cord, gm, horns, lesion). Full labels give one-hot
        targets; what is not labelled allows every class consistent with the rest.
    heads : names or :class:`HeadSpec`

    Notes
    -----
    Unlabelled slices (all 0 in a map that is otherwise labelled) must be skipped by
    the caller: here 0 means "outside the canal".
    """
    labelled = set(labelled)
    dseg = np.asarray(dseg)
    tissue = allowed_tissue_values(dseg, labelled)
    if "lesion" in labelled:
        les = np.zeros(dseg.shape, bool) if lesion is None else np.asarray(lesion) > 0
        lesion_allowed = np.stack([~les, les])
    else:
        lesion_allowed = np.ones((2, *dseg.shape), bool)
    out = {}
    for head in resolve_heads(heads):
        allowed = tissue if head.kind == "tissue" else lesion_allowed
        out[head.name] = np.stack([allowed[list(values)].any(axis=0) for values in head.classes])
    return out


# ---------------------------------------------------------------------------------------
# Labels from probabilities
# ---------------------------------------------------------------------------------------

def tissue_log_scores(probs: dict[str, np.ndarray], heads=None) -> np.ndarray | None:
    """Log-score of every dseg value ``[7, ...]``: sum over tissue heads of log P(class holding it).

    With the fused ``tissue`` head this is just its log-probabilities; with the paper's
    separate heads it is a product of experts whose argmax is nested by construction.
    """
    specs = {h.name: h for h in resolve_heads(heads if heads is not None else probs.keys())}
    scores = None
    for name, p in probs.items():
        head = specs[name]
        if head.kind != "tissue":
            continue
        logp = np.log(np.clip(np.asarray(p, np.float32), 1e-7, None))
        per_value = np.empty((len(TISSUE_VALUES), *logp.shape[1:]), np.float32)
        for k, values in enumerate(head.classes):
            per_value[list(values)] = logp[k]
        scores = per_value if scores is None else scores + per_value
    return scores


def structure_probabilities(probs: dict[str, np.ndarray], heads=None) -> dict[str, np.ndarray]:
    """Per pixel, the probability of the cord, the gray matter and (with a lesion head) a lesion.

    From per-head probabilities ``[K, ...]`` (e.g. the ensemble's mean): P(cord) sums the
    values inside the cord (WM, GM and its parts), P(gm) the gray matter's. Click
    correction uses them as the models' prior (:func:`score_gui.refine.refine_mask`).

    >>> tissue = np.array([0.1, 0.1, 0.3, 0.2, 0.1, 0.1, 0.1], np.float32)[:, None]
    >>> {k: round(float(v[0]), 2) for k, v in structure_probabilities({"tissue": tissue}).items()}
    {'cord': 0.8, 'gm': 0.5}
    """
    specs = {h.name: h for h in resolve_heads(heads if heads is not None else probs.keys())}
    per_value = _fused_tissue_probabilities(probs, specs)
    if per_value is None:
        scores = tissue_log_scores(probs, heads)
        if scores is None:
            return {}
        per_value = np.exp(scores - scores.max(axis=0, keepdims=True))
    per_value = per_value / per_value.sum(axis=0, keepdims=True)
    out = {"cord": per_value[WM:].sum(axis=0), "gm": per_value[GM:].sum(axis=0)}
    for name, p in probs.items():
        if specs[name].kind == "lesion":
            out["lesion"] = np.asarray(p, np.float32)[1]
    return {k: v.astype(np.float32) for k, v in out.items()}


def _fused_tissue_probabilities(probs: dict[str, np.ndarray], specs: dict) -> np.ndarray | None:
    """The per-value probabilities ``[7, ...]`` when one tissue head gives every dseg value its
    own class (the fused head), as they are; else None. Spares the round trip through
    :func:`tissue_log_scores` (a log and an exp of every probability: 30 ms per scan and map)."""
    tissue = [name for name in probs if specs[name].kind == "tissue"]
    if len(tissue) != 1 or any(len(values) != 1 for values in specs[tissue[0]].classes):
        return None
    order = [values[0] for values in specs[tissue[0]].classes]
    if sorted(order) != list(TISSUE_VALUES):
        return None
    p = np.asarray(probs[tissue[0]], np.float32)
    return p if order == list(range(len(TISSUE_VALUES))) else p[np.argsort(order)]


def _nested_decision(p: np.ndarray) -> np.ndarray:
    """dseg from per-value probabilities ``[7, ...]``, deciding outer structures first."""
    in_gm = p[3:].sum(axis=0)
    in_cord = in_gm + p[2]
    canal = in_cord + p[1] > p[0]
    cord = canal & (in_cord > p[1])
    gm = cord & (in_gm > p[2])
    dseg = np.where(canal, CSF, 0).astype(np.uint8)
    dseg[cord] = WM
    dseg[gm] = (GM + np.argmax(p[3:], axis=0))[gm]
    return dseg


def labels_from_probabilities(probs: dict[str, np.ndarray], heads=None):
    """Per-head probabilities ``[K, ...]`` -> ``(dseg uint8, lesion uint8 or None)``, nested.

    With one head giving every dseg value its own class (the fused ``tissue`` head), the
    dseg follows the nesting: canal where P(canal) > P(outside), cord inside it where
    P(cord) > P(CSF), gray matter inside the cord where P(GM) > P(WM), then the most likely
    GM subdivision. A flat argmax would let WM win pixels whose GM probability is split over
    the horn classes (measured: member GM Dice 0.862 flat vs 0.873 nested). Heads whose
    classes group several values (partial labels, the paper's separate networks) use the
    argmax of :func:`tissue_log_scores`. Lesions are where P(lesion) > 0.5 and the dseg says
    cord (lesions lie inside the cord).

    Examples
    --------
    >>> import numpy as np
    >>> tissue = np.zeros((7, 1, 2), np.float32); tissue[1, 0, 0] = 1; tissue[3, 0, 1] = 1
    >>> lesion = np.array([[[0.2, 0.1]], [[0.8, 0.9]]], np.float32)
    >>> dseg, les = labels_from_probabilities({"tissue": tissue, "lesion": lesion})
    >>> dseg.tolist(), les.tolist()     # CSF pixel cannot hold a lesion
    ([[1, 3]], [[0, 1]])
    >>> split = np.array([0.05, 0.05, 0.40, 0.20, 0.15, 0.10, 0.05], np.float32)[:, None]
    >>> labels_from_probabilities({"tissue": split})[0].tolist()  # GM 0.5 beats WM 0.4
    [3]
    """
    specs = {h.name: h for h in resolve_heads(heads if heads is not None else probs.keys())}
    per_value = _fused_tissue_probabilities(probs, specs)
    if per_value is not None:
        dseg = _nested_decision(per_value)
    else:
        scores = tissue_log_scores(probs, list(specs.values()))
        if scores is None:
            raise ValueError("no tissue head among " + ", ".join(probs))
        dseg = np.argmax(scores, axis=0).astype(np.uint8)
    lesion = None
    for name, p in probs.items():
        if specs[name].kind == "lesion":
            lesion = ((np.asarray(p)[1] > 0.5) & (dseg >= WM)).astype(np.uint8)
    return dseg, lesion


def restrict_to_learnt(dseg: np.ndarray, learnt) -> np.ndarray:
    """A full dseg reduced to the structures a model learnt (contract section 2, partial labels).

    A model transferred from the default ensemble predicts every value 0-6, but only the
    structures its training labels held are trustworthy; the others are merged into the
    enclosing structure (horns into GM, GM into cord) or, for an unlearnt canal, into 0.

    >>> import numpy as np
    >>> restrict_to_learnt(np.array([0, 1, 2, 3, 4, 5, 6], np.uint8), {"cord", "gm"}).tolist()
    [0, 0, 2, 3, 3, 3, 3]
    >>> restrict_to_learnt(np.array([1, 2, 4], np.uint8), {"canal", "cord"}).tolist()
    [1, 2, 2]
    """
    out = np.asarray(dseg, np.uint8).copy()
    learnt = set(learnt)
    if "horns" not in learnt:
        out[out > GM] = GM
    if "gm" not in learnt:
        out[out >= GM] = WM
    if "cord" not in learnt:
        out[out >= WM] = CSF if "canal" in learnt else 0
    if "canal" not in learnt:
        out[out == CSF] = 0
    return out

