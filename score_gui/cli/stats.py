"""``score stats``: study statistics tables (areas, agreement, reproducibility, normalisation,
MS vs HC).

::

    score stats STUDY [--covariates covariates.csv] [--groups FILE] [--qc QCFILE]
                      [--source score] [--normalise-by TIV] -o stats/

Subject groups (HC/MS) come from ``--groups``, else the study's ``participants.tsv``
(``participant_id``, ``group``), else a ``group`` column of the covariates table. Slices
that failed QC are left out of every statistic. Written into the output folder:
``areas.csv``, ``summary.csv``, ``agreement.csv`` + ``agreement_summary.csv`` (scans with
two or more label sources), ``reproducibility.csv`` + ``reproducibility_summary.csv``
(subjects scanned more than once), ``normalisation.csv`` (covariates), ``group_comparison.csv``
(groups) and all of them as sheets of ``stats.xlsx``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from score_gui.atomic import atomic_path, ensure_writable_dir
from score_gui.errors import ScoreInputError
from score_gui.outputs import FORCE_HELP, guard_output


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("stats", help="study statistics: agreement, reproducibility, "
                                   "normalisation, MS vs HC", description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, help="study folder")
    parser.add_argument("--covariates", type=Path, help="CSV/TSV/XLSX: subject, TIV, age, sex, ...")
    parser.add_argument("--groups", type=Path, help="table with subject (or participant_id) and group")
    parser.add_argument("--qc", type=Path, help="QC decisions (default: the study's QC log)")
    parser.add_argument("--source", default="score", help="label source for areas statistics (default score)")
    parser.add_argument("--normalise-by", dest="normalise_by",
                        help="covariate to normalise areas by before the group comparison (e.g. TIV)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument("--force", action="store_true", help=FORCE_HELP)
    parser.set_defaults(func=run)


def _groups(args, covariates):
    from score_gui.stats import read_groups

    if args.groups is not None:
        return read_groups(None, args.groups)
    if (args.study / "participants.tsv").is_file():
        return read_groups(args.study)
    if covariates is not None and "group" in covariates:
        table = covariates.dropna(subset=["group"])
        return dict(zip(table["subject"], table["group"].astype(str).str.strip().str.upper()))
    return None


def compute_tables(args) -> dict:
    import pandas as pd

    """Every table ``score stats`` writes, by name."""
    from score_gui.agreement import (agreement_summary, reproducibility, reproducibility_summary,
                                     study_agreement_job)
    from score_gui.areas import read_qc, study_areas_job, summary_table
    from score_gui.progress import run_with_progress
    from score_gui.stats import (MAIN_COMPARTMENTS, check_numeric_covariate, group_comparison, long_areas,
                                 normalisation_table, read_covariates, residual_normalise)
    from score_gui.study import Study

    study = Study.open(args.study)
    qc = read_qc(args.qc) if args.qc else (read_qc(study.qc_dir) if study.qc_dir.exists() else None)
    covariates = read_covariates(args.covariates) if args.covariates else None
    if args.normalise_by:  # checked before the long work, not found missing at the end
        if covariates is None:
            raise ScoreInputError(None, "--normalise-by needs --covariates")
        check_numeric_covariate(covariates, args.normalise_by, args.covariates)
    groups = _groups(args, covariates)
    areas = run_with_progress(study_areas_job(study, None, qc))
    if areas.empty:
        raise ScoreInputError(study.root, "no label maps found in the study")
    tables = {"areas": areas, "summary": summary_table(areas)}
    agreement = run_with_progress(study_agreement_job(study, qc))
    if len(agreement):
        tables["agreement"] = agreement
        tables["agreement_summary"] = agreement_summary(agreement)
    pairs = reproducibility(areas, args.source)
    if len(pairs):
        tables["reproducibility"] = pairs
        tables["reproducibility_summary"] = reproducibility_summary(pairs)
    long = long_areas(areas, MAIN_COMPARTMENTS, args.source, groups)
    if long.empty:
        warnings.warn(f"no areas of source {args.source!r} passed QC: no normalisation or group tables")
        return tables
    if covariates is not None:
        numeric = [c for c in covariates.columns if c not in ("subject", "participant_id", "group")
                   and pd.to_numeric(covariates[c], errors="coerce").notna().sum() >= 3]
        if numeric:
            tables["normalisation"] = normalisation_table(long, covariates, numeric)
    if groups is None:
        warnings.warn("no subject groups (participants.tsv, --groups, or a 'group' covariate): "
                      "no group comparison")
        return tables
    comparison = group_comparison(long)
    if args.normalise_by:
        normalised, fits = residual_normalise(long, covariates, args.normalise_by)
        if not fits:
            raise ScoreInputError(args.covariates, f"--normalise-by {args.normalise_by}: nothing to normalise "
                                                   f"(needs 3 or more control subjects with areas and a "
                                                   f"{args.normalise_by} value)")
        comparison = pd.concat([comparison, group_comparison(normalised, value="area_norm")],
                               ignore_index=True)
    tables["group_comparison"] = comparison
    return tables


def write_tables(tables: dict, folder: Path) -> list[Path]:
    import pandas as pd

    """CSV per table plus one Excel workbook with a sheet each."""
    folder = ensure_writable_dir(folder)
    written = []
    for name, table in tables.items():
        path = folder / f"{name}.csv"
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")
        written.append(path)
    book = folder / "stats.xlsx"
    with atomic_path(book) as tmp:
        with pd.ExcelWriter(tmp, engine="openpyxl") as writer:
            for name, table in tables.items():
                table.to_excel(writer, sheet_name=name[:31], index=False)
    return written + [book]


TABLE_NAMES = ("areas", "summary", "agreement", "agreement_summary", "reproducibility",
               "reproducibility_summary", "normalisation", "group_comparison")
"""Every table :func:`compute_tables` may return (files ``<name>.csv``)."""


def run(args) -> int:
    if args.output.is_dir():  # checked before the long work: no output may replace an input
        for name in [f"{n}.csv" for n in TABLE_NAMES] + ["stats.xlsx"]:
            guard_output(args.output / name, inputs=(args.covariates, args.groups, args.qc), force=args.force)
    tables = compute_tables(args)
    written = write_tables(tables, args.output)
    print(f"wrote {len(written)} files to {args.output}: {', '.join(p.name for p in written)}")
    if "group_comparison" in tables:
        significant = tables["group_comparison"].query("significant")
        for row in significant.itertuples():
            print(f"  {row.value} {row.compartment}: MS - HC = {row.difference:.2f} mm² "
                  f"({row.percent_difference:.1f}%), p_FDR = {row.p_fdr:.3g}")
    return 0
