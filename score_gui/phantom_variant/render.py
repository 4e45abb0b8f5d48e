"""Render one slice of the evaluation-only generator: tissue map, texture, coils and noise.

Pipeline (each step differs from the project phantom on purpose):

1. every pixel is sampled 3 x 3 (the phantom: 4 x 4 inside the canal only, analytic
   coverage outside); tissue codes are painted back to front in the anatomy frame;
2. signed tissue signals (:mod:`.signal`) times a correlated Gaussian texture that is
   fixed to the anatomy (so a repositioned rescan sees the same tissue), averaged per
   pixel (mixed voxels of opposite sign lose signal);
3. a few Gaussian coil sensitivities with their own phase; one coil gives Rician
   magnitude, several are combined by root-sum-of-squares (non-central chi noise).

Examples
--------
>>> import numpy as np
>>> from score_gui.phantom_variant.anatomy import variant_subject
>>> subject = variant_subject(np.random.default_rng(0), "hc", n_slices=4)
>>> s = render_slice(subject, np.random.default_rng(1), 1, shape=(96, 96), pixel_size=(0.67, 0.67))
>>> s.images.shape, s.images.dtype, s.dseg.dtype, np.unique(s.dseg).tolist()
((8, 96, 96), dtype('float32'), dtype('uint8'), [0, 1, 2, 4, 5, 6])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.measure import points_in_poly

from score_gui.labels import ANTERIOR_HORNS, CSF, GRAY_COMMISSURE, OUTSIDE, POSTERIOR_HORNS, WM
from score_gui.phantom_variant.anatomy import (SLAB_MM, SliceGeometry, Superellipse, VariantSubject,
                                               butterfly_outline, geometry_at)
from score_gui.phantom_variant.signal import TISSUE_CODE, signal_curves, t2star_values

SUPERSAMPLING = 3
CONTRASTS = ("amira", "t2star")
_C = TISSUE_CODE


@dataclass
class VariantSlice:
    """One rendered slice: images ``(T, H, W)`` float32, ``dseg``/``lesion`` uint8 ``(H, W)``."""

    images: np.ndarray
    dseg: np.ndarray
    lesion: np.ndarray
    info: dict = field(default_factory=dict)


class _Grid:
    """Anatomy-frame coordinates (mm) of pixel centres, or of 3 x 3 samples per pixel."""

    def __init__(self, shape, pixel_size, centre_mm, rotation_rad, ss: int):
        h, w = shape
        self.ss, self.shape, self.pixel_size, self.centre = ss, (h * ss, w * ss), pixel_size, centre_mm
        rows = ((np.arange(h * ss) + 0.5) / ss - h / 2) * pixel_size[0]
        cols = ((np.arange(w * ss) + 0.5) / ss - w / 2) * pixel_size[1]
        yi, xi = np.meshgrid(rows - centre_mm[1], cols - centre_mm[0], indexing="ij")
        self.cos, self.sin = np.cos(rotation_rad), np.sin(rotation_rad)
        self.x = (self.cos * xi + self.sin * yi).astype(np.float32)
        self.y = (-self.sin * xi + self.cos * yi).astype(np.float32)

    def window(self, cx: float, cy: float, radius: float):
        """Sample rows/columns that can lie within ``radius`` mm of anatomy point (cx, cy)."""
        xi = self.cos * cx - self.sin * cy + self.centre[0]
        yi = self.sin * cx + self.cos * cy + self.centre[1]
        row = (yi / self.pixel_size[0] + self.shape[0] / self.ss / 2) * self.ss
        col = (xi / self.pixel_size[1] + self.shape[1] / self.ss / 2) * self.ss
        dr, dc = radius / self.pixel_size[0] * self.ss + 2, radius / self.pixel_size[1] * self.ss + 2
        r0, r1 = int(max(0, row - dr)), int(min(self.shape[0], row + dr + 1))
        c0, c1 = int(max(0, col - dc)), int(min(self.shape[1], col + dc + 1))
        return (slice(r0, r1), slice(c0, c1)) if r0 < r1 and c0 < c1 else None


def _paint(codes: np.ndarray, grid: _Grid, shape: Superellipse, tissue: str) -> None:
    """Set ``tissue`` where ``shape`` covers a sample, testing only its bounding window."""
    win = grid.window(shape.cx, shape.cy, max(shape.a, shape.b_ant, shape.b_post) * 1.42)
    if win is not None:
        codes[win][shape.contains(grid.x[win], grid.y[win])] = _C[tissue]


def _ellipse(cx, cy, rx, ry, angle=0.0) -> Superellipse:
    return Superellipse(rx, ry, ry, 2.0, cx, cy, angle)


def _rimmed(codes, grid, outer, inner, cx, cy, rx, ry, rim, angle=0.0):
    """A bone shell (``outer``) around a core (``inner``), e.g. cortex around marrow."""
    _paint(codes, grid, _ellipse(cx, cy, rx, ry, angle), outer)
    _paint(codes, grid, _ellipse(cx, cy, max(rx - rim, 0.3), max(ry - rim, 0.3), angle), inner)


def _paint_neck(codes: np.ndarray, grid: _Grid, subject: VariantSubject, geo: SliceGeometry, index: int):
    """Neck tissues around the canal, back to front: fat, muscle, airway, vessels, bone."""
    n = subject.neck
    cy, fat = n["centre_y"], n["fat"]
    _paint(codes, grid, Superellipse(n["half_rl"], n["half_ap"], n["half_ap"], n["exponent"], 0, cy), "fat")
    _paint(codes, grid, Superellipse(n["half_rl"] - fat, n["half_ap"] - 1.2 * fat, n["half_ap"] - 0.8 * fat,
                                     n["exponent"], 0, cy), "muscle")
    for sx, sy, rx, ry, angle in n["septa"]:
        _paint(codes, grid, _ellipse(sx, sy, rx, ry, angle), "fat")
    canal = geo.canal
    body_rl, body_ap = n["body_rl"], n["body_ap"]
    body_y = -(canal.b_ant + 1.0 + body_ap)
    air_y = body_y - body_ap - 10.0
    _paint(codes, grid, _ellipse(0, air_y + 1.5, 15, 8), "muscle")
    _paint(codes, grid, _ellipse(0, air_y, 9, 4.8), "air")
    for side in (-1, 1):
        _paint(codes, grid, _ellipse(side * (body_rl + 13), body_y - 4, 8, 6), "fat")
        _paint(codes, grid, _ellipse(side * (body_rl + 10.5), body_y - 5, 3.0, 3.0), "blood")
        _paint(codes, grid, _ellipse(side * (body_rl + 16), body_y - 3, 4.2, 3.0), "blood")
        _rimmed(codes, grid, "bone", "marrow", side * (canal.a + 3.8), -0.2 * canal.b_ant, 4.0, 5.5, 1.0)
    if index % n["disc_every"] == 0:
        _rimmed(codes, grid, "bone", "disc", 0, body_y, body_rl, body_ap, 1.6)
    else:
        _rimmed(codes, grid, "bone", "marrow", 0, body_y, body_rl, body_ap, 0.9)
    back = canal.b_post
    _paint(codes, grid, _ellipse(0, back + 0.4 * n["epidural_fat"], 0.4 * canal.a, n["epidural_fat"]), "fat")
    for side in (-1, 1):
        _paint(codes, grid, _ellipse(side * 0.5 * canal.a, back + 2.4, 0.55 * canal.a, 1.1,
                       -side * n["lamina_angle"]), "bone")
    _rimmed(codes, grid, "bone", "marrow", 0, back + 10.0, 2.4, 6.0, 0.8)


def _butterfly_mask(u: np.ndarray, v: np.ndarray, cord: np.ndarray, outline: np.ndarray) -> np.ndarray:
    """Samples inside the butterfly outline (only the cord's samples are tested)."""
    gm = np.zeros(u.shape, bool)
    inside = np.flatnonzero(cord)
    if inside.size:
        points = np.column_stack([u.ravel()[inside], v.ravel()[inside]])
        gm.ravel()[inside] = points_in_poly(points, outline)
    return gm


def _lesion_mask(u, v, cord, subject: VariantSubject, geo: SliceGeometry, z_mm: float):
    """Union of the plaques cut at ``z_mm``: Gaussian-blob clusters thresholded at 0.5."""
    mask = np.zeros(u.shape, bool)
    cut = 0
    for plaque in subject.plaques:
        taper = plaque.taper(z_mm)
        if taper < 0.3:
            continue
        field_ = np.zeros(u.shape, np.float32)
        for bx, by, radius in plaque.blobs:
            r = radius * taper
            field_ += np.exp(-((u - bx * geo.cord.a) ** 2 + (v - by * geo.cord.b_post) ** 2) / (2 * r * r))
        blob = cord & (field_ >= 0.5)
        if blob.any():
            mask |= blob
            cut += 1
    return mask, cut


def _canal_contents(grid: _Grid, subject: VariantSubject, geo: SliceGeometry, z_mm: float):
    """Full-size sample masks of canal, cord, GM and lesion (computed in the canal's window)."""
    masks = [np.zeros(grid.x.shape, bool) for _ in range(4)]
    win = grid.window(0.0, 0.0, 1.42 * max(geo.canal.a, geo.canal.b_ant, geo.canal.b_post))
    n_cut = 0
    if win is not None:
        x, y = grid.x[win], grid.y[win]
        cord = geo.cord.contains(x, y)
        u, v = geo.cord.local(x, y)
        lesion, n_cut = _lesion_mask(u, v, cord, subject, geo, z_mm)
        parts = (geo.canal.contains(x, y), cord, _butterfly_mask(u, v, cord, butterfly_outline(geo)), lesion)
        for mask, part in zip(masks, parts):
            mask[win] = part
    return (*masks, n_cut)


def _texture(seed: int, index: int, grid: _Grid) -> dict[str, np.ndarray]:
    """Correlated Gaussian textures fixed to the anatomy: fine in the cord, coarse elsewhere.

    Drawn on a 0.4 mm anatomy grid and sampled at the samples' anatomy positions, so a
    repositioned rescan of the same subject meets the same tissue pattern.
    """
    rng = np.random.default_rng([seed, index, 77])
    spacing, half = 0.4, 70.0
    size = int(2 * half / spacing) + 1
    rows = (grid.y + half) / spacing
    cols = (grid.x + half) / spacing
    out = {}
    for name, sigma_mm, amplitude in (("cord", 0.55, rng.uniform(0.025, 0.05)),
                                      ("csf", 2.5, rng.uniform(0.02, 0.04)),
                                      ("neck", 1.6, rng.uniform(0.05, 0.09))):
        base = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), sigma_mm / spacing)
        base *= amplitude / (base.std() + 1e-9)
        out[name] = ndimage.map_coordinates(base, [rows, cols], order=1, mode="nearest")
    return out


def _block_mean(fine: np.ndarray, ss: int = SUPERSAMPLING) -> np.ndarray:
    h, w = fine.shape[0] // ss, fine.shape[1] // ss
    return fine.reshape(h, ss, w, ss, *fine.shape[2:]).mean(axis=(1, 3))


def _coil_maps(subject: VariantSubject, shape, pixel_size, canal_px) -> np.ndarray:
    """Complex coil sensitivities ``(K, H, W)``, scaled to a root-sum-of-squares of 1 at the canal."""
    rows = (np.arange(shape[0]) + 0.5 - shape[0] / 2) * pixel_size[0]
    cols = (np.arange(shape[1]) + 0.5 - shape[1] / 2) * pixel_size[1]
    yy, xx = np.meshgrid(rows, cols, indexing="ij")
    maps = []
    for x0, y0, width, phase in subject.noise["coils"]:
        magnitude = np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * width**2))
        maps.append(magnitude * np.exp(1j * (phase + 0.01 * (xx * np.cos(phase) + yy * np.sin(phase)))))
    maps = np.array(maps)
    if subject.noise["n_coils"] == 1:  # one receive channel: only the combined magnitude matters
        maps = np.sqrt((np.abs(maps) ** 2).sum(axis=0))[None].astype(complex)
    r, c = (int(np.clip(round(v), 0, s - 1)) for v, s in zip(canal_px, shape))
    norm = np.sqrt((np.abs(maps[:, r, c]) ** 2).sum())
    return maps / max(norm, 1e-6)


def _receive(signal: np.ndarray, maps: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude images ``(T, H, W)``: coil images plus complex Gaussian noise, root-sum-of-squares."""
    total = np.zeros(signal.shape, np.float64)
    for coil in maps:
        noise = rng.normal(0, sigma, (2, *signal.shape))
        total += np.abs(signal * coil[None] + noise[0] + 1j * noise[1]) ** 2
    return np.sqrt(total).astype(np.float32)


def _labels(cov: dict, u_px: np.ndarray, v_px: np.ndarray, geo: SliceGeometry):
    canal = cov["canal"] >= 0.5
    cord = cov["cord"] >= 0.5
    canal |= cord
    gm = (cov["gm"] >= 0.5) & ndimage.binary_erosion(cord)  # GM always enclosed by WM
    dseg = np.full(cord.shape, OUTSIDE, np.uint8)
    dseg[canal] = CSF
    dseg[cord] = WM
    # Horn split of this generator: commissure = the bar between the horn roots; anterior =
    # GM in front of the line through the central canal; posterior = the rest.
    commissure = gm & (np.abs(u_px) <= geo.commissure_half_width)
    anterior = gm & ~commissure & (v_px < geo.gm_center_y)
    dseg[gm] = POSTERIOR_HORNS
    dseg[anterior] = ANTERIOR_HORNS
    dseg[commissure] = GRAY_COMMISSURE
    lesion = ((cov["lesion"] >= 0.5) & cord).astype(np.uint8)
    return dseg, lesion


def render_slice(subject: VariantSubject, rng: np.random.Generator, index: int, *, shape=(192, 192),
                 pixel_size=(0.67, 0.67), contrast: str = "amira", reposition=(0.0, 0.0, 0.0)) -> VariantSlice:
    """Render slice ``index`` (z = 8 mm x index) of ``subject``.

    Parameters
    ----------
    subject : VariantSubject
        Anatomy, tissues and coils (unchanged between rescans).
    rng : numpy.random.Generator
        Noise only: the same subject, index and reposition with another ``rng`` is a
        rescan with new noise.
    index : int
        Slice number.
    shape : (int, int)
    pixel_size : (float, float)
        mm per row and column.
    contrast : {"amira", "t2star"}
    reposition : (dx_mm, dy_mm, rot_deg)
        Rigid move of the whole anatomy (a repositioned rescan).
    """
    if contrast not in CONTRASTS:
        raise ValueError(f"contrast must be one of {CONTRASTS}, not {contrast!r}")
    anatomy_rng = np.random.default_rng([subject.texture_seed, int(index)])
    z_mm = index * SLAB_MM
    geo = geometry_at(subject, z_mm, anatomy_rng)
    drift = anatomy_rng.normal(0, 0.3, 2)  # the canal wanders a little from slice to slice
    centre = (subject.pose_mm[0] + drift[0] + reposition[0], subject.pose_mm[1] + drift[1] + reposition[1])
    rotation = np.deg2rad(subject.pose_deg + anatomy_rng.normal(0, 0.8) + reposition[2])
    fine = _Grid(shape, pixel_size, centre, rotation, SUPERSAMPLING)
    codes = np.full(fine.x.shape, _C["air"], np.int8)
    _paint_neck(codes, fine, subject, geo, index)
    canal, cord, gm, lesion, n_cut = _canal_contents(fine, subject, geo, z_mm)
    codes[canal] = _C["csf"]
    codes[cord] = _C["wm"]
    codes[gm] = _C["gm"]
    codes[lesion] = _C["lesion"]

    gain = subject.noise["gain"]
    values = (signal_curves(subject.tissues) if contrast == "amira" else t2star_values(subject.tissues)) * gain
    tex = _texture(subject.texture_seed, index, fine)
    factor = 1.0 + np.where(cord, tex["cord"], np.where(canal, tex["csf"], tex["neck"]))
    signal = _block_mean(values[codes.astype(np.intp)] * factor[..., None])  # (H, W, T), signed
    signal = np.moveaxis(signal, -1, 0)

    canal_px = (shape[0] / 2 + centre[1] / pixel_size[0], shape[1] / 2 + centre[0] / pixel_size[1])
    maps = _coil_maps(subject, shape, pixel_size, canal_px)
    snr = subject.noise["snr_gm"] * rng.uniform(0.95, 1.05)
    sigma = abs(float(values[_C["gm"], 0])) / snr
    images = _receive(signal, maps, sigma, rng)

    centres = _Grid(shape, pixel_size, centre, rotation, 1)
    u_px, v_px = geo.cord.local(centres.x, centres.y)
    cov = {name: _block_mean(mask.astype(np.float32)) for name, mask in
           (("canal", canal | cord), ("cord", cord), ("gm", gm), ("lesion", lesion))}
    dseg, lesion_map = _labels(cov, u_px, v_px, geo)
    info = {"level": geo.level, "z_mm": z_mm, "contrast": contrast, "degraded": None,
            "snr_gm": round(float(snr), 2), "n_coils": subject.noise["n_coils"],
            "noise": "rician" if subject.noise["n_coils"] == 1 else "noncentral_chi",
            "canal_center_px": (round(float(canal_px[0]), 2), round(float(canal_px[1]), 2)),
            "rotation_deg": round(float(np.rad2deg(rotation)), 2), "plaques_cut": n_cut,
            "gm_fraction_target": round(geo.gm_fraction, 3)}
    return VariantSlice(images=np.round(images).astype(np.float32), dseg=dseg, lesion=lesion_map, info=info)
