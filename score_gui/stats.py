"""Study statistics: covariates, residual normalisation, intersubject RSD, MS vs HC.

Everything here works on an areas table (contract section 3) and leaves out slices that
failed QC (:func:`score_gui.areas.passed`) before any aggregate.

- **Groups** (HC/MS) come from the study's BIDS ``participants.tsv`` (columns
  ``participant_id``, ``group``) or from any table with ``subject``/``participant_id`` and
  ``group`` columns (``score stats --groups FILE``).
- **Normalisation** (residual method, Papinutto et al. 2015/2020, as in the SCORE paper):
  in the controls, fit ``area ~ C(level) + covariate`` (OLS; the level term keeps the
  cranio-caudal area profile out of the slope), then
  ``area_norm = area - beta * (covariate - mean covariate of the controls)``.
- **Intersubject RSD** (relative SD, coefficient of variation): per slice level, the
  SD/mean x 100 of the subjects' areas, averaged over levels; compared before and after
  normalisation with the Feltz & Miller (1996) asymptotic test.
- **Group comparison**: per compartment a linear mixed-effects model
  ``area ~ group [+ covariates]`` with crossed random intercepts for subject and slice
  level (statsmodels ``MixedLM`` variance components), p-values FDR-corrected
  (Benjamini-Hochberg) across compartments.

Examples
--------
>>> round(relative_sd([9.0, 10.0, 11.0]), 2)
10.0
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from score_gui.areas import AREA_COLUMNS, passed
from score_gui.errors import ScoreInputError

MAIN_COMPARTMENTS = ("canal", "cord", "wm", "gm", "anterior_horns", "posterior_horns", "gray_commissure",
                     "lesion", "na_wm", "na_gm")
"""Compartments reported by default (total and normal-appearing tissue)."""

CONTROL_GROUP = "HC"


# -- inputs ------------------------------------------------------------------------------

def _subject_id(value) -> str:
    text = str(value).strip()
    return text[4:] if text.startswith("sub-") else text


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV/TSV/Excel table with one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise ScoreInputError(path, "file not found")
    try:
        if path.suffix.lower() in (".xlsx", ".xls"):
            return pd.read_excel(path, dtype={"subject": str, "participant_id": str})
        sep = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
        return pd.read_csv(path, sep=sep, dtype={"subject": str, "participant_id": str})
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, OSError) as exc:
        raise ScoreInputError(path, f"cannot read table ({exc})") from None


def _with_subject_column(table: pd.DataFrame, path) -> pd.DataFrame:
    table = table.copy()
    if "subject" not in table:
        if "participant_id" not in table:
            raise ScoreInputError(path, "table needs a 'subject' or 'participant_id' column")
        table["subject"] = table["participant_id"]
    table["subject"] = table["subject"].map(_subject_id)
    return table


def read_groups(study_root: str | Path | None = None, groups_file: str | Path | None = None) -> dict[str, str]:
    """``{subject: group}`` from ``groups_file`` or the study's ``participants.tsv``.

    Raises
    ------
    ScoreInputError
        No groups table, or one without a ``group`` column.
    """
    path = Path(groups_file) if groups_file else (Path(study_root) / "participants.tsv" if study_root else None)
    if path is None or not path.is_file():
        raise ScoreInputError(path or study_root, "no participants.tsv with a 'group' column; "
                                                  "give one with --groups FILE")
    table = _with_subject_column(read_table(path), path)
    if "group" not in table:
        raise ScoreInputError(path, "table lacks a 'group' column (e.g. HC, MS)")
    table = table.dropna(subset=["group"])
    # Group names compare case-insensitively (a demo study writes 'hc'/'ms').
    return dict(zip(table["subject"], table["group"].astype(str).str.strip().str.upper()))


def read_covariates(path: str | Path) -> pd.DataFrame:
    """A covariates table (``subject`` or ``participant_id``, then e.g. TIV, age, sex, ...)."""
    return _with_subject_column(read_table(path), path)


def check_numeric_covariate(covariates: pd.DataFrame, name: str, path: str | Path | None = None) -> None:
    """Refuse a covariate to normalise by that is missing or holds text where numbers belong.

    Empty cells are allowed (those subjects are left out of the normalisation); a cell that
    is not a number (``1500 ml``, ``n/a?``) would silently drop its subject, so it is an error.

    Raises
    ------
    ScoreInputError
        Naming ``path``, the column, and the first offending subject and value.

    Examples
    --------
    >>> table = pd.DataFrame({"subject": ["01", "02"], "TIV": ["1500", "big"]})
    >>> check_numeric_covariate(table, "TIV", "cov.csv")
    Traceback (most recent call last):
    ...
    score_gui.errors.ScoreInputError: cov.csv: column 'TIV' must hold numbers; subject 02 has 'big'
    """
    if name not in covariates:
        others = ", ".join(c for c in covariates.columns if c not in ("subject", "participant_id"))
        raise ScoreInputError(path, f"covariate {name!r} not in the covariates table (has {others})")
    given = covariates[name].notna() & (covariates[name].astype(str).str.strip() != "")
    numbers = pd.to_numeric(covariates[name], errors="coerce")
    bad = given & ~np.isfinite(numbers.astype(float))
    if bad.any():
        first = covariates[bad].iloc[0]
        raise ScoreInputError(path, f"column {name!r} must hold numbers; subject {first['subject']} "
                                    f"has {str(first[name])!r}")
    if not given.any():
        raise ScoreInputError(path, f"column {name!r} is empty")


def long_areas(table: pd.DataFrame, compartments=MAIN_COMPARTMENTS, source: str | None = "score",
               groups: dict[str, str] | None = None) -> pd.DataFrame:
    """Passed slices of one source in long form: one row per slice and compartment.

    ``level`` falls back to the slice number when the sidecar gave none; rows without an
    area (unlabelled, unknown) are dropped.
    """
    kept = passed(table)
    if source is not None:
        kept = kept[kept["source"] == source]
    kept = kept.copy()
    kept["subject"] = kept["subject"].astype(str)
    level = kept["level"].fillna("").astype(str)
    kept["level"] = level.where(level != "", "slice" + kept["slice"].astype(str))
    long = kept.melt(id_vars=["subject", "session", "scan", "slice", "level"],
                     value_vars=[c for c in compartments if c in AREA_COLUMNS],
                     var_name="compartment", value_name="area")
    long["area"] = pd.to_numeric(long["area"], errors="coerce")
    long = long.dropna(subset=["area"])
    if groups is not None:
        long["group"] = long["subject"].map(groups)
    return long.reset_index(drop=True)


# -- RSD and normalisation -----------------------------------------------------------------

def relative_sd(values) -> float:
    """SD / mean x 100 (sample SD, ddof = 1); NaN with fewer than 2 values or mean 0."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if len(values) < 2 or values.mean() == 0:
        return float("nan")
    return float(values.std(ddof=1) / abs(values.mean()) * 100.0)


def intersubject_rsd(long: pd.DataFrame, value: str = "area") -> tuple[float, int]:
    """Mean over levels of the RSD across subjects (subject mean per level); and the mean n."""
    per_subject = long.groupby(["level", "subject"])[value].mean().reset_index()
    rsds, counts = [], []
    for _, group in per_subject.groupby("level"):
        if len(group) >= 2:
            rsds.append(relative_sd(group[value]))
            counts.append(len(group))
    finite = [r for r in rsds if np.isfinite(r)]
    if not finite:
        return float("nan"), 0
    return float(np.mean(finite)), int(round(np.mean(counts)))


def feltz_miller(cvs, ns) -> tuple[float, float]:
    """Feltz & Miller (1996) asymptotic test that k coefficients of variation are equal.

    ``cvs`` as fractions (not %), ``ns`` sample sizes. Returns ``(statistic, p)``; the
    statistic is chi-squared with k - 1 degrees of freedom.

    Examples
    --------
    >>> stat, p = feltz_miller([0.05, 0.10], [30, 30])
    >>> round(stat, 2), p < 0.001
    (12.75, True)
    """
    cvs, ns = np.asarray(cvs, float), np.asarray(ns, float)
    m = ns - 1
    pooled = float((m * cvs).sum() / m.sum())
    statistic = float(((m * cvs ** 2).sum() - (m * cvs).sum() ** 2 / m.sum()) / (pooled ** 2 * (0.5 + pooled ** 2)))
    statistic = max(statistic, 0.0)  # rounding can give -0 for equal CVs
    return statistic, float(sps.chi2.sf(statistic, len(cvs) - 1))


def _ols_slope(frame: pd.DataFrame, covariate: str) -> tuple[float, float]:
    """Slope (and its p) of ``area ~ C(level) + covariate`` by least squares."""
    import statsmodels.formula.api as smf

    formula = f"area ~ Q('{covariate}')" + (" + C(level)" if frame["level"].nunique() > 1 else "")
    fit = smf.ols(formula, data=frame).fit()
    name = f"Q('{covariate}')"
    return float(fit.params[name]), float(fit.pvalues[name])


def residual_normalise(long: pd.DataFrame, covariates: pd.DataFrame, covariate: str,
                       control_group: str = CONTROL_GROUP) -> tuple[pd.DataFrame, dict]:
    """Add ``area_norm`` by the residual method on ``covariate`` (slope from the controls).

    Returns the table (rows without the covariate dropped) and per compartment
    ``{compartment: (slope, p, covariate mean of the controls)}``. Without a ``group``
    column every subject counts as a control.
    """
    if covariate not in covariates:
        raise ScoreInputError(None, f"covariate {covariate!r} not in the covariates table "
                                    f"(has {', '.join(c for c in covariates.columns if c != 'subject')})")
    values = covariates[["subject", covariate]].copy()
    values[covariate] = pd.to_numeric(values[covariate], errors="coerce")
    merged = long.merge(values.dropna(), on="subject", how="inner")
    controls = merged if "group" not in merged else merged[merged["group"] == control_group]
    parts, fits = [], {}
    for name, frame in merged.groupby("compartment", sort=False):
        ctrl = controls[controls["compartment"] == name]
        if ctrl["subject"].nunique() < 3 or not ctrl["area"].std() > 0:
            continue  # too few controls, or a constant area (e.g. no lesions): nothing to fit
        slope, p = _ols_slope(ctrl, covariate)
        centre = float(ctrl.groupby("subject")[covariate].first().mean())
        frame = frame.copy()
        frame["area_norm"] = frame["area"] - slope * (frame[covariate] - centre)
        parts.append(frame)
        fits[name] = (slope, p, centre)
    if not parts:
        return merged.assign(area_norm=np.nan).iloc[:0], fits
    return pd.concat(parts, ignore_index=True), fits


def normalisation_table(long: pd.DataFrame, covariates: pd.DataFrame, names: list[str],
                        control_group: str = CONTROL_GROUP) -> pd.DataFrame:
    """Intersubject RSD of the controls before and after normalisation, per covariate.

    Columns: compartment, covariate, slope, slope_p, rsd_raw_percent, rsd_norm_percent,
    rsd_change_percent, feltz_miller_p, n_subjects.
    """
    rows = []
    for covariate in names:
        normalised, fits = residual_normalise(long, covariates, covariate, control_group)
        controls = normalised if "group" not in normalised else normalised[normalised["group"] == control_group]
        for name, (slope, p, _centre) in fits.items():
            frame = controls[controls["compartment"] == name]
            raw, n = intersubject_rsd(frame, "area")
            norm, _ = intersubject_rsd(frame, "area_norm")
            _stat, fm_p = feltz_miller([raw / 100, norm / 100], [n, n]) if n >= 2 else (np.nan, np.nan)
            rows.append({"compartment": name, "covariate": covariate, "slope": slope, "slope_p": p,
                         "rsd_raw_percent": raw, "rsd_norm_percent": norm,
                         "rsd_change_percent": norm - raw, "feltz_miller_p": fm_p, "n_subjects": n})
    return pd.DataFrame(rows, columns=["compartment", "covariate", "slope", "slope_p", "rsd_raw_percent",
                                       "rsd_norm_percent", "rsd_change_percent", "feltz_miller_p",
                                       "n_subjects"])


# -- group comparison ------------------------------------------------------------------------

GROUP_COLUMNS = ["compartment", "value", "n_hc", "n_ms", "mean_hc", "mean_ms", "difference",
                 "ci_low", "ci_high", "percent_difference", "p_value", "p_fdr", "significant",
                 "converged"]


def fit_group_model(frame: pd.DataFrame, value: str = "area", case_group: str = "MS",
                    control_group: str = CONTROL_GROUP, covariates: tuple[str, ...] = ()):
    """Mixed model ``value ~ group + covariates`` with crossed random intercepts (subject, level).

    Crossed random effects in statsmodels: one group holding every row, with a variance
    component per subject and per level. Returns the fitted result.
    """
    import statsmodels.formula.api as smf

    data = frame[frame["group"].isin([control_group, case_group])].copy()
    data["is_case"] = (data["group"] == case_group).astype(float)
    data["all"] = 1
    formula = f"{value} ~ is_case" + "".join(f" + Q('{c}')" for c in covariates)
    components = {"subject": "0 + C(subject)"}
    if data["level"].nunique() > 1:
        components["level"] = "0 + C(level)"
    model = smf.mixedlm(formula, data, groups="all", re_formula="0", vc_formula=components)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes are reported in 'converged'
        try:
            return model.fit(reml=True, method=["lbfgs", "powell"])
        except (np.linalg.LinAlgError, ValueError):
            return model.fit(reml=True, method="nm", maxiter=2000)


def group_comparison(long: pd.DataFrame, value: str = "area", case_group: str = "MS",
                     control_group: str = CONTROL_GROUP, covariates: tuple[str, ...] = (),
                     alpha: float = 0.05) -> pd.DataFrame:
    """MS vs HC per compartment (mixed model), FDR-corrected; a tidy table (:data:`GROUP_COLUMNS`)."""
    from statsmodels.stats.multitest import multipletests

    if "group" not in long:
        raise ScoreInputError(None, "no subject groups: add participants.tsv or give --groups")
    rows = []
    for name, frame in long.groupby("compartment", sort=False):
        frame = frame.dropna(subset=[value])
        n_hc = frame.loc[frame["group"] == control_group, "subject"].nunique()
        n_ms = frame.loc[frame["group"] == case_group, "subject"].nunique()
        if n_hc < 2 or n_ms < 2 or frame[value].std() == 0:
            continue
        fit = fit_group_model(frame, value, case_group, control_group, covariates)
        low, high = fit.conf_int().loc["is_case"]
        mean_hc = frame.loc[frame["group"] == control_group].groupby("subject")[value].mean().mean()
        mean_ms = frame.loc[frame["group"] == case_group].groupby("subject")[value].mean().mean()
        difference = float(fit.params["is_case"])
        rows.append({"compartment": name, "value": value, "n_hc": n_hc, "n_ms": n_ms,
                     "mean_hc": mean_hc, "mean_ms": mean_ms, "difference": difference,
                     "ci_low": float(low), "ci_high": float(high),
                     "percent_difference": 100.0 * difference / mean_hc if mean_hc else np.nan,
                     "p_value": float(fit.pvalues["is_case"]), "converged": bool(fit.converged)})
    table = pd.DataFrame(rows, columns=[c for c in GROUP_COLUMNS if c not in ("p_fdr", "significant")])
    if len(table):
        reject, p_fdr, _, _ = multipletests(table["p_value"].fillna(1.0), alpha=alpha, method="fdr_bh")
        table["p_fdr"], table["significant"] = p_fdr, reject
    else:
        table["p_fdr"], table["significant"] = [], []
    return table[GROUP_COLUMNS]
