"""``score demo OUTDIR``: write a synthetic AMIRA scan (or a whole study) with its true labels.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser(); sub = parser.add_subparsers()
>>> add_parser(sub)
>>> args = parser.parse_args(["demo", "out", "--kind", "hc", "--shape", "96", "96"])
>>> args.kind, args.shape, args.slices, args.models
('hc', [96, 96], 12, 'default')
"""

from __future__ import annotations

from pathlib import Path

from score_gui.atomic import ensure_writable_dir
from score_gui.cli._args import float_range, int_range, seed
from score_gui.errors import ScoreInputError

MAX_SLICES = 64
"""A demo scan is for trying things out: AMIRA covers C2-C5 in far fewer slices."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="write a synthetic AMIRA scan and its true labels (desc-truth)",
        description="Write a synthetic AMIRA scan (8 inversion images, C2-C5) with its JSON "
                    "sidecar and its true labels (desc-truth), or with --study a BIDS-like "
                    "study with rater labels.")
    parser.add_argument("outdir", type=Path, help="output folder (created if needed)")
    parser.add_argument("--kind", choices=("hc", "ms"), default="ms",
                        help="healthy control or MS patient with lesions (default: ms)")
    parser.add_argument("--seed", type=seed, default=1, help="random seed (default: 1)")
    parser.add_argument("--slices", type=int_range(1, MAX_SLICES), default=12,
                        help=f"number of slices, 1-{MAX_SLICES} (default: 12)")
    parser.add_argument("--study", action="store_true",
                        help="write a whole study: 3 HC (2 sessions) + 3 MS, raters A, B, C, and "
                             "the ensemble's result (desc-score)")
    parser.add_argument("--models", default="default", metavar="default|DIR|none",
                        help="with --study: the ensemble that segments every scan (desc-score); "
                             "none for raters only (default: default)")
    parser.add_argument("--contrast", choices=("amira", "t2star"), default="amira",
                        help="AMIRA (8 images) or a single T2*-weighted image")
    parser.add_argument("--pixel-size", type=float_range(0.2, 2.0), default=0.67, metavar="MM",
                        help="in-plane pixel size in mm, 0.2-2.0 (default: 0.67)")
    parser.add_argument("--shape", type=int_range(32, 1024), nargs=2, default=[192, 192], metavar=("H", "W"),
                        help="image rows and columns, 32-1024 each (default: 192 192)")
    parser.set_defaults(func=run)


def _check(args) -> None:
    if args.slices < 1:
        raise ScoreInputError(None, f"--slices must be at least 1, not {args.slices}")
    if not 0.2 <= args.pixel_size <= 2.0:
        raise ScoreInputError(None, f"--pixel-size {args.pixel_size} mm is outside 0.2-2.0 mm")
    if min(args.shape) < 32 or max(args.shape) > 1024:
        raise ScoreInputError(None, f"--shape {args.shape} must lie within 32-1024 pixels")
    if args.study and args.contrast != "amira":
        raise ScoreInputError(None, "--study writes AMIRA scans only; drop --contrast")


def run(args) -> int:
    from score_gui.phantom import make_study, write_demo

    _check(args)
    outdir = ensure_writable_dir(args.outdir)
    shape = tuple(args.shape)
    if args.study:
        models = None
        if args.models != "none":   # a bad model folder stops here, before anything is written
            from score_gui.inference import Ensemble

            models = Ensemble.load(args.models)
        study = make_study(outdir, seed=args.seed, n_slices=args.slices, shape=shape,
                           pixel_size=args.pixel_size, models=models)
        print(f"wrote study {study.root} with {len(study.scans)} scans:")
        for entry in study.scans:
            print(f"  {entry.path.relative_to(study.root)}  labels: {', '.join(entry.label_sources())}")
        return 0
    written = write_demo(outdir, kind=args.kind, seed=args.seed, n_slices=args.slices,
                         contrast=args.contrast, pixel_size=args.pixel_size, shape=shape)
    for role, path in written.items():
        print(f"{role:8s} {path}")
    return 0
