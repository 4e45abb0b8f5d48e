"""Training samples: a rater's labelled slices, cropped around the canal at the model's pixel size.

A study's rater labels are ``derivatives/score/.../<stem>_desc-rater<ID>_dseg.nii.gz`` (+
``_lesion``), possibly partial (the sidecar's ``LabelledStructures``). :func:`load_rater_slices`
reads every labelled slice of every scan the rater labelled, leaving out slices that are
still unreviewed proposals of the models (the sidecar's ``SliceProvenance`` says
``proposed``: nobody trains on them by accident); :class:`SliceSampler` draws
random training crops from them: centred on the labelled canal (or cord) with a random
offset, resampled to the model's pixel size, augmented (:mod:`score_gui.training.augment`),
z-score normalised exactly as at inference (:func:`score_gui.mdgru.preprocess.normalise`),
with set-valued targets (:func:`score_gui.mdgru.heads.targets_from_labels`) so that what the
rater did not label is ignored, not learnt as background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from score_gui.errors import ScoreInputError
from score_gui.labels import read_labels
from score_gui.mdgru.heads import HEADS, TISSUE_VALUES, HeadSpec, targets_from_labels
from score_gui.training.losses import stack_targets
from score_gui.mdgru.preprocess import canal_centre_from_labels, zscore_slices
from score_gui.naming import CONSENSUS, rater_who, source_id  # noqa: F401 (public here too)
from score_gui.scan import read_scan
from score_gui.study import ScanEntry, Study
from score_gui.training.augment import AugmentConfig, augment_slice


@dataclass
class LabelledSlice:
    """One labelled 2D slice with everything a training sample needs.

    Attributes
    ----------
    images : float32 ``[T, H, W]`` raw magnitude images
    dseg : uint8 ``[H, W]``
    lesion : uint8 ``[H, W]`` or None
    labelled : frozenset of str
        LabelledStructures of the rater's map.
    pixel_spacing : (float, float) mm (rows, cols)
    subject, session, stem : str
    slice_index : int
    """

    images: np.ndarray
    dseg: np.ndarray
    lesion: np.ndarray | None
    labelled: frozenset
    pixel_spacing: tuple[float, float]
    subject: str = ""
    session: str | None = None
    stem: str = ""
    slice_index: int = 0
    inversion_times: tuple | None = None

    def centre(self) -> tuple[float, float]:
        """Centroid (row, col) of the labelled canal, or the cord when the canal is unknown."""
        centre = canal_centre_from_labels(self.dseg)
        if centre is None:
            return ((self.dseg.shape[0] - 1) / 2, (self.dseg.shape[1] - 1) / 2)
        return (float(centre[0]), float(centre[1]))


def rater_scans(study: Study, rater: str) -> list[ScanEntry]:
    """Scans of the study that the rater labelled (a ``desc-rater<ID>_dseg`` exists)."""
    who = rater_who(rater)
    found = [entry for entry in study.scans if entry.dseg_path(who).exists()]
    if not found:
        raters = sorted({r for entry in study.scans for r in entry.raters()})
        raise ScoreInputError(study.root, f"no labels of {who} in the study "
                                          f"(raters found: {', '.join(raters) or 'none'})")
    return found


def load_scan_slices(entry: ScanEntry, rater: str) -> list[LabelledSlice]:
    """Every reviewed labelled slice of one scan: a slice that is all 0 is unlabelled and
    skipped, and so is one whose provenance is still ``proposed`` (the models' proposal,
    not reviewed by the rater; see :attr:`score_gui.labels.LabelMap.reviewed_slices`)."""
    scan = read_scan(entry.path)
    labels = read_labels(entry.dseg_path(rater_who(rater)), scan)
    labelled = frozenset(labels.labelled)
    keep = labels.reviewed_slices()
    out = []
    for s in np.flatnonzero(keep):
        out.append(LabelledSlice(
            images=scan.images[s].astype(np.float32), dseg=labels.dseg[s],
            lesion=None if labels.lesion is None else labels.lesion[s], labelled=labelled,
            pixel_spacing=tuple(scan.pixel_spacing), subject=entry.subject, session=entry.session,
            stem=entry.stem, slice_index=int(s),
            inversion_times=None if scan.inversion_times is None else tuple(scan.inversion_times)))
    return out


def load_rater_slices(study: Study, rater: str, entries: Sequence[ScanEntry] | None = None) -> list[LabelledSlice]:
    """Labelled slices of all (or the given) scans of a rater."""
    entries = rater_scans(study, rater) if entries is None else entries
    slices = [s for entry in entries for s in load_scan_slices(entry, rater)]
    if not slices:
        raise ScoreInputError(study.root, f"the labels of {rater_who(rater)} contain no labelled slice")
    return slices


def summarise(slices: Sequence[LabelledSlice]) -> dict:
    """Counts for checkpoint metadata: subjects, scans, slices, labelled structures."""
    return {
        "subjects": sorted({s.subject for s in slices}),
        "scans": sorted({s.stem for s in slices}),
        "n_scans": len({s.stem for s in slices}),
        "n_slices": len(slices),
        "labelled_structures": sorted(set().union(*(s.labelled for s in slices))) if slices else [],
        "pixel_spacing_mm": sorted({tuple(round(v, 3) for v in s.pixel_spacing) for s in slices}),
        "n_images": sorted({int(s.images.shape[0]) for s in slices}),
    }


def _membership(value: int, structure: str):
    if structure == "canal":
        return value >= 1
    if structure == "cord":
        return value >= 2
    if structure == "gm":
        return value >= 3
    return value if value in (4, 5, 6) else -1  # horns: which horn class


def tissue_head_for(labelled) -> HeadSpec:
    """The finest tissue head the labelled structures can teach.

    Values 0-6 that no labelled structure tells apart share a class: full labels give
    the 7-class ``tissue`` head; ``{cord, gm}`` (e.g. a T2*w study) gives the 3-class
    ``gm_wm`` head, whose labels come out as 0 (not cord), 2 (WM), 3 (GM), exactly the
    contract's partial label format.

    >>> tissue_head_for({"canal", "cord", "gm", "horns"}).name, tissue_head_for({"cord", "gm"}).name
    ('tissue', 'gm_wm')
    >>> tissue_head_for({"cord"}).classes
    ((0, 1), (2, 3, 4, 5, 6))
    """
    structures = [k for k in ("canal", "cord", "gm", "horns") if k in set(labelled)]
    if not structures:
        raise ValueError("no tissue structure is labelled")
    groups: dict[tuple, list[int]] = {}
    for value in TISSUE_VALUES:
        groups.setdefault(tuple(_membership(value, k) for k in structures), []).append(value)
    classes = tuple(tuple(v) for v in groups.values())
    for head in HEADS.values():
        if head.kind == "tissue" and head.classes == classes:
            return head
    names = tuple("+".join(str(v) for v in c) for c in classes)
    return HeadSpec("tissue_" + "_".join(structures), "tissue", classes, names)


CORD_HEAD = HeadSpec("cord", "tissue", ((0, 1), (2, 3, 4, 5, 6)), ("not_cord", "cord"))
"""Localiser head when the canal is not labelled (e.g. cord + GM only)."""


def heads_for(slices) -> list[HeadSpec]:
    """Heads of a member network for these slices: finest tissue head (+ lesion if labelled)."""
    labelled = set().union(*(s.labelled for s in slices))
    heads = [tissue_head_for(labelled)]
    if "lesion" in labelled:
        heads.append(HEADS["lesion"])
    return heads


def localiser_head_for(slices) -> HeadSpec:
    """``canal`` vs rest when every slice labels the canal, else cord vs rest."""
    if all("canal" in s.labelled for s in slices):
        return HEADS["canal"]
    return CORD_HEAD


def normalise_slice(images: np.ndarray) -> np.ndarray:
    """Z-score each image of one whole native slice ``[T, H, W]``, exactly as inference
    (:func:`score_gui.mdgru.preprocess.zscore_slices`)."""
    return zscore_slices(images[None])[0]


@dataclass
class SliceSampler:
    """Draws augmented, normalised training crops with set-valued targets.

    Parameters
    ----------
    slices : list of LabelledSlice
    heads : tuple of str or HeadSpec
        Heads of the network being trained (see :func:`heads_for`).
    pixel_size_mm : float
        The model's pixel size; every crop is resampled to it.
    crop_px : int
        Side of the square training crop.
    max_offset_mm : float
        Uniform random shift of the crop centre from the labelled canal centre, per axis
        (covers the localiser's error at inference).
    augment : AugmentConfig
    batch_size : int
    """

    slices: list = field(default_factory=list)
    heads: tuple | list = ("tissue", "lesion")
    pixel_size_mm: float = 0.5
    crop_px: int = 64
    max_offset_mm: float = 4.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    batch_size: int = 1

    def crop(self, item: LabelledSlice, rng: np.random.Generator, config: AugmentConfig):
        """One (images, dseg, lesion) crop of ``item`` at the model's pixel size."""
        dy, dx = item.pixel_spacing
        offset = rng.uniform(-self.max_offset_mm, self.max_offset_mm, size=2) if self.max_offset_mm else (0, 0)
        cy, cx = item.centre()
        centre = (cy + offset[0] / dy, cx + offset[1] / dx)
        scale = (self.pixel_size_mm / dy, self.pixel_size_mm / dx)
        return augment_slice(item.images, item.dseg, item.lesion, centre, scale,
                             (self.crop_px, self.crop_px), rng, config, normalise=normalise_slice)

    def draw_item(self, rng: np.random.Generator) -> LabelledSlice:
        """A labelled slice, uniformly at random."""
        return self.slices[int(rng.integers(len(self.slices)))]

    def sample(self, rng: np.random.Generator):
        """``(inputs [B, T, N, N] float32 tensor, targets dict head -> bool [B, K, N, N])``."""
        inputs, targets = [], []
        for _ in range(self.batch_size):
            item = self.draw_item(rng)
            images, dseg, lesion = self.crop(item, rng, self.augment)
            inputs.append(images)
            targets.append(targets_from_labels(dseg, lesion, item.labelled, self.heads))
        return torch.from_numpy(np.stack(inputs)), stack_targets(targets)

    __call__ = sample


@dataclass
class LocaliserSampler(SliceSampler):
    """Whole-field-of-view samples on the localiser's coarse grid (2 mm) with a canal head.

    The crop covers the slice's field of view (as :func:`score_gui.mdgru.preprocess.find_canal`
    sees it), centred on the image centre plus a random shift, with mild geometric and the
    full intensity augmentation.
    """

    pixel_size_mm: float = 2.0
    max_offset_mm: float = 10.0
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(rotation_deg=10, scaling=1.1,
                                                                          elastic_px=0.5))

    def crop(self, item: LabelledSlice, rng: np.random.Generator, config: AugmentConfig):
        dy, dx = item.pixel_spacing
        height, width = item.dseg.shape
        size = (max(int(round(height * dy / self.pixel_size_mm)), 8),
                max(int(round(width * dx / self.pixel_size_mm)), 8))
        offset = rng.uniform(-self.max_offset_mm, self.max_offset_mm, size=2)
        centre = ((height - 1) / 2 + offset[0] / dy, (width - 1) / 2 + offset[1] / dx)
        scale = (self.pixel_size_mm / dy, self.pixel_size_mm / dx)
        return augment_slice(item.images, item.dseg, item.lesion, centre, scale, size, rng, config,
                             normalise=normalise_slice)


@dataclass(frozen=True)
class SyntheticConfig:
    """Randomisation of on-the-fly synthetic training slices (:mod:`score_gui.phantom`).

    Every draw is a new random subject (anatomy, flip angle, inversion cycle, SNR, bias
    field, pose: see :func:`score_gui.phantom.random_subject`) imaged at a random level,
    pixel size and field of view, with the phantom's random artifacts.
    """

    pixel_size_mm: tuple[float, float] = (0.4, 0.8)
    anisotropy: float = 1.1
    fov_mm: tuple[float, float] = (60.0, 140.0)
    ms_fraction: float = 0.5
    degrade_rate: float = 0.1
    contrast: str = "amira"
    rater: str | None = None
    lesion_enrich: float = 0.0
    """Probability of redrawing (up to 4 times) an MS slice that cuts no lesion, so the
    rare lesion class is seen more often."""
    random_contrast: float = 0.0
    """Probability that a slice is rendered with a random signal table
    (:func:`score_gui.phantom.randomise.random_tissue_values`) instead of the physics."""
    wide_anatomy: float = 0.0
    """Probability that the subject's anatomy is redrawn from wide ranges
    (:func:`score_gui.phantom.randomise.widen_subject`)."""
    t2star_fraction: float = 0.0
    """Probability of the phantom's single T2*-weighted contrast, repeated to 8 images."""

    @classmethod
    def robust(cls, rater: str | None = None, lesion_enrich: float = 0.0) -> "SyntheticConfig":
        """The randomisation of the default models: pixel sizes 0.3-1.0 mm, anisotropy to
        25 %, degraded slices 20 %, random contrasts on half of the slices, wide anatomy
        on 60 %, single T2*-weighted contrast on 10 %."""
        return cls(pixel_size_mm=(0.3, 1.0), anisotropy=1.25, fov_mm=(40.0, 150.0), degrade_rate=0.2,
                   rater=rater, lesion_enrich=lesion_enrich, random_contrast=0.5, wide_anatomy=0.6,
                   t2star_fraction=0.1)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def synthetic_slice(rng: np.random.Generator, config: SyntheticConfig = SyntheticConfig()) -> LabelledSlice:
    """One random synthetic slice with (rater-simulated when ``config.rater``) full labels."""
    for _ in range(4):
        item = _one_synthetic_slice(rng, config)
        wants_lesion = item.subject.endswith("ms") and config.lesion_enrich > 0
        if not wants_lesion or item.lesion.any() or rng.random() >= config.lesion_enrich:
            return item
    return item


def _one_synthetic_slice(rng: np.random.Generator, config: SyntheticConfig) -> LabelledSlice:
    from score_gui import phantom
    from score_gui.phantom.artifacts import DEGRADATIONS

    kind = "ms" if rng.random() < config.ms_fraction else "hc"
    level = str(rng.choice(phantom.anatomy.LEVELS))
    base = rng.uniform(*config.pixel_size_mm)
    ratio = config.anisotropy ** rng.uniform(-1, 1)
    pixel = (base * ratio, base / ratio)
    fov = rng.uniform(*config.fov_mm)
    # At most 256 pixels a side: rendering cost grows with the pixel count, and a small
    # pixel size with a large field of view adds nothing the crop would see.
    shape = (min(int(round(fov / pixel[0])), 256), min(int(round(fov / pixel[1])), 256))
    degrade = str(rng.choice(DEGRADATIONS)) if rng.random() < config.degrade_rate else "none"
    made = phantom.make_slice(rng, level=level, kind=kind, shape=shape, pixel_size=pixel,
                              degrade=degrade, **_randomised(rng, config, kind))
    dseg, lesion = made.dseg, made.lesion
    if config.contrast == "amira" and made.images.shape[0] == 1:  # T2*w seen by an 8-image model
        made.images = np.repeat(made.images, 8, axis=0)
    if config.rater:  # "A", or "A,B,C" for a rater drawn per slice
        rater = str(rng.choice(config.rater.split(","))) if "," in config.rater else config.rater
        dseg, lesion = phantom.simulate_rater(dseg, lesion, rater, rng)
    return LabelledSlice(images=made.images, dseg=dseg, lesion=lesion,
                         labelled=frozenset(("canal", "cord", "gm", "horns", "lesion")),
                         pixel_spacing=pixel, subject=f"synthetic-{kind}", stem="synthetic",
                         slice_index=0)


def _randomised(rng: np.random.Generator, config: SyntheticConfig, kind: str) -> dict:
    """``make_slice`` arguments for one slice under ``config``'s randomisation."""
    from score_gui import phantom
    from score_gui.phantom.randomise import random_tissue_values, widen_subject
    if not (config.random_contrast or config.wide_anatomy or config.t2star_fraction):
        return {"contrast": config.contrast}  # the plain phantom (same random stream as before)
    subject = phantom.random_subject(rng, kind)
    if rng.random() < config.wide_anatomy:
        subject = widen_subject(rng, subject)
    contrast = config.contrast
    if contrast == "amira" and rng.random() < config.t2star_fraction:
        contrast = "t2star"
    values = None
    if rng.random() < config.random_contrast:
        values = random_tissue_values(rng, subject, 8 if contrast == "amira" else 1)
    return {"subject": subject, "contrast": contrast, "tissue_values": values}


@dataclass
class SyntheticSampler(SliceSampler):
    """A :class:`SliceSampler` whose slices are drawn fresh from the phantom every time."""

    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    reuse: int = 2
    """Crops drawn from each phantom slice (each with its own offset and augmentation);
    rendering a slice costs about as much as a training step, so 2 halves that cost."""

    def draw_item(self, rng: np.random.Generator) -> LabelledSlice:
        cached = getattr(self, "_cached", None)
        if cached is None or cached[1] >= self.reuse:
            cached = [synthetic_slice(rng, self.synthetic), 0]
        cached[1] += 1
        self._cached = cached
        return cached[0]
