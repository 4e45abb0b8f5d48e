"""``score dicom``: turn a folder of AMIRA DICOM images into a scan (4D NIfTI + JSON sidecar).

::

    score dicom FOLDER -o OUT.nii.gz [--subject ID] [--session ID]
"""

from __future__ import annotations

import sys
from pathlib import Path

from score_gui.errors import ScoreInputError
from score_gui.progress import drain, run_with_progress


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "dicom", help="import a folder of AMIRA DICOM images as a 4D NIfTI scan",
        description="Group the images of FOLDER by slice position and inversion time and write "
                    "the scan as NIfTI (X, Y, S, T) with a JSON sidecar of inversion times.")
    parser.add_argument("folder", type=Path, metavar="FOLDER",
                        help="folder with the DICOM files (searched recursively) or one multi-frame file")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.nii.gz",
                        help="the scan to write (the sidecar goes beside it)")
    parser.add_argument("--subject", help="SubjectID for the sidecar (nothing identifying is copied from DICOM)")
    parser.add_argument("--session", help="SessionID for the sidecar")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists (the old one goes to .history)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from score_gui.atomic import keep_previous_version
    from score_gui.dicom import import_dicom_folder_job
    from score_gui.outputs import guard_output
    from score_gui.scan import read_scan, sidecar_path

    if args.output.is_dir():  # --force replaces a scan file, never a folder
        raise ScoreInputError(args.output, "is a folder; give the scan file to write, e.g. OUT.nii.gz")
    if args.output.exists() and not args.force:
        raise ScoreInputError(args.output, "exists already; use --force to replace it")
    if not args.force:
        guard_output(args.output, kind="scan")  # e.g. a label map's name: never a scan to write
    if args.output.exists():
        keep_previous_version(args.output)
    # The sidecar holds the inversion times the scan is read with: its old version is kept too.
    keep_previous_version(sidecar_path(args.output))
    job = import_dicom_folder_job(args.folder, args.output, args.subject, args.session)
    # A progress bar only for a person watching: scripts and logs get the one-line result or error.
    out = run_with_progress(job) if sys.stderr.isatty() else drain(job)
    scan = read_scan(out)
    times = ", ".join(f"{t:g}" for t in scan.inversion_times) if scan.inversion_times else "none"
    print(f"wrote {out}: {scan.n_slices} slices x {scan.n_images} images of {scan.shape_hw[0]}x"
          f"{scan.shape_hw[1]} pixels, {scan.pixel_spacing[0]:.3g} x {scan.pixel_spacing[1]:.3g} mm; "
          f"inversion times (ms): {times}")
    return 0
