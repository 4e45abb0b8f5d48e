"""``score train STUDY --rater ID -o MODELDIR [--folds 3] [--iterations N] [--device cpu|cuda]
[--seed N] [--resume]``: grouped cross-validation of MDGRU models on one rater's labels.

MODELDIR receives one model per fold (together an ensemble usable with
``score segment --models MODELDIR``), the out-of-fold predictions of every scan
(``predictions/.../<stem>_desc-model<RATER>fold<k>_dseg.nii.gz``) and ``metrics.csv``
(Dice and HD95 per scan, slice and compartment against the rater's labels).
"""

from __future__ import annotations

import sys


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train MDGRU models on a rater's labels with grouped k-fold cross-validation",
        description=__doc__.split("\n\n", 1)[1] if "\n\n" in __doc__ else None)
    parser.add_argument("study", help="study folder (BIDS-like, contract section 5)")
    parser.add_argument("--rater", required=True, help="rater ID whose desc-rater<ID> labels are learnt")
    parser.add_argument("-o", "--output", required=True, help="model folder to write")
    parser.add_argument("--folds", type=int, default=3, help="folds, grouped by subject (default 3)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="training iterations per fold (default: 2000)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run in the same folder (default: start afresh)")
    parser.add_argument("--optimizer", choices=("adam", "adadelta"), default="adam")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.set_defaults(func=run)


def run(args) -> int:
    import torch

    from score_gui.progress import run_with_progress
    from score_gui.study import Study
    from score_gui.training.loop import DEFAULT_ITERATIONS, cross_validate

    if args.threads:
        torch.set_num_threads(args.threads)
    study = Study.open(args.study)
    job = cross_validate(study, args.rater, args.output, folds=args.folds,
                         iterations=args.iterations or DEFAULT_ITERATIONS, device=args.device,
                         seed=args.seed, resume=args.resume, optimizer=args.optimizer)
    result = run_with_progress(job)
    print(f"models: {result.model_dir}", file=sys.stderr)
    print(f"metrics: {result.metrics_csv}", file=sys.stderr)
    for line in result.summary_lines():
        print(line)
    return 0
