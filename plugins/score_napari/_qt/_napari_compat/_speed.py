"""Speed: what napari 0.9 repeats for every layer of a 22-33 layer grid (rules: :mod:`score_napari._qt._napari_compat`)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from contextlib import ExitStack, contextmanager

from score_napari._qt._napari_compat import _patch, missing_attributes
from score_napari._qt._napari_compat._access import vispy_canvas

# ----------------------------------------------------------------------------------------
# Speed: what napari 0.9 repeats for every layer of a 22-33 layer grid
# ----------------------------------------------------------------------------------------
PAUSED_SCENE = _patch(
    "paused_scene",
    "Laying the grid out once after a batch of layer changes. napari re-lays out every "
    "cell for every layer added, hidden or shown (quadratic in the layer count).",
    lambda canvas: missing_attributes(canvas, "_pause_scene_graph", "_update_scenegraph",
                                      "grid.parent", "grid_views", "central_widget.add_grid"))


@contextmanager
def scene_paused(viewer, signature: Callable[[], object]):
    """Pause the vispy scene graph of ``viewer`` inside the block; lay it out once at the
    end when ``signature()`` changed (layers added, removed, hidden or re-gridded)."""
    canvas = vispy_canvas(viewer)
    if canvas is None or not PAUSED_SCENE.usable(canvas):
        yield
        return
    previous = canvas._pause_scene_graph
    before = signature()
    canvas._pause_scene_graph = True
    try:
        yield
    finally:
        canvas._pause_scene_graph = previous
        if not previous and signature() != before:
            _drop_stale_grid(viewer, canvas)
            canvas._update_scenegraph()


def _drop_stale_grid(viewer, canvas) -> None:
    """Make napari build its grid of views anew when its cells no longer match.

    Pane titles (layer overlays) placed while the scene is paused index napari's vispy
    grid at the new cells, which creates them without cameras; napari then sees a grid
    of the right size and keeps it, and those cells do not follow zoom and pan.
    """
    grid = viewer.canvas.grid
    if grid.enabled and len(canvas.grid_views) != len(list(grid.iter_viewboxes(viewer.layers))):
        canvas.grid.parent = None
        canvas.grid = canvas.central_widget.add_grid(border_width=0)


def cell_view(viewer, layer_index: int):
    """The vispy view box showing the layer at ``layer_index`` (the canvas' single view
    outside grid mode), or None without a canvas."""
    canvas = vispy_canvas(viewer)
    if canvas is None:
        return None
    grid = viewer.canvas.grid
    if grid.enabled and hasattr(canvas, "grid_views"):
        cell = grid.position(layer_index, viewer.layers)
        for (coords, _), view in zip(grid.iter_viewboxes(viewer.layers), canvas.grid_views):
            if coords == cell:
                return view
    return canvas.view


def _grid_requires(viewer) -> list[str]:
    from napari.components.grid import GridCanvas

    missing = missing_attributes(viewer, "canvas.grid.enabled", "canvas.grid.stride",
                                 "canvas.grid.shape", "layers._list")
    missing += [f"GridCanvas.{name}" for name in missing_attributes(
        GridCanvas, "position", "actual_shape", "contents_at")]
    if not missing and type(viewer.canvas.grid) not in (GridCanvas, _memo_grid_class()):
        missing.append("canvas.grid of type GridCanvas")
    return missing


GRID_LAYOUT_MEMO = _patch(
    "grid_layout_memo",
    "Working napari's grid lay-out out once per state of the layer list. GridCanvas.position "
    "walks the layer list twice for every layer, and every lay-out asks it for every layer of "
    "every cell: cubic in the layer count, seconds per layout switch with 22-33 layers.",
    _grid_requires)

_MEMOS: dict[int, dict] = {}
_MEMO_CLASS: list = []


def _memo_grid_class():
    """A GridCanvas subclass whose lay-out answers are kept per layer-list state."""
    if _MEMO_CLASS:
        return _MEMO_CLASS[0]
    from napari.components.grid import GridCanvas

    def state(grid, layers) -> tuple:
        items = getattr(layers, "_list", layers)
        return (grid.enabled, grid.stride, tuple(grid.shape),
                tuple((id(layer), layer._visible) for layer in items))

    def lay_out(grid, layers) -> tuple:
        memo = _MEMOS.setdefault(id(grid), {})
        key = state(grid, layers)
        found = memo.get(key)
        if found is None:
            if len(memo) > 16:
                memo.clear()
            # napari's position() asks actual_shape() (memoized): the shape goes in first.
            memo[key] = (GridCanvas.actual_shape(grid, layers), None)
            positions = tuple(GridCanvas.position(grid, i, layers) for i in range(len(layers)))
            found = memo[key] = (memo[key][0], positions)
        return found

    class MemoGridCanvas(GridCanvas):
        """napari's GridCanvas with its answers kept per layer-list state (same answers)."""

        def position(self, index, layers):
            if not self.enabled or not layers or not 0 <= index < len(layers):
                return GridCanvas.position(self, index, layers)   # napari's answer or error
            return lay_out(self, layers)[1][index]

        def actual_shape(self, layers):
            return lay_out(self, layers)[0] if layers else GridCanvas.actual_shape(self, layers)

        def contents_at(self, where, layers):
            if not self.enabled or not layers:
                return GridCanvas.contents_at(self, where, layers)
            where = tuple(where)
            return tuple(i for i, cell in enumerate(lay_out(self, layers)[1]) if cell == where)

    _MEMO_CLASS.append(MemoGridCanvas)
    return MemoGridCanvas


def memoize_grid_layout(viewer) -> bool:
    """Keep the grid lay-out of ``viewer`` per layer-list state (:data:`GRID_LAYOUT_MEMO`).

    Only this viewer's grid changes (its class becomes a subclass of napari's with the
    same answers); other viewers keep napari's. Returns True when applied.
    """
    grid = getattr(getattr(viewer, "canvas", None), "grid", None)
    if grid is None or not GRID_LAYOUT_MEMO.usable(viewer):
        return False
    memo_class = _memo_grid_class()
    if type(grid) is not memo_class:
        object.__setattr__(grid, "__class__", memo_class)
        weakref.finalize(grid, _MEMOS.pop, id(grid), None)
    return True


SINGLE_SLICING = _patch(
    "single_slicing",
    "Slicing the layers once per slice change instead of twice. napari 0.9 connects both "
    "dims.events.point and dims.events.current_step to ViewerModel._update_layers (a "
    "documented work-around), so every step walks all layers twice.",
    lambda viewer: missing_attributes(viewer, "_update_layers", "dims.point", "dims.ndisplay",
                                      "dims.order", "dims.margin_left", "dims.margin_right"))


def skip_repeated_slicing(viewer) -> bool:
    """Skip a full layer update with the same dims and layers as the previous one
    (:data:`SINGLE_SLICING`); updates of given layers (a layer added) always run."""
    if getattr(viewer, "_score_single_slicing", False):
        return True
    if not SINGLE_SLICING.usable(viewer):
        return False
    update_layers = viewer._update_layers      # napari looks the callback up by name
    last = {"key": None}

    def update_once(*, layers=None):
        if layers is None:
            dims = viewer.dims
            key = (dims.point, dims.ndisplay, dims.order, dims.margin_left, dims.margin_right,
                   tuple(map(id, viewer.layers)))
            if key == last["key"]:
                return
            last["key"] = key
        update_layers(layers=layers)

    viewer._update_layers = update_once
    viewer._score_single_slicing = True
    return True


SLICE_WHEN_VISIBLE = _patch(
    "slice_when_visible",
    "Slicing a hidden layer when it is shown, not on every slice change. In the two-pane "
    "layout 18 of 22 layers are hidden and napari still slices them (a third of the "
    "slicing time), and slicing cleared the unchanged extent of every layer.",
    lambda layer: missing_attributes(layer, "_slice_dims", "_slicing_state.set_slice_input_from_dims",
                                     "_refresh_sync", "events.visible"))


def slice_when_visible(layer, viewer) -> bool:
    """Slice ``layer`` when it is shown rather than while hidden (:data:`SLICE_WHEN_VISIBLE`)."""
    if getattr(layer, "_score_slice_when_visible", False):
        return True
    if not SLICE_WHEN_VISIBLE.usable(layer):
        return False
    stale = {"slice": False}

    def slice_dims(dims, force: bool = False) -> None:
        if not layer.visible and not force:
            stale["slice"] = True
            return
        changed = layer._slicing_state.set_slice_input_from_dims(dims, force)
        if force or changed:
            layer._refresh_sync(data_displayed=True, thumbnail=True, highlight=True)

    def on_visible(event=None) -> None:
        # napari's ``visible`` setter has refreshed the old slice by now; a visible layer
        # whose slice input changes slices itself (``force`` would only store the input).
        if layer.visible and stale["slice"]:
            stale["slice"] = False
            if layer._slicing_state.set_slice_input_from_dims(viewer.dims, False):
                layer._refresh_sync(data_displayed=True, highlight=True)

    layer._slice_dims = slice_dims
    layer.events.visible.connect(on_visible)
    layer._score_slice_when_visible = True
    return True


def _light_requires(target) -> list[str]:
    layer, canvas = target
    missing = missing_attributes(layer, "_update_thumbnail", "_slice_input.displayed", "scale",
                                 "translate", "affine.affine_matrix", "units")
    if canvas is not None:
        missing += [f"canvas.{name}" for name in missing_attributes(canvas, "layer_to_visual")]
        visual = getattr(canvas, "layer_to_visual", {}).get(layer)
        if visual is not None:
            missing += [f"visual.{name}" for name in missing_attributes(visual, "_on_matrix_change", "node")]
    return missing


LIGHT_LAYERS = _patch(
    "light_layers",
    "Skipping per-layer work napari repeats on every slice change: the layer-list "
    "thumbnail (about 10 % of a slice change with 22 layers) and the vispy transform, "
    "re-derived from the unchanged scale on every data change (about 40 %).",
    _light_requires)


def lighten_layer(layer, canvas) -> bool:
    """No thumbnails, and the vispy transform redone only when its inputs change
    (:data:`LIGHT_LAYERS`): when the layer's transform inputs, the displayed axes or the
    vispy node change."""
    if not LIGHT_LAYERS.usable((layer, canvas)):
        return False
    layer._update_thumbnail = lambda *args, **kwargs: None
    visual = getattr(canvas, "layer_to_visual", {}).get(layer) if canvas is not None else None
    if visual is None or getattr(visual, "_score_light", False):
        return True
    original = visual._on_matrix_change
    state = {"key": None}

    def on_matrix_change(*args, **kwargs):
        key = (id(visual.node), tuple(layer._slice_input.displayed), tuple(layer.scale),
               tuple(layer.translate), layer.affine.affine_matrix.tobytes(), str(layer.units))
        if key != state["key"]:
            state["key"] = key
            original(*args, **kwargs)

    # Transform events from the layer itself still go to the original method.
    visual._on_matrix_change = on_matrix_change
    visual._score_light = True
    return True


ONE_EXTENT_UPDATE = _patch(
    "one_extent_update",
    "One update of the viewer's extent and dims for a batch of layer changes. napari "
    "recomputes them (every layer's extent, the dims ranges) for each scale, translate or "
    "data change of any layer; giving 11 panes' outline layers a new grid made that 33 "
    "times per source, most of the 1.3 s that the first scan's outlines took.",
    lambda viewer: missing_attributes(viewer, "_on_layers_change"))


@contextmanager
def one_extent_update(viewer, layers):
    """Change ``layers``' scale, translate and data inside; the viewer updates its extent once,
    at the end (:data:`ONE_EXTENT_UPDATE`). Layers keep every other reaction to the changes."""
    if not layers or not ONE_EXTENT_UPDATE.usable(viewer):
        yield
        return
    update = viewer._on_layers_change
    with ExitStack() as stack:
        for layer in layers:
            for name in ("scale", "translate", "data"):
                stack.enter_context(getattr(layer.events, name).blocker(update))
        yield
    update()


CONTROLS_ON_DEMAND = _patch(
    "controls_on_demand",
    "A layer's Qt controls panel (opacity, contrast, brush) made once the event loop turns "
    "with the layer selected, not when it is added. napari makes one for every layer added "
    "(each new layer is selected for a moment), about 50 ms each: 2.2 s of the 44 layers "
    "of the panes, for panels of which only the selected layer's ever shows.",
    lambda viewer: _controls_requires(viewer))


def _controls_requires(viewer) -> list[str]:
    from score_napari._qt._napari_compat._access import qt_viewer_of

    qt_viewer = qt_viewer_of(viewer)
    if qt_viewer is None:
        return ["window._qt_viewer"]
    return (missing_attributes(qt_viewer, "controls._add", "controls._remove", "controls._populate",
                               "controls.widgets", "controls.viewer", "controls.empty_widget")
            + missing_attributes(viewer, "layers.events.inserted", "layers.events.removed",
                                 "layers.selection.events.changed", "layers.selection.active"))


def make_controls_on_demand(viewer) -> bool:
    """Make a layer's controls when the event loop turns with it selected
    (:data:`CONTROLS_ON_DEMAND`); returns True when applied."""
    from types import SimpleNamespace

    from qtpy.QtCore import QTimer

    from score_napari._qt._napari_compat._access import qt_viewer_of

    qt_viewer = qt_viewer_of(viewer)
    if qt_viewer is None or not CONTROLS_ON_DEMAND.usable(viewer):
        return False
    controls = qt_viewer.controls
    if getattr(controls, "_score_on_demand", False):
        return True
    layers = viewer.layers
    layers.events.inserted.disconnect(controls._add)
    layers.events.removed.disconnect(controls._remove)
    layers.selection.events.changed.disconnect(controls._populate)
    container = weakref.ref(controls)
    later = QTimer(controls)      # the selection at the next turn: after a batch of added layers
    later.setSingleShot(True)
    later.setInterval(0)

    def removed(event) -> None:
        owner = container()
        if owner is not None and event.value in owner.widgets:
            owner._remove(event)

    def show_active() -> None:
        owner = container()
        if owner is None:
            return
        active = owner.viewer.layers.selection.active
        if active is not None and active not in owner.widgets and active in owner.viewer.layers:
            owner._add(SimpleNamespace(value=active))
        owner._populate()

    def selection_changed(event=None) -> None:
        owner = container()
        if owner is None:
            return
        active = owner.viewer.layers.selection.active
        if active is None or active in owner.widgets:
            owner._populate()
        else:
            owner.setCurrentWidget(owner.empty_widget)
            later.start()

    later.timeout.connect(show_active)
    layers.events.removed.connect(removed)
    layers.selection.events.changed.connect(selection_changed)
    controls._score_on_demand = True
    return True


EDITING_OVERLAYS = _patch(
    "editing_overlays",
    "The polygon and brush-stroke overlays of a labels layer drawn only on the layer being "
    "edited (the polygon one once the polygon tool is chosen). napari builds their vispy "
    "visuals for every labels layer added (the polygon one about 75 ms, 0.3 s the first "
    "time), 2.5 s for the 33 labels and outline layers of the panes, of which only the "
    "master's are ever used.",
    lambda layer: missing_attributes(layer, "_overlays") or [
        f"_overlays[{name!r}].visible" for name in ("polygon", "brush_stroke")
        if not hasattr(layer._overlays.get(name), "visible")])


def hide_editing_overlays(layer) -> bool:
    """Build no polygon or brush-stroke visuals for ``layer`` before it is added to a viewer
    (:data:`EDITING_OVERLAYS`); napari builds them when :func:`show_editing_overlays` shows
    them. Returns True when applied."""
    if not EDITING_OVERLAYS.usable(layer):
        return False
    for name in ("polygon", "brush_stroke"):
        layer._overlays[name].visible = False
    return True


def show_editing_overlays(layer, polygon: bool = False) -> None:
    """Give ``layer`` (the layer being edited) its brush-stroke overlay back, and its polygon
    overlay when the polygon tool is on (its visuals cost 0.3 s the first time)."""
    if EDITING_OVERLAYS.usable(layer):
        layer._overlays["brush_stroke"].visible = True
        if polygon:
            layer._overlays["polygon"].visible = True
