"""Learn the new slices: retrain a study's model set on what the raters reviewed since.

The annotation loop's last step. :class:`RetrainOffer` names the study's newest model set,
how many slices its sources have drawn, accepted or corrected since it was trained
(:func:`score_gui.retraining.slices_since`), and offers to retrain it on them
(:meth:`~score_napari._qt.train_widget.TrainPanel.retrain`: each fold network fine-tuned
from its own weights, same folds, minutes). Once a set is retrained it offers to propose
its labels again on the slices of the open scan that are still unreviewed proposals (a
host such as SCORE Studio connects :attr:`RetrainOffer.propose_requested`).
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget


class RetrainOffer(QWidget):
    """A study set, its new slices, Retrain and (after it) Propose again.

    Parameters
    ----------
    can_propose : bool
        Whether a host connects :attr:`propose_requested` (else the button stays hidden).

    Attributes
    ----------
    retrain_requested : Signal(str)
        The set's name: retrain it (the host saves unsaved labels first).
    propose_requested : Signal(str)
        The set's folder: segment the open scan with it and propose the result on the
        slices still proposed.
    new_slices : dict or None
        Source -> ``stem:slice`` reviewed since the chosen set learnt (None: not known).
    """

    retrain_requested = Signal(str)
    propose_requested = Signal(str)

    def __init__(self, can_propose: bool = False, parent: QWidget | None = None):
        super().__init__(parent)
        self.study_root: Path | None = None
        self.new_slices: dict | None = None
        self.retrained: str | None = None
        self.set_combo = QComboBox()
        self.set_combo.setToolTip("The study's model set to retrain")
        self.set_combo.currentIndexChanged.connect(lambda _i: self.refresh_counts())
        self.summary = QLabel("No model set in this study yet: train one above.")
        self.summary.setWordWrap(True)
        self.retrain_button = QPushButton("Retrain")
        self.retrain_button.setToolTip("Fine-tune each of the set's networks on the labels as they are now "
                                       "(same folds, so its out-of-fold Dice stays honest)")
        self.retrain_button.clicked.connect(self._on_retrain)
        self.propose_button = QPushButton("Propose again on this scan")
        self.propose_button.setToolTip("Segment the open scan with the retrained set and replace the "
                                       "slices still marked 'proposed' (drawn and accepted slices stay)")
        self.propose_button.clicked.connect(self._on_propose)
        self.propose_button.setVisible(can_propose)
        self.propose_button.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(QLabel("Set:"))
        row.addWidget(self.set_combo, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.retrain_button)
        buttons.addWidget(self.propose_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.summary)
        layout.addLayout(buttons)
        self.set_study(None)

    @property
    def chosen_set(self) -> str | None:
        return self.set_combo.currentData()

    def set_study(self, root) -> None:
        """List the study's model sets, newest first."""
        from score_gui.model_sets import list_model_sets

        self.study_root = Path(root) if root is not None else None
        sets = list_model_sets(self.study_root) if self.study_root is not None else []
        sets = sorted(sets, key=lambda s: s.created, reverse=True)
        self.set_combo.blockSignals(True)
        self.set_combo.clear()
        for model_set in sets:
            self.set_combo.addItem(model_set.label(), model_set.name)
        self.set_combo.blockSignals(False)
        self.refresh_counts()

    def refresh_counts(self) -> None:
        """Count the chosen set's new slices again (after labels were saved)."""
        from score_gui.model_sets import find_model_set
        from score_gui.retraining import slices_since

        name = self.chosen_set
        model_set = find_model_set(self.study_root, name) if name and self.study_root is not None else None
        self.retrain_button.setEnabled(model_set is not None)
        self.propose_button.setEnabled(model_set is not None and self.retrained == name)
        if model_set is None:
            self.new_slices = None
            self.summary.setText("No model set in this study yet: train one above.")
            return
        self.new_slices = slices_since(self.study_root, model_set)
        learnt = model_set.info.get("trained_on") or {}
        if self.new_slices is None:
            self.summary.setText(f"{name} does not record which slices it learnt; retraining "
                                 "fine-tunes it on every reviewed slice.")
            return
        parts = [f"{who}: {len(learnt.get(who) or [])} learnt, {len(new)} new"
                 for who, new in self.new_slices.items()]
        total = sum(len(new) for new in self.new_slices.values())
        advice = ("Retrain to learn them (a few minutes)." if total
                  else "Nothing new since it was trained: label or accept slices first.")
        self.summary.setText(f"<b>{name}</b> ({'; '.join(parts)}). {advice}")

    def retrain_finished(self, model_set) -> None:
        """A set was written: list it, and offer proposals from it when it was a retrain."""
        self.retrained = model_set.name if model_set.info.get("retrained_from") else None
        self.set_study(self.study_root)
        index = self.set_combo.findData(model_set.name)
        if index >= 0:
            self.set_combo.setCurrentIndex(index)
        self.refresh_counts()

    def _on_retrain(self) -> None:
        if self.chosen_set:
            self.retrain_requested.emit(self.chosen_set)

    def _on_propose(self) -> None:
        from score_gui.model_sets import find_model_set

        model_set = find_model_set(self.study_root, self.chosen_set) if self.chosen_set else None
        if model_set is not None:
            self.propose_requested.emit(str(model_set.path))
