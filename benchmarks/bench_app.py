"""SCORE Studio window timings: open a scan once the window is up, and change slices.

Targets: opening a scan <= 1 s once the window is up; a slice change <= 50 ms (the time
from the request until the canvas has redrawn). Run under a display::

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python benchmarks/bench_app.py [--slices 12]

Prints one line per measurement (median and max of the repeats).
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=12)
    parser.add_argument("--size", type=int, default=192, help="rows = columns of each image")
    parser.add_argument("--repeats", type=int, default=3)
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
    window = MainWindow(AppSettings(rater_id="A"), interactive=False)
    window.resize(1600, 1000)
    window.show()
    window.settle()
    print(f"{'window up (napari viewer, docks)':<42} {1000 * (time.perf_counter() - started):8.1f} ms")
    entries = study.scans

    def open_next(counter=[0]):
        counter[0] += 1
        window.open_entry(entries[counter[0] % len(entries)])
        app.processEvents()

    open_next()       # the first scan builds the layers; later ones may reuse them
    _report(f"open a scan ({args.slices} slices, {args.size} px, 2 raters)",
            _timed(open_next, args.repeats), 1000)

    canvas = window.qt_viewer.canvas

    def change_slice(state={"s": 0}):
        state["s"] = (state["s"] + 1) % window.scan.n_slices
        window.score_viewer.set_slice(state["s"])
        app.processEvents()
        canvas._scene_canvas.native.repaint()   # the frame the rater sees

    for layout in ("working", "all"):
        window.set_layout(layout)
        app.processEvents()
        _report(f"slice change, layout {layout}", _timed(change_slice, 10 * args.repeats), 50)

    window.rater.autosave_timer.stop()
    window.close()


if __name__ == "__main__":
    main()
