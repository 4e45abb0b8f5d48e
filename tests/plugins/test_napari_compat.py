"""The napari patches of :mod:`score_napari._qt._napari_compat`, one test per patch.

Each test fails when napari no longer has an attribute the patch relies on (checked on
fresh, unpatched napari objects) or when the patch no longer has its effect on a real
viewer under Xvfb. Then: napari's own behaviour on another napari version, or when one
attribute is gone; the patches reach only the viewer that applies them; the refcount
reserve is not applied by importing the plugin.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from score_gui import labels as lab
from score_gui.scan import Scan
from score_napari._qt import _napari_compat as compat
from score_napari._qt.viewer_controller import ScoreViewer
from score_napari._sample_data import simple_phantom

from tests.plugins.viewer_helpers import close_viewer, settle

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def env():
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1200, 800)
    app = QApplication.instance()
    settle(app, viewer)
    scan, truth = simple_phantom(n_slices=4, size=64)
    score_viewer = ScoreViewer(viewer)
    score_viewer.load_scan(scan, truth)
    settle(app, viewer)
    yield score_viewer, truth, app
    close_viewer(viewer, app)


@pytest.fixture
def sv(env):
    score_viewer, truth, app = env
    score_viewer.set_layout("all")
    score_viewer.set_labels(truth)
    score_viewer.set_slice(1)
    app.processEvents()
    return score_viewer


@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(compat, "_WARNED", set())


def fresh_targets(sv) -> dict:
    """Unpatched napari objects of each patch's kind (a patched object keeps SCORE's
    replacement attributes, which would hide a napari that dropped the original)."""
    from napari.components import ViewerModel
    from napari.layers import Image, Labels
    from napari.utils._proxies import PublicOnlyProxy

    canvas = compat.vispy_canvas(sv.viewer)
    labels = Labels(np.zeros((2, 8, 8), np.uint8))
    image = Image(np.zeros((2, 8, 8), np.float32))
    return {"qt_viewer": sv.viewer, "unwrap_proxy": PublicOnlyProxy(sv.viewer),
            "paint_hook": labels, "region_refresh": labels, "paused_scene": canvas,
            "grid_layout_memo": ViewerModel(), "single_slicing": ViewerModel(),
            "slice_when_visible": image, "light_layers": (image, canvas), "one_extent_update": ViewerModel(),
            "controls_on_demand": sv.viewer, "editing_overlays": labels}   # the patch changes connections, not attributes


@pytest.mark.parametrize("name", sorted(compat.PATCHES))
def test_patch_relies_only_on_attributes_this_napari_has(sv, name):
    targets = fresh_targets(sv)
    assert set(targets) == set(compat.PATCHES)     # a new patch needs its target here
    patch = compat.PATCHES[name]
    assert patch.requires(targets[name]) == [], f"napari {compat.napari_version()} lacks them"
    assert patch.reason and patch.usable(targets[name])
    assert compat.version_supported()     # the installed napari is the one they were written for


def test_paint_hook_routes_napari_painting_through_the_viewer(sv):
    master = sv.master
    assert "_apply_mask_to_data" in vars(master)             # the layer's, not napari's method
    data = master.data
    s = sv.current_slice
    outside = np.argwhere(data[s] == lab.OUTSIDE)[0]
    inside = np.argwhere(data[s] == lab.WM)[0]
    before = data.copy()
    master.paint((s, *outside), lab.GM, refresh=True)         # napari's public painting API
    np.testing.assert_array_equal(data, before)               # nesting: no gray matter outside the cord
    master.paint((s, *inside), lab.GM, refresh=True)
    assert data[(s, *inside)] == lab.GM and sv.can_undo       # the viewer's undo history
    assert not master._undo_history                           # napari's own stays empty
    sv.undo()
    np.testing.assert_array_equal(data, before)


def test_region_refresh_redraws_the_painted_box_of_every_copy(sv):
    s = sv.current_slice
    data = sv.master.data                                     # one array behind every copy
    key = (slice(s, s + 1), slice(2, 6), slice(3, 7))
    data[key] = lab.CSF
    for pane in sv.panes:
        compat.refresh_labels_region(pane.labels, key)
    pane = sv.panes[5].labels
    shown = np.asarray(pane._slice.image.view)[2:6, 3:7]
    expected = pane.colormap._data_to_texture(np.array([lab.CSF], np.uint8))[0]
    assert (shown == expected).all()


def test_paused_scene_lays_the_grid_out_once(sv, monkeypatch):
    canvas = compat.vispy_canvas(sv.viewer)
    calls = []      # lay-outs done (napari returns at once from a call while paused)
    original = canvas._update_scenegraph
    monkeypatch.setattr(canvas, "_update_scenegraph", lambda *a, **k: (
        None if canvas._pause_scene_graph else calls.append(1), original(*a, **k)))
    layers = [pane.image for pane in sv.panes[:4]]
    try:
        with compat.scene_paused(sv.viewer, sv.pool.scene_signature):
            assert canvas._pause_scene_graph
            for layer in layers:
                layer.visible = False
        assert not canvas._pause_scene_graph and len(calls) == 1    # napari alone: 4
    finally:
        with compat.scene_paused(sv.viewer, sv.pool.scene_signature):
            for layer in layers:
                layer.visible = True
    assert len(calls) == 2
    with compat.scene_paused(sv.viewer, sv.pool.scene_signature):
        layers[0].visible = False
        layers[0].visible = True
    assert len(calls) == 2                                    # nothing changed in the end: no lay-out


def test_grid_layout_memo_gives_napari_answers_for_this_viewer_only(sv, monkeypatch):
    from napari.components import ViewerModel
    from napari.components.grid import GridCanvas

    grid, layers = sv.viewer.canvas.grid, sv.viewer.layers
    assert isinstance(grid, GridCanvas) and type(grid) is not GridCanvas
    assert type(ViewerModel().canvas.grid) is GridCanvas      # other viewers keep napari's
    expected = [GridCanvas.position(grid, i, layers) for i in range(len(layers))]
    assert [grid.position(i, layers) for i in range(len(layers))] == expected
    assert grid.actual_shape(layers) == GridCanvas.actual_shape(grid, layers) == (3, 4)
    assert grid.contents_at((0, 1), layers) == GridCanvas.contents_at(grid, (0, 1), layers)
    calls = []
    position = GridCanvas.position
    monkeypatch.setattr(GridCanvas, "position", lambda *a: (calls.append(1), position(*a))[1])
    for _ in range(3):
        [grid.position(i, layers) for i in range(len(layers))]
    assert calls == []                                        # answered from the memo


def test_single_slicing_slices_each_visible_layer_once_per_step(sv):
    assert sv.viewer._score_single_slicing
    layer = sv.panes[0].image
    calls = []
    original = layer._slice_dims
    layer._slice_dims = lambda dims, force=False: (calls.append(1), original(dims, force))
    try:
        sv.set_slice(2)
        sv.set_slice(3)
    finally:
        layer._slice_dims = original
    assert len(calls) == 2                                    # napari 0.9 alone: 4


def test_slice_when_visible_slices_hidden_panes_when_shown(sv):
    sv.set_layout("working")
    hidden = sv.panes[0].labels                               # TI1: hidden in the working layout
    assert not hidden.visible and hidden._score_slice_when_visible
    sv.set_slice(3)
    assert hidden._slice_input.world_slice.point[0] != 3                  # not sliced while hidden
    sv.set_layout("all")
    assert hidden._slice_input.world_slice.point[0] == 3                  # sliced when shown


def test_light_layers_no_thumbnails_and_transform_only_on_change(sv):
    canvas = compat.vispy_canvas(sv.viewer)
    layer = sv.panes[0].image
    visual = canvas.layer_to_visual[layer]
    assert visual._score_light and "_on_matrix_change" in vars(visual)
    assert hasattr(type(visual), "_on_matrix_change")
    thumbnail = layer.thumbnail.copy()
    layer._update_thumbnail()
    np.testing.assert_array_equal(layer.thumbnail, thumbnail)
    sv.set_slice(0)
    x, y = sv.canvas_position("TI1", 10, 20)                  # the transform still maps pixels
    assert 0 <= x < sv.viewer.canvas.size[1] and 0 <= y < sv.viewer.canvas.size[0]


def test_qt_viewer_and_unwrap_proxy_accessors(sv):
    from napari.components import ViewerModel
    from napari.utils._proxies import PublicOnlyProxy
    from qtpy.QtWidgets import QWidget

    qt_viewer = compat.qt_viewer_of(sv.viewer, required=True)
    assert isinstance(qt_viewer, QWidget) and compat.vispy_canvas(sv.viewer) is qt_viewer.canvas
    assert compat.qt_viewer_of(ViewerModel()) is None and compat.vispy_canvas(ViewerModel()) is None
    with pytest.raises(RuntimeError, match="QtViewer"):
        compat.qt_viewer_of(ViewerModel(), required=True)
    assert compat.unwrap_viewer(PublicOnlyProxy(sv.viewer)) is sv.viewer
    assert compat.unwrap_viewer(sv.viewer) is sv.viewer


def test_other_napari_version_gets_napari_behaviour(sv, monkeypatch, fresh_warnings):
    from napari.components import ViewerModel
    from napari.components.grid import GridCanvas
    from napari.layers import Image, Labels

    monkeypatch.setattr(compat, "napari_version", lambda: "0.10.0")
    viewer = ViewerModel()
    labels = Labels(np.zeros((2, 8, 8), np.uint8))
    image = Image(np.zeros((2, 8, 8), np.float32))
    with pytest.warns(RuntimeWarning, match="0.10.0"):
        assert not compat.memoize_grid_layout(viewer)
    assert not compat.skip_repeated_slicing(viewer)
    assert not compat.install_paint_hook(labels, lambda *a: None)
    assert not compat.slice_when_visible(image, viewer)
    assert not compat.lighten_layer(image, None)
    assert type(viewer.canvas.grid) is GridCanvas
    assert "_update_layers" not in vars(viewer) and "_apply_mask_to_data" not in vars(labels)
    assert "_slice_dims" not in vars(image) and "_update_thumbnail" not in vars(image)
    labels.data[0, 2:4, 2:4] = 3
    compat.refresh_labels_region(labels, (slice(0, 1), slice(2, 4), slice(2, 4)))   # napari's refresh
    # Accessors change nothing in napari: still used.
    assert compat.qt_viewer_of(sv.viewer) is not None
    monkeypatch.setenv(compat.ENV, "force")
    assert compat.skip_repeated_slicing(viewer) and compat.install_paint_hook(labels, lambda *a: None)


def test_missing_attribute_turns_only_that_patch_off(monkeypatch, fresh_warnings):
    from napari.layers import Labels

    monkeypatch.delattr(Labels, "_history_atom_for_mask_paint")
    layer = Labels(np.zeros((1, 8, 8), np.uint8))
    with pytest.warns(RuntimeWarning, match="_history_atom_for_mask_paint"):
        assert not compat.install_paint_hook(layer, lambda *a: None)
    assert compat.PATCHES["paint_hook"].requires(layer) == ["_history_atom_for_mask_paint"]
    assert compat.PATCHES["region_refresh"].usable(layer)    # the others are still applied


def test_score_viewer_works_on_plain_napari_when_patches_are_off(qtbot, monkeypatch, fresh_warnings):
    """Another napari version: napari's own behaviour, slower; painting without nesting."""
    import napari
    from napari.components.grid import GridCanvas

    monkeypatch.setattr(compat, "napari_version", lambda: "0.10.0")
    viewer = napari.Viewer(show=False)
    try:
        with pytest.warns(RuntimeWarning):
            score_viewer = ScoreViewer(viewer)
        scan, truth = simple_phantom(n_slices=3, size=48)
        one = Scan.from_arrays(scan.images[:, :1], pixel_spacing=scan.pixel_spacing)
        score_viewer.load_scan(one, truth)
        assert type(viewer.canvas.grid) is GridCanvas and "_update_layers" not in vars(viewer)
        master = score_viewer.master
        assert "_apply_mask_to_data" not in vars(master) and "_slice_dims" not in vars(master)
        s = score_viewer.current_slice
        outside = tuple(np.argwhere(master.data[s] == lab.OUTSIDE)[0])
        master.paint((s, *outside), lab.GM, refresh=True)    # napari paints by itself
        assert master.data[(s, *outside)] == lab.GM
        master.undo()                                        # with napari's own undo
        assert master.data[(s, *outside)] == lab.OUTSIDE
    finally:
        viewer.close()


def test_importing_the_plugin_adds_no_refcount_reserve(tmp_path):
    code = ("import sys, score_napari._reader, score_napari._writer, score_napari._widgets\n"
            "import score_napari._qt as qt, score_napari._qt.viewer_controller\n"
            "assert sys.getrefcount(None) < 1 << 40, sys.getrefcount(None)\n"
            "print(qt._GUARDED)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_one_extent_update_updates_the_viewer_once_for_a_batch():
    """Outline layers given a new grid: napari's extent update runs once, not per change,
    and the viewer's extent still follows the layers."""
    from napari.components import ViewerModel

    calls = []

    class CountingViewer(ViewerModel):
        def _on_layers_change(self):
            calls.append(1)
            super()._on_layers_change()

    viewer = CountingViewer()
    layers = [viewer.add_labels(np.zeros((2, 8, 8), np.uint8)) for _ in range(3)]
    calls.clear()
    for layer in layers:                       # napari's own behaviour: one update per change
        layer.scale = (1, 1.5, 1.5)
    assert len(calls) == 3
    calls.clear()
    with compat.one_extent_update(viewer, layers):
        for layer in layers:
            layer.scale, layer.translate = (1, 2, 2), (0, 4, 4)
            layer.data = np.zeros((2, 10, 10), np.uint8)
    assert calls == [1]
    assert viewer.layers.extent.world[1][-1] == pytest.approx(4 + 2 * (10 - 1))   # the last pixel centre
    assert all(tuple(layer.scale) == (1, 2, 2) and layer.data.shape == (2, 10, 10) for layer in layers)


def test_controls_on_demand_makes_only_the_selected_layers_controls(sv):
    """Layers added in a batch get no controls panel; the one selected when the event loop
    turns gets its panel, another gets one when selected, and removing either works."""
    from qtpy.QtWidgets import QApplication

    controls = compat.qt_viewer_of(sv.viewer).controls
    assert getattr(controls, "_score_on_demand", False)       # applied by the ScoreViewer
    added = [sv.viewer.add_image(np.zeros((4, 8, 8), np.float32), name=f"probe {i}", visible=False)
             for i in range(3)]
    try:
        assert not any(layer in controls.widgets for layer in added)
        QApplication.instance().processEvents()
        assert [layer in controls.widgets for layer in added] == [False, False, True]
        assert controls.currentWidget() is controls.widgets[added[2]]
        sv.viewer.layers.selection.active = added[0]
        QApplication.instance().processEvents()
        assert added[0] in controls.widgets and controls.currentWidget() is controls.widgets[added[0]]
    finally:
        for layer in added:
            sv.viewer.layers.remove(layer)
    assert not any(layer in controls.widgets for layer in added)
    sv.relayout()       # the master selected again


def test_editing_overlays_only_on_the_master(sv, env):
    """The brush-stroke visual is built for the labels layer being edited only, the polygon
    one once the polygon tool is chosen, neither for outline layers; the master of another
    layout gets them when it becomes the master."""
    canvas = compat.vispy_canvas(sv.viewer)
    truth = env[1]

    def built(layer, name) -> bool:
        return layer._overlays[name] in canvas._layer_overlay_to_visual.get(layer, {})

    assert built(sv.master, "brush_stroke")
    sv.set_tool("polygon")
    try:
        assert built(sv.master, "polygon") and sv.master.mode == "polygon"
    finally:
        sv.set_tool("brush")
    sv.add_reference_labels("raterB", truth)
    try:
        outlines = [pane.references["raterB"] for pane in sv.panes]
        assert any(layer.visible for layer in outlines)
        assert not any(built(layer, "polygon") or built(layer, "brush_stroke") for layer in outlines)
    finally:
        sv.remove_reference_labels("raterB")
    sv.set_layout("single", sv.panes[-1].key)
    try:
        assert sv.master is sv.panes[-1].labels and built(sv.master, "brush_stroke")
        assert not built(sv.master, "polygon")
    finally:
        sv.set_layout("all")
