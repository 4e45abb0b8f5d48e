"""Transfer training on a lab's own single-contrast scans: time and held-out Dice of ``score train``.

Stands in for a small multi-site T2*-weighted study labelled with cord and gray matter only
(contract section 2, partial labels): scans from the evaluation-only generator
:mod:`score_gui.phantom_variant` (never used to train the default models), one image per
slice, each "site" with its own pixel size and field of view. Runs the same
cross-validation as ``score train STUDY --rater G --folds 3`` (grouped by subject, early
stopping on a held-out training subject, out-of-fold segmentation through
``segment_scan``) and prints the wall time and the out-of-fold Dice per compartment,
starting from the default models (``--init default``) and, with ``--compare``, from
random weights with the same settings.

Usage: ``.venv/bin/python benchmarks/bench_transfer.py [--subjects 8] [--slices 6] [--compare]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from score_gui.labels import LabelMap, read_labels, write_labels
from score_gui.mdgru.checkpoint import read_checkpoint
from score_gui.phantom_variant import make_variant_scan
from score_gui.progress import drain
from score_gui.scan import read_scan, write_scan
from score_gui.study import Study, scan_path
from score_gui.training.loop import cross_validate

SITES = ((0.5, 160), (0.67, 192), (0.8, 144), (0.4, 224))
"""(pixel size mm, matrix) of the simulated sites, as in multi-site T2*w cord data."""
FIRST_SEED = 930000


def write_study(root: Path, n_subjects: int, n_slices: int) -> tuple[Study, dict[str, np.ndarray]]:
    """A cord + GM labelled single-contrast study, subjects spread over :data:`SITES`: the first
    round of sites healthy, the next with MS, so that every site has both (8 subjects: one each).
    Also returns each subject's true lesion mask, which the study's labels do not hold."""
    lesions = {}
    for i in range(n_subjects):
        pixel, size = SITES[i % len(SITES)]
        kind = "ms" if (i // len(SITES)) % 2 else "hc"
        scan, truth, _ = make_variant_scan(kind, seed=FIRST_SEED + i, n_slices=n_slices, shape=(size, size),
                                           pixel_size=pixel, contrast="t2star")
        subject = f"site{i % len(SITES) + 1}{kind}{i:02d}"
        lesions[subject] = truth.lesion if truth.lesion is not None else np.zeros_like(truth.dseg)
        path = scan_path(root, subject)
        path.parent.mkdir(parents=True, exist_ok=True)
        scan.subject, scan.session = subject, None
        write_scan(scan, path)
        scan.path = path
        cord_gm = np.where(truth.dseg >= 3, 3, np.where(truth.dseg == 2, 2, 0)).astype(np.uint8)
        labels = LabelMap(dseg=cord_gm, lesion=None, labelled={"cord", "gm"}, who="raterG")
        out = root / "derivatives" / "score" / path.parent.relative_to(root)
        write_labels(scan, labels, out, "raterG")
    return Study.open(root), lesions


def run(study: Study, out: Path, init: str, iterations: int | None, batch: int, workers: int,
        learning_rate: float | None = None):
    started = time.perf_counter()
    result = drain(cross_validate(study, "G", out, folds=3, init=init, iterations=iterations, batch_size=batch,
                                  loader_workers=workers, seed=0, learning_rate=learning_rate))
    return result, time.perf_counter() - started


def print_details(study: Study, result, lesions: dict[str, np.ndarray]) -> None:
    """Out-of-fold GM and cord Dice per site and per kind (HC / MS), and the iterations each fold trained before it stopped."""
    rows = result.metrics[result.metrics["slice"] != "mean"].copy()
    rows["site"] = rows["subject"].str.extract(r"(site\d)", expand=False)
    for site, part in rows.groupby("site"):
        pixel, size = SITES[int(site[-1]) - 1]
        dice = part.groupby("compartment")["dice"].mean()
        print(f"    {site} ({pixel} mm, {size} px): GM {dice.get('gm', float('nan')):.3f}, "
              f"cord {dice.get('cord', float('nan')):.3f}")
    rows["kind"] = rows["subject"].str.extract(r"site\d(hc|ms)", expand=False)
    for kind, part in rows.groupby("kind"):
        dice = part.groupby("compartment")["dice"].mean()
        print(f"    {kind.upper()}: GM {dice.get('gm', float('nan')):.3f}, cord {dice.get('cord', float('nan')):.3f}")
    print_missed_under_lesions(study, result, lesions)
    folds = read_checkpoint(result.fold_models[0])["meta"]["training"]["cross_validation"]["folds"]
    print("    iterations per fold: " + ", ".join(str(f["iterations"]) for f in folds))


def print_missed_under_lesions(study: Study, result, lesions: dict[str, np.ndarray]) -> None:
    """Of the true GM the out-of-fold predictions miss on the MS subjects, the share under a
    lesion (``lesions``: subject -> the generator's lesion mask, which the study's cord + GM labels
    lack; the variant's lesions are bright blobs that hide the GM, and its labels keep the GM there)."""
    entries = {entry.stem: entry for entry in study.scans}
    under = elsewhere = 0
    for path in result.predictions:
        entry = entries[path.name.split("_desc-")[0]]
        lesion = lesions[entry.subject]
        if not lesion.any():
            continue
        scan = read_scan(entry.path)
        missed = (read_labels(entry.dseg_path("raterG"), scan).dseg >= 3) & (read_labels(path, scan).dseg < 3)
        under += int((missed & (lesion > 0)).sum())
        elsewhere += int((missed & (lesion == 0)).sum())
    if under + elsewhere:
        print(f"    MS: GM pixels missed {under + elsewhere}, under lesions {100 * under / (under + elsewhere):.0f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--slices", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=None, help="per fold (default: score train's)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--init", default="default")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: score train's)")
    parser.add_argument("--compare", action="store_true", help="also train from random weights")
    parser.add_argument("--keep", type=Path, help="write the study and the models here (kept) instead of a temporary folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        if args.keep:
            tmp = str(args.keep)
        study, lesions = write_study(Path(tmp) / "study", args.subjects, args.slices)
        print(f"{args.subjects} single-contrast variant subjects over {len(SITES)} sites, {args.slices} slices "
              f"each, labels cord + GM; 3 folds, batch {args.batch}, {args.workers} sampling process(es)")
        for init in [args.init] + (["none"] if args.compare else []):
            result, seconds = run(study, Path(tmp) / f"models-{init}", init, args.iterations, args.batch,
                                  args.workers, args.lr)
            dice = "  ".join(f"{name} {values['dice']:.3f}" for name, values in result.mean_metrics().items())
            print(f"--init {init:<8} {seconds / 60:5.1f} min   out-of-fold Dice: {dice}", flush=True)
            print_details(study, result, lesions)


if __name__ == "__main__":
    main()
