"""File names of label maps (contract section 5): ``<stem>_desc-<who>_dseg.nii.gz`` and
``<stem>_desc-<who>_lesion.nii.gz`` beside it.

The one place that builds and parses these names, so the study browser, the areas table
and the label reader always agree on who a file belongs to; and the names of the label
sources themselves (:func:`rater_who`, :func:`source_id`), without the heavy modules
(PyTorch) of the code that trains on them.

Examples
--------
>>> label_file_name("sub-03_amira", "raterA")
'sub-03_amira_desc-raterA_dseg.nii.gz'
>>> parse_label_name("sub-03_ses-2_amira_desc-raterA_dseg.nii.gz")
LabelFileName(stem='sub-03_ses-2_amira', source='raterA', subject='03', session='2')
>>> parse_label_name("sub-03_amira_desc-raterA_lesion.nii").kind
'lesion'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("dseg", "lesion", "disagreement")
"""A source's files: the tissue classes, the lesion map and (for an ensemble's result) the
members' disagreement map."""

_LABEL_NAME = re.compile(r"^(?P<stem>.+)_desc-(?P<who>[A-Za-z0-9]+)_(?P<kind>dseg|lesion|disagreement)\.nii(\.gz)?$")
_ENTITY = re.compile(r"(?:^|_)(sub|ses)-([A-Za-z0-9]+)")


@dataclass(frozen=True)
class LabelFileName:
    """What a label file's name says; ``source`` is empty for a name without ``_desc-``."""

    stem: str
    source: str
    subject: str
    session: str
    kind: str = field(default="dseg", repr=False)


def label_file_name(stem: str, who: str, kind: str = "dseg") -> str:
    """The file name of ``who``'s ``kind`` (one of :data:`KINDS`) for scan ``stem``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    return f"{stem}_desc-{who}_{kind}.nii.gz"


def parse_label_name(path: str | Path) -> LabelFileName:
    """Parse ``<stem>_desc-<who>_<kind>.nii[.gz]``; any other name is its own stem.

    Subject and session come from the stem's ``sub-``/``ses-`` entities (the stem itself
    stands for the subject when it has none).
    """
    name = Path(path).name
    match = _LABEL_NAME.match(name)
    if match:
        stem, who, kind = match.group("stem"), match.group("who"), match.group("kind")
    else:
        stem, who, kind = re.sub(r"\.nii(\.gz)?$", "", name), "", "dseg"
    entities = dict(_ENTITY.findall(stem))
    return LabelFileName(stem, who, entities.get("sub", stem), entities.get("ses", ""), kind)


# -- label sources ------------------------------------------------------------------------
CONSENSUS = "consensus"
"""The raters' majority vote (``desc-consensus``) as a label source to learn."""


def rater_who(rater: str) -> str:
    """``"A"`` or ``"raterA"`` -> ``"raterA"`` (the label source name); ``"consensus"`` stays.

    >>> rater_who("A"), rater_who("raterB"), rater_who("consensus")
    ('raterA', 'raterB', 'consensus')
    """
    rater = str(rater)
    if rater == CONSENSUS:
        return CONSENSUS
    return rater if rater.startswith("rater") and len(rater) > 5 else f"rater{rater}"


def source_id(rater: str) -> str:
    """The short name of a label source in model names: ``"A"`` for rater A, ``"consensus"``.

    >>> source_id("raterA"), source_id("B"), source_id("consensus")
    ('A', 'B', 'consensus')
    """
    who = rater_who(rater)
    return who if who == CONSENSUS else who[len("rater"):]
