"""Agreement and reproducibility, as in the SCORE paper (Tsagkas et al. 2023).

**Agreement** (per scan, slice and compartment; Dice, Hausdorff, HD95 from
:mod:`score_gui.metrics`, plus both areas), for each pair of label sources of a scan:

==================== ==========================================================
``inter-rater``      every pair of raters (``desc-rater<ID>``)
``rater-consensus``  each rater vs the consensus
``score-consensus``  the automatic result (``desc-score``) vs the consensus: accuracy
``score-rater``      the automatic result vs each rater (useful with one rater)
``rater-truth``      each rater vs ``desc-truth`` (synthetic studies only)
``score-truth``      the automatic result vs ``desc-truth`` (synthetic studies only)
==================== ==========================================================

The consensus is ``desc-consensus`` when the study has it, otherwise the majority vote of
the scan's raters (:func:`score_gui.consensus.majority_vote`: per structure, strict
majority, nested) when there are at least three raters. Compartments: canal, cord, wm, gm,
the horns, gray commissure, lesion, and normal-appearing ``na_wm``/``na_gm`` when both
sides have lesion maps. A slice counts as failed (``qc_status = fail``) when QC failed it
for either source; it stays in the table and is left out of :func:`agreement_summary`.

**Reproducibility** (scan-rescan, from an areas table): the relative SD (RSD, SD/mean x
100, also called the coefficient of variation) of a slice's area between two scans of the
same subject, slice by slice (same slice index), for total and normal-appearing tissue.
Two scans in the same session (e.g. ``_run-1``/``_run-2``, back to back) form an
``intra-session`` pair; scans in different sessions (``ses-1``/``ses-2``, after
repositioning) an ``inter-session`` pair. :func:`reproducibility_summary` gives mean RSD
per compartment per slice level and overall.

Examples
--------
>>> import numpy as np
>>> pair_rsd(np.array([100.0]), np.array([102.0])).round(3).tolist()
[1.4]
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Generator
from pathlib import Path

import numpy as np
import pandas as pd

from score_gui.areas import passed
from score_gui.labels import LABELLED_STRUCTURE_KEYS, LabelMap, load_label_volume, read_sidecar_labels
from score_gui.metrics import COMPARTMENTS, NORMAL_APPEARING, compare_labels
from score_gui.naming import parse_label_name
from score_gui.progress import Progress, drain

AGREEMENT_COMPARTMENTS = COMPARTMENTS + NORMAL_APPEARING
REPRODUCIBILITY_COMPARTMENTS = ("cord", "wm", "gm", "anterior_horns", "posterior_horns",
                                "gray_commissure", "na_wm", "na_gm")
_RUN = re.compile(r"_run-([A-Za-z0-9]+)")


# -- reading ------------------------------------------------------------------------------

def read_label_file(dseg_path) -> tuple[LabelMap, tuple[float, float], np.ndarray]:
    """A label map from file, slices first ``[S, X, Y]`` (no scan needed); spacing; affine."""
    dseg_path = Path(dseg_path)
    img, data = load_label_volume(dseg_path, "label map")
    lesion_file = Path(str(dseg_path).replace("_dseg.nii", "_lesion.nii"))
    lesion = None
    if lesion_file != dseg_path and lesion_file.exists():
        _limg, les = load_label_volume(lesion_file, "lesion map")
        lesion = np.moveaxis(les > 0, 2, 0).astype(np.uint8)
    meta = read_sidecar_labels(dseg_path)
    labelled = set(meta) if meta is not None else set(LABELLED_STRUCTURE_KEYS) - (
        set() if lesion is not None else {"lesion"})
    pixdim = img.header["pixdim"]
    label_map = LabelMap(np.moveaxis(data.astype(np.uint8), 2, 0), lesion, labelled,
                         parse_label_name(dseg_path).source, dseg_path)
    return label_map, (abs(float(pixdim[1])), abs(float(pixdim[2]))), np.asarray(img.affine)


def consensus_of(raters: list[LabelMap]) -> LabelMap:
    """Majority vote of the raters (needs two or more)."""
    from score_gui.consensus import majority_vote

    return majority_vote(raters, who="consensus")


def comparison_pairs(sources: list[str], have_consensus: bool) -> list[tuple[str, str, str]]:
    """``(kind, a, b)`` pairs to compare, ``b`` the reference.

    Examples
    --------
    >>> comparison_pairs(["raterA", "raterB", "score"], True)  # doctest: +NORMALIZE_WHITESPACE
    [('inter-rater', 'raterA', 'raterB'), ('rater-consensus', 'raterA', 'consensus'),
     ('rater-consensus', 'raterB', 'consensus'), ('score-consensus', 'score', 'consensus'),
     ('score-rater', 'score', 'raterA'), ('score-rater', 'score', 'raterB')]
    """
    raters = sorted(s for s in sources if s.startswith("rater") and len(s) > 5)
    pairs = [("inter-rater", a, b) for a, b in itertools.combinations(raters, 2)]
    if have_consensus:
        pairs += [("rater-consensus", r, "consensus") for r in raters]
        if "score" in sources:
            pairs.append(("score-consensus", "score", "consensus"))
    if "score" in sources:
        pairs += [("score-rater", "score", r) for r in raters]
    if "truth" in sources:  # synthetic studies know the true labels
        pairs += [("rater-truth", r, "truth") for r in raters]
        if "score" in sources:
            pairs.append(("score-truth", "score", "truth"))
    return pairs


# -- agreement -------------------------------------------------------------------------------

AGREEMENT_ID_COLUMNS = ["subject", "session", "scan", "kind", "source", "reference", "slice", "level",
                        "qc_status", "compartment"]


def scan_agreement(entry, qc=None, levels: list[str] | None = None) -> pd.DataFrame:
    """Agreement rows of one :class:`~score_gui.study.ScanEntry` (every comparison pair)."""
    sources = entry.label_sources()
    maps, spacing = {}, None
    for who in sources:
        maps[who], spacing, _affine = read_label_file(entry.dseg_path(who))
    raters = [maps[s] for s in sources if s.startswith("rater") and len(s) > 5]
    if "consensus" not in maps and len(raters) >= 3:  # a "majority" of two is their intersection
        maps["consensus"] = consensus_of(raters)
    pairs = comparison_pairs(sorted(maps), "consensus" in maps)
    tables = []
    for kind, a, b in pairs:
        pred, truth = maps[a], maps[b]
        if pred.dseg.shape != truth.dseg.shape:
            continue
        labelled = set(pred.labelled) & set(truth.labelled)
        table = compare_labels(pred.dseg, truth.dseg, spacing, pred_lesion=pred.lesion,
                               truth_lesion=truth.lesion, levels=levels,
                               compartments=AGREEMENT_COMPARTMENTS, labelled=labelled)
        failed = set()
        if qc is not None:
            for who in (a, b):
                failed |= {s for s, (status, _r) in qc.status_map(entry.stem, who).items() if status == "fail"}
        table.insert(0, "qc_status", np.where(table["slice"].isin(failed), "fail", "ok"))
        for name, value in (("reference", b), ("source", a), ("kind", kind), ("scan", entry.stem),
                            ("session", entry.session or ""), ("subject", entry.subject)):
            table.insert(0, name, value)
        tables.append(table)
    if not tables:
        return pd.DataFrame(columns=AGREEMENT_ID_COLUMNS)
    out = pd.concat(tables, ignore_index=True)
    front = [c for c in AGREEMENT_ID_COLUMNS if c in out]
    return out[front + [c for c in out.columns if c not in front]]


def study_agreement_job(study, qc=None) -> Generator[Progress, None, pd.DataFrame]:
    """Agreement of every scan of a study; one :class:`Progress` per scan."""
    from score_gui.areas import _scan_levels

    started = time.monotonic()
    scans = [e for e in study.scans if len(e.label_sources()) >= 2]
    tables = []
    for done, entry in enumerate(scans, start=1):
        first = entry.dseg_path(entry.label_sources()[0])
        n_slices = load_label_volume(first, "label map")[1].shape[2]
        tables.append(scan_agreement(entry, qc, _scan_levels(entry.path, n_slices)))
        yield Progress(done, len(scans), entry.stem, started)
    tables = [t for t in tables if len(t)]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=AGREEMENT_ID_COLUMNS)


def study_agreement(study, qc=None) -> pd.DataFrame:
    return drain(study_agreement_job(study, qc))


def agreement_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and SD of Dice, HD and HD95 per comparison kind and compartment (failed slices out)."""
    kept = table[table["qc_status"] != "fail"]
    stats = kept.groupby(["kind", "compartment"], sort=False)[["dice", "hausdorff_mm", "hd95_mm"]]
    out = stats.agg(["mean", "std", "count"])
    out.columns = [f"{metric}_{what}" for metric, what in out.columns]
    return out.reset_index()


# -- reproducibility -----------------------------------------------------------------------------

def pair_rsd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RSD (%) of two measurements: sample SD / mean x 100 = |a - b| / sqrt(2) / mean x 100."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    mean = (a + b) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mean > 0, np.abs(a - b) / np.sqrt(2) / mean * 100.0, np.nan)


def scan_run(stem: str) -> str:
    """The ``run`` entity of a scan stem, or ''."""
    match = _RUN.search(stem)
    return match.group(1) if match else ""


def reproducibility(areas: pd.DataFrame, source: str = "score",
                    compartments=REPRODUCIBILITY_COMPARTMENTS) -> pd.DataFrame:
    """Per-slice RSD of every scan-rescan pair of every subject (failed slices out).

    Columns: subject, kind (intra-session/inter-session), scan_a, scan_b, slice, level,
    compartment, area_a, area_b, rsd_percent.
    """
    kept = passed(areas[areas["source"] == source]).copy()
    kept["session"] = kept["session"].fillna("").astype(str)
    rows = []
    for subject, frame in kept.groupby("subject", sort=True):
        scans = frame[["scan", "session"]].drop_duplicates().sort_values(["session", "scan"]).values.tolist()
        for (scan_a, ses_a), (scan_b, ses_b) in itertools.combinations(scans, 2):
            kind = "intra-session" if ses_a == ses_b else "inter-session"
            a = frame[frame["scan"] == scan_a].set_index("slice")
            b = frame[frame["scan"] == scan_b].set_index("slice")
            common = a.index.intersection(b.index)
            for name in compartments:
                area_a = pd.to_numeric(a.loc[common, name], errors="coerce").to_numpy()
                area_b = pd.to_numeric(b.loc[common, name], errors="coerce").to_numpy()
                rsd = pair_rsd(area_a, area_b)
                for s, level, x, y, r in zip(common, a.loc[common, "level"], area_a, area_b, rsd):
                    if np.isfinite(r):
                        rows.append((subject, kind, scan_a, scan_b, int(s), level, name, x, y, r))
    return pd.DataFrame(rows, columns=["subject", "kind", "scan_a", "scan_b", "slice", "level",
                                       "compartment", "area_a", "area_b", "rsd_percent"])


def reproducibility_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Mean and SD of the RSD per kind and compartment, per slice level and ``level = 'all'``."""
    def summarise(frame, by):
        grouped = frame.groupby(by, sort=False)["rsd_percent"]
        return grouped.agg(rsd_mean_percent="mean", rsd_sd_percent="std", n="count").reset_index()
    levels = pairs.assign(level=pairs["level"].where(pairs["level"].astype(str) != "",
                                                     "slice" + pairs["slice"].astype(str)))
    per_level = summarise(levels, ["kind", "compartment", "level"])
    overall = summarise(pairs, ["kind", "compartment"]).assign(level="all")
    return pd.concat([overall, per_level], ignore_index=True)[
        ["kind", "compartment", "level", "rsd_mean_percent", "rsd_sd_percent", "n"]]
