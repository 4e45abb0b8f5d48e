"""Every use of napari's and vispy's private attributes by SCORE, in one module.

SCORE's viewer (:mod:`score_napari._qt.viewer_controller`) puts 22-33 layers in one napari grid
and edits one shared array from 11 labels layers; napari 0.9 has no public API for some of that
and is slow for the rest, so the viewer patches napari here, and only here. The rules:

- A patch is applied explicitly, by the :class:`~score_napari._qt.viewer_controller.ScoreViewer`
  that needs it, to its own viewer and layers: never at import, never to other viewers
  (a plain napari viewer in the same process keeps napari's behaviour).
- Every patch is a :class:`Patch` in :data:`PATCHES` with its reason and the private attributes
  it relies on. It is applied only on the napari series it was written for (:data:`WRITTEN_FOR`)
  and when all those attributes exist; otherwise the caller gets napari's own behaviour (slower,
  or, for the paint hook, painting without nesting rules and with napari's undo) and one warning.
  ``SCORE_NAPARI_PATCHES=force`` applies them on another napari version (their attributes still
  checked); ``=off`` or a comma list of names turns them off (``benchmarks/bench_app.py``).
- ``tests/plugins/test_napari_compat.py`` checks, per patch, that its attributes exist in the
  installed napari and that it still has its effect.

Examples
--------
>>> sorted(PATCHES)  # doctest: +NORMALIZE_WHITESPACE
['grid_layout_memo', 'light_layers', 'paint_hook', 'paused_scene', 'qt_viewer',
 'region_refresh', 'single_slicing', 'slice_when_visible', 'unwrap_proxy']
>>> version_supported("0.9.2"), version_supported("0.10.0")
(True, False)
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

WRITTEN_FOR = "0.9"
"""The napari minor series these patches were written for and measured on (0.9.2)."""

ENV = "SCORE_NAPARI_PATCHES"


def napari_version() -> str:
    import napari

    return napari.__version__


def version_supported(version: str | None = None) -> bool:
    """True when ``version`` (default: the installed napari) is of the :data:`WRITTEN_FOR` series."""
    version = napari_version() if version is None else version
    return version.split("+")[0].split(".")[:2] == WRITTEN_FOR.split(".")


def missing_attributes(obj, *names: str) -> list[str]:
    """The dotted attribute paths of ``names`` that ``obj`` lacks (``"a.b"`` walks ``obj.a.b``).

    Examples
    --------
    >>> missing_attributes(3, "real", "imag.real", "nothing", "real.nothing")
    ['nothing', 'real.nothing']
    """
    missing = []
    for name in names:
        target = obj
        for part in name.split("."):
            if not hasattr(target, part):
                missing.append(name)
                break
            target = getattr(target, part)
    return missing


@dataclass(frozen=True)
class Patch:
    """One use of napari internals: why, and what it relies on.

    ``requires(target)`` lists the attributes of ``target`` (a viewer, layer or canvas,
    as the patch's function takes) that the patch relies on and that are missing.
    """

    name: str
    reason: str
    requires: Callable[[object], list[str]]
    version_bound: bool = True
    """False for plain accessors (they change nothing in napari): used on any napari
    version whose objects still have the attribute."""

    def disabled(self) -> bool:
        setting = os.environ.get(ENV, "").strip()
        return setting == "off" or self.name in {s.strip() for s in setting.split(",")}

    def usable(self, target) -> bool:
        """True when the patch may be applied to ``target``; else warns once and returns False."""
        if self.disabled():
            return False
        if self.version_bound and not version_supported() and os.environ.get(ENV, "").strip() != "force":
            _warn_once(self.name, f"napari {napari_version()} is not the {WRITTEN_FOR} series "
                                  f"SCORE's {self.name!r} patch was written for: using napari's own "
                                  f"behaviour ({self.reason.split('.')[0].lower()} is skipped)")
            return False
        missing = self.requires(target)
        if missing:
            _warn_once(self.name, f"napari {napari_version()} lacks {', '.join(missing)}: SCORE's "
                                  f"{self.name!r} patch is not applied (napari's own behaviour)")
            return False
        return True


_WARNED: set[str] = set()


def _warn_once(name: str, message: str) -> None:
    if name not in _WARNED:
        _WARNED.add(name)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


PATCHES: dict[str, Patch] = {}


def _patch(name: str, reason: str, requires: Callable[[object], list[str]],
           version_bound: bool = True) -> Patch:
    PATCHES[name] = Patch(name, reason, requires, version_bound)
    return PATCHES[name]


# ----------------------------------------------------------------------------------------
# Access to napari's Qt objects
# ----------------------------------------------------------------------------------------
QT_VIEWER = _patch(
    "qt_viewer",
    "Reaching the viewer's QtViewer and vispy canvas. napari has no public accessor; the "
    "application embeds the QtViewer in its window and the viewer pauses and reads the canvas.",
    lambda viewer: missing_attributes(viewer, "window._qt_viewer.canvas"), version_bound=False)


def qt_viewer_of(viewer, required: bool = False):
    """The ``QtViewer`` widget of a ``napari.Viewer``: None without a window or when the
    attribute is gone (callers then work without it), or a RuntimeError with ``required``
    (the application embeds the widget and cannot do without)."""
    if getattr(viewer, "window", None) is not None and QT_VIEWER.usable(viewer):
        return viewer.window._qt_viewer
    if required:
        raise RuntimeError(f"napari {napari_version()}: no QtViewer at viewer.window._qt_viewer "
                           f"(SCORE Studio was written for napari {WRITTEN_FOR})")
    return None


def vispy_canvas(viewer):
    """napari's ``VispyCanvas`` of a viewer, or None (a ``ViewerModel``, no Qt)."""
    qt_viewer = qt_viewer_of(viewer)
    return getattr(qt_viewer, "canvas", None)


UNWRAP_PROXY = _patch(
    "unwrap_proxy",
    "Unwrapping the PublicOnlyProxy napari hands to plugin widgets. The panes drive the "
    "viewer's canvas and layers' internals through this module, which the proxy refuses.",
    lambda proxy: [] if type(proxy).__name__ != "PublicOnlyProxy"
    else missing_attributes(proxy, "__wrapped__"), version_bound=False)


def unwrap_viewer(napari_viewer):
    """The real viewer behind napari's ``PublicOnlyProxy`` (the viewer itself otherwise)."""
    if type(napari_viewer).__name__ != "PublicOnlyProxy" or not UNWRAP_PROXY.usable(napari_viewer):
        return napari_viewer
    return napari_viewer.__wrapped__


# ----------------------------------------------------------------------------------------
# Painting: the master labels layer writes through the viewer
# ----------------------------------------------------------------------------------------
PAINT_HOOK = _patch(
    "paint_hook",
    "Painting through the viewer. Labels._apply_mask_to_data is the one place napari's "
    "brush, fill and polygon write; SCORE replaces it on its labels layers to apply the "
    "nesting rules, keep lesions apart from the tissue under them and record its own undo "
    "history, and records napari's history atom so napari ends a stroke as usual.",
    lambda layer: missing_attributes(layer, "_apply_mask_to_data", "_save_history",
                                     "_history_atom_for_mask_paint", "_undo_history.clear",
                                     "_redo_history.clear"))


def install_paint_hook(layer, paint: Callable) -> bool:
    """Route ``layer``'s brush, fill and polygon writes to ``paint(data, mask, value, key)``.

    ``paint`` returns the changed voxels of the box (or None), as napari's method does.
    Returns False (napari paints by itself) when the hook cannot be installed.
    """
    if not PAINT_HOOK.usable(layer):
        return False
    layer._apply_mask_to_data = lambda data, mask, value, key: paint(data, mask, value, key)
    return True


def record_paint_history(layer, key, old_values, changed, value) -> None:
    """Give napari the history atom of a paint (its paint event, which ends a stroke,
    fires from here when no drag is running)."""
    layer._save_history(layer._history_atom_for_mask_paint(key, old_values, changed, value))


def clear_napari_history(layer) -> None:
    """Empty napari's own undo/redo of a layer that paints through the viewer (which keeps
    the history); a layer without the hook keeps napari's."""
    if "_apply_mask_to_data" in vars(layer):
        layer._undo_history.clear()
        layer._redo_history.clear()


REGION_REFRESH = _patch(
    "region_refresh",
    "Redrawing only the painted box of a labels copy. A full refresh costs about 2 ms per "
    "layer and 10 copies follow every stroke while it runs; the box costs about 0.1 ms.",
    lambda layer: missing_attributes(layer, "_slicing_state.loaded", "_slice.empty", "_slice.image.raw",
                                     "_slice.image.view", "_slice_input.displayed", "_updated_slice",
                                     "_accumulate_updated_slice", "_raw_to_displayed",
                                     "events.labels_update"))


def refresh_labels_region(layer, key: tuple) -> None:
    """Redraw the part ``key`` (an N-D box) of a labels layer's current slice (the whole
    layer with napari's ``refresh`` where the patch does not apply)."""
    if not REGION_REFRESH.usable(layer):
        if layer.visible:
            layer.refresh()
        return
    if not layer.visible or not layer._slicing_state.loaded or layer._slice.empty:
        return
    layer._updated_slice = None
    layer._accumulate_updated_slice(key)
    dims = layer._slice_input.displayed
    box = tuple(layer._updated_slice[d] for d in dims)
    layer._updated_slice = None
    raw = layer._slice.image.raw
    colors = layer._raw_to_displayed(raw, data_slice=box)
    layer._slice.image.view[box] = colors
    layer.events.labels_update(data=colors, offset=[s.start for s in box])


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
