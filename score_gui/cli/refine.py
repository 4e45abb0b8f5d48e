"""``score refine``: correct one structure of one slice with clicks.

::

    score refine SCAN --dseg DSEG [--lesion LESION] --slice N --structure cord|gm|lesion
                 --click ROW,COL,+ [--click ROW,COL,- ...] [--prior default|MODELDIR] -o OUT_DSEG

Clicks are given in order on the display grid (contract section 1: row 0 anterior,
column 0 patient right); ``+`` marks a pixel inside the structure, ``-`` one outside.
The whole label map is written to OUT_DSEG with only slice N changed, nesting kept
(gray matter inside the cord, the cord inside the canal, lesions inside the cord); the
lesion map goes beside it (``..._lesion.nii.gz``) when a lesion is refined or a lesion
map is given (or lies beside DSEG). With ``--prior`` the models segment slice N first and
their probability of the structure is weighed with the image (fewer clicks for the same
result, ``benchmarks/bench_refine.py --prior soft``; a second or two more). See
:mod:`score_gui.refine` for the method.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser(); sub = parser.add_subparsers()
>>> add_parser(sub)
>>> args = parser.parse_args(["refine", "s.nii.gz", "--dseg", "d_dseg.nii.gz", "--slice", "3",
...                           "--structure", "gm", "--click", "80,96,+", "--click", "82,99,-", "-o", "o_dseg.nii.gz"])
>>> [str(c) for c in args.click], args.slice
(['80,96,+', '82,99,-'], 3)
>>> lesion_output_path("out/x_desc-raterA_dseg.nii.gz").name, lesion_output_path("fixed.nii").name
('x_desc-raterA_lesion.nii.gz', 'fixed_lesion.nii.gz')
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from score_gui.cli._args import non_negative_int
from score_gui.outputs import FORCE_HELP

STRUCTURE_KEYS = {"cord": "cord", "gm": "gm", "lesion": "lesion"}
"""The ``LabelledStructures`` key (contract section 2) a refined structure adds."""


def click_argument(text: str):
    """An argparse type: ``ROW,COL,+`` or ``ROW,COL,-``."""
    from score_gui.refine import Click

    try:
        return Click.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


click_argument.__name__ = "click"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("refine", help="correct a structure of one slice with + and - clicks",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("scan", type=Path, metavar="SCAN", help="the NIfTI scan")
    parser.add_argument("--dseg", type=Path, required=True, help="its label map (dseg)")
    parser.add_argument("--lesion", type=Path, help="its lesion map (default: the _lesion file beside the dseg)")
    parser.add_argument("--slice", type=non_negative_int, required=True, metavar="N", help="0-based slice")
    parser.add_argument("--structure", choices=("cord", "gm", "lesion"), required=True)
    parser.add_argument("--click", type=click_argument, action="append", required=True, metavar="ROW,COL,+|-",
                        help="a click on the display grid (row 0 anterior, column 0 patient right); "
                             "+ inside the structure, - outside; repeat, in order")
    parser.add_argument("--prior", metavar="MODELS",
                        help="weigh the probability of these models (default, or a model folder) with the image")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DSEG",
                        help="the refined label map (whole volume)")
    parser.add_argument("--force", action="store_true", help=FORCE_HELP)
    parser.set_defaults(func=run)


def lesion_output_path(dseg_out: str | Path) -> Path:
    """Where the lesion map goes beside a dseg output: ``_dseg`` -> ``_lesion``, else ``<stem>_lesion``."""
    dseg_out = Path(dseg_out)
    name = re.sub(r"_dseg(\.nii(\.gz)?)$", r"_lesion.nii.gz", dseg_out.name, flags=re.IGNORECASE)
    if name == dseg_out.name:
        name = re.sub(r"\.nii(\.gz)?$", "", dseg_out.name, flags=re.IGNORECASE) + "_lesion.nii.gz"
    return dseg_out.with_name(name)


def run(args) -> int:
    from score_gui.cli.segment import check_scan_paths

    check_scan_paths([args.scan])
    import json

    import numpy as np

    from score_gui.atomic import write_text_atomic
    from score_gui.errors import ScoreInputError
    from score_gui.filesets import recover_folders_of
    from score_gui.labels import (LABELLED_STRUCTURE_KEYS, dseg_tsv_text, read_labels, sidecar_path,
                                  write_label_volume)
    from score_gui.outputs import guard_output
    from score_gui.refine import refine_slice
    from score_gui.scan import read_scan

    inputs = (args.scan, args.dseg, args.lesion)

    def guard(path: Path) -> None:
        # A new label map may be written; an existing one (someone's labels) only with --force.
        guard_output(path, inputs=inputs, force=args.force, kind="scan" if path.exists() else "labels")

    guard(args.output)
    recover_folders_of([args.dseg, args.lesion])
    scan = read_scan(args.scan)
    labels = read_labels(args.dseg, scan, args.lesion)
    if args.slice >= scan.n_slices:
        raise ScoreInputError(args.scan, f"has slices 0-{scan.n_slices - 1}; --slice {args.slice} is not one")
    s = args.slice
    prior = None
    if args.prior:
        from score_gui.click_correction import slice_prior

        prior = slice_prior(scan, s, args.structure, args.prior)
    started = time.perf_counter()
    try:
        dseg, lesion = refine_slice(scan.images[s], labels.dseg[s],
                                    None if labels.lesion is None else labels.lesion[s],
                                    args.structure, args.click, scan.pixel_spacing, prior)
    except ScoreInputError as exc:
        raise ScoreInputError(args.scan, f"slice {s}: {exc.problem}") from None
    seconds = time.perf_counter() - started

    out_dseg = labels.dseg.copy()
    out_dseg[s] = dseg
    out_lesion = None
    if lesion is not None:
        out_lesion = (labels.lesion.copy() if labels.lesion is not None
                      else np.zeros(scan.label_shape, np.uint8))
        out_lesion[s] = lesion
    lesion_out = lesion_output_path(args.output)
    if out_lesion is not None:
        guard(lesion_out)

    write_label_volume(scan, out_dseg, args.output, keep_previous=not args.force)
    written = [str(args.output)]
    if out_lesion is not None:
        write_label_volume(scan, out_lesion, lesion_out, keep_previous=not args.force)
        written.append(str(lesion_out))
    labelled = set(labels.labelled) | {STRUCTURE_KEYS[args.structure]}
    if out_lesion is not None:
        labelled.add("lesion")
    side = sidecar_path(args.output)
    if labelled != set(LABELLED_STRUCTURE_KEYS) or side.exists():
        ordered = [k for k in LABELLED_STRUCTURE_KEYS if k in labelled]
        write_text_atomic(side, json.dumps({"LabelledStructures": ordered}, indent=2))
    table = Path(args.output).with_name("dseg.tsv")
    if not table.exists():
        write_text_atomic(table, dseg_tsv_text())

    from score_gui.refine import structure_mask

    before = int(structure_mask(labels.dseg[s], None if labels.lesion is None else labels.lesion[s],
                                args.structure).sum())
    after = int(structure_mask(dseg, lesion, args.structure).sum())
    print(f"wrote {', '.join(written)}: slice {s} {args.structure} {before} -> {after} pixels "
          f"after {len(args.click)} click{'s' if len(args.click) != 1 else ''} ({seconds * 1000:.0f} ms)")
    return 0
