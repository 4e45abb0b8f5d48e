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
    """The QIcon of an action in :data:`ICONS` (``color`` defaults to the palette's text)."""
    import qtawesome as qta

    if color is None:
        return qta.icon(ICONS[name])
    return qta.icon(ICONS[name], color=color)


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
