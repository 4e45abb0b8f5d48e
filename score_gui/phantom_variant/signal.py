"""Tissue signal of the evaluation-only generator: Look-Locker inversion recovery, spoiled GRE.

Deliberately another physics than the project phantom's IR-bSSFP (no T2 dependence of the
apparent relaxation, no MT factors, no alpha/2 preparation). After a non-selective
inversion a train of small flip-angle spoiled gradient echoes (flip ``theta``, spacing
``tau``) samples the recovery continuously from t = 0 (Deichmann & Haase 1992)::

    1/T1* = 1/T1 - ln(cos theta) / tau        A = PD * T1* / T1
    Mz(t) = A - (A + eff * Mz0) * exp(-t / T1*)
    S(TI) = Mz(TI) * exp(-TE / T2*)              (signed; images take the magnitude)

``Mz0`` is the periodic steady state just before an inversion: the readout runs until
about 560 ms, then free T1 recovery until the next inversion ``Tc`` (drawn 2.6-4.0 s), so
CSF (T1 about 4 s) is only partly recovered: dark early, bright late. Cord tissue
(T1* 500-800 ms) crosses zero at 450-550 ms, so the cord is dark in images 6-8. GM is
brighter than WM early through its higher PD and T1, by a ratio drawn per subject.

Every relaxation value is drawn per subject; the 8 inversion times are the contract's
AMIRA times plus a per-subject offset and a per-frame jitter.

Examples
--------
>>> import numpy as np
>>> tissues = draw_tissues(np.random.default_rng(1), "hc")
>>> curves = signal_curves(tissues)
>>> curves.shape == (len(TISSUE_NAMES), 8)
True
>>> gm, wm, csf = (np.abs(curves[TISSUE_CODE[n]]) for n in ("gm", "wm", "csf"))
>>> bool(gm[0] > wm[0] > csf[0] and csf[-1] > 3 * wm[-1])
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from score_gui.scan import AMIRA_INVERSION_TIMES

TISSUE_NAMES = ("air", "bone", "fat", "muscle", "marrow", "disc", "blood", "csf", "wm", "gm", "lesion")
TISSUE_CODE = {name: code for code, name in enumerate(TISSUE_NAMES)}
READOUT_END_MS = 560.0

# (T1 range ms, PD range, T2* range ms, T2*-weighted brightness range). Drawn per subject.
_RANGES = {
    "air": ((1.0, 1.0), (0.0, 0.0), (1.0, 1.0), (0.0, 0.0)),
    "bone": ((300.0, 400.0), (0.03, 0.06), (1.0, 2.0), (0.02, 0.05)),
    "fat": ((320.0, 420.0), (0.6, 0.8), (25.0, 40.0), (0.55, 0.75)),
    # Muscle: apparent T1 (its large macromolecular pool shortens it under a pulse train),
    # so it nulls inside the window like on AMIRA rather than staying bright late.
    "muscle": ((680.0, 880.0), (0.6, 0.7), (22.0, 30.0), (0.2, 0.3)),
    "marrow": ((460.0, 600.0), (0.72, 0.84), (8.0, 14.0), (0.25, 0.35)),
    "disc": ((1000.0, 1250.0), (0.74, 0.82), (30.0, 50.0), (0.4, 0.5)),
    "blood": ((1550.0, 1800.0), (0.8, 0.9), (30.0, 60.0), (0.5, 0.7)),
    "csf": ((3700.0, 4600.0), (1.0, 1.0), (150.0, 300.0), (0.9, 1.0)),
    "wm": ((790.0, 920.0), (0.6, 0.69), (38.0, 50.0), (0.33, 0.42)),
    "gm": ((0.0, 0.0), (0.0, 0.0), (45.0, 58.0), (0.52, 0.64)),  # drawn relative to WM
    "lesion": ((1150.0, 1900.0), (0.8, 0.9), (55.0, 80.0), (0.62, 0.78)),
}


@dataclass(frozen=True)
class TissueSet:
    """One subject's tissue parameters and sequence settings.

    Attributes
    ----------
    t1, pd, t2star, t2w : ndarray (n_tissues,)
        T1 (ms), proton density, T2* (ms) and T2*-weighted brightness, in
        :data:`TISSUE_NAMES` order.
    flip_deg, spacing_ms, cycle_ms, efficiency, te_ms : float
        Readout flip angle, echo spacing, inversion repetition time, inversion efficiency
        and echo time.
    inversion_times : tuple of float
        The 8 effective inversion times (ms) of this subject's scans.
    inflow : float
        Fraction of blood that has not seen the inversion (bright vessels).
    """

    t1: np.ndarray
    pd: np.ndarray
    t2star: np.ndarray
    t2w: np.ndarray
    flip_deg: float
    spacing_ms: float
    cycle_ms: float
    efficiency: float
    te_ms: float
    inversion_times: tuple
    inflow: float = 0.0
    extra: dict = field(default_factory=dict)


def _jittered_times(rng: np.random.Generator) -> tuple:
    offset = rng.uniform(-5.0, 5.0)
    times = np.asarray(AMIRA_INVERSION_TIMES) + offset + rng.normal(0, 1.5, len(AMIRA_INVERSION_TIMES))
    return tuple(float(t) for t in np.maximum.accumulate(times))


def draw_tissues(rng: np.random.Generator, kind: str = "hc") -> TissueSet:
    """Draw tissue relaxation, proton density and sequence settings for one subject.

    GM's T1 lies 60-170 ms above WM's and its PD 0.12-0.22 above, so the early GM/WM ratio
    varies between subjects (about 1.15-1.4). MS subjects get slightly prolonged NAWM T1.
    """
    t1, pd, t2s, t2w = (np.array([rng.uniform(*_RANGES[n][i]) for n in TISSUE_NAMES]) for i in range(4))
    wm, gm = TISSUE_CODE["wm"], TISSUE_CODE["gm"]
    if kind == "ms":
        t1[wm] *= rng.uniform(1.0, 1.06)
    t1[gm] = t1[wm] + rng.uniform(60.0, 170.0)
    pd[gm] = min(pd[wm] + rng.uniform(0.12, 0.22), 0.92)
    return TissueSet(t1=t1, pd=pd, t2star=t2s, t2w=t2w, flip_deg=float(rng.uniform(3.5, 6.0)),
                     spacing_ms=float(rng.uniform(8.0, 12.0)), cycle_ms=float(rng.uniform(2600.0, 4000.0)),
                     efficiency=float(rng.uniform(0.9, 0.99)), te_ms=float(rng.uniform(2.0, 3.2)),
                     inversion_times=_jittered_times(rng), inflow=float(rng.uniform(0.2, 0.8)))


def apparent_t1(tissues: TissueSet) -> np.ndarray:
    """Look-Locker apparent relaxation time T1* (ms) of every tissue."""
    theta = np.deg2rad(tissues.flip_deg)
    return 1.0 / (1.0 / tissues.t1 - np.log(np.cos(theta)) / tissues.spacing_ms)


def signal_curves(tissues: TissueSet, times=None, n_cycles: int = 15) -> np.ndarray:
    """Signed signal per tissue and inversion time, ``(n_tissues, T)``.

    Parameters
    ----------
    tissues : TissueSet
    times : sequence of float, optional
        Inversion times in ms; default the subject's own jittered AMIRA times.
    n_cycles : int
        Inversion cycles iterated to the periodic steady state.
    """
    times = np.asarray(tissues.inversion_times if times is None else times, float)
    t1_star = apparent_t1(tissues)
    steady = tissues.pd * t1_star / tissues.t1
    mz0 = tissues.pd.copy()
    for _ in range(n_cycles):
        end = steady - (steady + tissues.efficiency * mz0) * np.exp(-READOUT_END_MS / t1_star)
        mz0 = tissues.pd - (tissues.pd - end) * np.exp(-(tissues.cycle_ms - READOUT_END_MS) / tissues.t1)
    mz = steady[:, None] - (steady + tissues.efficiency * mz0)[:, None] * np.exp(-times[None, :] / t1_star[:, None])
    curves = mz * np.exp(-tissues.te_ms / tissues.t2star)[:, None]
    # Inflowing blood never saw the inversion: it sits near the positive apparent steady state.
    blood = TISSUE_CODE["blood"]
    curves[blood] = (1 - tissues.inflow) * curves[blood] + tissues.inflow * steady[blood]
    curves[tissues.pd == 0] = 0.0
    return curves.astype(np.float32)


def t2star_values(tissues: TissueSet) -> np.ndarray:
    """Brightness per tissue in a T2*-weighted gradient echo, ``(n_tissues, 1)``: CSF bright,
    GM above WM, bone and air dark."""
    return tissues.t2w[:, None].astype(np.float32)
