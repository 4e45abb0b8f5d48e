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

This package holds the rules (:class:`Patch`, :data:`PATCHES`) and, by job, the patches:
:mod:`._access` (napari's Qt objects), :mod:`._painting` (the master labels layer) and
:mod:`._speed` (what napari repeats for every layer of a big grid).

Examples
--------
>>> sorted(PATCHES)  # doctest: +NORMALIZE_WHITESPACE
['controls_on_demand', 'editing_overlays', 'grid_layout_memo', 'light_layers',
 'one_extent_update', 'paint_hook', 'paused_scene', 'qt_viewer', 'region_refresh',
 'single_slicing', 'slice_when_visible', 'unwrap_proxy']
>>> version_supported("0.9.2"), version_supported("0.10.0")
(True, False)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
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


# The patches, by job (they register themselves in PATCHES through _patch).
from score_napari._qt._napari_compat._access import (QT_VIEWER, UNWRAP_PROXY, qt_viewer_of,  # noqa: E402
                                                     unwrap_viewer, vispy_canvas)
from score_napari._qt._napari_compat._painting import (PAINT_HOOK, REGION_REFRESH,  # noqa: E402
                                                       clear_napari_history, install_paint_hook,
                                                       record_paint_history, refresh_labels_region)
from score_napari._qt._napari_compat._speed import (CONTROLS_ON_DEMAND, EDITING_OVERLAYS,  # noqa: E402
                                                    GRID_LAYOUT_MEMO, LIGHT_LAYERS, ONE_EXTENT_UPDATE,
                                                    PAUSED_SCENE, SINGLE_SLICING, SLICE_WHEN_VISIBLE,
                                                    cell_view, hide_editing_overlays, lighten_layer,
                                                    make_controls_on_demand, show_editing_overlays,
                                                    memoize_grid_layout, one_extent_update,
                                                    scene_paused, skip_repeated_slicing,
                                                    slice_when_visible)

__all__ = ["CONTROLS_ON_DEMAND", "EDITING_OVERLAYS", "ENV", "GRID_LAYOUT_MEMO", "LIGHT_LAYERS",
           "ONE_EXTENT_UPDATE", "PAINT_HOOK", "PATCHES", "PAUSED_SCENE", "Patch", "QT_VIEWER",
           "REGION_REFRESH", "SINGLE_SLICING", "SLICE_WHEN_VISIBLE", "UNWRAP_PROXY", "WRITTEN_FOR",
           "cell_view", "clear_napari_history", "hide_editing_overlays", "install_paint_hook",
           "lighten_layer", "make_controls_on_demand", "memoize_grid_layout", "missing_attributes",
           "napari_version", "one_extent_update", "qt_viewer_of", "record_paint_history",
           "refresh_labels_region", "scene_paused", "show_editing_overlays",
           "skip_repeated_slicing", "slice_when_visible", "unwrap_viewer", "version_supported",
           "vispy_canvas"]
