"""``score train STUDY --rater ID (-o MODELDIR | --name NAME) | --retrain NAME [--folds 3] [--iterations N]
[--device cpu|cuda] [--seed N] [--resume]``: grouped cross-validation of MDGRU models on one
rater's labels.

MODELDIR receives one model per fold (together an ensemble usable with
``score segment --models MODELDIR``), the out-of-fold predictions of every scan
(``predictions/.../<stem>_desc-model<RATER>fold<k>_dseg.nii.gz``) and ``metrics.csv``
(Dice and HD95 per scan, slice and compartment against the rater's labels).

With --name the models become the study's model set NAME in
STUDY/derivatives/score/models/NAME (score_gui.model_sets): the same files plus
model_set.json with the mean out-of-fold scores next to those of the model it would replace
(the study's set given as --init, else the default models, scored on the study's labels).
--rater then also takes several raters (A,B) or consensus. Slices whose labels are still
an unreviewed proposal of the models (SliceProvenance "proposed") are never learnt.

--retrain NAME fine-tunes the study's set NAME on its raters' labels as they are now (the
slices drawn, accepted or corrected since): each fold network from its own weights, every
subject kept in its fold, 150 iterations per network unless --iterations says otherwise;
the set is replaced (the old one kept in models/.history) and compared with it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from score_gui.cli._args import int_range, positive_int, seed


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train MDGRU models on a rater's labels with grouped k-fold cross-validation",
        description=__doc__.split("\n\n", 1)[1] if "\n\n" in __doc__ else None)
    parser.add_argument("study", help="study folder (BIDS-like, contract section 5)")
    parser.add_argument("--rater",
                        help="rater ID whose desc-rater<ID> labels are learnt (with --name also A,B or consensus); "
                             "required except with --retrain")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("-o", "--output", help="model folder to write")
    where.add_argument("--name", help="write the study's model set NAME (derivatives/score/models/NAME)")
    where.add_argument("--retrain", metavar="NAME",
                       help="fine-tune the study's set NAME on the slices labelled since (its raters, folds)")
    parser.add_argument("--folds", type=int_range(2, 20), default=3,
                        help="folds, grouped by subject, 2-20 (default 3)")
    parser.add_argument("--iterations", type=positive_int, default=None,
                        help="training iterations per fold, at least 1 (default: 2000)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run in the same folder (default: start afresh)")
    parser.add_argument("--optimizer", choices=("adam", "adadelta"), default="adam")
    parser.add_argument("--threads", type=int_range(1, 256), default=None, help="CPU threads for torch")
    parser.add_argument("--init", default="default",
                        help="starting weights: default (the shipped models, default), a model folder or set "
                             "name (with --name also one of the study's sets), or none (random weights); "
                             "other image counts are mapped")
    parser.add_argument("--batch-size", type=int_range(1, 64), default=None,
                        help="crops per optimiser step, 1-64 (default: 4 from a model set, 1 from scratch)")
    parser.add_argument("--workers", type=int_range(0, 16), default=None,
                        help="processes drawing training samples beside the training one, 0-16 (default 1)")
    parser.add_argument("--no-early-stopping", action="store_true",
                        help="train every iteration instead of stopping on a held-out subject")
    parser.set_defaults(func=run)


def run(args) -> int:
    import torch

    from score_gui.filesets import mark_complete, prepare_model_staging, swap_in_folder
    from score_gui.progress import run_with_progress
    from score_gui.study import Study
    from score_gui.training.loop import DEFAULT_LOADER_WORKERS, cross_validate, default_batch_size
    from score_gui.training.transfer import resolve_init

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.retrain is not None:
        return _run_retrain(args)
    if not args.rater:
        from score_gui.errors import ScoreInputError

        raise ScoreInputError(None, "--rater ID is required (whose labels to learn), except with --retrain")
    if args.name is not None:
        return _run_model_set(args)
    if "," in args.rater:
        from score_gui.errors import ScoreInputError

        raise ScoreInputError(None, f"--rater {args.rater}: several raters need --name (a study model set)")
    init = resolve_init(args.init)  # a wrong --init fails before anything is written
    study = Study.open(args.study)
    # Trained into a staging folder and swapped in at the end: MODELDIR is always a whole
    # model set, the old one until the new one is complete (score_gui.filesets).
    staging = prepare_model_staging(args.output, resume=args.resume)
    job = cross_validate(study, args.rater, staging, folds=args.folds, iterations=args.iterations,
                         device=args.device, seed=args.seed, resume=args.resume, optimizer=args.optimizer,
                         init=init or "none",
                         batch_size=args.batch_size or default_batch_size(init is not None),
                         loader_workers=DEFAULT_LOADER_WORKERS if args.workers is None else args.workers,
                         early_stopping=not args.no_early_stopping)
    result = run_with_progress(job)
    mark_complete(staging)
    previous = swap_in_folder(staging, args.output)
    print(f"models: {args.output}", file=sys.stderr)
    print(f"metrics: {Path(args.output) / result.metrics_csv.name}", file=sys.stderr)
    if previous is not None:
        print(f"previous models: {previous}", file=sys.stderr)
    for line in result.summary_lines():
        print(line)
    return 0


def _run_retrain(args) -> int:
    from score_gui import retraining
    from score_gui.progress import run_with_progress
    from score_gui.training.loop import DEFAULT_LOADER_WORKERS, default_batch_size

    job = retraining.retrain_model_set(
        args.study, args.retrain, iterations=args.iterations or retraining.RETRAIN_ITERATIONS,
        resume=args.resume, device=args.device, seed=args.seed, optimizer=args.optimizer,
        batch_size=args.batch_size or default_batch_size(True),
        loader_workers=DEFAULT_LOADER_WORKERS if args.workers is None else args.workers,
        early_stopping=not args.no_early_stopping)
    made = run_with_progress(job)
    new = made.info.get("retrained_from", {}).get("new_slices")
    print(f"model set: {made.path} (retrained; new slices: {new})", file=sys.stderr)
    _print_comparison(made)
    return 0


def _print_comparison(made) -> None:
    baseline = made.baseline.get("name", "")
    print(f"compartment       dice   {baseline or 'baseline':>8}   change  (out-of-fold)")
    for row in made.comparison():
        print(f"{row['compartment']:<16} {row['dice']:6.3f} {row['baseline_dice']:8.3f} {row['difference']:+8.3f}")


def _run_model_set(args) -> int:
    from score_gui import model_sets
    from score_gui.progress import run_with_progress
    from score_gui.study import Study
    from score_gui.training.loop import DEFAULT_LOADER_WORKERS, default_batch_size
    from score_gui.training.transfer import resolve_init

    model_sets.check_set_name(args.name)
    study = Study.open(args.study)
    start = model_sets.resolve_start(study, args.init)
    init = resolve_init(start)  # a wrong --init fails before anything is written
    sources = [s.strip() for s in args.rater.split(",") if s.strip()]
    job = model_sets.train_model_set(
        study, args.name, sources, folds=args.folds, iterations=args.iterations, init=args.init,
        resume=args.resume, device=args.device, seed=args.seed, optimizer=args.optimizer,
        batch_size=args.batch_size or default_batch_size(init is not None),
        loader_workers=DEFAULT_LOADER_WORKERS if args.workers is None else args.workers,
        early_stopping=not args.no_early_stopping)
    made = run_with_progress(job)
    print(f"model set: {made.path}", file=sys.stderr)
    _print_comparison(made)
    return 0
