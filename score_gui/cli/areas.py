"""``score areas``: per-slice compartment areas of one label map or of a whole study.

::

    score areas --dseg DSEG [--lesion LESION] [--qc QCFILE] -o areas.csv
    score areas --study STUDY [--sources score,raterA] [--qc QCFILE] [-o areas.csv|areas.xlsx]

Output columns follow contract section 3; ``.xlsx`` writes an Excel workbook (areas and a
summary sheet over the slices that passed QC).
"""

from __future__ import annotations

from pathlib import Path

from score_gui.cli._args import workers
from score_gui.errors import ScoreInputError
from score_gui.outputs import FORCE_HELP
from score_gui.progress import run_with_progress


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("areas", help="per-slice compartment areas (mm²) as CSV or Excel",
                                   description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--dseg", type=Path, help="a label map <stem>_desc-<who>_dseg.nii.gz")
    what.add_argument("--study", type=Path, help="a study folder: every label map of every scan")
    parser.add_argument("--lesion", type=Path, help="lesion map (default: the _lesion file beside the dseg)")
    parser.add_argument("--qc", type=Path, help="QC decisions: score qc export's TSV or a study's QC log")
    parser.add_argument("--sources", help="comma-separated label sources for --study (default: all)")
    parser.add_argument("--workers", type=workers, default=None, help="processes reading files (--study)")
    parser.add_argument("-o", "--output", type=Path,
                        help="areas.csv or areas.xlsx (default for --study: derivatives/score/areas.csv)")
    parser.add_argument("--force", action="store_true", help=FORCE_HELP)
    parser.set_defaults(func=run)


def run(args) -> int:
    from score_gui.naming import parse_label_name
    from score_gui.areas import (label_file_areas, read_qc, study_areas_job,
                                 write_areas_table)
    from score_gui.filesets import recover_folders_of
    from score_gui.outputs import guard_output

    if args.output is not None:
        guard_output(args.output, inputs=(args.dseg, args.lesion, args.qc), force=args.force)
    recover_folders_of([args.dseg, args.lesion])  # a segment run killed while writing: make it whole
    qc = read_qc(args.qc) if args.qc else None
    if args.dseg is not None:
        if args.output is None:
            raise ScoreInputError(args.dseg, "give the output file with -o areas.csv")
        if args.sources:
            raise ScoreInputError(None, "--sources goes with --study")
        names = parse_label_name(args.dseg)
        qc_map = qc.status_map(names.stem, names.source) if qc else None
        table = label_file_areas(args.dseg, args.lesion, qc=qc_map)
    else:
        from score_gui.study import Study

        if args.lesion is not None:
            raise ScoreInputError(args.lesion, "--lesion goes with --dseg")
        study = Study.open(args.study)
        if qc is None and study.qc_dir.exists():
            try:
                qc = read_qc(study.qc_dir)
            except ScoreInputError:
                qc = None  # no reader for the study's log yet: every slice unreviewed
        sources = [s.strip() for s in args.sources.split(",") if s.strip()] if args.sources else None
        table = run_with_progress(study_areas_job(study, sources, qc, args.workers))
        if table.empty:
            raise ScoreInputError(study.root, "no label maps found in the study"
                                  + (f" for sources {','.join(sources)}" if sources else ""))
        args.output = args.output or study.areas_csv
    write_areas_table(table, args.output)
    n_failed = int((table["qc_status"] == "fail").sum())
    print(f"wrote {args.output}: {len(table)} slices ({n_failed} failed QC)")
    return 0
