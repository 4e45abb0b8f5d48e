"""``score qc``: record, undo, export and report per-slice QC decisions (contract sections 4, 6).

::

    score qc set STUDY --scan STEM --slice N --status pass|fail [--reason R] --reviewer NAME
                 [--comment C] [--source score]
    score qc undo STUDY --reviewer NAME [--scan STEM]
    score qc export STUDY -o qc.tsv

An image-level fail (image_artifact, poor_image_quality, posterior_arch_contact) fails the
slice for every source of the scan and is exported with source ``*``; a segmentation-level
fail stays with its source; a pass clears an earlier image-level fail (score_gui.qc.log).
    score qc report STUDY -o report.html [--source score] [--average 6-8] [--flagged-only]
    score qc suggest STUDY [--source score] [--scan STEM] [-o suggestions.tsv]
"""

from __future__ import annotations

import sys
from pathlib import Path

from score_gui.cli._args import non_negative_int
from score_gui.errors import ScoreInputError
from score_gui.outputs import FORCE_HELP, guard_output


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("qc", help="per-slice quality control: record, export, report",
                                   description="Per-slice QC decisions of a study (append-only log in "
                                               "STUDY/derivatives/score/qc).")
    actions = parser.add_subparsers(dest="qc_action", required=True, metavar="ACTION")

    set_ = actions.add_parser("set", help="record a decision on one slice")
    set_.add_argument("study", type=Path)
    set_.add_argument("--scan", required=True, help="scan stem, e.g. sub-01_ses-1_amira")
    set_.add_argument("--slice", required=True, type=non_negative_int, help="0-based slice number")
    set_.add_argument("--status", required=True, help="pass or fail")
    set_.add_argument("--reason", default="", help="required for fail: image_artifact, "
                      "posterior_arch_contact, lesion_misclassified, poor_image_quality, "
                      "segmentation_error, other")
    set_.add_argument("--reviewer", required=True)
    set_.add_argument("--comment", default="")
    set_.add_argument("--source", default="score", help="label source the decision is about (an "
                      "image-level fail counts for every source; * for all sources)")
    set_.set_defaults(func=run_set)

    undo = actions.add_parser("undo", help="undo the reviewer's latest decision (appends, never deletes)")
    undo.add_argument("study", type=Path)
    undo.add_argument("--reviewer", required=True)
    undo.add_argument("--scan", default=None)
    undo.set_defaults(func=run_undo)

    export = actions.add_parser("export", help="the decision in force per slice, as TSV")
    export.add_argument("study", type=Path)
    export.add_argument("-o", "--output", required=True, type=Path)
    export.add_argument("--force", action="store_true", help=FORCE_HELP)
    export.set_defaults(func=run_export)

    report = actions.add_parser("report", help="self-contained HTML report of a study")
    report.add_argument("study", type=Path)
    report.add_argument("-o", "--output", required=True, type=Path)
    report.add_argument("--force", action="store_true", help=FORCE_HELP)
    report.add_argument("--source", default="score")
    report.add_argument("--average", default="6-8", choices=("6-8", "1-5", "all"))
    report.add_argument("--flagged-only", action="store_true",
                        help="thumbnails only for failed or suggested slices (large studies)")
    report.set_defaults(func=run_report)

    suggest = actions.add_parser("suggest", help="automatic hints: slices worth a close look")
    suggest.add_argument("study", type=Path)
    suggest.add_argument("--source", default="score")
    suggest.add_argument("--scan", default=None, help="only this scan")
    suggest.add_argument("-o", "--output", type=Path, default=None, help="write TSV here")
    suggest.add_argument("--force", action="store_true", help=FORCE_HELP)
    suggest.set_defaults(func=run_suggest)


def run(args) -> int:
    return args.func(args)


def decision_for(study, scan: str, slice_index: int, status: str, reason: str, reviewer: str,
                 comment: str = "", source: str = "score"):
    """A :class:`~score_gui.qc.log.Decision` checked against the study (scan exists, slice in range)."""
    from score_gui.niftilib import nib

    from score_gui.qc.log import Decision

    entry = study.find(scan)
    try:
        n_slices = int(nib.load(str(entry.path)).shape[2])  # header only
    except Exception as exc:  # noqa: BLE001 - any unreadable header is bad input
        raise ScoreInputError(entry.path, f"cannot read the scan header ({exc})") from None
    if not 0 <= slice_index < n_slices:
        raise ScoreInputError(entry.path, f"slice {slice_index} out of range: the scan has "
                                          f"{n_slices} slices (0-{n_slices - 1})")
    return Decision(entry.subject, entry.session or "", entry.stem, int(slice_index), source,
                    status, reason, reviewer, comment)


def run_set(args) -> int:
    from score_gui.qc.log import QCLog, is_image_level
    from score_gui.study import Study

    study = Study.open(args.study)
    decision = decision_for(study, args.scan, args.slice, args.status, args.reason, args.reviewer,
                            args.comment, args.source)
    log = QCLog(study.root)
    image_before = log.image_fail(decision.scan, decision.slice)
    seq = log.record(decision)
    print(f"recorded #{seq}: {decision.scan} slice {decision.slice} {decision.source} "
          f"{decision.status}{' (' + decision.reason + ')' if decision.reason else ''} by {decision.reviewer}")
    if is_image_level(decision.status, decision.reason):
        print(f"  {decision.reason} judges the image: slice {decision.slice} fails for every source of the scan")
    elif decision.status == "pass" and image_before is not None:
        print(f"  clears the image-level fail ({image_before['reason']}, {image_before['source']}) "
              f"for every source of the scan")
    return 0


def run_undo(args) -> int:
    from score_gui.qc.log import QCLog
    from score_gui.study import Study

    study = Study.open(args.study)
    restored = QCLog(study.root).undo_last(args.reviewer, scan=args.scan)
    if restored is None:
        where = f" on {args.scan}" if args.scan else ""
        raise ScoreInputError(study.root, f"nothing to undo: reviewer {args.reviewer!r} has no decision{where} "
                                          "left to undo")
    print(f"undone: {restored.scan} slice {restored.slice} is {restored.status} again")
    return 0


def run_export(args) -> int:
    from score_gui.qc.log import QCLog
    from score_gui.study import Study

    guard_output(args.output, force=args.force)
    study = Study.open(args.study)
    log = QCLog(study.root)
    table = log.in_force()
    log.export(args.output)
    n_all = int((table["source"] == "*").sum())
    print(f"{len(table)} decisions in force ({n_all} image-level, source *) -> {args.output}")
    return 0


def run_report(args) -> int:
    from score_gui.progress import run_with_progress
    from score_gui.qc.report import write_report_job
    from score_gui.study import Study

    guard_output(args.output, force=args.force)
    study = Study.open(args.study)
    path = run_with_progress(write_report_job(study, args.output, source=args.source,
                                              average=args.average, flagged_only=args.flagged_only))
    print(f"report -> {path}")
    return 0


def run_suggest(args) -> int:
    from score_gui.progress import run_with_progress
    from score_gui.qc.suggest import study_suggestions_job, suggestions_table
    from score_gui.study import Study

    if args.output:
        guard_output(args.output, force=args.force)
    study = Study.open(args.study)
    if args.scan:
        study.find(args.scan)
    found = run_with_progress(study_suggestions_job(study, source=args.source, scans=args.scan))
    table = suggestions_table(found)
    if args.output:
        from score_gui.atomic import atomic_path

        with atomic_path(args.output) as tmp:
            table.to_csv(tmp, sep="\t", index=False, float_format="%.3f")
        print(f"{len(table)} suggestions -> {args.output}")
    else:
        sys.stdout.write(table.to_csv(sep="\t", index=False, float_format="%.3f"))
    return 0
