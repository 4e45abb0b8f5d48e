"""One subject over its sessions: each session's per-slice areas, and which changes are real.

A subject scanned in several sessions (``sub-<id>/ses-<id>``, contract section 5) is followed
slice by slice: the same slice index in every session, as the scan-rescan analysis of
:mod:`score_gui.agreement` pairs them (AMIRA is positioned on the same landmark at every
visit), each slice named by its vertebral level. :func:`subject_series` reads the areas of one
label source (the ensemble's ``score``, a rater, the consensus, ...) of every session with
:func:`score_gui.areas.label_file_areas`, the study's QC applied; :func:`changes` puts one
compartment's areas next to the baseline's and says which changes leave the scan-rescan band.

Which change is real
--------------------
Two scans of an unchanged cord differ by scan-rescan noise. With the relative SD (RSD, the
coefficient of variation) of one slice's area over rescans, the difference of two independent
measurements has an SD of ``sqrt(2) * RSD`` (relative to the area), so a change is real, at
95 % confidence, when it exceeds the *least significant change*

    LSC = 1.96 * sqrt(2) * RSD = 2.77 * RSD

relative to the baseline (Glüer et al., Osteoporos Int 1995; the ISCD's rule for follow-up
densitometry). The band drawn around the baseline is ``baseline * (1 ± LSC)``; a session's
slice outside it is flagged ``beyond_lsc``. The test is per slice: with 12 slices about 0.6
of them per session leave the band by chance (5 % each), so :func:`change_summary` gives that
expectation beside the count. A change seen on one slice only is weak evidence; one that
most slices agree on is not.

The RSD per compartment defaults to :data:`RESCAN_RSD_PERCENT`, the project's scan-rescan
benchmark of the ensemble; a study with its own rescans
(:func:`score_gui.agreement.reproducibility_summary`) or a rater's labels should pass its own
with ``rsd=``.

Examples
--------
>>> round(least_significant_change(RESCAN_RSD_PERCENT["cord"]), 2)   # percent of the baseline
4.07
>>> import pandas as pd
>>> areas = pd.DataFrame({"subject": "01", "session": ["1", "1", "2", "2"],
...                       "scan": ["sub-01_ses-1_amira"] * 2 + ["sub-01_ses-2_amira"] * 2,
...                       "slice": [0, 1, 0, 1], "level": ["C2", "C3"] * 2,
...                       "qc_status": ["pass", "pass", "pass", "fail"],
...                       "cord": [80.0, 75.0, 77.0, 60.0]})
>>> table = changes(areas, "cord")            # slice 1 of ses-2 failed QC: not compared
>>> for row in table[["position", "session", "area_mm2", "change_percent", "beyond_lsc"]].values:
...     print(*row)
C2 s0 ses-1 80.0 0.0 False
C2 s0 ses-2 77.0 -3.75 False
C3 s1 ses-1 75.0 0.0 False
C3 s1 ses-2 nan nan <NA>
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import pandas as pd

from score_gui.areas import AREA_COLUMNS, COLUMNS, QcDecisions, label_file_areas, read_qc
from score_gui.errors import ScoreInputError

RESCAN_RSD_PERCENT = {"cord": 1.47, "wm": 2.14, "gm": 4.81, "anterior_horns": 9.92,
                      "posterior_horns": 8.54}
"""Scan-rescan RSD (%) of one slice's area per compartment: the ensemble, soft vote (default).

Source: ``resources/models/README.md``, table "Scan-rescan" (``benchmarks/bench_rescan.py
--subjects 3``: 3 healthy phantom subjects x 3 scans, new noise and a 1.6 mm / 4 degree
repositioning; relative SD of each slice's area over the 3 scans, mean over slices). Other
compartments have no default: pass ``rsd=`` to get a band for them. Raters' labels vary more
between rescans than the ensemble's; give their own RSD when it is known."""

RESCAN_RSD_SOURCE = "resources/models/README.md, Scan-rescan (benchmarks/bench_rescan.py), ensemble soft vote"

CONFIDENCE = 0.95
"""Two-sided confidence of the least significant change (1.96 * sqrt(2) = 2.77 at 95 %)."""

CHANGE_COLUMNS = ["position", "slice", "level", "session", "scan", "baseline", "qc_status", "n_slices", "area_mm2",
                  "baseline_mm2", "change_mm2", "change_percent", "rsd_percent", "lsc_percent",
                  "band_low_mm2", "band_high_mm2", "beyond_lsc"]
"""Columns of :func:`changes`, one row per position (slice or level) and session."""


def least_significant_change(rsd_percent: float, confidence: float = CONFIDENCE) -> float:
    """The least significant change (% of the baseline) for a scan-rescan RSD (%).

    ``z * sqrt(2) * RSD`` with ``z`` the two-sided normal quantile: the smallest difference
    between two measurements, each with that RSD, that noise alone exceeds with probability
    ``1 - confidence``.

    Examples
    --------
    >>> round(least_significant_change(1.0), 3), round(least_significant_change(1.0, 0.9), 3)
    (2.772, 2.326)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, not {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    return z * math.sqrt(2.0) * float(rsd_percent)


def rescan_rsd(compartment: str, rsd: float | dict[str, float] | None = None) -> float | None:
    """The scan-rescan RSD (%) used for ``compartment``: ``rsd`` when it gives one, else the default.

    Examples
    --------
    >>> rescan_rsd("gm"), rescan_rsd("gm", {"gm": 3.5}), rescan_rsd("lesion"), rescan_rsd("csf", 6.0)
    (4.81, 3.5, None, 6.0)
    """
    if isinstance(rsd, (int, float)):
        return float(rsd)
    table = {**RESCAN_RSD_PERCENT, **(rsd or {})}
    value = table.get(compartment)
    return None if value is None else float(value)


def _natural_key(text: str) -> list:
    # ses-2 before ses-10, and "" (no session) first
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text or "")]


def subject_visits(study, subject: str) -> list:
    """The subject's scans (:class:`~score_gui.study.ScanEntry`) in session order (ses-2 before ses-10)."""
    entries = [entry for entry in study.scans if entry.subject == subject]
    return sorted(entries, key=lambda e: (_natural_key(e.session or ""), e.stem))


def visit_label(session: str | None, scan: str, sessions_seen: list[str] | None = None) -> str:
    """How a visit is named on screen: ``ses-<id>``, or the scan's stem when it has no session
    or shares it with another scan (two runs in one session).

    Examples
    --------
    >>> visit_label("2", "sub-01_ses-2_amira"), visit_label("", "sub-01_amira")
    ('ses-2', 'sub-01_amira')
    >>> visit_label("1", "sub-01_ses-1_run-2_amira", ["1", "1"])
    'sub-01_ses-1_run-2_amira'
    """
    session = "" if session is None or (isinstance(session, float) and math.isnan(session)) else str(session)
    if not session or (sessions_seen is not None and sessions_seen.count(session) > 1):
        return scan
    return f"ses-{session}"


@dataclass
class SubjectSeries:
    """One label source's areas of every session of a subject (from :func:`subject_series`).

    Attributes
    ----------
    subject, source : str
    visits : list of ScanEntry
        Every scan of the subject, in session order, labelled by ``source`` or not.
    areas : DataFrame
        The contract's areas table (:data:`score_gui.areas.COLUMNS`) of the visits with labels
        from ``source``, QC applied (``qc_status``), in visit order.
    errors : dict
        ``{dseg path: message}`` for label maps that could not be read (left out of ``areas``).
    """

    subject: str
    source: str
    visits: list
    areas: pd.DataFrame
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def labels(self) -> dict[str, str]:
        """``{scan stem: visit label}`` of every visit."""
        sessions = [entry.session or "" for entry in self.visits]
        return {entry.stem: visit_label(entry.session, entry.stem, sessions) for entry in self.visits}

    @property
    def sessions(self) -> list[str]:
        """Labels of the visits with areas, in order."""
        shown = set(self.areas["scan"])
        return [label for stem, label in self.labels.items() if stem in shown]

    @property
    def missing(self) -> list[str]:
        """Labels of the visits without labels from ``source`` (or whose labels could not be read)."""
        shown = set(self.areas["scan"])
        return [label for stem, label in self.labels.items() if stem not in shown]

    def entry(self, label: str):
        """The ScanEntry of a visit, by its label or scan stem."""
        for entry in self.visits:
            if label in (entry.stem, self.labels[entry.stem]):
                return entry
        raise KeyError(label)

    def changes(self, compartment: str, **kwargs) -> pd.DataFrame:
        """:func:`changes` of this series (visits named as in :attr:`labels`)."""
        return changes(self.areas, compartment, labels=self.labels, **kwargs)


def subject_series(study, subject: str, source: str = "score", *, qc: QcDecisions | None = None,
                   use_qc: bool = True, errors: dict[str, str] | None = None) -> SubjectSeries:
    """Read one label source's per-slice areas for every session of ``subject``.

    Parameters
    ----------
    study : Study
    subject : str
        Subject ID without ``sub-``.
    source : str
        ``<who>`` of the label maps: ``score`` (the ensemble), ``raterA``, ``consensus``, ...
    qc : QcDecisions, optional
        Decisions to apply; default: the study's QC log when it has one (``use_qc=False``: none).
    errors : dict, optional
        Without it, the first unreadable label map raises :class:`ScoreInputError`; with it,
        its message goes there and the other sessions are still read.

    Raises
    ------
    ScoreInputError
        No scan of ``subject`` in the study, or (without ``errors``) a bad label map.
    """
    visits = subject_visits(study, subject)
    if not visits:
        raise ScoreInputError(study.root, f"no scan of subject {subject!r} in the study")
    if qc is None and use_qc and study.qc_dir.exists():
        qc = read_qc(study.qc_dir)
    found = {} if errors is None else errors
    tables = []
    for entry in visits:
        dseg = entry.dseg_path(source)
        if not dseg.exists():
            continue
        status = qc.status_map(entry.stem, source) if (qc is not None and use_qc) else None
        try:
            tables.append(label_file_areas(dseg, qc=status, scan_path=entry.path))
        except ScoreInputError as exc:
            if errors is None:
                raise
            found[str(dseg)] = str(exc)
    areas = pd.concat(tables, ignore_index=True)[COLUMNS] if tables else pd.DataFrame(columns=COLUMNS)
    return SubjectSeries(subject, source, visits, areas, dict(found))


def changes(areas: pd.DataFrame, compartment: str, *, baseline: str | None = None,
            rsd: float | dict[str, float] | None = None, by: str = "slice",
            confidence: float = CONFIDENCE, labels: dict[str, str] | None = None) -> pd.DataFrame:
    """One compartment's area per position and session next to the baseline's, with the band.

    Parameters
    ----------
    areas : DataFrame
        An areas table (contract section 3) of one subject and source: at least ``session``,
        ``scan``, ``slice``, ``level``, ``qc_status`` and ``compartment``. Slices failed by QC
        stay in the result, marked, with no area (they never count in a change).
    compartment : str
        An area column (``cord``, ``wm``, ``gm``, ``anterior_horns``, ...).
    baseline : str, optional
        The reference visit (its label or scan stem); default: the first.
    rsd : float or dict, optional
        Scan-rescan RSD (%) for this compartment, or a table overriding
        :data:`RESCAN_RSD_PERCENT`. No RSD known: no band (``beyond_lsc`` is NA).
    by : ``"slice"`` or ``"level"``
        Compare slice by slice (same slice index; the RSD is per slice), or the mean area of a
        level's slices (the per-slice band is then wider than needed: conservative).
    labels : dict, optional
        ``{scan stem: visit label}``; default: :func:`visit_label`.

    Returns
    -------
    DataFrame
        :data:`CHANGE_COLUMNS`, ordered by position (cranial first) then visit. ``change_*`` is
        the session's area minus the baseline's; ``beyond_lsc`` says whether it leaves the band.
    """
    if compartment not in AREA_COLUMNS:
        raise ValueError(f"unknown compartment {compartment!r}; one of {AREA_COLUMNS}")
    if by not in ("slice", "level"):
        raise ValueError(f"by must be 'slice' or 'level', not {by!r}")
    if areas.empty:
        return pd.DataFrame(columns=CHANGE_COLUMNS)
    table = areas.reset_index(drop=True)
    scans = list(dict.fromkeys(table["scan"].astype(str)))
    if labels is None:
        first_session = table.groupby("scan", sort=False)["session"].first()
        sessions = [str(first_session[s]) if pd.notna(first_session[s]) else "" for s in scans]
        labels = {s: visit_label(ses, s, sessions) for s, ses in zip(scans, sessions)}
    names = [labels.get(s, s) for s in scans]
    if baseline is None:
        base_scan = scans[0]
    else:
        matches = [s for s, n in zip(scans, names) if baseline in (s, n)]
        if not matches:
            raise ValueError(f"baseline {baseline!r} is not one of the visits {names}")
        base_scan = matches[0]

    failed = table["qc_status"].astype(str).eq("fail")
    value = pd.to_numeric(table[compartment], errors="coerce").where(~failed)
    level = table["level"].fillna("").astype(str)
    frame = pd.DataFrame({"scan": table["scan"].astype(str), "slice": table["slice"].astype(int),
                          "level": level, "qc_status": table["qc_status"].astype(str), "area": value})
    if by == "slice":
        # A slice is named by the baseline's level (positions may shift by a few mm between visits).
        levels = frame[frame["level"] != ""].sort_values("scan", key=lambda s: s != base_scan, kind="stable") \
            .groupby("slice")["level"].first()
        frame["key"] = frame["slice"]
        frame["level"] = frame["slice"].map(levels).fillna("")
        frame["n_slices"] = frame["area"].notna().astype(int)
        frame["position"] = [f"{lv} s{s}" if lv else f"slice {s}" for lv, s in zip(frame["level"], frame["slice"])]
        keyed = frame
    else:
        frame["group"] = frame["level"].where(frame["level"] != "", "slice " + frame["slice"].astype(str))
        order = frame.groupby("group")["slice"].median()
        keyed = frame.groupby(["scan", "group"], sort=False).agg(
            area=("area", "mean"), n_slices=("area", "count"), qc_status=("qc_status", _level_status),
        ).reset_index()
        keyed["key"] = keyed["group"].map(order)
        keyed["slice"] = np.nan
        keyed["level"] = keyed["group"].where(~keyed["group"].str.startswith("slice "), "")
        keyed["position"] = keyed["group"]

    base = keyed[keyed["scan"] == base_scan].set_index("position")["area"]
    rsd_value = rescan_rsd(compartment, rsd)
    lsc = least_significant_change(rsd_value, confidence) if rsd_value is not None else math.nan
    out = keyed.assign(visit_order=keyed["scan"].map({s: i for i, s in enumerate(scans)}))
    out = out.sort_values(["key", "visit_order"], kind="stable").reset_index(drop=True)
    out["session"] = out["scan"].map(dict(zip(scans, names)))
    out["baseline"] = dict(zip(scans, names))[base_scan]
    out["area_mm2"] = out["area"]
    out["baseline_mm2"] = out["position"].map(base)
    out["change_mm2"] = out["area_mm2"] - out["baseline_mm2"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["change_percent"] = out["change_mm2"] / out["baseline_mm2"] * 100.0
    out.loc[~(out["baseline_mm2"] > 0), "change_percent"] = np.nan
    out["rsd_percent"] = np.nan if rsd_value is None else rsd_value
    out["lsc_percent"] = lsc
    out["band_low_mm2"] = out["baseline_mm2"] * (1 - lsc / 100.0)
    out["band_high_mm2"] = out["baseline_mm2"] * (1 + lsc / 100.0)
    beyond = (out["change_percent"].abs() > lsc).astype("boolean")
    beyond[out["change_percent"].isna() | (not math.isfinite(lsc))] = pd.NA
    out["beyond_lsc"] = beyond
    return out[CHANGE_COLUMNS]


def _level_status(statuses: pd.Series) -> str:
    """A level's QC status from its slices': all the same, or ``partly failed``."""
    unique = set(statuses)
    if len(unique) == 1:
        return unique.pop()
    return "partly failed" if "fail" in unique else "unreviewed"


def change_summary(table: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Per session (baseline aside): positions compared, how many left the band, how many
    would by chance alone, and the mean change (%).

    Examples
    --------
    >>> t = pd.DataFrame({"session": ["ses-1", "ses-2", "ses-1", "ses-2"], "scan": ["a", "b", "a", "b"],
    ...                   "baseline": "ses-1", "change_percent": [0.0, -6.0, 0.0, -2.0],
    ...                   "beyond_lsc": pd.array([False, True, False, False], dtype="boolean")})
    >>> change_summary(t).to_dict("records")
    [{'session': 'ses-2', 'scan': 'b', 'n_compared': 2, 'n_beyond': 1, 'expected_by_chance': 0.1, 'mean_change_percent': -4.0}]
    """
    rows = []
    visits = list(dict.fromkeys(zip(table["session"], table["scan"], table["baseline"])))
    for session, scan, baseline in visits:
        if session == baseline:
            continue
        own = table[(table["scan"] == scan) & table["beyond_lsc"].notna()]
        rows.append({"session": session, "scan": scan, "n_compared": int(len(own)),
                     "n_beyond": int(own["beyond_lsc"].astype(bool).sum()),
                     "expected_by_chance": round(len(own) * (1 - confidence), 2),
                     "mean_change_percent": float(own["change_percent"].mean()) if len(own) else math.nan})
    return pd.DataFrame(rows, columns=["session", "scan", "n_compared", "n_beyond", "expected_by_chance",
                                       "mean_change_percent"])
