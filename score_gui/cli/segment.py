"""``score segment``: automatic labels of scans with the MDGRU ensemble.

::

    score segment SCAN [SCAN...] -o OUTDIR [--models default|DIR] [--device cpu|cuda]
                  [--members] [--disagreement]

Writes per scan into OUTDIR: ``<stem>_desc-score_dseg.nii.gz``,
``<stem>_desc-score_lesion.nii.gz`` (majority vote of the ensemble members) and
``<stem>_areas.csv`` (source ``score``); with ``--members`` each member's labels as
``desc-model<NAME>``, with ``--disagreement`` ``<stem>_desc-score_disagreement.nii.gz``
(fraction of members disagreeing with the vote per voxel).
"""

from __future__ import annotations

import sys
from pathlib import Path

from score_gui.progress import run_with_progress


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("segment", help="segment scans with the MDGRU ensemble",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("scans", nargs="+", type=Path, metavar="SCAN", help="NIfTI scan(s)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR", help="output folder")
    parser.add_argument("--models", default="default",
                        help="model set name under resources/models ($SCORE_MODELS) or a model folder")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--members", action="store_true", help="also write each member's labels")
    parser.add_argument("--disagreement", action="store_true", help="also write the disagreement map")
    parser.add_argument("--vote", choices=("soft", "hard"), default="soft",
                        help="ensemble decision: soft = on the members' mean probabilities (default), "
                             "hard = majority vote of their label maps")
    parser.set_defaults(func=run)


def check_scan_paths(paths) -> None:
    """Missing or misnamed scans fail here, before PyTorch and the models are loaded (seconds)."""
    from score_gui.errors import ScoreInputError, missing_problem

    for path in paths:
        if not Path(path).is_file():
            problem = missing_problem(path) if not Path(path).is_dir() else "is a folder, not a scan file"
            raise ScoreInputError(path, problem)
        if not str(path).endswith((".nii", ".nii.gz")):
            raise ScoreInputError(path, "not a NIfTI scan (.nii or .nii.gz)")


def run(args) -> int:
    check_scan_paths(args.scans)
    from score_gui.filesets import recover_model_swap
    from score_gui.inference import segment_files

    recover_model_swap(args.models)  # a training run killed while swapping its models in

    outputs = run_with_progress(segment_files(args.scans, args.output, models=args.models, device=args.device,
                                              members=args.members, disagreement=args.disagreement,
                                              vote=args.vote))
    for scan_path, written in zip(args.scans, outputs):
        t = written.get("timing", {})
        print(f"{scan_path}: {Path(written['score_dseg']).name} ({t.get('total', 0):.1f} s: canal "
              f"{t.get('localise', 0):.2f}, members {t.get('members', 0):.2f}, vote {t.get('vote', 0):.2f}, "
              f"writing {t.get('write', 0):.2f})", file=sys.stderr)
    return 0
