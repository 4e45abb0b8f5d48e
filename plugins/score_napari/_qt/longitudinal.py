"""Longitudinal view: one subject's sessions side by side, and which area changes are real.

:class:`LongitudinalWidget` shows, for one subject of a study and one label source (the
ensemble's ``score``, a rater, the consensus, ...):

- **the same slice of every session side by side** (:class:`LinkedPanes`): the chosen average
  with that session's labels as contours in the QC thumbnails' colours; zoom (wheel) and pan
  (drag) move every pane together, so a rater compares the same anatomy at the same scale;
- **the chosen compartment's area per slice (or level) for every session**
  (:class:`ChangePlot`) with the scan-rescan band around the baseline, ``baseline * (1 ± LSC)``
  with ``LSC = 2.77 * RSD`` (:mod:`score_gui.longitudinal`); a point outside the band is
  ringed in red: a change larger than scan-rescan noise. Click a slice to show it above;
- one line per session: slices compared, how many left the band, how many would by chance.

Failed QC slices are drawn as a grey cross on the plot and never compared. The plot saves
as PNG or SVG like the export panel's.

Programmatic use (tests, the application)::

    widget = LongitudinalWidget(study_root, subject="ms01", source="score")
    widget.set_compartment("gm"); widget.set_position(5)
    widget.table            # the plotted numbers (score_gui.longitudinal.changes)
    widget.save_plot("gm.png")
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from qtpy.QtCore import QPointF, QRectF, QSize, Qt, Signal
from qtpy.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPen, QPixmap, QPolygonF
from qtpy.QtWidgets import (QComboBox, QFileDialog, QGraphicsPathItem, QGraphicsPixmapItem,
                            QGraphicsScene, QGraphicsView, QGridLayout, QHBoxLayout, QLabel, QPushButton,
                            QSizePolicy, QSplitter, QVBoxLayout, QWidget)

from score_gui.errors import ScoreInputError
from score_gui.labels import LABEL_COLORS, LESION_VALUE
from score_gui.longitudinal import change_summary, subject_series, subject_visits
from score_gui.qc.report import CONTOURS, crop_box
from score_gui.study import Study
from score_napari._qt.export_widget import PLOT_COLORS, TITLES, nice_ticks, render_image, save_drawing

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


class ChangePlot(QWidget):
    """:func:`draw_changes` on screen; a click picks the position under the cursor."""

    position_clicked = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.table: pd.DataFrame | None = None
        self.compartment = "cord"
        self.title = ""
        self.current: str | None = None
        self.setMinimumSize(480, 260)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_data(self, table, compartment: str, title: str = "", current: str | None = None) -> None:
        self.table, self.compartment, self.title, self.current = table, compartment, title, current
        self.update()

    def draw(self, painter: QPainter, size: QSize) -> None:
        draw_changes(painter, size, self.table, self.compartment, self.title, self.current)

    def paintEvent(self, event):  # noqa: N802 - Qt API
        painter = QPainter(self)
        try:
            self.draw(painter, self.size())
        finally:
            painter.end()

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

class LongitudinalWidget(QWidget):
    """One subject's sessions: the same slice side by side and the area plot with its band.

    Parameters
    ----------
    study_root : path, optional
        The study; :meth:`set_study` later otherwise.
    subject : str, optional
        Subject ID (without ``sub-``); default: the first with the most sessions.
    source : str
        Label source (``score``, ``raterA``, ``consensus``, ...).
    compartment : str
        An areas column; :data:`COMPARTMENTS` are offered.
    rsd : float or dict, optional
        Scan-rescan RSD (%) overriding :data:`score_gui.longitudinal.RESCAN_RSD_PERCENT`.
    """

    position_changed = Signal(str)
    subject_changed = Signal(str)

    def __init__(self, study_root=None, subject: str | None = None, source: str = "score",
                 compartment: str = "cord", rsd=None, parent=None):
        super().__init__(parent)
        self.study: Study | None = None
        self.series = None
        self.table: pd.DataFrame | None = None
        self.rsd = rsd
        self.position: str | None = None
        self._scans: dict[Path, object] = {}
        self._labels: dict[tuple[Path, str], object] = {}

        self.subject_box = QComboBox()
        self.subject_box.setToolTip("The subject followed over its sessions")
        self.source_box = QComboBox()
        self.source_box.setToolTip("Whose labels: score (the ensemble), a rater, the consensus, ...")
        self.compartment_box = QComboBox()
        for name in COMPARTMENTS:
            self.compartment_box.addItem(TITLES.get(name, name), name)
        self.compartment_box.setCurrentIndex(COMPARTMENTS.index(compartment) if compartment in COMPARTMENTS else 0)
        self.by_box = QComboBox()
        self.by_box.addItem("slice", "slice")
        self.by_box.addItem("level (mean)", "level")
        self.by_box.setToolTip("Compare slice by slice (same slice index in every session), or the mean "
                               "of each vertebral level's slices")
        self.average_box = QComboBox()
        self.average_box.addItems(AVERAGES)
        self.average_box.setToolTip("Images averaged for the panes (1-5: GM/WM contrast, 6-8: WM/CSF)")
        self.position_box = QComboBox()
        self.position_box.setToolTip("The slice (or level) shown in every session's pane")
        save = QPushButton("Save plot...")
        save.clicked.connect(self._save_dialog)
        controls = QHBoxLayout()
        for text, box in (("Subject", self.subject_box), ("Labels", self.source_box),
                          ("Area", self.compartment_box), ("Per", self.by_box), ("Slice", self.position_box),
                          ("Image", self.average_box)):
            controls.addWidget(QLabel(text))
            controls.addWidget(box)
        controls.addStretch(1)
        controls.addWidget(save)

        self.panes = LinkedPanes()
        self.plot = ChangePlot()
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.plot, 1)
        lower_layout.addWidget(self.summary)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.panes)
        splitter.addWidget(lower)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.message)
        layout.addWidget(splitter, 1)

        self.subject_box.activated.connect(lambda _i: self.set_subject(self.subject_box.currentData()))
        self.source_box.activated.connect(lambda _i: self.set_source(self.source_box.currentText()))
        self.compartment_box.activated.connect(lambda _i: self.set_compartment(self.compartment_box.currentData()))
        self.by_box.activated.connect(lambda _i: self.set_by(self.by_box.currentData()))
        self.average_box.activated.connect(lambda _i: self._show_panes())
        self.position_box.activated.connect(lambda _i: self.set_position(self.position_box.currentText()))
        self.plot.position_clicked.connect(self.set_position)
        self._source = source
        if study_root is not None:
            self.set_study(study_root, subject)

    # -- choices ----------------------------------------------------------------------------
    @property
    def compartment(self) -> str:
        return self.compartment_box.currentData()

    @property
    def by(self) -> str:
        return self.by_box.currentData()

    @property
    def source(self) -> str:
        return self._source

    @property
    def subject(self) -> str | None:
        return self.series.subject if self.series is not None else None

    def set_study(self, root, subject: str | None = None) -> None:
        """Open a study; show ``subject`` (default: the first with the most sessions)."""
        self.study = Study.open(root)
        self._scans.clear()
        self._labels.clear()
        counts = {s: len(self.study.sessions(s)) for s in self.study.subjects()}
        self.subject_box.clear()
        for name in self.study.subjects():
            n = counts[name]
            self.subject_box.addItem(f"sub-{name} ({n} session{'s' if n != 1 else ''})", name)
        if not counts:
            self.message.setText("This study has no scans.")
            return
        if subject is None:
            subject = max(counts, key=lambda s: (counts[s], -self.study.subjects().index(s)))
        self.set_subject(subject)

    def set_subject(self, subject: str) -> None:
        if self.study is None:
            return
        from score_napari._qt.qc_widget import study_sources

        self.subject_box.setCurrentIndex(max(self.subject_box.findData(subject), 0))
        sources = study_sources(SimpleNamespace(scans=subject_visits(self.study, subject)))
        self.source_box.clear()
        self.source_box.addItems(sources)
        if self._source not in sources and sources:
            self._source = sources[0]
        self.source_box.setCurrentText(self._source)
        self._load(subject)
        self.subject_changed.emit(subject)

    def set_source(self, source: str) -> None:
        self._source = source
        self.source_box.setCurrentText(source)
        if self.series is not None:
            self._load(self.series.subject)

    def set_compartment(self, name: str) -> None:
        self.compartment_box.setCurrentIndex(COMPARTMENTS.index(name))
        self._recompute()

    def set_by(self, by: str) -> None:
        self.by_box.setCurrentIndex(self.by_box.findData(by))
        self.position = None
        self._recompute()

    def set_average(self, name: str) -> None:
        self.average_box.setCurrentText(name)
        self._show_panes()

    def set_position(self, position) -> None:
        """Show a position (its name, e.g. ``"C3 s4"``, or a slice index) in every pane."""
        if self.table is None or self.table.empty:
            return
        positions = list(dict.fromkeys(self.table["position"]))
        if isinstance(position, (int, np.integer)):
            named = self.table.loc[self.table["slice"] == int(position), "position"]
            if named.empty:
                raise ValueError(f"no slice {position} in this subject's sessions")
            position = named.iloc[0]
        if position not in positions:
            raise ValueError(f"unknown position {position!r}; one of {positions}")
        self.position = position
        self.position_box.setCurrentIndex(positions.index(position))
        self._draw_plot()
        self._show_panes()
        self.position_changed.emit(position)

    def follow(self, subject: str, slice_index: int | None = None) -> None:
        """Follow the scan on screen elsewhere: show ``subject`` (when it is in the study) and,
        per slice, ``slice_index`` (when its sessions have it)."""
        if self.study is None or subject not in self.study.subjects():
            return
        if self.subject != subject:
            self.set_subject(subject)
        if slice_index is not None and self.table is not None and self.by == "slice" \
                and int(slice_index) in set(self.table["slice"]):
            self.set_position(int(slice_index))

    # -- data -------------------------------------------------------------------------------
    def _load(self, subject: str) -> None:
        errors: dict[str, str] = {}
        self._labels.clear()   # labels may have been saved since (scans are not edited)
        try:
            self.series = subject_series(self.study, subject, self._source, errors=errors)
        except ScoreInputError as exc:
            self.series, self.table = None, None
            self.message.setText(str(exc))
            self.plot.set_data(None, self.compartment)
            return
        notes = [f"could not read {Path(p).name}: {m}" for p, m in errors.items()]
        if self.series.missing:
            notes.append(f"no {self._source} labels for {', '.join(self.series.missing)}")
        if len(self.series.sessions) == 1:
            notes.append("only one session with these labels: nothing to compare yet")
        self.message.setText("; ".join(notes))
        self.message.setVisible(bool(notes))
        self.position = None
        self._recompute(refit=True)

    def _recompute(self, refit: bool = False) -> None:
        if self.series is None:
            return
        self.table = self.series.changes(self.compartment, rsd=self.rsd, by=self.by)
        positions = list(dict.fromkeys(self.table["position"]))
        self.position_box.blockSignals(True)
        self.position_box.clear()
        self.position_box.addItems(positions)
        self.position_box.blockSignals(False)
        if positions:
            if self.position not in positions:
                self.position = positions[len(positions) // 2]
            self.position_box.setCurrentIndex(positions.index(self.position))
        else:
            self.position = None
        self._draw_plot()
        self._show_panes(refit=refit)

    def _draw_plot(self) -> None:
        title = ""
        if self.series is not None:
            title = (f"{TITLES.get(self.compartment, self.compartment)}: sub-{self.series.subject}, "
                     f"{self._source} labels, per {self.by}")
        self.plot.set_data(self.table, self.compartment, title, self.position)
        self.summary.setText(self.summary_text())

    def summary_text(self) -> str:
        """One line per later session: slices beyond the band, expected by chance, mean change."""
        if self.table is None or self.table.empty:
            return ""
        if not np.isfinite(self.table["lsc_percent"].iloc[0]):
            return "No scan-rescan RSD is known for this compartment, so no change can be called real."
        unit = "slices" if self.by == "slice" else "levels"
        lines = []
        for row in change_summary(self.table).itertuples():
            mean = f", mean change {row.mean_change_percent:+.1f} %" if row.n_compared else ""
            text = (f"<b>{row.session}</b>: {row.n_beyond} of {row.n_compared} {unit} beyond "
                    f"±{self.table['lsc_percent'].iloc[0]:.1f} % ({row.expected_by_chance:g} expected by chance)"
                    f"{mean}")
            if row.n_beyond > max(1.0, 2 * row.expected_by_chance):
                text = f"<span style='color:{BEYOND_COLOR}'>{text}</span>"
            lines.append(text)
        baseline = self.table["baseline"].iloc[0]
        return f"Baseline {baseline}. " + "<br>".join(lines)

    # -- panes ------------------------------------------------------------------------------
    def _scan(self, entry):
        from score_gui.scan import read_scan

        if entry.path not in self._scans:
            self._scans[entry.path] = read_scan(entry.path)
        return self._scans[entry.path]

    def _labels_of(self, entry, scan):
        from score_gui.labels import read_labels

        key = (entry.path, self._source)
        if key not in self._labels:
            self._labels[key] = read_labels(entry.dseg_path(self._source), scan)
        return self._labels[key]

    def shown_slice(self) -> int | None:
        """The slice index the panes show (a level's middle slice when comparing levels)."""
        if self.table is None or self.position is None:
            return None
        rows = self.table[self.table["position"] == self.position]
        if self.by == "slice":
            return int(rows["slice"].iloc[0])
        areas = self.series.areas
        levels = areas["level"].fillna("").astype(str)
        named = levels.where(levels != "", "slice " + areas["slice"].astype(str))
        slices = areas.loc[(named == self.position) & (areas["scan"] == self.series.entry(
            rows["baseline"].iloc[0]).stem), "slice"]
        return int(slices.iloc[len(slices) // 2]) if len(slices) else None

    def _show_panes(self, refit: bool = False) -> None:
        if self.series is None or self.table is None or self.table.empty:
            self.panes.set_count(0)
            return
        sessions = list(dict.fromkeys(self.table["session"]))
        self.panes.set_count(len(sessions))
        s = self.shown_slice()
        average = self.average_box.currentText()
        rows = self.table[self.table["position"] == self.position].set_index("session")
        box = None
        for k, session in enumerate(sessions):
            entry = self.series.entry(session)
            pane, title = self.panes.panes[k], self.panes.titles[k]
            try:
                scan = self._scan(entry)
                labels = self._labels_of(entry, scan)
            except ScoreInputError as exc:
                pane.show_slice(None, None, None)
                title.setText(f"<b>{session}</b><br>{exc}")
                continue
            if s is None or s >= scan.n_slices:
                pane.show_slice(None, None, None)
                title.setText(f"<b>{session}</b><br>no such slice")
                continue
            averages = scan.averages()
            image = averages.get(average, averages["all"])[s]
            lesion = None if labels.lesion is None else labels.lesion[s]
            pane.show_slice(image, labels.dseg[s], lesion)
            if box is None:
                box = crop_box(labels.dseg[s], image.shape)
            title.setText(self._pane_title(session, k, rows.loc[session] if session in rows.index else None))
        if box is not None and (refit or not any(p.transform().m11() > 1.0 for p in self.panes.panes)):
            rect = QRectF(box[1].start, box[0].start, box[1].stop - box[1].start, box[0].stop - box[0].start)
            self.panes.fit(rect)

    def _pane_title(self, session: str, k: int, row) -> str:
        color = session_color(k).name()
        head = f"<b style='color:{color}'>{session}</b>"
        if row is None:
            return head
        if row["qc_status"] == "fail":
            return f"{head} · {self.position}<br><span style='color:#888'>failed QC: not compared</span>"
        if not np.isfinite(row["area_mm2"]):
            return f"{head} · {self.position}<br>unlabelled"
        text = f"{head} · {self.position}<br>{row['area_mm2']:.1f} mm²"
        if session == row["baseline"]:
            return text + " (baseline)"
        if np.isfinite(row["change_percent"]):
            text += f" ({row['change_percent']:+.1f} %)"
            if is_true(row["beyond_lsc"]):
                text = f"{text} <b style='color:{BEYOND_COLOR}'>beyond LSC</b>"
        return text

    # -- saving -----------------------------------------------------------------------------
    def plot_image(self, size: QSize = QSize(1100, 520)) -> QImage:
        return render_image(self.plot.draw, size)

    def save_plot(self, path, size: QSize = QSize(1100, 520)) -> Path:
        """The plot as PNG (or another image format) or SVG."""
        return save_drawing(self.plot.draw, path, size)

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the plot", f"longitudinal_{self.compartment}.png",
                                              "PNG (*.png);;SVG (*.svg)")
        if path:
            try:
                self.save_plot(path)
            except ScoreInputError as exc:
                self.message.setText(str(exc))
                self.message.setVisible(True)
