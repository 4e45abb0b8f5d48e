"""Anatomy of the evaluation-only AMIRA generator: cord, canal, butterfly and plaques.

Written independently of :mod:`score_gui.phantom` on purpose, so that a model trained on
that phantom meets shapes it never saw:

* the cord and the canal are *superellipses* (exponent drawn per subject) with unequal
  anterior and posterior half-axes, sized from their own per-level table (Sherman et al.,
  AJNR 1990 diameters rather than the phantom's PAM50 means), with flattened and large cords;
* the gray matter is a *butterfly outline*: control points for the horn roots, bulges and
  tips (length, width and angle drawn per side, so left and right differ), a commissure
  bar of drawn thickness, joined by a centripetal Catmull-Rom spline;
* the cord sits anywhere in the canal, sometimes almost touching its wall;
* plaques are clusters of 2-4 Gaussian blobs, tapering along the cord.

Coordinates are mm in the anatomy frame: ``x`` to the image right, ``y`` posterior
(down the image rows), origin at the canal centre.

Examples
--------
>>> import numpy as np
>>> subject = variant_subject(np.random.default_rng(0), "ms", n_slices=4)
>>> subject.kind, len(subject.plaques) >= 1
('ms', True)
>>> geo = geometry_at(subject, 8.0)
>>> outline = butterfly_outline(geo)
>>> bool(0.12 < polygon_area(outline) / superellipse_area(geo.cord) < 0.30)
True
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from math import gamma

import numpy as np

from score_gui.phantom_variant.signal import TissueSet, draw_tissues

LEVEL_NAMES = ("C2", "C3", "C4", "C5")
SLAB_MM = 8.0
"""Slice spacing (and thickness) in mm."""

# Sherman et al. 1990-like diameters (mm): cord AP, cord RL, canal AP, canal RL. The
# variant interpolates them continuously along z instead of holding one value per level.
LEVEL_TABLE = {
    "C2": (8.4, 11.9, 15.2, 21.0),
    "C3": (8.0, 12.6, 13.8, 20.0),
    "C4": (7.8, 13.4, 13.4, 20.4),
    "C5": (7.6, 13.6, 13.4, 20.8),
}
GM_FRACTION_MEAN = {"C2": 0.175, "C3": 0.19, "C4": 0.205, "C5": 0.215}
HORN_GROWTH = {"C2": 0.85, "C3": 0.93, "C4": 1.05, "C5": 1.12}
"""Anterior-horn bulk per level (cervical enlargement)."""

CORD_MARGIN_MM = 0.45
"""Gray matter stays this far inside the cord outline (a WM rim, as in real cords)."""


# ---------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Superellipse:
    """``|x/a|^n + |y/b|^n <= 1`` with ``b = b_ant`` for y < 0 and ``b_post`` for y >= 0.

    Attributes
    ----------
    a, b_ant, b_post : float
        Half-widths in mm (right-left, anterior, posterior).
    n : float
        Exponent: 2 is an ellipse, larger is boxier.
    cx, cy : float
        Centre in the parent frame (mm).
    angle : float
        Rotation in radians (shape frame -> parent frame).
    """

    a: float
    b_ant: float
    b_post: float
    n: float
    cx: float = 0.0
    cy: float = 0.0
    angle: float = 0.0

    def local(self, x, y):
        """Parent-frame points -> shape-frame coordinates."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        dx, dy = np.asarray(x) - self.cx, np.asarray(y) - self.cy
        return c * dx + s * dy, -s * dx + c * dy

    def level(self, x, y):
        """``|x/a|^n + |y/b|^n``: below 1 inside, 1 on the outline."""
        u, v = self.local(x, y)
        b = np.where(v < 0, self.b_ant, self.b_post)
        return np.abs(u / self.a) ** self.n + np.abs(v / b) ** self.n

    def contains(self, x, y):
        return self.level(x, y) <= 1.0

    def radius(self, theta):
        """Distance from the centre to the outline along direction ``theta`` (shape frame)."""
        c, s = np.cos(theta), np.sin(theta)
        b = np.where(s < 0, self.b_ant, self.b_post)
        return (np.abs(c / self.a) ** self.n + np.abs(s / b) ** self.n) ** (-1.0 / self.n)

    def scaled(self, factor: float) -> "Superellipse":
        return replace(self, a=self.a * factor, b_ant=self.b_ant * factor, b_post=self.b_post * factor)


def superellipse_area(shape: Superellipse) -> float:
    """Exact area in mm² (each half is half a symmetric superellipse).

    >>> round(superellipse_area(Superellipse(2.0, 1.0, 1.0, 2.0)), 4)  # ellipse: pi a b
    6.2832
    """
    n = shape.n
    full = 4 * gamma(1 + 1 / n) ** 2 / gamma(1 + 2 / n)
    return float(full * shape.a * (shape.b_ant + shape.b_post) / 2)


def polygon_area(points: np.ndarray) -> float:
    """Shoelace area of a closed polygon ``(N, 2)``.

    >>> polygon_area(np.array([[0, 0], [2, 0], [2, 1], [0, 1]], float))
    2.0
    """
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def catmull_rom_closed(points: np.ndarray, per_segment: int = 12) -> np.ndarray:
    """Centripetal Catmull-Rom curve through the closed control polygon ``points``.

    Centripetal parametrisation (alpha = 0.5) never forms cusps or loops inside a segment,
    which matters at the thin commissure where control points crowd together.
    """
    p = np.asarray(points, float)
    n = len(p)
    out = []
    for i in range(n):
        p0, p1, p2, p3 = p[(i - 1) % n], p[i], p[(i + 1) % n], p[(i + 2) % n]
        t0 = 0.0
        t1 = t0 + max(np.linalg.norm(p1 - p0), 1e-6) ** 0.5
        t2 = t1 + max(np.linalg.norm(p2 - p1), 1e-6) ** 0.5
        t3 = t2 + max(np.linalg.norm(p3 - p2), 1e-6) ** 0.5
        t = np.linspace(t1, t2, per_segment, endpoint=False)[:, None]
        a1 = (t1 - t) / (t1 - t0) * p0 + (t - t0) / (t1 - t0) * p1
        a2 = (t2 - t) / (t2 - t1) * p1 + (t - t1) / (t2 - t1) * p2
        a3 = (t3 - t) / (t3 - t2) * p2 + (t - t2) / (t3 - t2) * p3
        b1 = (t2 - t) / (t2 - t0) * a1 + (t - t0) / (t2 - t0) * a2
        b2 = (t3 - t) / (t3 - t1) * a2 + (t - t1) / (t3 - t1) * a3
        out.append((t2 - t) / (t2 - t1) * b1 + (t - t1) / (t2 - t1) * b2)
    return np.concatenate(out)


# ---------------------------------------------------------------------------------------
# Gray matter
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Horn:
    """One horn: direction from the GM centre, reach and widths.

    Attributes
    ----------
    angle : float
        Direction in radians in the cord frame (0 = lateral, +pi/2 = posterior), given for
        the right side; the left side mirrors it.
    reach : float
        Tip position as a fraction of the distance from the GM centre to the cord outline.
    width : float
        Widest part in mm.
    bulge : float
        Where along the horn the widest part sits (0 root, 1 tip).
    """

    angle: float
    reach: float
    width: float
    bulge: float


@dataclass(frozen=True)
class ButterflySide:
    """Anterior and posterior horn of one side plus the lateral waist between them."""

    anterior: Horn
    posterior: Horn
    waist: float
    """Lateral extent of the intermediate zone as a fraction of the cord half-width."""


@dataclass(frozen=True)
class SliceGeometry:
    """Everything needed to draw the canal contents of one slice (cord frame = canal frame
    shifted by ``cord.cx, cord.cy`` and rotated by ``cord.angle``)."""

    canal: Superellipse
    cord: Superellipse
    gm_center_y: float
    """GM centre (central canal) in the cord frame, mm; negative = anterior."""
    commissure_half_thickness: float
    commissure_half_width: float
    right: ButterflySide
    left: ButterflySide
    gm_fraction: float
    level: str


def _ray_to_outline(cord: Superellipse, origin, direction) -> float:
    """Distance from ``origin`` (cord frame, inside) to the cord outline along ``direction``."""
    lo, hi = 0.0, 2.0 * max(cord.a, cord.b_ant, cord.b_post)
    unrotated = replace(cord, cx=0.0, cy=0.0, angle=0.0)
    for _ in range(40):
        mid = (lo + hi) / 2
        x, y = origin[0] + mid * direction[0], origin[1] + mid * direction[1]
        if unrotated.level(x, y) <= 1.0:
            lo = mid
        else:
            hi = mid
    return lo


def _horn_points(geo: SliceGeometry, horn: Horn, side: int, root_x: float, scale: float) -> np.ndarray:
    """Control points of one horn from its medial root, out to the tip and back laterally."""
    centre = np.array([0.0, geo.gm_center_y])
    direction = np.array([side * np.cos(horn.angle), np.sin(horn.angle)])
    root = centre + np.array([side * root_x, 0.0])
    length = horn.reach * _ray_to_outline(replace(geo.cord, cx=0, cy=0, angle=0), root, direction)
    # The unit normal that points towards the midline: the horn's medial edge lies along it.
    medial_normal = np.array([-direction[1], direction[0]])
    if side * medial_normal[0] > 0:
        medial_normal = -medial_normal
    width = horn.width * scale
    tip = root + length * direction
    along = [(0.15, 0.55), (horn.bulge, 1.0), (0.88, 0.62)]
    medial = [root + f * length * direction + medial_normal * w * width / 2 for f, w in along]
    lateral = [root + f * length * direction - medial_normal * w * width / 2 for f, w in reversed(along)]
    return np.array(medial + [tip + 0.12 * width * direction] + lateral)


def butterfly_control_points(geo: SliceGeometry, scale: float = 1.0) -> np.ndarray:
    """Closed control polygon of the butterfly (cord frame, mm), before spline smoothing."""
    t = geo.commissure_half_thickness * np.sqrt(scale)
    wc = geo.commissure_half_width
    gy = geo.gm_center_y
    pieces = [np.array([[0.0, gy - t]])]
    for side, spec in ((1, geo.right), (-1, geo.left)):
        # _horn_points runs medial edge -> tip -> lateral edge; walking round the outline
        # from the anterior midline we meet the anterior horn's medial edge first and the
        # posterior horn's lateral edge first.
        anterior = _horn_points(geo, spec.anterior, side, wc + 0.15, scale)
        posterior = _horn_points(geo, spec.posterior, side, wc + 0.05, scale)[::-1]
        waist = np.array([[side * spec.waist * geo.cord.a, gy + 0.2 * t]])
        half = np.concatenate([[[side * wc, gy - t]], anterior, waist, posterior, [[side * wc, gy + t]]])
        pieces += [half, np.array([[0.0, gy + t]])] if side == 1 else [half[::-1]]
    return _drop_repeats(np.concatenate(pieces))


def _drop_repeats(points: np.ndarray) -> np.ndarray:
    """Drop consecutive duplicates so the spline never divides by a zero chord."""
    keep = [0] + [i for i in range(1, len(points)) if np.linalg.norm(points[i] - points[i - 1]) > 1e-4]
    return points[keep]


def _clip_inside_cord(points: np.ndarray, cord: Superellipse, margin: float) -> np.ndarray:
    """Pull points radially towards the cord centre until they are ``margin`` inside."""
    unrotated = replace(cord, cx=0.0, cy=0.0, angle=0.0)
    theta = np.arctan2(points[:, 1], points[:, 0])
    r = np.hypot(points[:, 0], points[:, 1])
    limit = np.maximum(unrotated.radius(theta) - margin, 0.2)
    factor = np.minimum(1.0, limit / np.maximum(r, 1e-9))
    return points * factor[:, None]


def butterfly_outline(geo: SliceGeometry) -> np.ndarray:
    """Smooth butterfly outline (cord frame, mm) whose area is ``gm_fraction`` of the cord.

    Horn widths and the commissure thickness are scaled (a few fixed-point steps) until the
    area matches; horn reach and angles stay as drawn.
    """
    target = geo.gm_fraction * superellipse_area(geo.cord)
    scale = 1.0
    for _ in range(6):
        curve = _clip_inside_cord(catmull_rom_closed(butterfly_control_points(geo, scale)),
                                  geo.cord, CORD_MARGIN_MM)
        area = polygon_area(curve)
        if abs(area - target) < 0.01 * target:
            break
        scale = float(np.clip(scale * (target / max(area, 1e-6)) ** 1.2, 0.35, 3.0))
    return curve


# ---------------------------------------------------------------------------------------
# Plaques
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plaque:
    """An MS plaque: a cluster of Gaussian blobs in the cord frame, tapering along z.

    Attributes
    ----------
    z_center, length : float
        mm along the cord.
    blobs : tuple of (x_rel, y_rel, radius_mm)
        Blob centres as fractions of the cord half-axes, and their radii at the centre.
    """

    z_center: float
    length: float
    blobs: tuple

    def taper(self, z: float) -> float:
        """Relative cross-section radius at ``z`` (0 outside the plaque)."""
        offset = abs(z - self.z_center) / max(self.length / 2, 1e-6)
        return float(np.sqrt(max(0.0, 1.0 - offset**2)))


def _draw_plaque(rng: np.random.Generator, z_center: float) -> Plaque:
    # Lateral and dorsal columns dominate; blobs sit near the pial surface (0.55-0.9 of the
    # radius) and often reach the gray matter.
    column = rng.choice(["lateral", "dorsal", "anterior"], p=[0.5, 0.4, 0.1])
    side = rng.choice([-1.0, 1.0])
    base = {"lateral": rng.uniform(-0.35, 0.35), "dorsal": rng.uniform(1.2, 1.5),
            "anterior": rng.uniform(-1.45, -1.1)}[column]
    radial = rng.uniform(0.5, 0.85)
    blobs = []
    for _ in range(int(rng.integers(2, 5))):
        angle = base + rng.normal(0, 0.2)
        rr = float(np.clip(radial + rng.normal(0, 0.12), 0.25, 0.95))
        if column == "dorsal":  # dorsal columns: close to the midline
            x = side * 0.3 * rr * abs(np.cos(angle)) + rng.normal(0, 0.1)
        else:
            x = side * rr * np.cos(angle)
        blobs.append((float(x), float(rr * np.sin(angle)), float(rng.uniform(0.7, 1.6))))
    return Plaque(z_center=float(z_center), length=float(rng.uniform(7.0, 26.0)), blobs=tuple(blobs))


# ---------------------------------------------------------------------------------------
# Subject
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LevelAnchor:
    """Per-level subject values, interpolated along z between level centres."""

    cord_ap: float
    cord_rl: float
    canal_ap: float
    canal_rl: float
    gm_fraction: float
    horn_growth: float


@dataclass
class VariantSubject:
    """One simulated person: anatomy, tissues and coil set, fixed across rescans.

    Create with :func:`variant_subject`. Rescanning the same object with a new random
    generator gives new noise only; ``reposition`` in the scan function moves it.
    """

    kind: str
    n_slices: int
    anchors: dict
    cord_exponent: float
    canal_exponent: float
    cord_asymmetry: float
    cord_offset_mm: tuple
    cord_angle_deg: float
    pose_mm: tuple
    pose_deg: float
    gm_center: float
    commissure: tuple
    sides: dict
    neck: dict
    tissues: TissueSet
    noise: dict
    texture_seed: int
    plaques: list = field(default_factory=list)
    body_type: str = "typical"

    def level_of(self, index: int) -> str:
        """Vertebral level of slice ``index`` (C2-C5 spread evenly over the slices)."""
        per = self.n_slices / len(LEVEL_NAMES)
        return LEVEL_NAMES[min(int(index / per), len(LEVEL_NAMES) - 1)]


def _body_type(rng: np.random.Generator) -> tuple[str, float, float]:
    """Cord build: typical, flattened (AP shrunk) or large; returns (name, AP, RL factors)."""
    roll = rng.random()
    if roll < 0.15:
        return "flattened", rng.uniform(0.76, 0.88), rng.uniform(1.0, 1.06)
    if roll < 0.30:
        f = rng.uniform(1.08, 1.18)
        return "large", f, f
    f = float(np.exp(rng.normal(0, 0.07)))
    return "typical", f, f * float(np.exp(rng.normal(0, 0.03)))


def _anchors(rng, kind: str, ap_factor: float, rl_factor: float) -> dict:
    canal_factor = float(np.exp(rng.normal(0, 0.08)))
    gm_shift = rng.normal(0, 0.015)
    atrophy = rng.uniform(0.9, 1.0) if kind == "ms" else 1.0  # MS atrophy: mostly AP
    anchors = {}
    for level, (cap, crl, kap, krl) in LEVEL_TABLE.items():
        cord_ap = cap * ap_factor * atrophy * float(np.exp(rng.normal(0, 0.02)))
        cord_rl = crl * rl_factor * float(np.exp(rng.normal(0, 0.02)))
        # The canal always leaves CSF around the cord: at least 1.3 mm AP and 4 mm RL in total.
        canal_ap = max(kap * canal_factor * float(np.exp(rng.normal(0, 0.03))), cord_ap + 1.3)
        canal_rl = max(krl * canal_factor * float(np.exp(rng.normal(0, 0.03))), cord_rl + 4.0)
        fraction = float(np.clip(GM_FRACTION_MEAN[level] + gm_shift + rng.normal(0, 0.008), 0.14, 0.26))
        anchors[level] = LevelAnchor(cord_ap, cord_rl, canal_ap, canal_rl, fraction, HORN_GROWTH[level])
    return anchors


def _butterfly_side(rng: np.random.Generator, asymmetry: float) -> ButterflySide:
    def jitter(value, sd=asymmetry):
        return value * float(np.exp(rng.normal(0, sd)))
    anterior = Horn(angle=-np.deg2rad(jitter(rng.uniform(28, 55))), reach=min(0.8, jitter(rng.uniform(0.5, 0.68))),
                    width=jitter(rng.uniform(1.7, 2.5)), bulge=rng.uniform(0.45, 0.7))
    posterior = Horn(angle=np.deg2rad(min(82.0, jitter(rng.uniform(52, 74)))),
                     reach=min(0.95, jitter(rng.uniform(0.8, 0.93))),
                     width=jitter(rng.uniform(0.75, 1.15)), bulge=rng.uniform(0.55, 0.85))
    return ButterflySide(anterior=anterior, posterior=posterior, waist=jitter(rng.uniform(0.3, 0.42)))


def _cord_offset(rng: np.random.Generator) -> tuple[tuple[float, float], str]:
    """Cord position in the canal as fractions of the free space; 20 % lie near a wall."""
    if rng.random() < 0.2:
        wall = rng.choice([-1.0, 1.0])
        return (float(rng.normal(0, 0.2)), float(wall * rng.uniform(0.8, 0.95))), "near_wall"
    return (float(rng.normal(0, 0.2)), float(np.clip(rng.normal(0.1, 0.3), -0.7, 0.7))), "free"


def _neck(rng: np.random.Generator) -> dict:
    neck = {"half_rl": rng.uniform(52, 66), "half_ap": rng.uniform(44, 56), "exponent": rng.uniform(2.1, 2.6),
            "centre_y": -rng.uniform(6, 14), "fat": rng.uniform(3, 9), "body_rl": rng.uniform(7.5, 10.0),
            "body_ap": rng.uniform(6.5, 8.5), "lamina_angle": rng.uniform(0.45, 0.75),
            "epidural_fat": rng.uniform(1.0, 3.0)}
    neck["septa"] = [(rng.uniform(-35, 35), rng.uniform(12, 35), rng.uniform(0.6, 1.6), rng.uniform(4, 12),
                      rng.uniform(-1, 1)) for _ in range(int(rng.integers(2, 5)))]  # fat between neck muscles
    neck["disc_every"] = int(rng.integers(2, 4))
    return neck


def _noise(rng: np.random.Generator) -> dict:
    """Receiver set: one coil (Rician magnitude) or 4-8 coils combined by root-sum-of-squares
    (non-central chi), with Gaussian coil sensitivities placed around the neck."""
    n_coils = 1 if rng.random() < 0.35 else int(rng.integers(4, 9))
    coils = []
    for k in range(max(n_coils, 3) if n_coils == 1 else n_coils):
        # Mostly a posterior spine array, some anterior neck elements.
        angle = rng.uniform(0.15, np.pi - 0.15) if rng.random() < 0.7 else -rng.uniform(0.3, np.pi - 0.3)
        coils.append((float(70 * np.cos(angle)), float(55 * np.sin(angle)), float(rng.uniform(40, 75)),
                      float(rng.uniform(0, 2 * np.pi))))
    # Root-sum-of-squares lifts the zero-signal floor to about sigma * sqrt(2 K); multi-coil
    # sets get a higher SNR range so the nulled cord stays below the late CSF.
    snr = rng.uniform(14, 40) if n_coils == 1 else rng.uniform(22, 50)
    return {"n_coils": n_coils, "coils": coils, "snr_gm": float(snr),
            "gain": float(rng.uniform(600, 1800))}


def variant_subject(rng: np.random.Generator, kind: str = "hc", n_slices: int = 12) -> VariantSubject:
    """Draw a new subject (anatomy, tissue relaxation, receiver coils, plaques).

    Parameters
    ----------
    rng : numpy.random.Generator
    kind : {"hc", "ms"}
    n_slices : int
        Slices the subject will be scanned with (levels C2-C5 spread over them; plaques
        placed among them).
    """
    if kind not in ("hc", "ms"):
        raise ValueError(f"kind must be 'hc' or 'ms', not {kind!r}")
    body, ap_factor, rl_factor = _body_type(rng)
    offset, placement = _cord_offset(rng)
    asymmetry = rng.uniform(0.03, 0.1)
    subject = VariantSubject(
        kind=kind, n_slices=int(n_slices), anchors=_anchors(rng, kind, ap_factor, rl_factor),
        cord_exponent=float(rng.uniform(1.85, 2.5)), canal_exponent=float(rng.uniform(2.0, 2.9)),
        cord_asymmetry=float(rng.uniform(-0.05, 0.08)), cord_offset_mm=offset,
        cord_angle_deg=float(rng.normal(0, 5.0)), pose_mm=(float(rng.normal(0, 2.5)), float(rng.normal(0, 2.5))),
        pose_deg=float(rng.normal(0, 5.0)), gm_center=float(rng.uniform(0.03, 0.16)),
        commissure=(float(rng.uniform(0.35, 0.6)), float(rng.uniform(0.55, 0.95))),
        sides={"right": _butterfly_side(rng, asymmetry), "left": _butterfly_side(rng, asymmetry)},
        neck=_neck(rng), tissues=draw_tissues(rng, kind), noise=_noise(rng),
        texture_seed=int(rng.integers(0, 2**31)), body_type=body)
    subject.neck["placement"] = placement
    if kind == "ms":
        centres = [float(rng.integers(0, n_slices)) * SLAB_MM]  # one plaque always cut by a slice
        centres += list(rng.uniform(-4, n_slices * SLAB_MM - 4, size=int(rng.poisson(2.0))))
        subject.plaques = [_draw_plaque(rng, z) for z in centres]
    return subject


def _anchor_at(subject: VariantSubject, z_mm: float) -> LevelAnchor:
    """Level values interpolated along z between the level centres."""
    per = subject.n_slices / len(LEVEL_NAMES) * SLAB_MM
    centres = (np.arange(len(LEVEL_NAMES)) + 0.5) * per - SLAB_MM / 2
    values = {f: float(np.interp(z_mm, centres, [getattr(subject.anchors[lv], f) for lv in LEVEL_NAMES]))
              for f in LevelAnchor.__dataclass_fields__}
    return LevelAnchor(**values)


def geometry_at(subject: VariantSubject, z_mm: float, rng: np.random.Generator | None = None) -> SliceGeometry:
    """Canal, cord and butterfly of the slice at ``z_mm`` (``rng``: small per-slice jitter)."""
    anchor = _anchor_at(subject, z_mm)
    level = subject.level_of(int(round(z_mm / SLAB_MM)))
    jitter = (lambda sd: float(rng.normal(0, sd))) if rng is not None else (lambda sd: 0.0)
    canal = Superellipse(a=anchor.canal_rl / 2, b_ant=anchor.canal_ap / 2 * 0.96,
                         b_post=anchor.canal_ap / 2 * 1.04, n=subject.canal_exponent)
    half_ap = anchor.cord_ap / 2
    e = subject.cord_asymmetry
    free_x = canal.a - anchor.cord_rl / 2 - 0.6
    ox = subject.cord_offset_mm[0] * free_x + jitter(0.15)
    oy_frac = subject.cord_offset_mm[1]
    free_y = (canal.b_post - half_ap * (1 - e)) if oy_frac > 0 else (canal.b_ant - half_ap * (1 + e))
    oy = oy_frac * max(free_y - 0.25, 0.0) + jitter(0.1)
    cord = Superellipse(a=anchor.cord_rl / 2, b_ant=half_ap * (1 + e), b_post=half_ap * (1 - e),
                        n=subject.cord_exponent, cx=ox, cy=oy, angle=np.deg2rad(subject.cord_angle_deg))
    cord = _fit_in_canal(cord, canal)
    grow = anchor.horn_growth
    sides = {name: replace(side, anterior=replace(side.anterior, width=side.anterior.width * grow))
             for name, side in subject.sides.items()}
    return SliceGeometry(canal=canal, cord=cord, gm_center_y=-subject.gm_center * half_ap,
                         commissure_half_thickness=subject.commissure[0],
                         commissure_half_width=subject.commissure[1], right=sides["right"],
                         left=sides["left"], gm_fraction=anchor.gm_fraction, level=level)


def _fit_in_canal(cord: Superellipse, canal: Superellipse, gap: float = 0.3) -> Superellipse:
    """Move the cord towards the canal centre until its outline is ``gap`` mm inside."""
    theta = np.linspace(0, 2 * np.pi, 180, endpoint=False)
    r = cord.radius(theta)
    for _ in range(30):
        c, s = np.cos(cord.angle), np.sin(cord.angle)
        lx, ly = r * np.cos(theta), r * np.sin(theta)
        px, py = cord.cx + c * lx - s * ly, cord.cy + s * lx + c * ly
        outward = np.hypot(px, py)
        direction = np.arctan2(py, px)
        limit = canal.radius(direction) - gap
        if np.all(outward <= limit):
            return cord
        cord = replace(cord, cx=cord.cx * 0.85, cy=cord.cy * 0.85)
    return cord
