"""Read/write speed of scans and label maps (192 x 192 x 12 slices x 8 inversion images).

Run: ``.venv/bin/python benchmarks/bench_io.py [--repeat N]``. Prints the median time per
operation, plus plain nibabel (``nib.load`` + ``get_fdata``) as a baseline for the overhead
of the checks (whole-file CRC check, NaN scan, orientation).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np

from score_gui.labels import LabelMap, read_labels, write_labels
from score_gui.scan import Scan, read_scan, write_scan


def _median_seconds(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    # Smooth-ish data compresses like real MRI, unlike white noise.
    base = rng.normal(100, 20, (12, 8, 48, 48)).astype(np.float32)
    images = np.kron(base, np.ones((1, 1, 4, 4), np.float32)) + rng.normal(0, 3, (12, 8, 192, 192)).astype(np.float32)
    scan = Scan.from_arrays(images, pixel_spacing=(0.67, 0.67))
    dseg = np.zeros(scan.label_shape, np.uint8)
    dseg[:, 80:112, 80:112] = 2
    dseg[:, 90:100, 90:100] = 3
    rows = []
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = Path(folder)
        for suffix in (".nii.gz", ".nii"):
            path = folder / f"sub-01_amira{suffix}"
            rows.append((f"write_scan {suffix}", _median_seconds(lambda: write_scan(scan, path), args.repeat),
                         path.stat().st_size))
            rows.append((f"read_scan {suffix}", _median_seconds(lambda: read_scan(path), args.repeat), None))
            rows.append((f"  baseline nib.load+get_fdata {suffix}",
                         _median_seconds(lambda: nib.load(path).get_fdata(dtype=np.float32), args.repeat), None))
        loaded = read_scan(folder / "sub-01_amira.nii.gz")
        written = write_labels(loaded, LabelMap(dseg, np.zeros_like(dseg)), folder, "raterA")
        rows.append(("write_labels (dseg + lesion)",
                     _median_seconds(lambda: write_labels(loaded, LabelMap(dseg, np.zeros_like(dseg)), folder,
                                                          "raterA", keep_previous=False), args.repeat),
                     written["dseg"].stat().st_size))
        rows.append(("read_labels (dseg + lesion)",
                     _median_seconds(lambda: read_labels(written["dseg"], loaded), args.repeat), None))
    print(f"scan 192 x 192 x 12 x 8 float32 ({images.nbytes / 1e6:.1f} MB in memory); median of {args.repeat}")
    for name, seconds, size in rows:
        extra = f"  file {size / 1e6:.2f} MB" if size else ""
        print(f"{name:40s} {seconds * 1000:8.1f} ms{extra}")


if __name__ == "__main__":
    main()
