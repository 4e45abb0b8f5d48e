"""Annotate mode: who is rating and whether it is saved, the tools, other labels, the areas."""

from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QCheckBox, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from score_studio.actions import icon
from score_studio.references import ReferenceLabels, reference_title
from score_studio.shortcuts import ACTIONS


class AnnotatePage(QWidget):
    """The rater badge, Save and Consensus, the annotation tools, one checkbox per other
    source's labels and the live areas table.

    Parameters
    ----------
    score_viewer : ScoreViewer
        The viewer the tools and the areas follow.
    references : ReferenceLabels
        The other sources' labels the checkboxes show and hide.

    Attributes
    ----------
    change_rater, save, consensus : Signal
        The buttons were clicked.
    """

    change_rater = Signal()
    save = Signal()
    consensus = Signal()

    def __init__(self, score_viewer, references: ReferenceLabels):
        from score_napari._qt.annotation import AnnotationWidget
        from score_napari._qt.areas_table import AreasTableWidget

        super().__init__()
        self.score_viewer = score_viewer
        self.references = references
        self.annotation_widget = AnnotationWidget(score_viewer)
        self.areas_widget = AreasTableWidget(score_viewer)
        self.rater_label = QLabel()
        self.rater_label.setObjectName("raterBadge")
        self.save_state_label = QLabel()
        self.save_state_label.setObjectName("saveState")
        self.references_box = QGroupBox("Other labels (read-only contours)")
        self.references_layout = QVBoxLayout(self.references_box)
        self.references_layout.setContentsMargins(6, 4, 6, 4)
        self.references_box.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(self._badge_row())
        layout.addLayout(self._button_row())
        layout.addWidget(self.annotation_widget)
        layout.addWidget(self.references_box)
        layout.addWidget(self.areas_widget, 1)

    def _button(self, action: str, text: str, clicked: Signal) -> QPushButton:
        button = QPushButton(icon(ACTIONS[action].icon), text)
        button.setToolTip(ACTIONS[action].tooltip())
        button.clicked.connect(lambda _checked=False: clicked.emit())
        return button

    def _badge_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(self.rater_label)
        row.addWidget(self._button("rater", "", self.change_rater))
        row.addStretch(1)
        row.addWidget(self.save_state_label)
        return row

    def _button_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(self._button("save", "Save", self.save))
        self.consensus_button = self._button("consensus", "Consensus", self.consensus)
        row.addWidget(self.consensus_button)
        return row

    def show_rater(self, rater_id: str, session) -> None:
        """The badge: who rates, and whether the labels are saved (``session``: RaterSession)."""
        self.rater_label.setText(f"Rater {rater_id}" if rater_id else "No rater")
        if not session.active:
            text, dirty = ("view only" if not rater_id else ""), False
        elif session.dirty:
            text, dirty = "unsaved changes", True
        else:
            text, dirty = "all changes saved", False
        label = self.save_state_label
        label.setText(text)
        label.setProperty("dirty", "true" if dirty else "false")
        label.style().unpolish(label)   # the style sheet colours by the property
        label.style().polish(label)

    def update_reference_toggles(self) -> None:
        """One checkbox per reference (other raters, score, consensus, truth) in its colour."""
        from score_napari._qt.icons import swatch

        while self.references_layout.count():
            item = self.references_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        for who in self.references.labels:
            box = QCheckBox(reference_title(who))
            if who in self.score_viewer.references:
                box.setIcon(swatch(self.score_viewer.reference_color(who)))
            box.setChecked(self.references.shown(who))
            box.setToolTip(f"Show {who}'s labels as contours on every pane")
            box.toggled.connect(lambda on, w=who: self.show_reference(w, on))
            self.references_layout.addWidget(box)
        self.references_box.setVisible(bool(self.references.labels))

    def show_reference(self, who: str, visible: bool) -> None:
        """Show or hide one reference's contours; a reference given layers only now gets its
        colour swatch."""
        if self.references.show(who, visible):
            self.update_reference_toggles()
