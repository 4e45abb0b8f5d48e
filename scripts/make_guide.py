"""Make the screenshots of ``docs/guide.md`` from the real application and plugin.

Each picture is one step of a user's workflow, rendered by SCORE Studio itself on the demo
study, so the guide's pictures stay true when the screens change::

    xvfb-run -a -s "-screen 0 1920x1080x24" python scripts/make_guide.py [--out docs/guide]

Uses its own settings folder (``SCORE_HOME`` is set to a temporary one unless given).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shot(window, out: Path, name: str) -> None:
    window.render_screenshot(out / f"{name}.png")
    print(f"wrote {out / name}.png", flush=True)


def rater_steps(window, out: Path) -> None:
    """A rater labels a scan: annotate mode, the palette and the other raters' outlines."""
    window.set_mode("annotate")
    window.set_layout("working")
    window.score_viewer.set_slice(6)
    shot(window, out, "rater-annotate")
    window.set_layout("single")
    window.score_viewer.contours = True
    shot(window, out, "rater-outline")
    window.score_viewer.contours = False
    click_step(window, out)
    window.set_layout("working")


def click_step(window, out: Path) -> None:
    """Click correction: one + click where the rater's gray matter misses the true one."""
    import numpy as np

    from score_gui import labels as lab
    from score_gui.labels import read_labels

    from scipy import ndimage

    viewer = window.score_viewer
    shown = viewer.current_slice
    truth = lab.structure_mask(read_labels(window.entry.dseg_path("truth"), window.scan).dseg, "gm")
    missing = truth & ~lab.structure_mask(viewer.get_labels().dseg, "gm")
    s = int(np.argmax(missing.reshape(len(missing), -1).sum(axis=1)))   # the slice missing most
    missed = missing[s]
    if not missed.any():
        return
    viewer.set_slice(s)

    depth = ndimage.distance_transform_edt(missed)
    row, col = np.unravel_index(np.argmax(depth), depth.shape)
    viewer.set_label_value(lab.GM)
    viewer.set_tool("click")
    viewer.click_tool.click(s, int(row), int(col), True)
    viewer.contours = True
    shot(window, out, "rater-click")
    viewer.undo()
    viewer.contours = False
    viewer.set_tool("brush")
    viewer.set_slice(shown)


def reviewer_steps(window, out: Path) -> None:
    """A reviewer checks every slice: the QC grid with suggestions."""
    window.set_mode("qc")
    shot(window, out, "reviewer-qc")


def lab_steps(window, out: Path) -> None:
    """A lab member segments and exports a cohort, trains its own models, follows subjects."""
    window.set_mode("segment")
    shot(window, out, "lab-segment")
    window.set_mode("export")
    shot(window, out, "lab-export")
    window.set_mode("train")
    shot(window, out, "lab-train")
    window.set_mode("longitudinal")
    ms01 = next(e for e in window.study.scans if e.subject == "ms01")
    window.open_entry(ms01)
    shot(window, out, "lab-over-time")


def napari_steps(out: Path) -> None:
    """A napari user: the plugin's docks on a scan opened with its reader."""
    import napari

    from score_gui.phantom import ensure_demo_study
    from score_gui.study import Study

    entry = Study.open(ensure_demo_study()).scans[0]
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1700, 1000)
    viewer.open(str(entry.path), plugin="score-studio")
    for name in ("SCORE annotation", "SCORE segmentation", "SCORE QC"):
        viewer.window.add_plugin_dock_widget("score-studio", name)
    from qtpy.QtWidgets import QApplication

    for _ in range(50):
        QApplication.processEvents()
    viewer.screenshot(str(out / "napari-plugin.png"), canvas_only=False)
    print(f"wrote {out / 'napari-plugin.png'}", flush=True)
    viewer.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "guide")
    args = parser.parse_args(argv)
    os.environ.setdefault("SCORE_HOME", tempfile.mkdtemp(prefix="score-guide-"))
    args.out.mkdir(parents=True, exist_ok=True)

    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv)
    from score_gui.phantom import ensure_demo_study
    from score_studio.main_window import MainWindow
    from score_studio.settings import AppSettings

    window = MainWindow(settings=AppSettings(rater_id="A"), interactive=False)
    window.resize(1760, 1040)
    window.show()
    window.settle()
    window.open_study(ensure_demo_study())
    window.finish_warm_up()
    rater_steps(window, args.out)
    reviewer_steps(window, args.out)
    lab_steps(window, args.out)
    window.dispose()
    napari_steps(args.out)
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
