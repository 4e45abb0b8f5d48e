"""Making the viewer's panes in the background of the event loop after start-up."""

from __future__ import annotations

from qtpy.QtCore import QObject, QTimer, Signal


class ViewerWarmUp(QObject):
    """Advance :meth:`ScoreViewer.warm_up_steps` one step per event-loop turn (a pane, about
    0.3 s), so the first scan the user opens shows in well under a second and the window
    answers all along. A scan asked for meanwhile waits (:meth:`defer`) and is handed back
    by :attr:`ready` when the panes are made.

    Attributes
    ----------
    progress : Signal(str)
        A status message while a scan waits.
    ready : Signal(object)
        The warm-up ended; the waiting scan entry, or None.
    """

    progress = Signal(str)
    ready = Signal(object)

    def __init__(self, score_viewer, parent=None):
        super().__init__(parent)
        self.score_viewer = score_viewer
        self._steps = None
        self._done = 0
        self._timer = None
        self._deferred = None

    @property
    def running(self) -> bool:
        return self._steps is not None

    def start(self, layout: str) -> None:
        """Make the layers in ``layout`` (the one they will show in)."""
        self.score_viewer.set_layout(layout)
        self._steps = self.score_viewer.warm_up_steps()
        self._done = 0
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._step)
        self._timer.start(0)

    def defer(self, entry) -> None:
        """Open ``entry`` as soon as the panes are made."""
        self._deferred = entry
        self.progress.emit(f"Preparing the viewer; {entry.stem} opens next")

    def finish(self) -> None:
        """Make the layers not made yet now, then hand back a waiting scan."""
        if self._steps is not None:
            for _ in self._steps:
                pass
        self._end()

    def stop(self) -> None:
        """Stop without making the rest (the window closes)."""
        self._steps = None
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _step(self) -> None:
        if self._steps is None or next(self._steps, StopIteration) is StopIteration:
            self._end()
            return
        self._done += 1
        if self._deferred is not None:
            self.progress.emit(f"Preparing the viewer (step {self._done} of "
                               f"{self.score_viewer.warm_up_step_count()}); {self._deferred.stem} opens next")

    def _end(self) -> None:
        self.stop()
        entry, self._deferred = self._deferred, None
        self.ready.emit(entry)
