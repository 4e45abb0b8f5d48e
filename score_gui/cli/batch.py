"""``score batch``: segment every scan of a study on Dask, then write the study's areas.

::

    score batch STUDY [--scheduler ADDRESS] [--workers N] [--models default|DIR] [--device cpu]
                      [--skip-existing]

Default: a local Dask cluster with N worker processes (one thread each). Device, models and
scheduler address are checked once before anything starts (exit 2, one line). A scan or label
map that fails is reported and the others go on; the study's areas table holds what
succeeded; the exit code is then 2 when any input was bad, 1 for unexpected errors only. ``--skip-existing`` resumes an
interrupted batch (scans with a ``desc-score`` dseg are skipped).
"""

from __future__ import annotations

import sys
from pathlib import Path

from score_gui.batch import batch_job
from score_gui.cli._args import workers
from score_gui.progress import run_with_progress


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("batch", help="segment a whole study on Dask, then its areas",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, help="study folder")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler (default: local cluster)")
    parser.add_argument("--workers", type=workers, help="local worker processes (default: cores, at most 4)")
    parser.add_argument("--models", default="default", help="'default' or a model folder")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--skip-existing", action="store_true", help="skip scans already segmented (resume)")
    parser.set_defaults(func=run)


def run(args) -> int:
    result = run_with_progress(batch_job(args.study, args.scheduler, args.workers, args.models,
                                         args.device, args.skip_existing))
    print(f"segmented {len(result.segmented)}, skipped {len(result.skipped)}, failed {len(result.failed)} "
          f"scans in {result.seconds:.1f} s" + (f"; areas: {result.areas_path}" if result.areas_path else ""))
    for stem, error in result.failed.items():
        print(f"failed: {stem}: {error}", file=sys.stderr)
    for error in result.areas_failed.values():
        print(f"left out of the areas: {error}", file=sys.stderr)
    return result.exit_code
