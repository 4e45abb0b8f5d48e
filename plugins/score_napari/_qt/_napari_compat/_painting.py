"""Painting: the master labels layer writes through the viewer (rules: :mod:`score_napari._qt._napari_compat`)."""

from __future__ import annotations

from collections.abc import Callable

from score_napari._qt._napari_compat import _patch, missing_attributes

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
