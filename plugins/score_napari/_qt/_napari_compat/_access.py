"""Reaching napari's Qt objects (the rules: :mod:`score_napari._qt._napari_compat`)."""

from __future__ import annotations

from score_napari._qt._napari_compat import WRITTEN_FOR, _patch, missing_attributes, napari_version

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
