"""Icons: qtawesome names for every action, and colour swatches for the structures.

A wrong qtawesome name raises at run time, so every name lives in :data:`ICONS` and a
test builds each one.
"""

from __future__ import annotations

ICONS = {
    "brush": "mdi6.brush",
    "eraser": "mdi6.eraser",
    "fill": "mdi6.format-color-fill",
    "polygon": "mdi6.vector-polygon",
    "click": "mdi6.cursor-default-click",
    "pan": "mdi6.cursor-move",
    "pick": "mdi6.eyedropper",
    "undo": "mdi6.undo",
    "redo": "mdi6.redo",
    "copy_up": "mdi6.arrow-up-bold",
    "copy_down": "mdi6.arrow-down-bold",
    "nesting": "mdi6.lock",
    "contours": "mdi6.shape-outline",
    "layout_all": "mdi6.view-grid",
    "layout_working": "mdi6.view-split-vertical",
    "layout_single": "mdi6.square-outline",
    "zoom_cord": "mdi6.image-filter-center-focus",
    "table": "mdi6.file-table-outline",
}


def icon(name: str, color: str | None = None):
    """The QIcon of an action in :data:`ICONS` (``color`` defaults to the theme's icon colour,
    so icons stay visible on napari's dark theme)."""
    import qtawesome as qta

    return qta.icon(ICONS[name], color=color or theme_icon_color(),
                    color_disabled=disabled_color())


def theme_icon_color() -> str:
    """napari's current theme icon colour, else the application palette's text colour."""
    try:
        from napari.settings import get_settings
        from napari.utils.theme import get_theme

        return get_theme(get_settings().appearance.theme).icon.as_hex()
    except Exception:  # no napari settings (e.g. a bare Qt test): fall back to the palette
        from qtpy.QtGui import QPalette
        from qtpy.QtWidgets import QApplication

        return QApplication.palette().color(QPalette.ColorRole.WindowText).name()


def disabled_color() -> str:
    return "#6b6b6b"


def swatch(color: str, size: int = 16):
    """A square QIcon filled with ``color`` and a thin dark border (structure palette)."""
    from qtpy.QtGui import QColor, QIcon, QPainter, QPixmap

    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(color))
    painter = QPainter(pixmap)
    painter.setPen(QColor("#202020"))
    painter.drawRect(0, 0, size - 1, size - 1)
    painter.end()
    return QIcon(pixmap)
