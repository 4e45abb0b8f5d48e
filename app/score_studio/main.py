"""``score-gui [SCAN|STUDY] [--demo] [--screenshot PNG] [--mode annotate|segment|qc|export]``.

* ``SCAN`` / ``STUDY``: a NIfTI scan, a study folder or a DICOM folder to open.
* ``--demo``: open the demo study (made on first use in ``SCORE_HOME``).
* ``--screenshot PNG``: render the main window, save it as PNG and exit (works under
  ``xvfb-run``); no dialog opens.
* ``--mode``: the workflow mode to start in.

Exit codes follow the command line: 0 success, 2 bad input (one line on stderr), 1 otherwise.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

from score_studio.main_window import MODES

EXIT_BAD_INPUT = 2
SCREENSHOT_SIZE = (1760, 1040)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="score-gui", description="SCORE Studio: spinal cord compartments on AMIRA MRI.")
    parser.add_argument("path", nargs="?", help="scan (.nii/.nii.gz), study folder or DICOM folder")
    parser.add_argument("--demo", action="store_true", help="open the demo study")
    parser.add_argument("--screenshot", metavar="PNG", help="render the window to PNG and exit")
    parser.add_argument("--mode", choices=MODES, help="workflow mode to start in")
    parser.add_argument("--slice", type=int, help="slice to show first (0-based)")
    parser.add_argument("--layout", choices=("all", "working", "single"), help="viewer layout")
    return parser


def _check_input(args) -> str | None:
    """One-line problem with the arguments, or None."""
    if args.path and not Path(args.path).expanduser().exists():
        return f"{args.path}: not found"
    if args.screenshot:
        folder = Path(args.screenshot).expanduser().resolve().parent
        if not folder.is_dir():
            return f"{args.screenshot}: folder {folder} does not exist"
        if not args.screenshot.lower().endswith(".png"):
            return f"{args.screenshot}: the screenshot must be a .png file"
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``score-gui`` console script."""
    args = build_parser().parse_args(argv)
    problem = _check_input(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.screenshot and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") \
            and os.environ.get("QT_QPA_PLATFORM", "") in ("", "xcb"):
        print("error: --screenshot needs a display; run it under xvfb-run -a", file=sys.stderr)
        return 1
    window, app = create_window(interactive=not args.screenshot)
    if args.screenshot:
        window.resize(*SCREENSHOT_SIZE)
    # Shown and settled before anything loads: napari sizes its canvas only when shown, and
    # the rater's ID dialog should open over the window, not before it.
    window.show()
    window.settle()
    if argv is None:
        # The process is score-gui's own: what start-up made (napari, Qt, the window: millions
        # of objects) lives as long as it does. Out of the collector's sight, a full collection
        # no longer pauses the window for 0.2-0.3 s (two delayed the first scan by 0.5 s).
        # A caller's process (main(argv) from a test) keeps its objects collectable.
        gc.freeze()
    # The panes' layers in the event loop, the shown ones first; a given study's first scan
    # opens once those are made.
    window.start_warm_up()
    opened = open_requested(window, args)
    if args.screenshot:
        window.warm_up.open_waiting_now()
        window.warm_up.stop()       # the picture shows the layout's panes: no hidden ones needed
    if args.mode:
        window.set_mode(args.mode)
    if args.layout:
        window.set_layout(args.layout)
    if args.slice is not None:
        window.finish_warm_up()     # the scan must be open to go to its slice
    if args.slice is not None and window.scan is not None:
        window.score_viewer.set_slice(args.slice)
    if args.screenshot:
        if (args.path or args.demo) and not opened:
            return EXIT_BAD_INPUT
        path = window.render_screenshot(args.screenshot, SCREENSHOT_SIZE)
        print(f"screenshot: {path}")
        window.dispose()
        return 0
    if not (args.path or args.demo):
        window.offer_pending_recoveries()
    return app.exec()


def create_window(interactive: bool = True):
    """The QApplication (napari's, with its theme resources) and the main window."""
    from napari.qt import get_qapp

    from score_napari._qt import guard_singleton_refcounts

    # PySide6 6.12 on CPython 3.11 drops references to None/True/False on void Qt calls;
    # the reserve is added once per process, before any Qt viewer exists.
    guard_singleton_refcounts()
    app = get_qapp()
    app.setApplicationName("SCORE Studio")
    app.setOrganizationName("SCORE")
    from score_studio.main_window import MainWindow

    return MainWindow(interactive=interactive), app


def open_requested(window, args) -> bool:
    """Open the demo study or the path given on the command line."""
    if args.demo:
        from score_gui.phantom import ensure_demo_study

        return window.open_path(ensure_demo_study())
    if args.path:
        return window.open_path(args.path)
    return True


if __name__ == "__main__":
    sys.exit(main())
