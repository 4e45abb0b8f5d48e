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


def write_dicom_series(raw: np.ndarray, folder: Path, times, spacing=(0.67, 0.67), step=8.0) -> Path:
    """One classic MR file per slice and inversion (``raw`` is uint16 ``[S, T, rows, cols]``)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series = [generate_uid() for _ in times]
    for s in range(raw.shape[0]):
        for t, ti in enumerate(times):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID, ds.SeriesInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID, series[t]
            ds.ImagePositionPatient = [0.0, 0.0, s * step]
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
            ds.PixelSpacing = list(spacing)
            ds.InversionTime = ti
            ds.Rows, ds.Columns = raw.shape[2:]
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.PixelData = raw[s, t].tobytes()
            ds.save_as(folder / f"IM_{s:02d}_{t}", enforce_file_format=True)
    return folder


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
        from score_gui.dicom import import_dicom_folder
        from score_gui.scan import AMIRA_INVERSION_TIMES

        raw = np.clip(images, 0, 65535).astype(np.uint16)
        dicom = write_dicom_series(raw, folder / "dicom", AMIRA_INVERSION_TIMES)
        rows.append(("import_dicom_folder (96 files) -> .nii.gz",
                     _median_seconds(lambda: import_dicom_folder(dicom, folder / "dicom.nii.gz"),
                                     max(1, args.repeat // 2)), None))
    print(f"scan 192 x 192 x 12 x 8 float32 ({images.nbytes / 1e6:.1f} MB in memory); median of {args.repeat}")
    for name, seconds, size in rows:
        extra = f"  file {size / 1e3:.0f} kB" if size else ""
        print(f"{name:40s} {seconds * 1000:8.1f} ms{extra}")


if __name__ == "__main__":
    main()
