"""``score rank``: a rater's unlabelled slices, most useful to label first.

::

    score rank STUDY --rater ID [--models default|DIR] -o ranking.tsv

Every slice the rater has not labelled (no ``desc-rater<ID>`` label map, or an all-0
slice) is segmented with the ensemble and scored by how unsure the members are
(:mod:`score_gui.rank`); the TSV has the columns scan, slice, score, reason, highest
score first.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser(); sub = parser.add_subparsers()
>>> add_parser(sub)
>>> args = parser.parse_args(["rank", "study", "--rater", "A", "-o", "ranking.tsv"])
>>> args.rater, args.models, args.output.name
('A', 'default', 'ranking.tsv')
"""

from __future__ import annotations

from pathlib import Path

from score_gui.outputs import FORCE_HELP


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("rank", help="a rater's unlabelled slices, most useful to label first",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, metavar="STUDY", help="a study folder")
    parser.add_argument("--rater", required=True, help="rater ID (desc-rater<ID> labels), e.g. A")
    parser.add_argument("--models", default="default",
                        help="model set name under resources/models ($SCORE_MODELS) or a model folder")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("-o", "--output", type=Path, required=True, help="ranking.tsv")
    parser.add_argument("--force", action="store_true", help=FORCE_HELP)
    parser.set_defaults(func=run)


def run(args) -> int:
    from score_gui.atomic import atomic_path
    from score_gui.errors import ScoreInputError
    from score_gui.labels import check_who
    from score_gui.outputs import guard_output
    from score_gui.study import Study

    check_who(args.rater)
    guard_output(args.output, force=args.force)
    study = Study.open(args.study)
    if not study.scans:
        raise ScoreInputError(study.root, "no scans found in the study")

    from score_gui.filesets import recover_model_swap
    from score_gui.progress import run_with_progress
    from score_gui.rank import rank_slices

    recover_model_swap(args.models)
    table = run_with_progress(rank_slices(study, args.rater, args.models, args.device))
    with atomic_path(args.output) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    if table.empty:
        print(f"wrote {args.output}: no unlabelled slices for rater {args.rater}")
        return 0
    from score_gui.rank import rank_scans

    top = ", ".join(f"{row.scan} {row.score:.3f}" for row in rank_scans(table).head(3).itertuples())
    print(f"wrote {args.output}: {len(table)} unlabelled slices in {table['scan'].nunique()} scans; "
          f"most unsure scans (mean score): {top}")
    return 0
