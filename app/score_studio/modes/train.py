"""Train mode: the annotation loop's two panels, a study's own models and what to label next.

The plugin's :class:`~score_napari._qt.train_widget.TrainPanel` trains a named model set of
the open study (offered by the Segment panel as soon as it is written); the
:class:`~score_napari._qt.retrain.RetrainOffer` retrains a set on the slices reviewed since
(labels saved first) and then proposes its labels again on the open scan; below them the
:class:`~score_napari._qt.ranking.RankingPanel` lists the rater's unlabelled slices by how
unsure the models are. "Next slice to label" (Ctrl+L, from any mode) opens the top one in
Annotate mode; the study browser's Next column orders the scans the same way.
"""

from __future__ import annotations

from qtpy.QtWidgets import QGroupBox, QScrollArea, QVBoxLayout, QWidget


class TrainMode:
    """Train panel and ranking in one scrollable page, wired to the window.

    Parameters
    ----------
    window : MainWindow
        Its study, rater, browser, Segment panel and scan opening.
    """

    def __init__(self, window):
        from score_napari._qt.ranking import RankingPanel
        from score_napari._qt.retrain import RetrainOffer
        from score_napari._qt.train_widget import TrainPanel

        self.window = window
        self.train_panel = TrainPanel()
        self.ranking = RankingPanel(lambda: window.study, lambda: window.settings.rater_id or None,
                                    is_labelled=self._labelled_check)
        self.retrain = RetrainOffer(can_propose=True)
        retrain_box = QGroupBox("Learn the new slices")
        QVBoxLayout(retrain_box).addWidget(self.retrain)
        ranking_box = QGroupBox("Label next")
        QVBoxLayout(ranking_box).addWidget(self.ranking)
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.addWidget(self.train_panel)
        layout.addWidget(retrain_box)
        layout.addWidget(ranking_box, 1)
        self.page = QScrollArea()
        self.page.setWidgetResizable(True)
        self.page.setWidget(content)
        self.train_panel.model_set_written.connect(self._on_model_set)
        # bound methods, not lambdas: a lambda that Qt holds would keep the window alive
        self.train_panel.running_changed.connect(self._on_training_running)
        self.retrain.retrain_requested.connect(self.retrain_set)
        self.retrain.propose_requested.connect(self.propose_with)
        window.rater.saved.connect(self._on_labels_saved)
        self.ranking.ranked.connect(window.browser.set_ranking)
        self.ranking.open_slice.connect(self.open_slice)

    def set_study(self, study) -> None:
        """A study opened: train on it, show its saved ranking of the current rater."""
        self.train_panel.set_study(study.root)
        self.retrain.set_study(study.root)
        if self.ranking.reload():
            self.window.browser.set_ranking(self.ranking.table)
        else:
            self.window.browser.set_ranking(None)

    def next_to_label(self) -> None:
        """Ctrl+L: the most useful unlabelled slice, in Annotate mode."""
        if self.ranking.table is None and not self.ranking.reload():
            self.window.statusBar().showMessage("No ranking yet: rank the unlabelled slices in Train mode (F6).", 8000)
            return
        if self.ranking.next_slice() is None:
            self.window.statusBar().showMessage(self.ranking.message_label.text(), 8000)

    def open_slice(self, stem: str, index: int) -> None:
        window = self.window
        entry = window.study.find(stem)
        window.set_mode("annotate")
        if window.entry is None or window.entry.path != entry.path:
            window.open_entry(entry)
        window.score_viewer.set_slice(index)

    def _labelled_check(self, study, who: str):
        """Labelled slices from the files, and for the scan on screen from the labels being
        drawn (saved or not)."""
        from score_napari._qt.ranking import labelled_in_files

        from_files = labelled_in_files(study, who)
        window = self.window

        def is_labelled(stem: str, index: int) -> bool:
            if window.entry is not None and window.entry.stem == stem and window.scan is not None \
                    and window.rater_workflow.my_source == who:
                return bool(window.score_viewer.get_labels().labelled_slices()[index])
            return from_files(stem, index)

        return is_labelled

    def _on_training_running(self, running: bool) -> None:
        self.retrain.setEnabled(not running)

    def _on_labels_saved(self, _written) -> None:
        self.retrain.refresh_counts()

    def retrain_set(self, name: str) -> None:
        """Retrain a set on the labels as they are: the rater's unsaved work is saved first."""
        window = self.window
        if window.rater.dirty and window.rater.active:
            window.rater.save(explicit=True)
        self.train_panel.retrain(name)

    def propose_with(self, model_path: str) -> None:
        """Segment the open scan with a (retrained) set; its labels replace the slices that
        are still unreviewed proposals (the Segment panel's "my labels" result)."""
        window = self.window
        if window.scan is None:
            window.statusBar().showMessage("Open a scan to propose labels on.", 6000)
            return
        window.segmentation.propose_with(model_path)

    def _on_model_set(self, model_set) -> None:
        self.window.segmentation.refresh_model_sets()
        self.window.browser.refresh_all()
        self.retrain.retrain_finished(model_set)
