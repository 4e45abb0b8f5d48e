"""The QC grid's tiles and the fail-reason panel.

A tile is a slice's thumbnail with its labels (:func:`score_gui.qc.report.thumbnail_rgb`), a
frame in its status colour once decided, an orange badge counting the automatic suggestions,
and a caption and tooltip saying what was decided and why.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPixmap
from qtpy.QtWidgets import QFrame, QHBoxLayout, QLabel, QLineEdit, QListWidget, QPushButton, QVBoxLayout

from score_gui.qc.log import REASONS, is_image_level
from score_gui.qc.report import STATUS_COLORS

BADGE_COLOR = "#e08a00"


def tile_pixmap(rgb: np.ndarray, status: str, n_hints: int) -> QPixmap:
    """The thumbnail, framed in the status colour once decided, with a badge of suggestions."""
    pixmap = QPixmap.fromImage(rgb_to_qimage(rgb))
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.Antialiasing)
    if status != "unreviewed":
        pen = painter.pen()
        pen.setColor(QColor(STATUS_COLORS[status]))
        pen.setWidth(8)
        painter.setPen(pen)
        painter.drawRect(0, 0, pixmap.width() - 1, pixmap.height() - 1)
    if n_hints:
        painter.setPen(Qt.NoPen)
        painter.setBrush(QBrush(QColor(BADGE_COLOR)))
        painter.drawEllipse(pixmap.width() - 30, 6, 24, 24)
        painter.setPen(QColor("white"))
        font = QFont()
        font.setBold(True)
        painter.setFont(font)
        painter.drawText(pixmap.width() - 30, 6, 24, 24, Qt.AlignCenter, str(n_hints))
    painter.end()
    return pixmap


def tile_caption(index: int, level: str | None, status: str, reason: str) -> str:
    """``'3 · C3 · fail: image artifact (image)'``.

    >>> tile_caption(3, "C3", "fail", "image_artifact")
    '3 · C3 · fail: image artifact (image)'
    """
    text = f"{index}" + (f" · {level}" if level else "") + f" · {status}"
    if reason:
        text += f": {reason.replace('_', ' ')}"
    if is_image_level(status, reason):
        text += " (image)"
    return text


def tile_tooltip(index: int, status: str, reason: str, hints) -> str:
    """The decision, what an image-level fail means, and each suggestion, one per line."""
    tip = [f"slice {index}: {status}" + (f" ({reason})" if reason else "")]
    if is_image_level(status, reason):
        tip.append("an image-level fail: the slice fails for every label source of this scan")
    tip += [f"suggestion: {h}" for h in hints]
    return "\n".join(tip)


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """An RGB uint8 array as a QImage that owns its data."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()


class ReasonPanel(QFrame):
    """Inline panel asking why a slice fails: keys 1-6 pick a reason, Enter records."""

    chosen = Signal(str, str)  # reason, comment
    cancelled = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFrameShape(QFrame.StyledPanel)
        self.title = QLabel()
        self.reasons = QListWidget()
        self.reasons.setObjectName("qc-reasons")
        for number, reason in enumerate(REASONS, start=1):
            self.reasons.addItem(f"{number}  {reason.replace('_', ' ')}")
        self.reasons.setMaximumHeight(self.reasons.sizeHintForRow(0) * len(REASONS) + 8)
        self.comment = QLineEdit()
        self.comment.setPlaceholderText("optional comment (Tab here, Enter records)")
        record = QPushButton("Record fail (Enter)")
        cancel = QPushButton("Cancel (Esc)")
        record.clicked.connect(self.accept)
        cancel.clicked.connect(self.cancel)
        self.comment.returnPressed.connect(self.accept)
        buttons = QHBoxLayout()
        buttons.addWidget(record)
        buttons.addWidget(cancel)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.reasons)
        layout.addWidget(self.comment)
        layout.addLayout(buttons)
        self.reasons.installEventFilter(self)
        self.comment.installEventFilter(self)
        self.hide()

    def ask(self, slice_label: str, suggested: str | None = None) -> None:
        self.title.setText(f"<b>Why does {slice_label} fail?</b> Press 1-6.")
        self.comment.clear()
        self.reasons.setCurrentRow(REASONS.index(suggested) if suggested in REASONS else -1)
        self.show()
        self.reasons.setFocus()

    def reason(self) -> str | None:
        row = self.reasons.currentRow()
        return REASONS[row] if 0 <= row < len(REASONS) else None

    def accept(self) -> None:
        if self.reason() is None:
            self.title.setText("<b>Pick a reason first</b> (1-6).")
            self.reasons.setFocus()
            return
        self.hide()
        self.chosen.emit(self.reason(), self.comment.text().strip())

    def cancel(self) -> None:
        self.hide()
        self.cancelled.emit()

    def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
        if event.type() != event.Type.KeyPress:
            return False
        key = event.key()
        if key == Qt.Key_Escape:
            self.cancel()
            return True
        if obj is self.reasons:
            if Qt.Key_1 <= key <= Qt.Key_1 + len(REASONS) - 1:
                self.reasons.setCurrentRow(key - Qt.Key_1)
                return True
            if key in (Qt.Key_Return, Qt.Key_Enter):
                self.accept()
                return True
        return False
