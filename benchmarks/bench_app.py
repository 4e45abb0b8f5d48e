"""SCORE Studio window timings: open a scan once the window is up, and change slices.

Targets: opening a scan <= 1 s once the window is up; a slice change <= 50 ms. The slice
change is timed in two parts: the application's and napari's work (events, slicing 22-33
layers, widgets), and the OpenGL draw of the canvas, which under Xvfb is software
rendering (llvmpipe) and costs tens of milliseconds even when nothing changed (printed
as the GL floor); on a GPU it is a few. Run under a display::

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python benchmarks/bench_app.py [--slices 12]

With ``--during-warm-up`` the study opens as soon as the window is up (as ``score-gui STUDY``
does): its first scan waits only for the panes the layout shows, and the hidden panes are made
afterwards, under it. ``--layout all`` starts with the 11-pane layout saved (the first scan then
makes 11 panes and the outline layers of its raters on each).

Prints one line per measurement (median and max of the repeats).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path


def _timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def _report(name: str, seconds: list[float], target_ms: float) -> None:
    median, worst = statistics.median(seconds) * 1000, max(seconds) * 1000
    verdict = "ok" if median <= target_ms else "SLOW"
    print(f"{name:<42} median {median:8.1f} ms   max {worst:8.1f} ms   target {target_ms:.0f} ms  {verdict}")


def _open_during_warm_up(window, app, study) -> None:
    """The study opened with the window just up: its first scan waits for the panes the
    layout shows, then the rest of the warm-up runs under it, a step per event-loop turn."""
    native = window.qt_viewer.canvas._scene_canvas.native
    started = time.perf_counter()
    window.start_warm_up()
    window.open_path(study.root)
    while window.scan is None:
        app.processEvents()
    native.repaint()            # the first frame of the scan
    _report(f"first scan, opened during the warm-up ({window.score_viewer.layout} layout)",
            [time.perf_counter() - started], 1000)
    while window.warming_up:
        app.processEvents()
    print(f"{'warm-up ended (panes made under the scan)':<42} {1000 * (time.perf_counter() - started):8.1f} ms")
    window.settle()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=12)
    parser.add_argument("--size", type=int, default=192, help="rows = columns of each image")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--during-warm-up", action="store_true",
                        help="open the study as soon as the window is up, as `score-gui STUDY` does, "
                             "instead of after the panes' warm-up")
    parser.add_argument("--layout", choices=("working", "all"), default="working",
                        help="the layout saved from the last session (default: working)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-app-"))
    os.environ["SCORE_HOME"] = str(home / "score")
    os.environ.setdefault("NAPARI_CONFIG", str(home / "napari.yaml"))

    from napari.qt import get_qapp

    from score_gui.phantom import make_study
    from score_studio.main_window import MainWindow
    from score_studio.settings import AppSettings

    study = make_study(home / "study", n_hc=1, n_ms=1, n_slices=args.slices, raters=("A", "B"),
                       shape=(args.size, args.size))
    app = get_qapp()
    started = time.perf_counter()
    window = MainWindow(AppSettings(rater_id="A", layout=args.layout), interactive=False)
    window.resize(1600, 1000)
    window.show()
    window.settle()
    gc.freeze()                 # as score-gui does once its window is up
    print(f"{'window up (napari viewer, docks)':<42} {1000 * (time.perf_counter() - started):8.1f} ms")
    entries = study.scans

    def open_next(counter=[0]):
        counter[0] += 1
        window.open_entry(entries[counter[0] % len(entries)])
        app.processEvents()

    if args.during_warm_up:
        _open_during_warm_up(window, app, study)
    else:
        started = time.perf_counter()
        window.start_warm_up()      # a pane per event-loop turn after start-up; here all at once
        window.finish_warm_up()
        print(f"{'warm-up (panes made, in the event loop)':<42} {1000 * (time.perf_counter() - started):8.1f} ms")
        # In the application the window draws itself while idle after the warm-up, before
        # anyone can click a scan; without that draw the first scan would also pay the first frame.
        window.settle()
        window.qt_viewer.canvas._scene_canvas.native.repaint()
        _report("first scan opened after warm-up", _timed(open_next, 1), 1000)
    _report(f"open a scan ({args.slices} slices, {args.size} px, 2 raters)",
            _timed(open_next, args.repeats), 1000)

    canvas = window.qt_viewer.canvas
    native = canvas._scene_canvas.native
    for layout in ("working", "all"):
        window.set_layout(layout)
        app.processEvents()
        slicing, drawing = [], []
        for step in range(10 * args.repeats):
            started = time.perf_counter()
            window.score_viewer.set_slice(step % window.scan.n_slices)
            sliced = time.perf_counter()
            app.processEvents()     # Qt widgets and the canvas redraw
            native.repaint()        # the frame the rater sees (software OpenGL under Xvfb)
            slicing.append(sliced - started)
            drawing.append(time.perf_counter() - sliced)
        _report(f"slice change, {layout}: app + napari slicing", slicing, 50)
        _report(f"slice change, {layout}: + Qt and OpenGL draw", drawing, 50)
        floor = []
        for _ in range(10):
            started = time.perf_counter()
            canvas._scene_canvas.update()
            app.processEvents()
            native.repaint()
            floor.append(time.perf_counter() - started)
        _report(f"redraw, {layout}, nothing changed", floor, 50)

    window.rater.autosave_timer.stop()
    window.close()


if __name__ == "__main__":
    main()
