"""Speed of the multi-pane viewer: load, slice change, paint stroke, click correction (all 11 panes shown).

Run under a display (``xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python
benchmarks/bench_viewer.py``). Targets: load <= 1 s after the window is up, slice change
<= 50 ms. Slicing (napari updating every layer) and drawing (OpenGL; software GL under
Xvfb) are timed apart, since a GPU draws much faster than llvmpipe.
"""

from __future__ import annotations

import statistics
import time


def settle(app, viewer):
    last = None
    for _ in range(50):
        app.processEvents()
        time.sleep(0.01)
        if tuple(viewer.canvas.size) == last:
            return
        last = tuple(viewer.canvas.size)


def ms(values):
    return f"median {statistics.median(values) * 1000:.1f} ms (min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})"


def main() -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from score_napari._qt.viewer_controller import ScoreViewer
    from score_napari._sample_data import demo_scan

    t0 = time.perf_counter()
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    app = QApplication.instance()
    settle(app, viewer)
    print(f"window up: {time.perf_counter() - t0:.2f} s")
    scan_a, labels_a = demo_scan(seed=0)
    scan_b, labels_b = demo_scan(seed=1)
    sv = ScoreViewer(viewer)

    def timed(what: str, action) -> None:
        """Time ``action`` and until its result is on screen (events processed)."""
        started = time.perf_counter()
        action()
        called = time.perf_counter() - started
        app.processEvents()
        print(f"{what}: {called:.2f} s, shown after {time.perf_counter() - started:.2f} s")

    timed("first load (build 22 layers)", lambda: sv.load_scan(scan_a, labels_a))
    timed("next scan (layers reused)", lambda: sv.load_scan(scan_b, labels_b))

    warm_viewer = napari.Viewer(show=True)
    warm_viewer.window._qt_window.resize(1600, 1000)
    settle(app, warm_viewer)
    warm = ScoreViewer(warm_viewer)
    timed("warm_up() at start-up (empty panes, 2 spare contour sets)", warm.warm_up)
    timed("first scan after warm_up", lambda: warm.load_scan(scan_a, labels_a))
    warm_viewer.close()

    for layout in ("all", "working"):
        sv.set_layout(layout)
        settle(app, viewer)
        slicing, drawing = [], []
        for i in range(24):
            t = time.perf_counter()
            sv.set_slice(i % scan_b.n_slices)
            t1 = time.perf_counter()
            app.processEvents()
            slicing.append(t1 - t)
            drawing.append(time.perf_counter() - t1)
        print(f"slice change, layout {layout!r}: slicing {ms(slicing)}; + draw {ms(drawing)}")

    sv.set_layout("all")
    settle(app, viewer)
    sv.set_slice(6)
    sv.set_label_value(2)
    sv.set_brush_size(5)
    master = sv.master
    moves, draws = [], []
    with master.block_history():     # as during a mouse drag
        last = (6, 80, 70)
        for k in range(30):
            here = (6, 80 + (k % 10), 70 + k)
            t = time.perf_counter()
            master._draw(2, last, here)     # what napari runs on each mouse move
            t1 = time.perf_counter()
            app.processEvents()
            moves.append(t1 - t)
            draws.append(time.perf_counter() - t1)
            last = here
    t = time.perf_counter()
    sv.undo()
    undo = time.perf_counter() - t
    print(f"paint, per mouse move (master + 10 copies updated): {ms(moves)}; + draw {ms(draws)}")
    print(f"undo of a 30-move stroke: {undo * 1000:.1f} ms")
    click_latency(sv, app, labels_b)
    viewer.close()


def click_latency(sv, app, truth) -> None:
    """Click correction from the click to the labels updated on all 11 panes (target 300 ms):
    ``+`` clicks deep in gray matter removed from a slice, each on a fresh copy of it."""
    import numpy as np
    from scipy import ndimage

    from score_gui import labels as lab

    s = 6
    gm = lab.structure_mask(truth.dseg[s], "gm")
    rows, cols = np.nonzero(gm)
    sv.set_label_value(lab.GM)
    sv.set_tool("click")
    refine, total = [], []
    for k in range(10):
        damaged = truth.dseg.copy()
        cut = gm & (cols.min() + k % 4 <= np.arange(gm.shape[1]))[None, :] & (np.arange(gm.shape[0]) % 2 == k % 2)[:, None]
        damaged[s][cut] = lab.WM
        sv.set_labels(lab.LabelMap(damaged, truth.lesion, truth.labelled))
        app.processEvents()
        depth = ndimage.distance_transform_edt(cut)
        row, col = np.unravel_index(np.argmax(depth), depth.shape)
        t = time.perf_counter()
        sv.click_tool.click(s, int(row), int(col), True)
        app.processEvents()          # the panes redrawn
        refine.append(sv.click_tool.last_seconds)
        total.append(time.perf_counter() - t)
    sv.set_tool("brush")
    print(f"click correction (GM, + click): refine {ms(refine)}; click to labels drawn on 11 panes {ms(total)}")


if __name__ == "__main__":
    main()
