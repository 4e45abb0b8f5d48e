"""Time ``score areas --study`` on a large synthetic study (target: 1,000 scans of 12 slices
in <= 20 s).

Each scan is 192 x 192 x 12 (AMIRA: FOV 128 mm at 0.67 mm) with a score dseg and a lesion
map; the scans themselves are small placeholders with the right header (areas never read
scan data). The study is generated once into ``--root`` and reused.

    .venv/bin/python benchmarks/bench_areas.py [--scans 1000] [--workers N] [--root DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np


def make_study(root: Path, n_scans: int, n_slices: int = 12, size: int = 192) -> None:
    marker = root / f".complete_{n_scans}"
    if marker.exists():
        return
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    affine = np.diag([-0.67, -0.67, 8.0, 1.0])
    for i in range(n_scans):
        subject = f"{i:04d}"
        anat = root / f"sub-{subject}" / "anat"
        deriv = root / "derivatives" / "score" / f"sub-{subject}" / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        deriv.mkdir(parents=True, exist_ok=True)
        stem = f"sub-{subject}_amira"
        header_only = nib.Nifti1Image(np.zeros((size, size, n_slices, 8), np.uint8), affine)
        nib.save(header_only, str(anat / f"{stem}.nii.gz"))
        cy, cx = size / 2 + rng.normal(0, 3, 2)
        r2 = (yy - cy) ** 2 + ((xx - cx) / 1.3) ** 2
        plane = np.select([r2 < 36, r2 < 100, r2 < 160], [3, 2, 1], 0).astype(np.uint8)
        dseg = np.repeat(plane[:, :, None], n_slices, axis=2)
        lesion = np.zeros_like(dseg)
        lesion[int(cy):int(cy) + 3, int(cx) + 6:int(cx) + 9, : n_slices // 2] = 1
        nib.save(nib.Nifti1Image(dseg, affine), str(deriv / f"{stem}_desc-score_dseg.nii.gz"))
        nib.save(nib.Nifti1Image(lesion, affine), str(deriv / f"{stem}_desc-score_lesion.nii.gz"))
    marker.write_text("ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "score_bench_areas")
    args = parser.parse_args()
    root = args.root / f"n{args.scans}"
    started = time.perf_counter()
    make_study(root, args.scans)
    print(f"study ready in {time.perf_counter() - started:.1f} s: {root}")

    from score_gui.areas import study_areas, write_areas_table
    from score_gui.study import Study

    started = time.perf_counter()
    study = Study.open(root)
    table = study_areas(study, workers=args.workers)
    write_areas_table(table, root / "areas.csv")
    elapsed = time.perf_counter() - started
    print(f"areas of {len(study.scans)} scans ({len(table)} slice rows), "
          f"workers={args.workers or 'auto'}, cpu={os.cpu_count()}: {elapsed:.2f} s "
          f"({1000 * elapsed / max(len(study.scans), 1):.1f} ms per scan)")


if __name__ == "__main__":
    main()
