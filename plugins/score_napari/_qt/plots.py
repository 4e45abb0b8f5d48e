"""Plots of areas and agreement, drawn with plain ``QPainter``.

The same code draws on screen, into a PNG (``QImage``) and into an SVG (``QSvgGenerator``);
the export panel and the longitudinal view use it (matplotlib and QtCharts are not available).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from qtpy.QtCore import QPointF, QRectF, QSize, Qt
from qtpy.QtGui import QColor, QFont, QImage, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

from score_gui.areas import passed
from score_gui.errors import ScoreInputError

PLOT_COMPARTMENTS = ("cord", "wm", "gm", "anterior_horns", "posterior_horns", "gray_commissure", "lesion",
                     "canal")
TITLES = {"canal": "Spinal canal", "cord": "Spinal cord", "wm": "White matter", "gm": "Gray matter",
          "anterior_horns": "Anterior horns", "posterior_horns": "Posterior horns",
          "gray_commissure": "Gray commissure", "lesion": "Lesions", "na_wm": "NA white matter",
          "na_gm": "NA gray matter", "csf": "CSF"}
# The paper's palette; WM, pale in the overlay, is drawn dark brown here to read on white.
PLOT_COLORS = {"canal": "#d4a017", "cord": "#a67c00", "csf": "#d4a017", "wm": "#6b3e1f", "gm": "#a0522d",
               "anterior_horns": "#d62728", "posterior_horns": "#1f3a93", "gray_commissure": "#1e6b30",
               "lesion": "#8e44ad", "na_wm": "#8b5a2b", "na_gm": "#c07040"}
KIND_COLORS = {"inter-rater": "#4c72b0", "rater-consensus": "#55a868", "score-consensus": "#c44e52",
               "score-rater": "#8172b2", "rater-truth": "#937860", "score-truth": "#da8bc3"}
GROUP_STYLES = {"HC": Qt.PenStyle.SolidLine, "MS": Qt.PenStyle.DashLine}


# ---------------------------------------------------------------------------------------
# Data for the plots (pure pandas)
# ---------------------------------------------------------------------------------------

def level_order(table: pd.DataFrame) -> list[str]:
    """Slice levels in cranio-caudal order (by their median slice index); slice numbers if no levels."""
    levels = table["level"].fillna("").astype(str)
    labels = levels.where(levels != "", "slice " + table["slice"].astype(str))
    order = pd.DataFrame({"label": labels, "slice": table["slice"].astype(float)})
    return order.groupby("label")["slice"].median().sort_values().index.tolist()


def area_profiles(table: pd.DataFrame, source: str = "score", groups: dict[str, str] | None = None,
                  compartments=PLOT_COMPARTMENTS) -> dict:
    """``{compartment: {group: (levels, mean, sd, n)}}`` over subjects, failed slices left out.

    Each subject counts once per level (its mean over scans), so rescanned subjects do not
    weigh more.
    """
    kept = passed(table[table["source"] == source]).copy()
    if kept.empty:
        return {}
    levels = kept["level"].fillna("").astype(str)
    kept["level_label"] = levels.where(levels != "", "slice " + kept["slice"].astype(str))
    order = level_order(kept)
    kept["group"] = kept["subject"].astype(str).map(groups or {}).fillna("all") if groups else "all"
    result = {}
    for name in compartments:
        values = pd.to_numeric(kept[name], errors="coerce")
        frame = kept.assign(value=values).dropna(subset=["value"])
        if frame.empty:
            continue
        per_subject = frame.groupby(["group", "level_label", "subject"])["value"].mean().reset_index()
        result[name] = {}
        for group, g in per_subject.groupby("group"):
            stats = g.groupby("level_label")["value"].agg(["mean", "std", "count"]).reindex(order)
            result[name][group] = (order, stats["mean"].to_numpy(), stats["std"].fillna(0).to_numpy(),
                                   stats["count"].fillna(0).to_numpy())
    return result


# ---------------------------------------------------------------------------------------
# Drawing (QPainter; works on widgets, QImage and QSvgGenerator alike)
# ---------------------------------------------------------------------------------------

def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round tick values covering ``[low, high]``.

    Examples
    --------
    >>> nice_ticks(0, 87)
    [0.0, 25.0, 50.0, 75.0, 100.0]
    >>> nice_ticks(0, 0)
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    low = float(low) if np.isfinite(low) else 0.0
    high = float(high) if np.isfinite(high) else low + 1.0
    if low == high == 0.0:
        high = 1.0
    # A flat series (e.g. equal areas everywhere) still gets a readable range.
    minimum_span = max(abs(high), abs(low), 1.0) * 0.02
    if high - low < minimum_span:
        low, high = low - minimum_span / 2, high + minimum_span / 2
        if low < 0 <= low + minimum_span / 2:
            low, high = 0.0, high - low
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    n_ticks = int(math.ceil((high - start) / step - 1e-9)) + 1  # bounded: no float-step loop
    return [round(start + i * step, 10) for i in range(n_ticks)]


def _format_tick(value: float, step: float) -> str:
    """Enough decimals to tell neighbouring ticks apart (``step`` apart)."""
    decimals = next((d for d in range(6) if abs(round(step, d) - step) < 1e-9 * max(1.0, step)), 6)
    return f"{value:.{decimals}f}"


class _Axes:
    """Maps data to pixels inside a frame and draws the frame, ticks and labels."""

    def __init__(self, painter: QPainter, rect: QRectF, y_range: tuple[float, float], n_x: int,
                 title: str = "", y_label: str = ""):
        self.painter, self.outer = painter, rect
        self.frame = QRectF(rect.left() + 46, rect.top() + 24, rect.width() - 56, rect.height() - 90)
        self.ticks = nice_ticks(*y_range)
        self.y_low, self.y_high = self.ticks[0], self.ticks[-1]
        self.n_x = max(n_x, 1)
        self.title, self.y_label = title, y_label

    def x(self, index: float) -> float:
        return self.frame.left() + (index + 0.5) / self.n_x * self.frame.width()

    def y(self, value: float) -> float:
        span = (self.y_high - self.y_low) or 1.0
        return self.frame.bottom() - (value - self.y_low) / span * self.frame.height()

    def draw(self, x_labels: list[str]) -> None:
        p = self.painter
        p.setPen(QPen(QColor("#e6e6e6"), 1))
        for tick in self.ticks:
            p.drawLine(QPointF(self.frame.left(), self.y(tick)), QPointF(self.frame.right(), self.y(tick)))
        p.setPen(QPen(QColor("#333333"), 1))
        p.drawRect(self.frame)
        font = QFont(p.font())
        font.setPointSizeF(7.5)
        p.setFont(font)
        for tick in self.ticks:
            p.drawText(QRectF(self.outer.left(), self.y(tick) - 7, 42, 14),
                       int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                       _format_tick(tick, self.ticks[1] - self.ticks[0] if len(self.ticks) > 1 else 1.0))
        slot = self.frame.width() / self.n_x
        step = 1 if slot >= 22 else math.ceil(22 / slot)  # thin out only when they would overlap
        for i, label in enumerate(x_labels):
            if i % step == 0:
                p.save()
                p.translate(self.x(i), self.frame.bottom() + 4)
                p.rotate(40)
                p.drawText(QRectF(0, -6, 100, 12), int(Qt.AlignmentFlag.AlignLeft), label)
                p.restore()
        bold = QFont(p.font())
        bold.setPointSizeF(9)
        bold.setBold(True)
        p.setFont(bold)
        p.drawText(QRectF(self.frame.left(), self.outer.top() + 2, self.frame.width(), 18),
                   int(Qt.AlignmentFlag.AlignCenter), self.title)
        p.setFont(font)
        if self.y_label:
            p.save()
            p.translate(self.outer.left() + 8, self.frame.center().y())
            p.rotate(-90)
            p.drawText(QRectF(-60, -8, 120, 16), int(Qt.AlignmentFlag.AlignCenter), self.y_label)
            p.restore()


def draw_message(painter: QPainter, size: QSize, text: str) -> None:
    painter.fillRect(QRectF(0, 0, size.width(), size.height()), QColor("white"))
    painter.setPen(QColor("#555555"))
    painter.drawText(QRectF(0, 0, size.width(), size.height()), int(Qt.AlignmentFlag.AlignCenter), text)


def draw_area_profiles(painter: QPainter, size: QSize, profiles: dict, title: str = "") -> None:
    """Small multiples: one panel per compartment, area (mm²) per slice level, a line per group."""
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    if not profiles:
        draw_message(painter, size, "No areas to plot (no label maps, or every slice failed QC)")
        return
    painter.fillRect(QRectF(0, 0, size.width(), size.height()), QColor("white"))
    names = list(profiles)
    columns = 4 if len(names) > 3 else len(names)
    rows = math.ceil(len(names) / columns)
    top = 34 if title else 8
    legend_h = 22
    cell_w = size.width() / columns
    cell_h = (size.height() - top - legend_h) / rows
    if title:
        bold = QFont(painter.font())
        bold.setPointSizeF(11)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(QColor("#222222"))
        painter.drawText(QRectF(0, 6, size.width(), 24), int(Qt.AlignmentFlag.AlignCenter), title)
    groups_seen = []
    for k, name in enumerate(names):
        rect = QRectF((k % columns) * cell_w, top + (k // columns) * cell_h, cell_w, cell_h).adjusted(4, 2, -4, -2)
        series = profiles[name]
        lows = [np.nanmin(m - s) for _, m, s, _ in series.values() if np.isfinite(m).any()]
        highs = [np.nanmax(m + s) for _, m, s, _ in series.values() if np.isfinite(m).any()]
        low = max(0.0, min(lows)) if lows else 0.0
        high = max(highs) if highs else 1.0
        low = 0.0 if low < 0.35 * high else low  # keep zero in view unless it squeezes the data
        levels = next(iter(series.values()))[0]
        axes = _Axes(painter, rect, (low, high), len(levels), TITLES.get(name, name),
                     "mm²" if k % columns == 0 else "")
        axes.draw(levels)
        color = QColor(PLOT_COLORS.get(name, "#333333"))
        for g_index, (group, (lv, mean, sd, _n)) in enumerate(series.items()):
            if group not in groups_seen:
                groups_seen.append(group)
            pen = QPen(color, 2, GROUP_STYLES.get(group, Qt.PenStyle.SolidLine))
            offset = (g_index - (len(series) - 1) / 2) * 3  # keep error bars of groups apart
            points = [QPointF(axes.x(i) + offset, axes.y(v)) for i, v in enumerate(mean) if np.isfinite(v)]
            painter.setPen(QPen(color, 1))
            for i, (v, e) in enumerate(zip(mean, sd)):
                if np.isfinite(v) and e > 0:
                    painter.drawLine(QPointF(axes.x(i) + offset, axes.y(v - e)),
                                     QPointF(axes.x(i) + offset, axes.y(v + e)))
            painter.setPen(pen)
            for a, b in zip(points, points[1:]):
                painter.drawLine(a, b)
            painter.setBrush(color if group != "MS" else QColor("white"))
            painter.setPen(QPen(color, 1.5))
            for point in points:
                painter.drawEllipse(point, 2.6, 2.6)
            painter.setBrush(Qt.BrushStyle.NoBrush)
    _draw_group_legend(painter, size, groups_seen, legend_h)


def _draw_group_legend(painter: QPainter, size: QSize, groups: list[str], height: int) -> None:
    y = size.height() - height / 2
    x = 12.0
    painter.setPen(QColor("#333333"))
    for group in groups:
        painter.setPen(QPen(QColor("#333333"), 2, GROUP_STYLES.get(group, Qt.PenStyle.SolidLine)))
        painter.drawLine(QPointF(x, y), QPointF(x + 26, y))
        painter.setPen(QColor("#333333"))
        label = {"all": "all subjects: mean ± SD"}.get(group, f"{group}: mean ± SD")
        painter.drawText(QRectF(x + 30, y - 8, 170, 16), int(Qt.AlignmentFlag.AlignVCenter), label)
        x += 190
    painter.drawText(QRectF(x, y - 8, size.width() - x - 8, 16),
                     int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight),
                     "slices that failed QC left out")


def box_stats(values) -> tuple[float, float, float, float, float] | None:
    """Whisker low, Q1, median, Q3, whisker high (Tukey: 1.5 IQR, clipped to the data)."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    iqr = q3 - q1
    low = values[values >= q1 - 1.5 * iqr].min()
    high = values[values <= q3 + 1.5 * iqr].max()
    return float(low), float(q1), float(median), float(q3), float(high)


def draw_agreement_boxes(painter: QPainter, size: QSize, agreement: pd.DataFrame | None,
                         metric: str = "dice") -> None:
    """Box plots of ``metric`` per compartment, one box per comparison kind (failed slices out)."""
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    if agreement is None or agreement.empty:
        draw_message(painter, size, "No agreement yet: it needs scans with two or more label sources\n"
                                    "(raters, consensus, score). Press 'Compute agreement'.")
        return
    painter.fillRect(QRectF(0, 0, size.width(), size.height()), QColor("white"))
    kept = agreement[agreement["qc_status"] != "fail"]
    compartments = [c for c in ("canal", "cord", "wm", "gm", "anterior_horns", "posterior_horns",
                                "gray_commissure", "lesion", "na_wm", "na_gm") if c in set(kept["compartment"])]
    kinds = [k for k in KIND_COLORS if k in set(kept["kind"])]
    values = kept[metric].to_numpy(float)
    finite = values[np.isfinite(values)]
    high = 1.0 if metric == "dice" else (finite.max() if len(finite) else 1.0)
    low = max(0.0, finite.min() - 0.05) if metric == "dice" and len(finite) else 0.0
    label = {"dice": "Dice", "hausdorff_mm": "Hausdorff (mm)", "hd95_mm": "HD95 (mm)"}[metric]
    axes = _Axes(painter, QRectF(0, 0, size.width(), size.height() - 26), (low, high), len(compartments),
                 f"{label} per compartment", label)
    axes.draw([TITLES.get(c, c) for c in compartments])
    slot = axes.frame.width() / max(len(compartments), 1)
    box_w = min(22.0, slot * 0.8 / max(len(kinds), 1))
    for i, name in enumerate(compartments):
        for j, kind in enumerate(kinds):
            stats = box_stats(kept.loc[(kept["compartment"] == name) & (kept["kind"] == kind), metric])
            if stats is None:
                continue
            lo, q1, med, q3, hi = stats
            cx = axes.x(i) + (j - (len(kinds) - 1) / 2) * box_w
            color = QColor(KIND_COLORS[kind])
            painter.setPen(QPen(color.darker(140), 1.2))
            painter.drawLine(QPointF(cx, axes.y(lo)), QPointF(cx, axes.y(q1)))
            painter.drawLine(QPointF(cx, axes.y(q3)), QPointF(cx, axes.y(hi)))
            for whisker in (lo, hi):
                painter.drawLine(QPointF(cx - box_w * 0.25, axes.y(whisker)),
                                 QPointF(cx + box_w * 0.25, axes.y(whisker)))
            fill = QColor(color)
            fill.setAlpha(150)
            painter.setBrush(fill)
            painter.drawRect(QRectF(cx - box_w * 0.4, axes.y(q3), box_w * 0.8, axes.y(q1) - axes.y(q3)))
            painter.setPen(QPen(QColor("#111111"), 2))
            painter.drawLine(QPointF(cx - box_w * 0.4, axes.y(med)), QPointF(cx + box_w * 0.4, axes.y(med)))
            painter.setBrush(Qt.BrushStyle.NoBrush)
    x = 12.0
    for kind in kinds:
        painter.fillRect(QRectF(x, size.height() - 18, 12, 12), QColor(KIND_COLORS[kind]))
        painter.setPen(QColor("#333333"))
        painter.drawText(QRectF(x + 16, size.height() - 21, 140, 18), int(Qt.AlignmentFlag.AlignVCenter),
                         kind.replace("score", "SCORE"))
        x += 150


def render_image(draw, size: QSize) -> QImage:
    """Run ``draw(painter, size)`` on a white ARGB image."""
    image = QImage(size, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    try:
        draw(painter, size)
    finally:
        painter.end()
    return image


def save_drawing(draw, path: str | Path, size: QSize = QSize(1200, 700)) -> Path:
    """Save a drawing as PNG (or any QImage format) or SVG, atomically."""
    from score_gui.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".svg":
            from qtpy.QtSvg import QSvgGenerator

            generator = QSvgGenerator()
            generator.setFileName(str(tmp))
            generator.setSize(size)
            generator.setViewBox(QRectF(0, 0, size.width(), size.height()))
            generator.setTitle("SCORE Studio plot")
            painter = QPainter(generator)
            try:
                draw(painter, size)
            finally:
                painter.end()
        else:
            fmt = path.suffix.lstrip(".").upper() or "PNG"
            if not render_image(draw, size).save(str(tmp), fmt):
                raise ScoreInputError(path, f"cannot write a {fmt} image here")
    return path


# ---------------------------------------------------------------------------------------
# Widgets
# ---------------------------------------------------------------------------------------

class PlotView(QWidget):
    """Shows a drawing function scaled to the widget; redraws on resize."""

    def __init__(self, draw=None, parent=None):
        super().__init__(parent)
        self.draw = draw or (lambda p, s: draw_message(p, s, "Nothing to show"))
        self.setMinimumSize(480, 300)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_draw(self, draw) -> None:
        self.draw = draw
        self.update()

    def paintEvent(self, event):  # noqa: N802 - Qt API
        painter = QPainter(self)
        try:
            self.draw(painter, self.size())
        finally:
            painter.end()
