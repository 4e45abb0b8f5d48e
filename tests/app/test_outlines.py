"""Other sources' outlines leave the gray matter readable under three raters, at the zoom
the window opens with and at four times that (screen-resolution outlines)."""

from __future__ import annotations

import numpy as np
import pytest

from score_gui.labels import GM, LABEL_COLORS, read_labels
from score_napari._qt.contours import fine_factor, fine_grid
from score_napari._qt.display import outline_colors

pytestmark = pytest.mark.gui

OFFSETS = (-0.3, 0.0, 0.3)
"""Where each gray-matter pixel is looked at: a 3 x 3 grid inside its square on screen."""


def canvas(window) -> np.ndarray:
    window.settle(1.0)
    return np.asarray(window.viewer.screenshot(canvas_only=True, flash=False))[..., :3].astype(int)


def uncovered_gm_share(window, gm: np.ndarray) -> float:
    """Share of screen points inside the GM that look the same with and without the outlines."""
    sv = window.score_viewer
    pane = sv.visible_panes()[0].key
    rows, cols = np.nonzero(gm)
    points = [sv.canvas_position(pane, r + dr, c + dc) for r, c in zip(rows, cols)
              for dr in OFFSETS for dc in OFFSETS]
    shown = canvas(window)
    for who in sv.reference_layers.names:
        sv.set_reference_visible(who, False)
    bare = canvas(window)
    for who in sv.reference_layers.names:
        sv.set_reference_visible(who, True)
    h, w = shown.shape[:2]
    same = [np.abs(shown[y, x] - bare[y, x]).max() <= 12 for x, y in
            points if 0 <= x < w and 0 <= y < h]
    assert len(same) > 0.9 * len(points)              # the gray matter is on screen
    return float(np.mean(same))


def test_three_raters_leave_the_gray_matter_visible_at_two_zooms(window, study_builder, tmp_path):
    study = study_builder(tmp_path / "three", n_hc=1, n_ms=0, raters=("B", "C", "D"))
    window.set_mode("annotate")                        # the dock width of annotate mode (earlier modules'
    window.resize(1400, 900)                           # windows may have saved another mode and size)
    window.settle(2.0)
    window.open_study(study.root)
    sv = window.score_viewer
    assert set(sv.reference_layers.names) >= {"raterB", "raterC", "raterD"}
    window.set_layout("single")
    sv.labels_visible = False                          # only the other sources' outlines count
    index = sv.current_slice
    truth = read_labels(window.entry.dseg_path("truth"), window.scan).dseg[index]
    gm = truth >= GM
    window.settle(1.0)
    window.zoom_to_cord()
    window.settle(1.0)
    zoom = window.viewer.scene.camera.zoom
    assert zoom * min(window.scan.pixel_spacing) >= 8       # the opening zoom: a pixel is 8+ screen pixels
    shares = {}
    for factor in (1, 4):
        window.viewer.scene.camera.zoom = zoom * factor
        shares[factor] = uncovered_gm_share(window, gm)
    sv.labels_visible = True
    window.set_layout("working")
    assert min(shares.values()) >= 0.6, shares
    # The outlines are drawn in the paper's colours: the canal/cord border's gold is on screen.
    gold = np.array([int(LABEL_COLORS[1][i:i + 2], 16) for i in (1, 3, 5)])
    assert (np.abs(canvas(window) - gold).max(axis=-1) <= 30).mean() > 0.0005


def test_outline_width_follows_the_zoom():
    assert fine_factor(zoom=1.0, pixel_mm=0.67) < fine_factor(zoom=20.0, pixel_mm=0.67)
    assert fine_grid(np.ones((1, 2, 2), np.uint8), (0, 0, 2, 2), 4).shape == (1, 8, 8)
    assert outline_colors(automatic=True)[GM][:3].mean() > outline_colors()[GM][:3].mean()   # lighter
