"""Anatomy of the synthetic cervical spine: per-subject parameters and shape functions.

Numbers come from ``docs/amira_physics.md`` section 4 (cord and canal sizes per level,
GM fraction per level) and section 6 (MS plaques). All lengths are in mm, in a frame
centred on the spinal canal: ``x`` runs right-left, ``y`` runs anterior (negative) to
posterior (positive), like display rows.

Examples
--------
>>> import numpy as np
>>> subject = random_subject(np.random.default_rng(0), "ms")
>>> subject.kind, len(subject.levels) == 4, len(subject.plaques) >= 1
('ms', True, True)
>>> geometry = subject.levels["C3"]
>>> bool(60 < np.pi * geometry.cord_ap / 2 * geometry.cord_rl / 2 < 95)
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from score_gui.phantom.signal import SignalSettings

LEVELS = ("C2", "C3", "C4", "C5")

# Valosek et al. 2024 means (amira_physics.md 4.1): cord AP, RL; canal AP, RL in mm.
LEVEL_SIZES = {
    "C2": (7.76, 11.73, 14.50, 22.24),
    "C3": (7.59, 12.14, 13.06, 20.84),
    "C4": (7.62, 12.93, 12.80, 20.97),
    "C5": (7.47, 13.03, 12.78, 21.17),
}
GM_FRACTION = {"C2": 0.185, "C3": 0.195, "C4": 0.21, "C5": 0.215}
ANTERIOR_HORN_SIZE = {"C2": 0.8, "C3": 0.88, "C4": 1.02, "C5": 1.1}
SLICE_SPACING_MM = 8.0

COLUMN_PROBABILITIES = {"lateral": 0.55, "dorsal": 0.37, "anterior": 0.08}


@dataclass(frozen=True)
class LevelGeometry:
    """Cord, canal and gray-matter sizes of one subject at one vertebral level (mm)."""

    cord_ap: float
    cord_rl: float
    canal_ap: float
    canal_rl: float
    gm_fraction: float
    anterior_horn: float
    posterior_horn_angle: float
    posterior_horn_width: float
    posterior_horn_length: float = 1.0
    """Relative length of the posterior horns (1: to just short of the dorsolateral sulcus)."""
    horn_asymmetry: float = 0.0
    """Left-right asymmetry of the butterfly: the half at positive ``x`` reaches
    ``1 / (1 - a)`` times as far out, the other half ``1 / (1 + a)`` (0: symmetric)."""
    commissure_scale: float = 1.0
    """Relative thickness of the gray commissure."""


@dataclass(frozen=True)
class Plaque:
    """One MS plaque: a wedge (base on the pial surface) or an ovoid, along z.

    Attributes
    ----------
    z_center, length : float
        Centre and craniocaudal length in mm.
    column : str
        ``lateral``, ``dorsal`` or ``anterior``.
    side : int
        +1 or -1 (which half of the cord).
    shape : str
        ``wedge`` or ``ovoid``.
    reaches_gm : bool
        Whether the plaque extends into gray matter.
    max_area : float
        In-slice area in mm² at the plaque's centre.
    angle : float
        Direction (rad) in normalised cord polar coordinates (0 = lateral, +pi/2 = dorsal).
    aspect : float
        Shape variation (wedge opening or ovoid elongation).
    """

    z_center: float
    length: float
    column: str
    side: int
    shape: str
    reaches_gm: bool
    max_area: float
    angle: float
    aspect: float

    def area_at(self, z: float) -> float:
        """In-slice area (mm²) at position ``z``; 0 where the plaque does not reach."""
        half = max(self.length / 2, SLICE_SPACING_MM / 2)
        offset = abs(z - self.z_center) / half
        if offset >= 1:
            return 0.0
        return max(2.0, self.max_area * np.sqrt(1 - offset**2))


@dataclass
class Subject:
    """Everything that stays the same across the slices (and sessions) of one subject.

    Create with :func:`random_subject`.
    """

    kind: str
    levels: dict[str, LevelGeometry]
    signal: SignalSettings
    canal_center_mm: tuple[float, float]
    rotation_deg: float
    cord_offset_mm: tuple[float, float]
    cord_rotation_deg: float
    neck_size_mm: tuple[float, float]
    fat_thickness_mm: float
    fat_blobs: list[tuple[float, float, float, float, float]]
    vertebral_body_mm: tuple[float, float]
    snr_gm: float
    bias: tuple[float, float, float]
    plaques: list[Plaque] = field(default_factory=list)
    drift_mm: np.ndarray = field(default_factory=lambda: np.zeros((64, 2)))
    cord_shape: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    obliquity_mm: tuple[float, float] = (0.0, 0.0)
    """Cord displacement across the 8 mm slab (the cord is not quite perpendicular)."""
    n_slices: int = 12

    def level_of(self, slice_index: int, n_slices: int | None = None) -> str:
        """The vertebral level of slice ``slice_index`` when C2-C5 spread over the scan."""
        n_slices = n_slices or self.n_slices
        return LEVELS[min(len(LEVELS) - 1, slice_index * len(LEVELS) // max(1, n_slices))]

    def plaques_at(self, z: float) -> list[tuple[Plaque, float]]:
        """Plaques cut by the slice at ``z`` with their in-slice area, at most 3, largest first."""
        cut = [(p, p.area_at(z)) for p in self.plaques]
        cut = [(p, a) for p, a in cut if a > 0]
        cut.sort(key=lambda item: -item[1])
        return cut[:3]


def _level_geometry(rng: np.random.Generator, level: str, size: float, ap_factor: float,
                    canal: float, gm_jitter: float) -> LevelGeometry:
    cord_ap, cord_rl, canal_ap, canal_rl = LEVEL_SIZES[level]
    local = rng.normal(1.0, 0.012)
    return LevelGeometry(
        cord_ap=cord_ap * size * ap_factor * local,
        cord_rl=cord_rl * size * local,
        canal_ap=canal_ap * canal * rng.normal(1.0, 0.02),
        canal_rl=canal_rl * canal * rng.normal(1.0, 0.02),
        gm_fraction=GM_FRACTION[level] * gm_jitter * rng.normal(1.0, 0.015),
        anterior_horn=ANTERIOR_HORN_SIZE[level] * rng.uniform(0.9, 1.1),
        posterior_horn_angle=np.deg2rad(rng.uniform(28, 42)),
        posterior_horn_width=rng.uniform(0.5, 0.65),
    )


def random_plaques(rng: np.random.Generator, n_slices: int) -> list[Plaque]:
    """MS plaques per ``amira_physics.md`` section 6: 1 + Poisson(3), 8-30 mm long."""
    extent = (n_slices - 1) * SLICE_SPACING_MM
    plaques = []
    columns = list(COLUMN_PROBABILITIES)
    weights = np.array(list(COLUMN_PROBABILITIES.values()))
    for _ in range(1 + rng.poisson(3)):
        column = str(rng.choice(columns, p=weights / weights.sum()))
        side = int(rng.choice([-1, 1]))
        if column == "lateral":
            angle = rng.uniform(-0.25, 0.55)
        elif column == "dorsal":
            angle = np.pi / 2 - rng.uniform(0.12, 0.5)
        else:
            angle = -np.pi / 2 + rng.uniform(0.25, 0.7)
        plaques.append(Plaque(
            z_center=float(SLICE_SPACING_MM * rng.integers(0, n_slices) + rng.uniform(-2, 2)
                           if extent > 0 else 0.0),
            length=float(rng.uniform(8, 30)),
            column=column,
            side=side,
            shape="wedge" if rng.random() < 0.65 else "ovoid",
            reaches_gm=bool(rng.random() < 0.6),
            max_area=float(rng.uniform(4.0, 10.0)),
            angle=float(angle),
            aspect=float(rng.uniform(0.7, 1.4)),
        ))
    return plaques


def random_subject(rng: np.random.Generator, kind: str = "hc", n_slices: int = 12) -> Subject:
    """Draw one subject's anatomy, tissue and acquisition parameters.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (the subject is a pure function of its state).
    kind : {"hc", "ms"}
        Healthy control or MS patient (plaques, slight T1 prolongation, AP atrophy).
    n_slices : int
        Slices the subject's scans will have (plaques are placed along them).
    """
    if kind not in ("hc", "ms"):
        raise ValueError(f"kind must be 'hc' or 'ms', not {kind!r}")
    size = float(np.clip(rng.normal(1.0, 0.04), 0.94, 1.06))  # about +-10 % in area
    ap_factor = float(rng.uniform(0.9, 1.0)) if kind == "ms" else float(rng.uniform(0.97, 1.03))
    canal = float(np.clip(rng.normal(1.0, 0.06), 0.88, 1.12))
    gm_jitter = float(np.clip(rng.normal(1.0, 0.04), 0.92, 1.08))
    levels = {lv: _level_geometry(rng, lv, size, ap_factor, canal, gm_jitter) for lv in LEVELS}
    t1_scale = {"wm": 1.04, "wm_dorsal": 1.04, "gm": 1.03} if kind == "ms" else {}
    signal = SignalSettings(
        flip_angle_deg=float(rng.uniform(45, 55)),
        cycle_ms=float(rng.uniform(2400, 3400)),
        mt_scale=float(rng.uniform(0.9, 1.1)),
        t1_scale=t1_scale,
        vessel_flow=float(rng.uniform(0.2, 0.9)),
    )
    neck_w = float(rng.uniform(100, 125))
    fat_blobs = []
    for _ in range(int(rng.integers(4, 8))):
        fat_blobs.append((float(rng.uniform(-0.4, 0.4) * neck_w), float(rng.uniform(-5, 35)),
                          float(rng.uniform(1.5, 5)), float(rng.uniform(1, 3)),
                          float(rng.uniform(0, np.pi))))
    drift = np.cumsum(rng.normal(0, 0.35, size=(64, 2)), axis=0)
    return Subject(
        kind=kind,
        levels=levels,
        signal=signal,
        canal_center_mm=(float(rng.uniform(-6, 6)), float(rng.uniform(-4, 10))),
        rotation_deg=float(rng.normal(0, 5)),
        cord_offset_mm=(float(rng.normal(0, 0.4)), float(rng.normal(0.2, 0.35))),
        cord_rotation_deg=float(rng.normal(0, 3)),
        neck_size_mm=(neck_w, float(rng.uniform(0.8, 0.95) * neck_w)),
        fat_thickness_mm=float(rng.uniform(2.5, 8)),
        fat_blobs=fat_blobs,
        vertebral_body_mm=(float(rng.uniform(15, 19)), float(rng.uniform(13, 16))),
        snr_gm=float(rng.uniform(20, 40)),
        bias=(float(rng.normal(0, 0.15)), float(rng.normal(0.25, 0.12)), float(rng.uniform(0.0, 0.3))),
        plaques=random_plaques(rng, n_slices) if kind == "ms" else [],
        drift_mm=drift - drift.mean(axis=0),
        n_slices=n_slices,
        cord_shape=(float(rng.uniform(0.0, 0.035)), float(rng.uniform(0, 2 * np.pi)),
                    float(rng.uniform(0.0, 0.025)), float(rng.uniform(0, 2 * np.pi))),
        obliquity_mm=(float(rng.normal(0, 0.2)), float(rng.normal(0, 0.3))),
    )


# ---------------------------------------------------------------------------------------
# Implicit shapes: approximate signed distances in mm (negative inside)
# ---------------------------------------------------------------------------------------

def ellipse_distance(x, y, cx, cy, rx, ry, angle=0.0):
    """Approximate signed distance (mm) to a rotated ellipse: (q - 1) / |grad q|."""
    dx, dy = x - cx, y - cy
    if angle:
        c, s = np.cos(angle), np.sin(angle)
        dx, dy = c * dx + s * dy, -s * dx + c * dy
    ex, ey = dx / rx, dy / ry
    q = np.sqrt(ex * ex + ey * ey) + 1e-9
    grad = np.sqrt((ex / rx) ** 2 + (ey / ry) ** 2) / q + 1e-9
    return (q - 1) / grad


def capsule_distance(x, y, p0, p1, r0, r1):
    """Signed distance (mm) to a tapered capsule from ``p0`` (radius r0) to ``p1`` (radius r1)."""
    vx, vy = p1[0] - p0[0], p1[1] - p0[1]
    t = np.clip(((x - p0[0]) * vx + (y - p0[1]) * vy) / (vx * vx + vy * vy), 0, 1)
    dx, dy = x - (p0[0] + t * vx), y - (p0[1] + t * vy)
    return np.sqrt(dx * dx + dy * dy) - (r0 + (r1 - r0) * t)


def gray_matter_field(xc, yc, a, b, geometry: LevelGeometry):
    """Signed-distance-like field of the butterfly (negative inside), cord coordinates in mm.

    Left-right symmetric: anterior horns, an intermediate zone, slender posterior horns
    running postero-laterally to just short of the dorsolateral sulcus with a small cap
    (substantia gelatinosa), joined by the gray commissure slightly anterior of centre.
    """
    ax = np.abs(xc)
    if geometry.horn_asymmetry:
        ax = ax * np.where(xc > 0, 1.0 - geometry.horn_asymmetry, 1.0 + geometry.horn_asymmetry)
    canal_line = -0.08 * b
    commissure = ellipse_distance(ax, yc, 0.0, canal_line, 0.34 * a, 0.15 * b * geometry.commissure_scale)
    intermediate = ellipse_distance(ax, yc, 0.27 * a, canal_line + 0.1 * b, 0.15 * a, 0.30 * b)
    horn = geometry.anterior_horn
    anterior = ellipse_distance(ax, yc, 0.31 * a, -0.40 * b, 0.15 * a * horn, 0.30 * b, angle=-0.35)
    theta = geometry.posterior_horn_angle
    length = 0.80 * b / np.cos(theta) * 1.02 * geometry.posterior_horn_length
    p0 = (0.24 * a, canal_line + 0.12 * b)
    p1 = (p0[0] + length * np.sin(theta), p0[1] + length * np.cos(theta) * 0.95)
    width = geometry.posterior_horn_width
    posterior = capsule_distance(ax, yc, p0, p1, width, 0.6 * width)
    cap = ellipse_distance(ax, yc, p1[0] - 0.05 * a, p1[1] - 0.05 * b, width * 1.1, width * 0.8,
                           angle=theta)
    return np.minimum.reduce([commissure, intermediate, anterior, posterior, cap])


def central_canal_line(b: float) -> float:
    """AP position (mm, cord frame) of the central-canal line that splits anterior from posterior GM."""
    return -0.08 * b


def plaque_field(xc, yc, a, b, plaque: Plaque, scale: float):
    """Lesion membership field of a plaque in cord coordinates (<= 0 inside), size ``scale``."""
    u, v = xc / a, yc / b
    if plaque.side < 0:
        u = -u
    rho = np.sqrt(u * u + v * v)
    if plaque.shape == "wedge":
        phi = np.arctan2(v, u)
        half_width = 0.32 * plaque.aspect * scale
        depth = (0.72 if plaque.reaches_gm else 0.42) * scale
        off = np.abs(np.angle(np.exp(1j * (phi - plaque.angle))))
        return (1 - depth * (1 - off / half_width)) - rho
    radius = 0.62 if plaque.reaches_gm else 0.8
    cu, cv = radius * np.cos(plaque.angle), radius * np.sin(plaque.angle)
    rx, ry = 1.1 * scale * plaque.aspect, 1.1 * scale / plaque.aspect
    return ellipse_distance(u * a, v * b, cu * a, cv * b, rx, ry, angle=plaque.angle)


def cord_distance(xc, yc, a, b, shape=(0.0, 0.0, 0.0, 0.0)):
    """Signed distance (mm) to the cord outline: an ellipse with gentle 3rd/4th-order bumps.

    ``shape`` = (amplitude3, phase3, amplitude4, phase4) gives each subject its own outline.
    """
    amp3, phase3, amp4, phase4 = shape
    phi = np.arctan2(yc / b, xc / a)
    bump = 1 + amp3 * np.cos(3 * phi + phase3) + amp4 * np.cos(4 * phi + phase4)
    return ellipse_distance(xc / bump, yc / bump, 0.0, 0.0, a, b) * bump
