"""The longitudinal view's parts: linked session panes and the area-change plot.

:class:`LinkedPanes` shows the same slice of every session with its labels as contours, zoom
and pan moving together; :func:`draw_changes` draws one compartment's area per slice or level
for every session with the scan-rescan band (:class:`ChangePlot` on screen). Put together by
:class:`score_napari._qt.longitudinal.LongitudinalWidget`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from qtpy.QtCore import QPointF, QRectF, QSize, Qt, Signal
from qtpy.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPen, QPixmap, QPolygonF
from qtpy.QtWidgets import (QGraphicsPathItem, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView,
                            QGridLayout, QLabel, QSizePolicy, QWidget)

from score_gui.labels import LABEL_COLORS, LESION_VALUE
from score_gui.qc.report import CONTOURS, crop_box
from score_napari._qt.plots import PLOT_COLORS, TITLES, PlotView, nice_ticks

COMPARTMENTS = ("cord", "wm", "gm", "anterior_horns", "posterior_horns", "gray_commissure", "canal",
                "lesion", "na_wm", "na_gm")
AVERAGES = ("1-5", "6-8", "all")
SESSION_COLORS = ("#333333", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
"""Baseline dark grey, then one colour per later session (matplotlib's tab10 order)."""
BEYOND_COLOR = "#d0312d"
FRAME_MARGINS = (58, 34, 18, 96)
"""Left, top, right and bottom margins of the plot's frame (ticks, title, level names, legend)."""


def plot_frame(size: QSize) -> QRectF:
    """Where :func:`draw_changes` puts the axes in a drawing of ``size``."""
    left, top, right, bottom = FRAME_MARGINS
    return QRectF(left, top, size.width() - left - right, size.height() - top - bottom)


def is_true(value) -> bool:
    """True for a true flag; False for false and for NA (``beyond_lsc`` of a slice not compared)."""
    return isinstance(value, (bool, np.bool_)) and bool(value)


def session_color(index: int) -> QColor:
    return QColor(SESSION_COLORS[index % len(SESSION_COLORS)])


def session_title_color(index: int) -> QColor:
    """A session's colour for text on the dark panels: the baseline's dark grey (made for the
    white plot) becomes light grey, the other colours are lightened until they read."""
    if index % len(SESSION_COLORS) == 0:
        return QColor("#d8d8d8")
    color = session_color(index)
    return color.lighter(135) if color.lightness() < 140 else color


# ---------------------------------------------------------------------------------------
# The sessions' slices side by side
# ---------------------------------------------------------------------------------------

def grey_qimage(image: np.ndarray, window: tuple[float, float]) -> QImage:
    """A 2D image windowed to 8-bit grey, as a QImage that owns its data."""
    low, high = window
    grey = np.clip((np.asarray(image, np.float32) - low) / max(high - low, 1e-6), 0, 1)
    grey = np.ascontiguousarray((grey * 255).astype(np.uint8))
    h, w = grey.shape
    return QImage(grey.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


def contour_paths(mask: np.ndarray) -> QPainterPath:
    """The outline of a mask as a path in pixel coordinates (pixel ``(r, c)`` covers
    ``[c, c+1] x [r, r+1]``), traced half-way between inside and outside pixel centres."""
    from skimage.measure import find_contours

    path = QPainterPath()
    if not mask.any():
        return path
    padded = np.pad(mask.astype(np.float32), 1)   # closed outlines at the image border too
    for line in find_contours(padded, 0.5):
        points = [QPointF(c - 0.5, r - 0.5) for r, c in line]   # -1 (pad) + 0.5 (pixel centre)
        path.moveTo(points[0])
        for point in points[1:]:
            path.lineTo(point)
    return path


class SessionPane(QGraphicsView):
    """One session's slice: the image and its labels' contours (cosmetic pens: the same
    width at every zoom). Wheel zooms about the cursor; the owner links the panes."""

    zoomed = Signal(float)   # factor

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setBackgroundBrush(QColor("black"))
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.pixmap_item = QGraphicsPixmapItem()
        self.pixmap_item.setTransformationMode(Qt.TransformationMode.FastTransformation)  # see pixels
        self.scene().addItem(self.pixmap_item)
        self.contour_items: list[QGraphicsPathItem] = []
        # Drag pans, the wheel zooms; scroll bars would only take room from the image.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def show_slice(self, image: np.ndarray | None, dseg: np.ndarray | None, lesion: np.ndarray | None,
                   window: tuple[float, float] | None = None) -> None:
        for item in self.contour_items:
            self.scene().removeItem(item)
        self.contour_items = []
        if image is None:
            self.pixmap_item.setPixmap(QPixmap())
            return
        if window is None:
            box = crop_box(dseg, image.shape)
            window = tuple(np.percentile(image[box], [1, 99.5]))
        self.pixmap_item.setPixmap(QPixmap.fromImage(grey_qimage(image, window)))
        self.scene().setSceneRect(QRectF(0, 0, image.shape[1], image.shape[0]))
        outlines = []
        if dseg is not None:
            outlines = [(np.isin(dseg, values), color) for values, color in CONTOURS]
        if lesion is not None:
            outlines.append((np.asarray(lesion) > 0, LABEL_COLORS[LESION_VALUE]))
        for mask, color in outlines:   # outer to inner: inner borders on top
            pen = QPen(QColor(color), 1.6)
            pen.setCosmetic(True)
            item = self.scene().addPath(contour_paths(mask), pen)
            self.contour_items.append(item)

    def wheelEvent(self, event):  # noqa: N802 - Qt API
        factor = 1.25 if event.angleDelta().y() > 0 else 0.8
        self.zoomed.emit(factor)
        event.accept()


class LinkedPanes(QWidget):
    """Session panes side by side with one zoom and pan: zooming or dragging one moves all."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setHorizontalSpacing(4)
        self.panes: list[SessionPane] = []
        self.titles: list[QLabel] = []
        self._syncing = False

    def set_count(self, count: int) -> None:
        while len(self.panes) > count:
            pane, title = self.panes.pop(), self.titles.pop()
            for widget in (pane, title):
                self._layout.removeWidget(widget)
                widget.setParent(None)
                widget.deleteLater()
        while len(self.panes) < count:
            index = len(self.panes)
            title = QLabel("")
            title.setAlignment(Qt.AlignmentFlag.AlignCenter)
            title.setWordWrap(True)
            pane = SessionPane()
            pane.zoomed.connect(lambda factor, p=pane: self.zoom(factor, p))
            for bar in ("horizontalScrollBar", "verticalScrollBar"):
                getattr(pane, bar)().valueChanged.connect(lambda _v, p=pane: self._follow(p))
            self._layout.addWidget(title, 0, index)
            self._layout.addWidget(pane, 1, index)
            self._layout.setColumnStretch(index, 1)     # every session's pane equally wide
            self.panes.append(pane)
            self.titles.append(title)

    def zoom(self, factor: float, source: SessionPane | None = None) -> None:
        """Zoom every pane by ``factor`` (about the cursor of ``source``), then align the others."""
        source = source or (self.panes[0] if self.panes else None)
        if source is None:
            return
        current = source.transform().m11()
        factor = min(max(factor, 0.5 / current), 64.0 / current)   # keep the image findable
        self._syncing = True
        try:
            source.scale(factor, factor)
        finally:
            self._syncing = False
        self._follow(source)

    def fit(self, rect: QRectF) -> None:
        """Show ``rect`` (scene pixels) in every pane at the same scale."""
        if not self.panes:
            return
        self._syncing = True
        try:
            for pane in self.panes:
                pane.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
            scale = min(p.transform().m11() for p in self.panes)
            for pane in self.panes:   # panes of different widths: the smallest fit wins
                pane.resetTransform()
                pane.scale(scale, scale)
                pane.centerOn(rect.center())
        finally:
            self._syncing = False

    def _follow(self, source: SessionPane) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            centre = source.mapToScene(source.viewport().rect().center())
            for pane in self.panes:
                if pane is not source:
                    pane.setTransform(source.transform())
                    pane.centerOn(centre)
        finally:
            self._syncing = False

    def scale(self) -> list[float]:
        """Each pane's zoom (pixels on screen per image pixel): equal when linked."""
        return [pane.transform().m11() for pane in self.panes]


# ---------------------------------------------------------------------------------------
# The plot (QPainter: on screen, PNG and SVG alike)
# ---------------------------------------------------------------------------------------

def draw_changes(painter: QPainter, size: QSize, table: pd.DataFrame | None, compartment: str,
                 title: str = "", current: str | None = None) -> None:
    """Area per position (x) for each session, the baseline's scan-rescan band shaded.

    ``table`` is :func:`score_gui.longitudinal.changes`'s result; ``current`` a position to
    highlight. Points outside the band are ringed in red; failed slices are grey crosses.
    """
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.fillRect(QRectF(0, 0, size.width(), size.height()), QColor("white"))
    if table is None or table.empty:
        painter.setPen(QColor("#555555"))
        painter.drawText(QRectF(0, 0, size.width(), size.height()), int(Qt.AlignmentFlag.AlignCenter),
                         "No areas to plot: no session of this subject has labels from this source")
        return
    positions = list(dict.fromkeys(table["position"]))
    sessions = list(dict.fromkeys(table["session"]))
    index = {p: i for i, p in enumerate(positions)}
    values = pd.concat([table["area_mm2"], table["band_low_mm2"], table["band_high_mm2"]]).to_numpy(float)
    values = values[np.isfinite(values)]
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    pad = (high - low) * 0.08 or max(high, 1.0) * 0.05
    ticks = nice_ticks(low - pad, high + pad, 5)
    frame = plot_frame(size)
    y_low, y_high = ticks[0], ticks[-1]

    def x(i: float) -> float:
        return frame.left() + (i + 0.5) / max(len(positions), 1) * frame.width()

    def y(v: float) -> float:
        return frame.bottom() - (v - y_low) / ((y_high - y_low) or 1.0) * frame.height()

    color = QColor(PLOT_COLORS.get(compartment, "#555555"))
    # current position
    if current in index:
        slot = frame.width() / len(positions)
        painter.fillRect(QRectF(x(index[current]) - slot / 2, frame.top(), slot, frame.height()),
                         QColor("#e8f0fb"))
    # grid and frame
    painter.setPen(QPen(QColor("#e3e3e3"), 1))
    for tick in ticks:
        painter.drawLine(QPointF(frame.left(), y(tick)), QPointF(frame.right(), y(tick)))
    # the band: one polygon over the positions with a band, broken where there is none
    base = table.drop_duplicates("position").set_index("position")
    band_fill = QColor(color)
    band_fill.setAlpha(55)
    band_edge = QColor(color)
    band_edge.setAlpha(150)
    runs, run = [], []
    for p in positions:
        lo, hi = base.loc[p, "band_low_mm2"], base.loc[p, "band_high_mm2"]
        if np.isfinite(lo) and np.isfinite(hi):
            run.append((index[p], float(lo), float(hi), float(base.loc[p, "baseline_mm2"])))
        elif run:
            runs.append(run)
            run = []
    if run:
        runs.append(run)
    half = frame.width() / max(len(positions), 1) * 0.35
    for run in runs:
        upper = [QPointF(x(i) + dx, y(hi)) for i, _lo, hi, _b in run for dx in (-half, half)]
        lower = [QPointF(x(i) + dx, y(lo)) for i, lo, _hi, _b in reversed(run) for dx in (half, -half)]
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(band_fill)
        painter.drawPolygon(QPolygonF(upper + lower))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(band_edge, 1, Qt.PenStyle.DashLine))
        for i, lo, hi, _b in run:
            for v in (lo, hi):
                painter.drawLine(QPointF(x(i) - half, y(v)), QPointF(x(i) + half, y(v)))
    # sessions
    spread = min(6.0, frame.width() / max(len(positions), 1) / (len(sessions) + 1))
    for k, session in enumerate(sessions):
        rows = table[table["session"] == session]
        pen_color = session_color(k)
        offset = (k - (len(sessions) - 1) / 2) * spread   # keep equal values apart
        points = []
        for _, row in rows.iterrows():
            i = index[row["position"]]
            if np.isfinite(row["area_mm2"]):
                points.append((i, QPointF(x(i) + offset, y(row["area_mm2"])), is_true(row["beyond_lsc"])))
            elif row["qc_status"] == "fail" or row["qc_status"] == "partly failed":
                painter.setPen(QPen(QColor("#9a9a9a"), 1.5))
                cx, cy = x(i) + offset, frame.bottom() - 8
                painter.drawLine(QPointF(cx - 4, cy - 4), QPointF(cx + 4, cy + 4))
                painter.drawLine(QPointF(cx - 4, cy + 4), QPointF(cx + 4, cy - 4))
        painter.setPen(QPen(pen_color, 2.2 if k == 0 else 1.6))
        for (ia, a, _), (ib, b, _) in zip(points, points[1:]):
            if ib == ia + 1:   # no line across a gap (failed or missing slice)
                painter.drawLine(a, b)
        for _i, point, beyond in points:
            if beyond:
                painter.setPen(QPen(QColor(BEYOND_COLOR), 2.4))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawEllipse(point, 7.5, 7.5)
            painter.setPen(QPen(pen_color.darker(130), 1))
            painter.setBrush(pen_color)
            painter.drawEllipse(point, 3.4, 3.4)
            painter.setBrush(Qt.BrushStyle.NoBrush)
    # axes, labels
    painter.setPen(QPen(QColor("#333333"), 1))
    painter.drawRect(frame)
    font = QFont(painter.font())
    font.setPointSizeF(8)
    painter.setFont(font)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = 0 if step >= 1 else (1 if step >= 0.1 else 2)
    for tick in ticks:
        painter.drawText(QRectF(2, y(tick) - 8, frame.left() - 6, 16),
                         int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), f"{tick:.{decimals}f}")
    slot = frame.width() / max(len(positions), 1)
    every = 1 if slot >= 24 else math.ceil(24 / slot)
    for i, p in enumerate(positions):
        if i % every == 0:
            painter.save()
            painter.translate(x(i) - 4, frame.bottom() + 6)
            painter.rotate(40)
            painter.drawText(QRectF(0, -7, 90, 14), int(Qt.AlignmentFlag.AlignLeft), str(p))
            painter.restore()
    painter.save()
    painter.translate(14, frame.center().y())
    painter.rotate(-90)
    painter.drawText(QRectF(-60, -8, 120, 16), int(Qt.AlignmentFlag.AlignCenter), "area (mm²)")
    painter.restore()
    bold = QFont(font)
    bold.setPointSizeF(10)
    bold.setBold(True)
    painter.setFont(bold)
    painter.drawText(QRectF(0, 6, size.width(), 22), int(Qt.AlignmentFlag.AlignCenter),
                     title or TITLES.get(compartment, compartment))
    painter.setFont(font)
    # legend: sessions, then the band and what a ring means
    legend_y = size.height() - 20
    cursor = 12.0
    for k, session in enumerate(sessions):
        painter.setPen(QPen(session_color(k), 2.2))
        painter.drawLine(QPointF(cursor, legend_y), QPointF(cursor + 20, legend_y))
        painter.setPen(QColor("#333333"))
        text = session + (" (baseline)" if session == table["baseline"].iloc[0] else "")
        width = painter.fontMetrics().horizontalAdvance(text) + 14
        painter.drawText(QRectF(cursor + 24, legend_y - 8, width, 16), int(Qt.AlignmentFlag.AlignVCenter), text)
        cursor += 24 + width
    lsc, rsd = table["lsc_percent"].iloc[0], table["rsd_percent"].iloc[0]
    if np.isfinite(lsc):
        painter.fillRect(QRectF(cursor, legend_y - 6, 20, 12), band_fill)
        text = (f"baseline ± LSC {lsc:.1f} % (2.77 × scan-rescan RSD {rsd:.2f} %);  "
                f"ringed red: outside, a real change")
    else:
        text = "no scan-rescan RSD known for this compartment: no band"
    painter.setPen(QColor("#333333"))
    painter.drawText(QRectF(cursor + 24, legend_y - 8, size.width() - cursor - 30, 16),
                     int(Qt.AlignmentFlag.AlignVCenter), text)


class ChangePlot(PlotView):
    """:func:`draw_changes` on screen; a click picks the position under the cursor."""

    position_clicked = Signal(str)

    def __init__(self, parent=None):
        super().__init__(self._draw_current, parent)
        self.table: pd.DataFrame | None = None
        self.compartment = "cord"
        self.title = ""
        self.current: str | None = None
        self.setMinimumSize(480, 260)

    def set_data(self, table, compartment: str, title: str = "", current: str | None = None) -> None:
        self.table, self.compartment, self.title, self.current = table, compartment, title, current
        self.update()

    def _draw_current(self, painter: QPainter, size: QSize) -> None:
        draw_changes(painter, size, self.table, self.compartment, self.title, self.current)

    def mousePressEvent(self, event):  # noqa: N802 - Qt API
        if self.table is None or self.table.empty:
            return
        positions = list(dict.fromkeys(self.table["position"]))
        frame = plot_frame(self.size())
        i = math.floor((event.position().x() - frame.left()) / max(frame.width(), 1) * len(positions))
        if 0 <= i < len(positions):
            self.position_clicked.emit(positions[i])


# ---------------------------------------------------------------------------------------
# The widget
# ---------------------------------------------------------------------------------------
