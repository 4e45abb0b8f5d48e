"""``score evaluate``: agreement of a segmentation with a reference, per slice and compartment.

::

    score evaluate --pred DSEG --truth DSEG [--pred-lesion L --truth-lesion L] -o metrics.csv

One row per slice and compartment (canal, cord, wm, gm, anterior_horns, posterior_horns,
gray_commissure, lesion) with dice, hausdorff_mm, hd95_mm, area_pred_mm2, area_truth_mm2,
then a mean row per compartment (``slice = mean``). See :mod:`score_gui.metrics` for the
definitions and the empty-mask cases.
"""

from __future__ import annotations

from pathlib import Path

from score_gui.atomic import atomic_path
from score_gui.filesets import recover_folders_of
from score_gui.outputs import FORCE_HELP, guard_output


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="Dice, Hausdorff and HD95 of a segmentation vs a reference",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--pred", type=Path, required=True, help="segmentation to evaluate (dseg)")
    parser.add_argument("--truth", type=Path, required=True, help="reference segmentation (dseg)")
    parser.add_argument("--pred-lesion", type=Path, help="lesion map of --pred (default: beside it)")
    parser.add_argument("--truth-lesion", type=Path, help="lesion map of --truth (default: beside it)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="metrics.csv")
    parser.add_argument("--force", action="store_true", help=FORCE_HELP)
    parser.set_defaults(func=run)


def run(args) -> int:
    from score_gui.metrics import evaluate_files

    inputs = [args.pred, args.truth, args.pred_lesion, args.truth_lesion]
    guard_output(args.output, inputs=inputs, force=args.force)
    recover_folders_of(inputs)  # a segment run killed while writing: make its result set whole
    table = evaluate_files(args.pred, args.truth, args.pred_lesion, args.truth_lesion)
    with atomic_path(args.output) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    means = table[table["slice"] == "mean"].set_index("compartment")
    summary = ", ".join(f"{name} {row['dice']:.3f}" for name, row in means.iterrows())
    print(f"wrote {args.output}: mean Dice {summary}")
    return 0
