"""QC mode: the plugin's QC widget for the open study and reviewer, made when first needed."""

from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget


class QCPage(QWidget):
    """A holder for :class:`score_napari._qt.qc_widget.QCWidget`, (re)built by :meth:`refresh`
    for the open study and reviewer.

    Attributes
    ----------
    decision_recorded : Signal
        A reviewer recorded a decision.
    slice_selected : Signal(int)
        The slice under review changed (on the scan the widget shows).
    scan_changed : Signal(str)
        The reviewer moved to another scan (its stem).
    """

    decision_recorded = Signal()
    slice_selected = Signal(int)
    scan_changed = Signal(str)

    def __init__(self):
        super().__init__()
        self.widget = None
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.placeholder = QLabel("Open a study to review its slices.")
        self.placeholder.setWordWrap(True)
        self._layout.addWidget(self.placeholder)

    def refresh(self, study, entry, reviewer: str) -> None:
        """Show ``study`` for ``reviewer`` (without a name: the grid shows, recording waits),
        on the scan of ``entry``; the slice under review is announced again."""
        if study is None:
            return
        self._show_placeholder(reviewer)
        widget = self.widget
        if widget is None or widget.study.root != study.root or widget.reviewer != reviewer:
            widget = self._replace_widget(study, reviewer)
        stems = [e.stem for e in widget.study.scans]
        if entry is not None and entry.stem in stems and (widget.entry is None or widget.entry.stem != entry.stem):
            widget.set_scan(entry.stem)
        if widget.current_slice() is not None:
            self.slice_selected.emit(widget.current_slice())   # the viewer shows the slice under review

    def shows(self, entry) -> bool:
        """Whether the widget reviews the scan of ``entry``."""
        return (self.widget is not None and entry is not None and self.widget.entry is not None
                and self.widget.entry.stem == entry.stem)

    def _show_placeholder(self, reviewer: str) -> None:
        if reviewer:
            self.placeholder.hide()
        else:
            self.placeholder.setText("Identify as a rater (File > Change rater) to record QC decisions.")
            self.placeholder.show()

    def _replace_widget(self, study, reviewer: str):
        from score_napari._qt.qc_widget import QCWidget

        if self.widget is not None:
            self._layout.removeWidget(self.widget)
            self.widget.deleteLater()
        widget = QCWidget(study.root, reviewer)
        widget.decision_recorded.connect(lambda _d: self.decision_recorded.emit())
        widget.slice_selected.connect(self.slice_selected.emit)
        widget.scan_changed.connect(self.scan_changed.emit)
        self._layout.addWidget(widget, 1)
        self.widget = widget
        return widget


class QCMode:
    """The QC page kept in step with a :class:`~score_studio.main_window.MainWindow`: the
    viewer shows the slice under review, and the scan the reviewer moves to opens.

    Parameters
    ----------
    window : MainWindow
    """

    def __init__(self, window):
        self.window = window
        self.page = QCPage()
        self.page.decision_recorded.connect(window.browser.refresh_all)
        self.page.slice_selected.connect(self.show_slice)
        self.page.scan_changed.connect(self.open_scan)

    def refresh(self) -> None:
        window = self.window
        self.page.refresh(window.study, window.entry, window.rater_workflow.my_source)

    def show_slice(self, slice_index: int) -> None:
        """The viewer follows the reviewer: the slice under review shows in every pane."""
        if self.page.shows(self.window.entry):
            self.window.score_viewer.set_slice(slice_index)

    def open_scan(self, stem: str) -> None:
        """The reviewer moved to another scan in QC mode: open it in the viewer too."""
        window = self.window
        if window.entry is not None and window.entry.stem == stem:
            return
        entry = next((e for e in window.study_entries() if e.stem == stem), None)
        if entry is not None:
            window.browser.select(entry)
