"""Render one synthetic AMIRA (or T2*-weighted) slice with its true labels.

The neck (fat, muscle, airway, vessels, vertebra, posterior arch) is painted at the image
resolution with analytic edge coverage; the spinal canal, cord, gray matter and lesions are
sampled 4 x 4 per pixel and averaged, so the cord/CSF and GM/WM edges hold mixed signed
signals. Images are the magnitude after the coil bias field and complex Gaussian noise.

Examples
--------
>>> import numpy as np
>>> s = make_slice(np.random.default_rng(0), level="C4", shape=(96, 96), pixel_size=0.67)
>>> s.images.shape, s.images.dtype, s.dseg.shape, s.lesion.dtype
((8, 96, 96), dtype('float32'), (96, 96), dtype('uint8'))
>>> bool((s.dseg == 2).any() and (s.dseg == 4).any() and (s.dseg == 6).any())
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from score_gui.labels import (ANTERIOR_HORNS, CSF, GM, GRAY_COMMISSURE, OUTSIDE, POSTERIOR_HORNS,
                              WM)
from score_gui.phantom import anatomy
from score_gui.phantom.anatomy import LEVELS, SLICE_SPACING_MM, Subject, random_subject
from score_gui.phantom.artifacts import (DEGRADATIONS, DEGRADE_RATE, bias_field, motion_ghosting,
                                         rician_magnitude, rician_magnitude_complex)
from score_gui.phantom.signal import TISSUE_INDEX, signal_curves, t2star_levels

SUPERSAMPLING = 4
IMAGE_SCALE = 4000.0
"""Signal units: GM at TI1 is about 900."""
CONTRASTS = ("amira", "t2star")

_T = TISSUE_INDEX


@dataclass
class SyntheticSlice:
    """One synthetic slice.

    Attributes
    ----------
    images : ndarray float32 (T, H, W)
        8 inversion images (AMIRA) or 1 (T2*w), display orientation (anterior up).
    dseg : ndarray uint8 (H, W)
        True nested tissue classes (contract section 2).
    lesion : ndarray uint8 (H, W)
        True lesion map (1 = lesion; those voxels keep their class in ``dseg``).
    info : dict
        How it was made: level, z_mm, contrast, degraded (None or a reason), snr_gm,
        lesions, canal centre, rotation, ...
    """

    images: np.ndarray
    dseg: np.ndarray
    lesion: np.ndarray
    info: dict = field(default_factory=dict)


def _pair(value) -> tuple[float, float]:
    if np.ndim(value) == 0:
        return (float(value), float(value))
    first, second = value
    return (float(first), float(second))


def _choose_degradation(rng: np.random.Generator, degrade) -> str | None:
    if degrade is None:
        return str(rng.choice(DEGRADATIONS)) if rng.random() < DEGRADE_RATE else None
    if degrade in (False, "", "none"):
        return None
    if degrade not in DEGRADATIONS:
        raise ValueError(f"degrade must be None (random), 'none' or one of {DEGRADATIONS}, not {degrade!r}")
    return str(degrade)


def _tissue_values(subject: Subject, contrast: str, rng: np.random.Generator) -> np.ndarray:
    """Signed signal per tissue and image, ``(n_tissues, T)``, in image units."""
    if contrast == "amira":
        cache = subject.__dict__.setdefault("_curves", None)
        if cache is None:
            cache = signal_curves(subject.signal) * np.float32(IMAGE_SCALE)
            subject.__dict__["_curves"] = cache
        return cache
    return t2star_levels(rng) * np.float32(IMAGE_SCALE)


class _Painter:
    """Paints tissues on the image grid with analytic partial-volume coverage."""

    def __init__(self, shape, pixel_size, center_px, rotation_rad, values):
        self.values = values
        self.pixel_size = pixel_size
        self.center_px = center_px
        self.cos, self.sin = np.cos(rotation_rad), np.sin(rotation_rad)
        rows = (np.arange(shape[0], dtype=np.float32) - center_px[0]) * pixel_size[0]
        cols = (np.arange(shape[1], dtype=np.float32) - center_px[1]) * pixel_size[1]
        self.x = (self.cos * cols[None, :] + self.sin * rows[:, None]).astype(np.float32)
        self.y = (-self.sin * cols[None, :] + self.cos * rows[:, None]).astype(np.float32)
        self.signal = np.zeros((values.shape[1], *shape), np.float32)
        self.edge = 1.0 / float(np.mean(pixel_size))

    def to_pixel(self, x, y):
        """Anatomy frame (mm) -> (row, col) pixel position."""
        col = self.cos * x - self.sin * y
        row = self.sin * x + self.cos * y
        return self.center_px[0] + row / self.pixel_size[0], self.center_px[1] + col / self.pixel_size[1]

    def window(self, cx, cy, radius):
        row, col = self.to_pixel(cx, cy)
        h, w = self.x.shape
        r0, r1 = int(max(0, row - radius / self.pixel_size[0] - 2)), int(min(h, row + radius / self.pixel_size[0] + 3))
        c0, c1 = int(max(0, col - radius / self.pixel_size[1] - 2)), int(min(w, col + radius / self.pixel_size[1] + 3))
        return (slice(r0, r1), slice(c0, c1)) if r0 < r1 and c0 < c1 else None

    def ellipse(self, tissue, cx, cy, rx, ry, angle=0.0):
        win = self.window(cx, cy, max(rx, ry))
        if win is None:
            return
        d = anatomy.ellipse_distance(self.x[win], self.y[win], cx, cy, rx, ry, angle)
        alpha = np.clip(0.5 - d * self.edge, 0, 1).astype(np.float32)
        target = self.values[_T[tissue]][:, None, None]
        patch = self.signal[(slice(None), *win)]
        patch += alpha[None] * (target - patch)

    def ring(self, outer, inner, cx, cy, rx, ry, thickness, angle=0.0):
        self.ellipse(outer, cx, cy, rx, ry, angle)
        self.ellipse(inner, cx, cy, max(rx - thickness, 0.3), max(ry - thickness, 0.3), angle)


def _paint_neck(p: _Painter, subject: Subject, geo, disc: bool, arch_contact: bool):
    """Everything outside the spinal canal, back to front."""
    neck_w, neck_ap = subject.neck_size_mm
    cy = -0.08 * neck_ap
    fat = subject.fat_thickness_mm
    p.ellipse("fat", 0, cy, neck_w / 2, neck_ap / 2)
    p.ellipse("muscle", 0, cy - 0.4 * fat, neck_w / 2 - fat, neck_ap / 2 - 1.3 * fat)
    for bx, by, rx, ry, angle in subject.fat_blobs:
        p.ellipse("fat", bx, by, rx, ry, angle)
    half_ap, half_rl = geo.canal_ap / 2, geo.canal_rl / 2
    body_rl, body_ap = subject.vertebral_body_mm
    body_y = -(half_ap + 1.2 + body_ap / 2)
    airway_y = body_y - body_ap / 2 - 9.0
    p.ellipse("muscle", 0, airway_y + 2, 16, 9)                    # pharyngeal constrictors
    p.ellipse("air", 0, airway_y, 10, 5.5)
    for side in (-1, 1):
        sheath_x, sheath_y = side * (body_rl / 2 + 10), body_y - 6
        p.ellipse("fat", sheath_x, sheath_y, 9, 6.5)
        p.ellipse("vessel", sheath_x - side * 3.5, sheath_y - 1.0, 3.1, 3.1)       # carotid
        p.ellipse("vessel", sheath_x + side * 3.0, sheath_y + 0.5, 4.5, 3.3, 0.3)  # jugular
        # Lateral masses / pedicles with the vertebral artery in its foramen.
        p.ring("bone", "marrow", side * (half_rl + 4.0), -0.25 * half_ap, 4.8, 6.5, 0.9)
        p.ring("bone", "vessel", side * (half_rl + 8.5), -half_ap - 1.5, 3.6, 3.2, 1.2)
    if disc:
        p.ellipse("muscle", 0, body_y, body_rl / 2, body_ap / 2)     # annulus (short T2, dark)
        p.ellipse("disc", 0, body_y, body_rl / 2 - 2.2, body_ap / 2 - 2.2)
    else:
        p.ring("bone", "marrow", 0, body_y, body_rl / 2, body_ap / 2, 1.0)
    p.ellipse("bone", 0, -half_ap - 0.3, 0.45 * half_rl, 0.8)        # posterior longitudinal ligament
    arch_y = half_ap - (2.0 if arch_contact else 0.0)
    if not arch_contact:
        p.ellipse("fat", 0, arch_y - 0.3, 0.34 * geo.canal_rl, 2.8)  # posterior epidural fat
    for side in (-1, 1):
        angle = -side * 0.5
        p.ellipse("bone", side * 0.27 * geo.canal_rl, arch_y + 1.9, 0.3 * geo.canal_rl, 0.55, angle)
        p.ring("bone", "marrow", side * 0.30 * geo.canal_rl, arch_y + 3.4, 0.32 * geo.canal_rl, 1.9,
               0.55, angle)
    p.ring("bone", "marrow", 0, arch_y + 11.5, 2.6, 7.5, 0.9)        # spinous process
    p.ellipse("bone", 0, arch_y + 33, 0.6, 12)                        # nuchal ligament


def _texture(shape, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative tissue heterogeneity of the neck (muscle fibres, fat septa): ~5 %."""
    fine = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 1.2)
    coarse = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 6.0)
    fine *= 0.04 / (fine.std() + 1e-6)
    coarse *= 0.07 / (coarse.std() + 1e-6)
    return 1.0 + fine + coarse


def _cord_frame(x, y, offset, rotation_rad):
    dx, dy = x - offset[0], y - offset[1]
    c, s = np.cos(rotation_rad), np.sin(rotation_rad)
    return c * dx + s * dy, -s * dx + c * dy


def _nerve_roots(xc, yc, a, b, half_rl, rng: np.random.Generator) -> np.ndarray:
    """Thin rootlets crossing the lateral CSF from the cord's antero-/postero-lateral sulci.

    They leave the cord obliquely, so a slice shows 0-4 short dark-in-CSF segments; they
    belong to the canal (CSF class) in the labels, as raters draw them.
    """
    roots = np.zeros(xc.shape, bool)
    for _ in range(int(rng.choice([0, 1, 2, 2, 3, 4]))):
        side = rng.choice([-1.0, 1.0])
        angle = rng.choice([-0.55, 0.6]) + rng.normal(0, 0.15)  # anterolateral or posterolateral
        start = (side * a * np.cos(angle) * 0.95, b * np.sin(angle) * 0.95)
        length = rng.uniform(1.5, max(2.0, half_rl - a - 0.3))
        end = (start[0] + side * length, start[1] + rng.normal(0, 0.6))
        radius = rng.uniform(0.2, 0.35)
        roots |= anatomy.capsule_distance(xc, yc, start, end, radius, radius * 0.8) <= 0
    return roots


def _fine_grid(p: _Painter, box, ss=SUPERSAMPLING):
    """Anatomy-frame coordinates of ss x ss samples per pixel over ``box`` (rows, cols)."""
    (r0, r1), (c0, c1) = box
    offsets = (np.arange(ss, dtype=np.float32) + 0.5) / ss - 0.5
    rows = ((np.arange(r0, r1, dtype=np.float32)[:, None] + offsets[None, :]).ravel() - p.center_px[0]) * p.pixel_size[0]
    cols = ((np.arange(c0, c1, dtype=np.float32)[:, None] + offsets[None, :]).ravel() - p.center_px[1]) * p.pixel_size[1]
    x = p.cos * cols[None, :] + p.sin * rows[:, None]
    y = -p.sin * cols[None, :] + p.cos * rows[:, None]
    return x, y


def _block_mean(fine: np.ndarray, ss=SUPERSAMPLING) -> np.ndarray:
    h, w = fine.shape[0] // ss, fine.shape[1] // ss
    return fine.reshape(h, ss, w, ss, *fine.shape[2:]).mean(axis=(1, 3))


def _cord_sample(x, y, subject: Subject, geo, offset, z_mm: float, fine_area: float):
    """Cord, GM, dorsal-column and lesion masks of one thin sub-slice on the fine grid."""
    a, b = geo.cord_rl / 2, geo.cord_ap / 2
    xc, yc = _cord_frame(x, y, offset, np.deg2rad(subject.cord_rotation_deg))
    cord_distance = anatomy.cord_distance(xc, yc, a, b, subject.cord_shape)
    fissure = (np.abs(xc) < 0.3 * (1 - (yc + b) / 1.8)) & (yc < -b + 1.8)
    cord = (cord_distance <= 0) & ~fissure
    gm_field = anatomy.gray_matter_field(xc, yc, a, b, geo)
    core = cord & (cord_distance <= -0.45)
    # 4 % more on the fine grid: thin horns lose that much to the 0.5-coverage rule of the labels.
    n_gm = int(round(1.04 * geo.gm_fraction * cord.sum()))
    candidates = gm_field[core]
    threshold = np.partition(candidates, n_gm)[n_gm] if 0 < n_gm < candidates.size else 0.0
    gm = core & (gm_field < threshold)
    lesion = np.zeros_like(cord)
    found = []
    for plaque, area in subject.plaques_at(z_mm):
        unit = cord & (anatomy.plaque_field(xc, yc, a, b, plaque, 1.0) <= 0)
        unit_area = unit.sum() * fine_area
        scale = float(np.clip(np.sqrt(area / unit_area), 0.3, 3.0)) if unit_area > 0 else 1.0
        mask = cord & (anatomy.plaque_field(xc, yc, a, b, plaque, scale) <= 0)
        lesion |= mask
        found.append((plaque, mask))
    dorsal = cord & (yc > 0.1 * b) & (np.abs(xc) < 0.32 * a * (1 + yc / b))
    return {"cord": cord, "gm": gm, "lesion": lesion, "dorsal": dorsal, "xc": xc, "yc": yc,
            "plaques": found}


def _render_canal(p: _Painter, subject: Subject, geo, z_mm: float, arch_contact: bool,
                  rng: np.random.Generator):
    """Supersample the canal over two thin sub-slices of the 8 mm slab.

    The cord runs slightly obliquely through the slab and plaques taper along it, so the
    two sub-slices differ a little; averaging them blurs the GM horns and lesion borders
    like the real slice thickness does. Returns the box, its signal and the label masks.
    """
    half_ap, half_rl = geo.canal_ap / 2, geo.canal_rl / 2
    a, b = geo.cord_rl / 2, geo.cord_ap / 2
    row, col = p.center_px
    reach = max(half_ap, half_rl) + 1.5
    h, w = p.x.shape
    box = ((int(max(0, row - reach / p.pixel_size[0])), int(min(h, row + reach / p.pixel_size[0] + 1))),
           (int(max(0, col - reach / p.pixel_size[1])), int(min(w, col + reach / p.pixel_size[1] + 1))))
    x, y = _fine_grid(p, box)
    canal_ry_post = half_ap - (2.0 if arch_contact else 0.0)
    canal_ry = np.where(y > 0, canal_ry_post, half_ap)
    canal_only = anatomy.ellipse_distance(x, y, 0, 0, half_rl, canal_ry) <= 0
    offset = np.array(subject.cord_offset_mm) + rng.normal(0, 0.15, 2)
    if arch_contact:  # the cord rests on the dorsal dura: no CSF behind it
        offset[1] = canal_ry_post - b + 0.35
    flow_factor, flow = 1.0, None
    if rng.random() < 0.3:  # pulsatile CSF flow: a patchy signal loss, mostly dorsal
        flow_factor = rng.uniform(0.45, 0.85)
        flow = anatomy.ellipse_distance(x, y, rng.uniform(-2, 2), canal_ry_post * rng.uniform(0.4, 0.8),
                                        rng.uniform(3, 6), rng.uniform(1.2, 2.5)) <= 0
    values = np.vstack([p.values, p.values[_T["csf"]] * np.float32(flow_factor),
                        np.zeros((1, p.values.shape[1]), np.float32)])
    flow_code = len(p.values)
    oblique = np.asarray(subject.obliquity_mm, float)
    sums = {key: 0.0 for key in ("signal", "outside", "canal", "cord", "gm", "lesion")}
    lesion_stats: dict[int, list] = {}
    fine_area = p.pixel_size[0] * p.pixel_size[1] / SUPERSAMPLING**2
    for index, step in enumerate((-0.5, 0.5)):
        sample = _cord_sample(x, y, subject, geo, offset + step * oblique, z_mm + step * 4.0, fine_area)
        cord = sample["cord"]
        canal = canal_only | cord
        codes = np.full(x.shape, -1, np.int8)
        codes[canal] = _T["csf"]
        if flow is not None:
            codes[canal & flow] = flow_code
        if index == 0:  # rootlets run obliquely: seen in part of the slab only
            roots = _nerve_roots(sample["xc"], sample["yc"], a, b, half_rl, rng)
            codes[canal & ~cord & roots] = _T["wm"]
        codes[cord] = _T["wm"]
        codes[sample["dorsal"]] = _T["wm_dorsal"]
        codes[sample["gm"]] = _T["gm"]
        codes[sample["lesion"]] = _T["lesion"]
        sums["signal"] = sums["signal"] + _block_mean(values[codes])  # (h, w, T); -1 -> zero row
        for key, mask in (("outside", ~canal), ("canal", canal), ("cord", cord),
                          ("gm", sample["gm"]), ("lesion", sample["lesion"])):
            sums[key] = sums[key] + _block_mean(mask.astype(np.float32))
        for plaque, mask in sample["plaques"]:
            stats = lesion_stats.setdefault(id(plaque), [plaque, 0.0, False])
            stats[1] += float(mask.sum() * fine_area) / 2
            stats[2] |= bool((mask & sample["gm"]).any())
    xc, yc = _cord_frame(_block_mean(x), _block_mean(y), offset, np.deg2rad(subject.cord_rotation_deg))
    labels = {
        "outside": sums["outside"] / 2,
        "canal": sums["canal"] / 2 >= 0.5,
        "cord": sums["cord"] / 2 >= 0.5,
        "gm": sums["gm"] / 2 >= 0.5,
        "lesion": sums["lesion"] / 2 >= 0.5,
        "u": xc / a,
        "yc": yc,
        "canal_line": anatomy.central_canal_line(b),
    }
    lesions = [{"column": pl.column, "shape": pl.shape, "side": pl.side, "reaches_gm": reaches,
                "area_mm2": round(area, 2)} for pl, area, reaches in lesion_stats.values()]
    return box, np.moveaxis(sums["signal"] / 2, -1, 0), labels, lesions


def _labels_from_masks(labels) -> tuple[np.ndarray, np.ndarray]:
    cord = labels["cord"]
    canal = labels["canal"] | cord
    gm = labels["gm"] & ndimage.binary_erosion(cord)  # GM never touches CSF (4-neighbours)
    dseg = np.full(cord.shape, OUTSIDE, np.uint8)
    dseg[canal] = CSF
    dseg[cord] = WM
    commissure = gm & (np.abs(labels["u"]) <= 0.12)
    anterior = gm & ~commissure & (labels["yc"] < labels["canal_line"])
    dseg[gm] = POSTERIOR_HORNS
    dseg[anterior] = ANTERIOR_HORNS
    dseg[commissure] = GRAY_COMMISSURE
    assert GM < ANTERIOR_HORNS  # GM (3) stays unused: the phantom always subdivides
    lesion = (labels["lesion"] & cord).astype(np.uint8)
    return dseg, lesion


def _noise_reference(values: np.ndarray, randomised: bool) -> float:
    """The signal that the SNR refers to: GM at TI1, or for a random table the mean
    magnitude of the canal's tissues (its GM may be black)."""
    if not randomised:
        return abs(float(values[_T["gm"], 0]))
    canal = np.abs(values[[_T["csf"], _T["wm"], _T["gm"]]])
    return max(float(canal.mean()), 1e-3 * float(np.abs(values).max()) + 1e-6)


def slice_position(level: str, rng: np.random.Generator, n_slices: int = 12) -> float:
    """A z position (mm) inside ``level`` when C2-C5 are spread over ``n_slices`` slices."""
    per_level = n_slices / len(LEVELS)
    start = LEVELS.index(level) * per_level
    return float((start + rng.uniform(0, per_level) - 0.5) * SLICE_SPACING_MM)


def make_slice(rng: np.random.Generator, *, level: str = "C3", kind: str = "hc", shape=(192, 192),
               pixel_size=(0.67, 0.67), contrast: str = "amira", degrade=None,
               subject: Subject | None = None, z_mm: float | None = None,
               reposition=(0.0, 0.0, 0.0), tissue_values: np.ndarray | None = None) -> SyntheticSlice:
    """One synthetic slice with its true labels.

    Parameters
    ----------
    rng : numpy.random.Generator
        All randomness (noise, position jitter, degradation) comes from it.
    level : {"C2", "C3", "C4", "C5"}
        Vertebral level (cord, canal and GM sizes).
    kind : {"hc", "ms"}
        Used when ``subject`` is None to draw a new subject.
    shape : (int, int)
        Image rows and columns.
    pixel_size : float or (float, float)
        Pixel size in mm (rows, columns), 0.4-0.8 mm.
    contrast : {"amira", "t2star"}
        8 inversion images, or one T2*-weighted image (GM brighter than WM, CSF bright).
    degrade : None, "none" or one of :data:`DEGRADATIONS`
        None draws a degradation with probability 5 %; "none" never degrades.
    subject : Subject, optional
        From :func:`random_subject`; keeps anatomy consistent across slices.
    z_mm : float, optional
        Slice position along the cord (selects the plaques cut); drawn inside ``level``
        when None.
    reposition : (dx_mm, dy_mm, rotation_deg)
        Extra rigid shift of the whole anatomy (a rescan).
    tissue_values : ndarray (n_tissues, T), optional
        A signed signal table replacing the physical one (training randomisation, see
        :func:`score_gui.phantom.randomise.random_tissue_values`); its ``T`` sets the
        number of images. The noise level then follows the table's canal tissues.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    if contrast not in CONTRASTS:
        raise ValueError(f"contrast must be one of {CONTRASTS}, not {contrast!r}")
    shape = (int(shape[0]), int(shape[1]))
    pixel_size = _pair(pixel_size)
    subject = subject if subject is not None else random_subject(rng, kind)
    reason = _choose_degradation(rng, degrade)
    if z_mm is None:
        z_mm = slice_position(level, rng, subject.n_slices)
    geo = subject.levels[level]
    values = _tissue_values(subject, contrast, rng) if tissue_values is None else np.asarray(tissue_values, np.float32)
    drift = subject.drift_mm[int(np.clip(round(z_mm / SLICE_SPACING_MM), 0, len(subject.drift_mm) - 1))]
    center_mm = (np.array(subject.canal_center_mm) + drift + rng.normal(0, 0.25, 2)
                 + np.array(reposition[:2]))
    center_px = (shape[0] / 2 + center_mm[1] / pixel_size[0], shape[1] / 2 + center_mm[0] / pixel_size[1])
    rotation = np.deg2rad(subject.rotation_deg + reposition[2] + rng.normal(0, 1.0))
    arch_contact = reason == "arch_contact"
    painter = _Painter(shape, pixel_size, center_px, rotation, values)
    _paint_neck(painter, subject, geo, disc=bool(rng.random() < 0.3), arch_contact=arch_contact)
    painter.signal *= _texture(shape, rng)[None]
    box, canal_signal, labels, lesions = _render_canal(painter, subject, geo, z_mm, arch_contact, rng)
    window = (slice(*box[0]), slice(*box[1]))
    patch = painter.signal[(slice(None), *window)]
    patch *= labels["outside"][None]
    patch += canal_signal
    dseg = np.zeros(shape, np.uint8)
    lesion = np.zeros(shape, np.uint8)
    dseg[window], lesion[window] = _labels_from_masks(labels)

    signal = painter.signal * bias_field(shape, pixel_size, center_px, subject.bias)[None]
    snr = subject.snr_gm * (rng.uniform(0.3, 0.45) if reason == "low_snr" else rng.uniform(0.92, 1.08))
    sigma = _noise_reference(values, tissue_values is not None) / snr
    if reason == "motion":
        ghosted = motion_ghosting(signal, rng, pixel_size[0], axis=-2, amplitude_mm=rng.uniform(0.4, 0.9))
        images = rician_magnitude_complex(ghosted, sigma, rng)
    else:
        images = rician_magnitude(signal, sigma, rng)
    info = {
        "level": level, "z_mm": round(float(z_mm), 2), "kind": subject.kind, "contrast": contrast,
        "degraded": reason, "snr_gm": round(float(snr), 2), "pixel_size": pixel_size,
        "flip_angle_deg": round(subject.signal.flip_angle_deg, 2),
        "cycle_ms": round(subject.signal.cycle_ms, 1), "phase_encode_axis": "rows",
        "canal_center_px": (round(float(center_px[0]), 2), round(float(center_px[1]), 2)),
        "rotation_deg": round(float(np.rad2deg(rotation)), 2), "lesions": lesions,
    }
    # Integer scanner units: like real reconstructions, and the NIfTI files compress 2x better.
    return SyntheticSlice(images=np.round(images).astype(np.float32), dseg=dseg, lesion=lesion, info=info)
