"""Tissue signal of AMIRA: inversion-recovery bSSFP magnitude over the 8 inversion times.

The model follows ``docs/amira_physics.md`` sections 2.1-2.3: a non-selective inversion
(efficiency 0.96), free T1 recovery until the readout starts, an alpha/2-prepared bSSFP
readout that relaxes towards its steady state with the apparent time constant T1*, an
alpha/2 flip-back, and free recovery until the next inversion. The cycle is iterated to its
periodic steady state, because CSF (T1 about 4.3 s) never recovers fully within Tc; that
is why CSF looks dark early and bright late.

Signals are *signed* (sign of the longitudinal magnetisation); images are their magnitude
after mixing, so voxels mixing opposite signs lose signal (India-ink lines).

Examples
--------
>>> curves = signal_curves(SignalSettings())
>>> curves.shape == (len(TISSUES), 8)
True
>>> gm, wm = curves[TISSUE_INDEX["gm"]], curves[TISSUE_INDEX["wm"]]
>>> bool(abs(gm[:5]).mean() > 1.2 * abs(wm[:5]).mean())
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from score_gui.scan import AMIRA_INVERSION_TIMES

TR_MS = 5.13
LINES_PER_FRAME = 12
READOUT_START_MS = AMIRA_INVERSION_TIMES[0] - LINES_PER_FRAME / 2 * TR_MS
READOUT_END_MS = AMIRA_INVERSION_TIMES[-1] + LINES_PER_FRAME / 2 * TR_MS
INVERSION_EFFICIENCY = 0.96


@dataclass(frozen=True)
class Tissue:
    """Relaxation parameters of one tissue at 3 T.

    Attributes
    ----------
    t1, t2 : float
        Relaxation times in ms.
    pd : float
        Proton density relative to CSF.
    mt_steady, mt_t1 : float
        Magnetisation-transfer factors on the bSSFP steady state and on the apparent T1
        (heuristic, ``amira_physics.md`` 2.3).
    t2star : float
        Relative brightness in a T2*-weighted gradient echo (contrast ``"t2star"``).
    """

    t1: float
    t2: float
    pd: float
    mt_steady: float = 1.0
    mt_t1: float = 1.0
    t2star: float = 0.5


# Order matters: the index of a tissue is its code in the phantom's tissue maps.
TISSUES: dict[str, Tissue] = {
    "air": Tissue(t1=1.0, t2=1.0, pd=0.0, t2star=0.0),
    "muscle": Tissue(t1=1400.0, t2=31.0, pd=0.72, mt_steady=0.80, mt_t1=0.85, t2star=0.30),
    "fat": Tissue(t1=375.0, t2=90.0, pd=0.90, t2star=0.75),
    "marrow": Tissue(t1=515.0, t2=101.0, pd=0.80, mt_steady=0.85, t2star=0.35),
    "bone": Tissue(t1=1.0, t2=1.0, pd=0.0, t2star=0.03),      # cortical bone, ligament: ~0
    "disc": Tissue(t1=1165.0, t2=102.0, pd=0.79, mt_steady=0.85, t2star=0.45),
    "vessel": Tissue(t1=1650.0, t2=200.0, pd=0.85, t2star=0.60),
    "csf": Tissue(t1=4273.0, t2=1578.0, pd=1.00, t2star=1.00),
    "wm": Tissue(t1=863.0, t2=73.0, pd=0.70, mt_steady=0.50, mt_t1=0.62, t2star=0.40),
    "wm_dorsal": Tissue(t1=899.0, t2=73.0, pd=0.70, mt_steady=0.50, mt_t1=0.62, t2star=0.41),
    "gm": Tissue(t1=973.0, t2=76.0, pd=0.80, mt_steady=0.85, mt_t1=0.95, t2star=0.55),
    "lesion": Tissue(t1=1500.0, t2=120.0, pd=0.85, mt_steady=0.90, t2star=0.70),
}
TISSUE_INDEX = {name: code for code, name in enumerate(TISSUES)}


@dataclass(frozen=True)
class SignalSettings:
    """Sequence and per-subject tissue settings.

    Attributes
    ----------
    flip_angle_deg : float
        bSSFP flip angle (the phantom samples 45-55 degrees).
    cycle_ms : float
        Inversion repetition time Tc (the phantom samples 2.4-3.4 s).
    mt_scale : float
        Multiplies how far the WM/GM MT factors sit below 1 (subject variation).
    t1_scale : dict
        Per-tissue T1 multipliers (subject variation, e.g. NAWM prolongation in MS).
    vessel_flow : float
        0 = static blood; 1 = fully refreshed (inflow makes blood bright, near steady state).
    """

    flip_angle_deg: float = 50.0
    cycle_ms: float = 3000.0
    mt_scale: float = 1.0
    t1_scale: dict = field(default_factory=dict)
    vessel_flow: float = 0.0


def _recover(mz, pd, t1, duration):
    return pd - (pd - mz) * np.exp(-duration / t1)


def signal_curves(settings: SignalSettings, inversion_times=AMIRA_INVERSION_TIMES,
                  n_cycles: int = 12) -> np.ndarray:
    """Signed signal of every tissue at each inversion time, shape ``(n_tissues, T)``.

    Parameters
    ----------
    settings : SignalSettings
        Flip angle, Tc and tissue variations.
    inversion_times : sequence of float
        Effective inversion times in ms.
    n_cycles : int
        Inversion cycles iterated to reach the periodic steady state.
    """
    tissues = list(TISSUES.values())
    names = list(TISSUES)
    t1 = np.array([t.t1 * settings.t1_scale.get(n, 1.0) for n, t in zip(names, tissues)])
    t2 = np.array([t.t2 for t in tissues])
    pd = np.array([t.pd for t in tissues])
    mt_steady = 1 - (1 - np.array([t.mt_steady for t in tissues])) * settings.mt_scale
    mt_t1 = 1 - (1 - np.array([t.mt_t1 for t in tissues])) * settings.mt_scale
    t1_app = t1 * mt_t1
    alpha = np.deg2rad(settings.flip_angle_deg)
    ratio = t1_app / t2
    steady = pd * mt_steady * np.sin(alpha) / ((ratio + 1) - np.cos(alpha) * (ratio - 1))
    t1_star = 1.0 / (np.cos(alpha / 2) ** 2 / t1_app + np.sin(alpha / 2) ** 2 / t2)
    half = np.sin(alpha / 2)
    readout = READOUT_END_MS - READOUT_START_MS

    mz_before = pd.copy()
    for _ in range(n_cycles):
        mz = -INVERSION_EFFICIENCY * mz_before
        mz = _recover(mz, pd, t1_app, READOUT_START_MS)
        start = mz * half
        end = steady + (start - steady) * np.exp(-readout / t1_star)
        mz_before = _recover(end / half, pd, t1_app, settings.cycle_ms - READOUT_END_MS)
    times = np.asarray(inversion_times, float) - READOUT_START_MS
    curves = steady[:, None] + (start - steady)[:, None] * np.exp(-times[None, :] / t1_star[:, None])
    vessel = TISSUE_INDEX["vessel"]
    # Inflowing blood has not seen the inversion: it sits near the bright bSSFP steady state.
    curves[vessel] = (1 - settings.vessel_flow) * curves[vessel] + settings.vessel_flow * 0.22
    curves[pd == 0] = 0.0
    return curves.astype(np.float32)


def t2star_levels(rng: np.random.Generator | None = None) -> np.ndarray:
    """Relative brightness of every tissue in a T2*-weighted image, shape ``(n_tissues, 1)``."""
    levels = np.array([t.t2star for t in TISSUES.values()], float)
    if rng is not None:
        levels = levels * rng.uniform(0.93, 1.07, size=levels.shape)
    return (0.25 * levels[:, None]).astype(np.float32)
