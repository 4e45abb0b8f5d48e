"""Automatic QC suggestions: slices worth a close look, with why (never applied silently).

Each slice gets a list of :class:`Suggestion` ``(reason, score, detail, kind)``: ``reason``
is the contract's QC reason a reviewer would pick if they agree, ``score`` how strongly the
check fired (about 0-1; higher = more suspicious), ``kind`` the check that fired:

==================  =========================  ==================================================
kind                reason                     what is measured
==================  =========================  ==================================================
``disagreement``    segmentation_error         ensemble members (``desc-model<NAME>``) or the
                                               disagreement map: mean disagreement in the canal
``area_outlier``    segmentation_error         cord/GM area against the neighbouring slices
``session_outlier`` segmentation_error         cord/GM area against the subject's other sessions
``topology``        segmentation_error         GM or cord in pieces, holes in cord or canal,
                                               GM not enclosed by WM
``arch_contact``    posterior_arch_contact     no CSF ring behind the cord
``low_snr``         poor_image_quality         SNR (cord signal / background noise) low, in
                                               absolute terms or against the scan's other slices
``ghosting``        image_artifact             background energy along the phase-encode
                                               direction beside the body, against elsewhere
==================  =========================  ==================================================

Thresholds (:class:`Thresholds`) were tuned on synthetic scans with degraded slices
(``benchmarks/bench_qc_suggestions.py`` prints sensitivity and false-positive rate).

Examples
--------
>>> import numpy as np
>>> dseg = np.zeros((1, 20, 20), np.uint8)
>>> dseg[0, 4:16, 4:16] = 1; dseg[0, 6:16, 6:14] = 2   # cord on the canal's posterior edge
>>> [s.kind for s in label_suggestions(dseg[0], (0.6, 0.6))]
['arch_contact']
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from score_gui.naming import label_file_name
from score_gui.progress import Progress

KIND_REASONS = {
    "disagreement": "segmentation_error",
    "area_outlier": "segmentation_error",
    "session_outlier": "segmentation_error",
    "topology": "segmentation_error",
    "arch_contact": "posterior_arch_contact",
    "low_snr": "poor_image_quality",
    "ghosting": "image_artifact",
}
"""Check that fired -> the QC reason (contract section 4) it suggests."""

KINDS = tuple(KIND_REASONS)
EIGHT = np.ones((3, 3), bool)


@dataclass(frozen=True)
class Suggestion:
    """A hint for the reviewer about one slice."""

    reason: str
    score: float
    detail: str
    kind: str = ""

    def __str__(self) -> str:
        return f"{self.kind or self.reason} ({self.score:.2f}): {self.detail}"


@dataclass(frozen=True)
class Thresholds:
    """When a check fires (tuned with ``benchmarks/bench_qc_suggestions.py``).

    Attributes
    ----------
    disagreement : float
        Mean member disagreement inside the canal.
    area_relative : dict
        Relative deviation of an area from the neighbours' (or other sessions') median.
    min_area_mm2 : float
        Areas below this are too small to compare relatively (a few pixels).
    posterior_csf_mm : float
        Median CSF thickness behind the cord below which the arch touches the cord.
    snr_absolute, snr_relative : float
        SNR below ``snr_absolute``, or below ``snr_relative`` times the scan's median.
    ghost_relative, ghost_absolute : float
        Ghost ratio (see :func:`image_quality`) above ``ghost_relative`` times the scan's
        median; for scans of fewer than 3 slices, above ``ghost_absolute``.
    """

    disagreement: float = 0.12
    area_relative: dict = field(default_factory=lambda: {"cord": 0.25, "gm": 0.4})
    min_area_mm2: float = 4.0
    posterior_csf_mm: float = 0.35
    snr_absolute: float = 5.0
    snr_relative: float = 0.65
    ghost_relative: float = 1.04
    ghost_absolute: float = 2.6


THRESHOLDS = Thresholds()


def _make(kind: str, score: float, detail: str) -> Suggestion:
    return Suggestion(KIND_REASONS[kind], round(float(score), 3), detail, kind)


# ---------------------------------------------------------------------------------------
# Labels: topology and the CSF ring
# ---------------------------------------------------------------------------------------

def label_suggestions(dseg: np.ndarray, pixel_spacing=(1.0, 1.0),
                      thresholds: Thresholds = THRESHOLDS) -> list[Suggestion]:
    """Topology and posterior-arch checks of one labelled slice ``[H, W]`` (display grid)."""
    dseg = np.asarray(dseg)
    cord = dseg >= 2
    if not cord.any():
        return []
    found = []
    problems = _topology_problems(dseg, cord)
    if problems:
        found.append(_make("topology", min(1.0, 0.5 + 0.25 * len(problems)), "; ".join(problems)))
    if (dseg == 1).any():  # a canal is labelled: is there CSF behind the cord?
        thickness = posterior_csf_mm(dseg, pixel_spacing[0])
        if thickness is not None and thickness < thresholds.posterior_csf_mm:
            score = 1.0 - thickness / max(thresholds.posterior_csf_mm, 1e-6) * 0.5
            found.append(_make("arch_contact", score, f"no CSF ring behind the cord (median "
                                                      f"{thickness:.2f} mm of CSF posterior to it)"))
    return found


def _topology_problems(dseg: np.ndarray, cord: np.ndarray) -> list[str]:
    problems = []
    gm = dseg >= 3
    n_gm = _pieces(gm)
    if n_gm > 1:
        problems.append(f"gray matter in {n_gm} pieces")
    n_cord = _pieces(cord)
    if n_cord > 1:
        problems.append(f"cord in {n_cord} pieces")
    cord_holes = int((ndimage.binary_fill_holes(cord) & ~cord).sum())
    if cord_holes:
        problems.append(f"cord not closed ({cord_holes} px holes)")
    canal = dseg >= 1
    canal_holes = int((ndimage.binary_fill_holes(canal) & ~canal).sum())
    if canal_holes:
        problems.append(f"holes in the canal ({canal_holes} px)")
    exposed = int((gm & ndimage.binary_dilation(~cord)).sum())
    if exposed:
        problems.append(f"gray matter touches CSF/outside ({exposed} px)")
    return problems


def _pieces(mask: np.ndarray, min_pixels: int = 3, min_fraction: float = 0.1) -> int:
    """Connected pieces (8-connected) big enough to matter: a stray pixel or two is
    partial-volume noise, not a broken structure (true labels have them too)."""
    labels, n = ndimage.label(mask, EIGHT)
    if n <= 1:
        return n
    sizes = np.bincount(labels.ravel())[1:]
    return int((sizes >= max(min_pixels, min_fraction * sizes.max())).sum())


def posterior_csf_mm(dseg: np.ndarray, row_spacing_mm: float, central_fraction: float = 0.6) -> float | None:
    """Median CSF thickness (mm) behind the cord over its central columns.

    Display orientation puts posterior down (larger row index). For each column in the
    middle ``central_fraction`` of the cord's width, CSF pixels are counted from the cord's
    posterior edge until the first non-CSF pixel.

    Examples
    --------
    >>> d = np.zeros((10, 7), np.uint8); d[1:9, 1:6] = 1; d[2:5, 2:5] = 2
    >>> posterior_csf_mm(d, 0.5)
    2.0
    """
    cord = dseg >= 2
    cols = np.flatnonzero(cord.any(axis=0))
    if cols.size == 0:
        return None
    width = cols[-1] - cols[0]
    margin = (1 - central_fraction) / 2 * width
    central = cols[(cols >= cols[0] + margin) & (cols <= cols[-1] - margin)]
    thickness = []
    for col in central:
        below = dseg[np.flatnonzero(cord[:, col])[-1] + 1:, col]
        not_csf = np.flatnonzero(below != 1)
        thickness.append(not_csf[0] if not_csf.size else below.size)
    return float(np.median(thickness)) * float(row_spacing_mm)


# ---------------------------------------------------------------------------------------
# Images: noise and ghosting
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageQuality:
    """Per-slice image measures: ``snr`` and ``ghost_ratio`` (NaN when not measurable)."""

    snr: float
    ghost_ratio: float
    noise: float


def body_mask(image: np.ndarray) -> np.ndarray:
    """The subject's body: Otsu on the log of a smoothed image, largest piece, holes filled.

    On the log scale air (noise) and tissue are two clear modes, even when bright fat
    would make Otsu on the raw intensities keep only the fat.
    """
    from skimage.filters import threshold_otsu

    smooth = ndimage.gaussian_filter(np.asarray(image, np.float32), 2.0)
    if not np.isfinite(smooth).all() or smooth.max() <= smooth.min():
        return np.zeros(image.shape, bool)
    log = np.log(np.maximum(smooth - smooth.min(), 0) + 1e-3 * (smooth.max() - smooth.min()))
    mask = log > threshold_otsu(log)
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    largest = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    return ndimage.binary_fill_holes(largest)


def noise_sigma(image: np.ndarray) -> float:
    """Gaussian noise level from the finest diagonal Haar wavelet band (Donoho's MAD).

    Edges are sparse in that band, so its median absolute value reflects the noise even
    where the body fills the image.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(noise_sigma(rng.normal(5, 2.0, (128, 128))), 1)
    2.0
    """
    image = np.asarray(image, np.float64)
    h, w = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    a, b = image[0:h:2, 0:w:2], image[0:h:2, 1:w:2]
    c, d = image[1:h:2, 0:w:2], image[1:h:2, 1:w:2]
    diagonal = (a - b - c + d) / 2.0
    return float(np.median(np.abs(diagonal)) / 0.6745)


def image_quality(image: np.ndarray, signal_mask: np.ndarray | None = None,
                  phase_encode_axis: int = 0, margin: int = 4, body: np.ndarray | None = None
                  ) -> ImageQuality:
    """SNR and ghosting ratio of one slice image ``[H, W]``.

    The noise ``sigma`` is a wavelet (Donoho MAD) estimate over the whole image, which
    needs no empty background: a neck often fills the field of view left to right. The
    signal is the median inside ``signal_mask`` (the cord when labelled), else the body's
    90th percentile. The ghost ratio looks at the background beyond the body *along*
    phase-encode, within the body's extent across it (where motion ghosts land; NEMA's
    ghosting band): its 95th percentile over its median. Pure noise gives a constant
    whatever its level (about 2.1 for Rayleigh noise, less for averaged images); ghosts,
    replicas of bright tissue, give it a heavy tail. Pass ``body`` (e.g. from the scan's
    median image) so ghosts cannot enlarge the body and hide themselves.
    """
    image = np.asarray(image, np.float32)
    body = body_mask(image) if body is None else np.asarray(body, bool)
    if not body.any():
        return ImageQuality(float("nan"), float("nan"), float("nan"))
    sigma = noise_sigma(image)
    if signal_mask is not None and np.asarray(signal_mask).any():
        signal = float(np.median(image[np.asarray(signal_mask, bool)]))
    else:
        signal = float(np.percentile(image[body], 90))
    snr = signal / sigma if sigma > 0 else float("inf")
    outside = ~ndimage.binary_dilation(body, iterations=margin)
    across = np.flatnonzero(body.any(axis=phase_encode_axis))
    in_extent = np.zeros(image.shape[1 - phase_encode_axis], bool)
    in_extent[across[0]:across[-1] + 1] = True
    band = np.broadcast_to(np.expand_dims(in_extent, phase_encode_axis), image.shape) & outside
    ghost = float("nan")
    if band.sum() >= 30:
        low, high = np.percentile(image[band], [50, 95])
        ghost = float(high / low) if low > 0 else float("nan")
    return ImageQuality(snr, ghost, sigma)


def image_suggestions(qualities: list[ImageQuality], thresholds: Thresholds = THRESHOLDS
                      ) -> dict[int, list[Suggestion]]:
    """Low SNR and ghosting per slice, absolute and against the scan's median."""
    snr = np.array([q.snr for q in qualities], float)
    ghost = np.array([q.ghost_ratio for q in qualities], float)
    median_snr = np.nanmedian(snr) if np.isfinite(snr).any() else np.nan
    median_ghost = np.nanmedian(ghost) if np.isfinite(ghost).any() else np.nan
    found: dict[int, list[Suggestion]] = {}
    for s, (value, ratio) in enumerate(zip(snr, ghost)):
        hints = []
        if np.isfinite(value):
            relative = value / median_snr if median_snr > 0 else 1.0
            if value < thresholds.snr_absolute or relative < thresholds.snr_relative:
                score = max(1 - value / thresholds.snr_absolute, 1 - relative)
                hints.append(_make("low_snr", min(1.0, score + 0.3),
                                   f"low SNR {value:.1f} ({relative:.0%} of the scan's median {median_snr:.1f})"))
        if np.isfinite(ratio):
            if np.isfinite(ghost).sum() >= 3:
                relative = ratio / median_ghost
                fired = relative > thresholds.ghost_relative
            else:
                relative = ratio / thresholds.ghost_absolute * thresholds.ghost_relative
                fired = ratio > thresholds.ghost_absolute
            if fired:
                hints.append(_make("ghosting", min(1.0, (relative - 1) * 2 + 0.3),
                                   f"ghosting: structured background along phase-encode "
                                   f"(tail ratio {ratio:.2f}, {relative:.2f}x the scan's median)"))
        if hints:
            found[s] = hints
    return found


# ---------------------------------------------------------------------------------------
# Areas: neighbours and other sessions
# ---------------------------------------------------------------------------------------

def slice_areas(dseg: np.ndarray, pixel_area_mm2: float) -> pd.DataFrame:
    """Cord and GM area (mm²) per slice; NaN on unlabelled slices."""
    dseg = np.asarray(dseg)
    flat = dseg.reshape(dseg.shape[0], -1)
    labelled = flat.any(axis=1)
    areas = pd.DataFrame({"cord": (flat >= 2).sum(1) * pixel_area_mm2,
                          "gm": (flat >= 3).sum(1) * pixel_area_mm2}, dtype=float)
    areas[~labelled] = np.nan
    return areas


def _neighbour_deviation(values: np.ndarray, window: int, min_area: float) -> tuple[np.ndarray, np.ndarray]:
    """Relative deviation of each value from the median of its neighbours, and that median."""
    deviation = np.full(values.shape, np.nan)
    reference = np.full(values.shape, np.nan)
    for s, value in enumerate(values):
        neighbours = np.concatenate([values[max(0, s - window):s], values[s + 1:s + 1 + window]])
        neighbours = neighbours[np.isfinite(neighbours)]
        if not np.isfinite(value) or neighbours.size < 2:
            continue
        reference[s] = float(np.median(neighbours))
        if reference[s] >= min_area:
            deviation[s] = (value - reference[s]) / reference[s]
    return deviation, reference


def area_outliers(areas: pd.DataFrame, thresholds: Thresholds = THRESHOLDS, window: int = 2
                  ) -> dict[int, list[Suggestion]]:
    """Slices whose cord or GM area departs from the median of the slices within ``window``."""
    found: dict[int, list[Suggestion]] = {}
    for column, limit in thresholds.area_relative.items():
        values = areas[column].to_numpy(float)
        deviation, reference = _neighbour_deviation(values, window, thresholds.min_area_mm2)
        for s in np.flatnonzero(np.abs(np.nan_to_num(deviation)) > limit):
            found.setdefault(int(s), []).append(_make(
                "area_outlier", min(1.0, abs(deviation[s]) / limit / 2),
                f"{column} area {values[s]:.1f} mm² vs {reference[s]:.1f} mm² in neighbouring slices "
                f"({deviation[s]:+.0%})"))
    return found


def session_outliers(areas: pd.DataFrame, other_sessions: list[pd.DataFrame],
                     thresholds: Thresholds = THRESHOLDS) -> dict[int, list[Suggestion]]:
    """Slices whose cord or GM area departs from the same slice in the subject's other sessions.

    Another session's slice that is itself an outlier among its neighbours is left out of
    the comparison: its own failure should not be blamed on this one.
    """
    found: dict[int, list[Suggestion]] = {}
    if not other_sessions:
        return found
    for column, limit in thresholds.area_relative.items():
        others = np.full((len(other_sessions), len(areas)), np.nan)
        for i, table in enumerate(other_sessions):
            n = min(len(table), len(areas))
            values = table[column].to_numpy(float)
            deviation, _ = _neighbour_deviation(values, 2, thresholds.min_area_mm2)
            values = np.where(np.abs(np.nan_to_num(deviation)) > limit, np.nan, values)
            others[i, :n] = values[:n]
        for s, value in enumerate(areas[column].to_numpy(float)):
            column_values = others[:, s][np.isfinite(others[:, s])]
            if not np.isfinite(value) or column_values.size == 0:
                continue
            reference = float(np.median(column_values))
            if reference < thresholds.min_area_mm2:
                continue
            deviation = (value - reference) / reference
            if abs(deviation) > limit:
                found.setdefault(s, []).append(_make(
                    "session_outlier", min(1.0, abs(deviation) / limit / 2),
                    f"{column} area {value:.1f} mm² vs {reference:.1f} mm² on this slice in "
                    f"{column_values.size} other session(s) ({deviation:+.0%})"))
    return found


# ---------------------------------------------------------------------------------------
# Ensemble disagreement
# ---------------------------------------------------------------------------------------

def disagreement_per_slice(dseg: np.ndarray, members: list[np.ndarray] | None = None,
                           disagreement: np.ndarray | None = None) -> np.ndarray:
    """Mean disagreement inside the canal (any member's or the result's) per slice.

    From the disagreement map when given (fraction of members differing per voxel),
    else from the members' dsegs against ``dseg``. NaN where nothing is labelled.
    """
    dseg = np.asarray(dseg)
    if disagreement is None:
        if not members:
            return np.full(dseg.shape[0], np.nan)
        disagreement = np.mean([np.asarray(m) != dseg for m in members], axis=0)
        region = (dseg > 0) | np.any([np.asarray(m) > 0 for m in members], axis=0)
    else:
        disagreement = np.asarray(disagreement, np.float32)
        region = (dseg > 0) | (disagreement > 0)
    flat_region = region.reshape(dseg.shape[0], -1)
    totals = (disagreement * region).reshape(dseg.shape[0], -1).sum(axis=1)
    counts = flat_region.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def disagreement_suggestions(per_slice: np.ndarray, thresholds: Thresholds = THRESHOLDS
                             ) -> dict[int, list[Suggestion]]:
    found = {}
    for s, value in enumerate(per_slice):
        if np.isfinite(value) and value > thresholds.disagreement:
            found[s] = [_make("disagreement", min(1.0, value / thresholds.disagreement / 2),
                              f"ensemble members disagree on {value:.0%} of the canal")]
    return found


# ---------------------------------------------------------------------------------------
# One scan, one study
# ---------------------------------------------------------------------------------------

def _merge(into: dict[int, list[Suggestion]], more: dict[int, list[Suggestion]]) -> None:
    for s, hints in more.items():
        into.setdefault(s, []).extend(hints)


def suggest_scan(images: np.ndarray, dseg: np.ndarray | None, pixel_spacing=(1.0, 1.0), *,
                 members: list[np.ndarray] | None = None, disagreement: np.ndarray | None = None,
                 other_sessions: list[pd.DataFrame] | None = None, phase_encode_axis: int = 0,
                 thresholds: Thresholds = THRESHOLDS) -> dict[int, list[Suggestion]]:
    """Every check on one scan; ``{slice: [Suggestion, ...]}`` (strongest first).

    Parameters
    ----------
    images : ndarray ``[S, H, W]``
        The image the checks look at (e.g. ``scan.average()``), display grid.
    dseg : ndarray ``[S, H, W]`` or None
        The segmentation under review (None: image checks only).
    members, disagreement : optional
        Ensemble members' dsegs ``[S, H, W]`` each, or the disagreement map.
    other_sessions : list of DataFrame, optional
        :func:`slice_areas` of the subject's other sessions.
    """
    images = np.asarray(images, np.float32)
    found: dict[int, list[Suggestion]] = {}
    area_mm2 = float(pixel_spacing[0]) * float(pixel_spacing[1])
    # One body outline for the scan (from the median over slices): a ghosted slice's own
    # outline would swell with its ghosts and swallow the band where they are measured.
    body = body_mask(np.median(images, axis=0)) if images.shape[0] >= 3 else None
    qualities = [image_quality(images[s], None if dseg is None else dseg[s] >= 2, phase_encode_axis,
                               body=body) for s in range(images.shape[0])]
    _merge(found, image_suggestions(qualities, thresholds))
    if dseg is not None:
        dseg = np.asarray(dseg)
        for s in range(dseg.shape[0]):
            hints = label_suggestions(dseg[s], pixel_spacing, thresholds)
            if hints:
                found.setdefault(s, []).extend(hints)
        areas = slice_areas(dseg, area_mm2)
        _merge(found, area_outliers(areas, thresholds))
        _merge(found, session_outliers(areas, other_sessions or [], thresholds))
        if members or disagreement is not None:
            _merge(found, disagreement_suggestions(
                disagreement_per_slice(dseg, members, disagreement), thresholds))
    return {s: sorted(hints, key=lambda h: -h.score) for s, hints in sorted(found.items())}


def scan_suggestions(entry, source: str = "score", study=None, average: str = "all",
                     thresholds: Thresholds = THRESHOLDS) -> dict[int, list[Suggestion]]:
    """Load a study scan, its ``source`` labels, members, disagreement map and other
    sessions, and run :func:`suggest_scan`."""
    from score_gui.labels import read_labels
    from score_gui.scan import load_nifti, read_scan

    scan = read_scan(entry.path)
    averages = scan.averages()
    image = averages.get(average, averages["all"])
    dseg_file = entry.dseg_path(source)
    dseg = read_labels(dseg_file, scan).dseg if dseg_file.exists() else None
    members = [read_labels(entry.dseg_path(w), scan).dseg for w in entry.label_sources()
               if w.startswith("model") and w != source] if dseg is not None else []
    disagreement = None
    map_file = entry.derivatives_dir / label_file_name(entry.stem, source, "disagreement")
    if dseg is not None and map_file.exists():
        disagreement = scan.to_display_grid(np.asarray(load_nifti(map_file)[1], np.float32))
    others = []
    if study is not None and dseg is not None:
        for other in study.scans:
            if other.subject == entry.subject and other.path != entry.path and other.dseg_path(source).exists():
                other_scan = read_scan(other.path)
                other_dseg = read_labels(other.dseg_path(source), other_scan).dseg
                others.append(slice_areas(other_dseg, other_scan.pixel_area_mm2))
    return suggest_scan(image, dseg, scan.pixel_spacing, members=members or None,
                        disagreement=disagreement, other_sessions=others, thresholds=thresholds)


def study_suggestions_job(study, source: str = "score", scans: Iterable[str] | str | None = None,
                          thresholds: Thresholds = THRESHOLDS
                          ) -> Generator[Progress, None, dict[str, dict[int, list[Suggestion]]]]:
    """Suggestions for every scan of a study: yields Progress, returns ``{stem: {slice: [...]}}``."""
    started = time.monotonic()
    if isinstance(scans, str):
        scans = [scans]
    wanted = None if scans is None else set(scans)
    entries = [e for e in study.scans if wanted is None or e.stem in wanted]
    found = {}
    for done, entry in enumerate(entries, start=1):
        found[entry.stem] = scan_suggestions(entry, source, study, thresholds=thresholds)
        yield Progress(done, len(entries), entry.stem, started)
    return found


def suggestions_table(found: dict[str, dict[int, list[Suggestion]]]) -> pd.DataFrame:
    """One row per suggestion: scan, slice, kind, reason, score, detail."""
    rows = [(stem, s, h.kind, h.reason, h.score, h.detail)
            for stem, per_slice in found.items() for s, hints in per_slice.items() for h in hints]
    return pd.DataFrame(rows, columns=["scan", "slice", "kind", "reason", "score", "detail"])
