"""Making the viewer's panes in the background of the event loop after start-up."""

from __future__ import annotations

import time

from qtpy.QtCore import QEvent, QObject, QTimer, Signal
from qtpy.QtWidgets import QApplication

QUIET_S = 0.6
"""Once a scan is open, the hidden panes are made only after this long without a click,
key or wheel turn: making one blocks the window for 0.2-0.3 s."""

_INPUT_EVENTS = (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonDblClick, QEvent.Type.KeyPress,
                 QEvent.Type.Wheel)


class ViewerWarmUp(QObject):
    """Advance :meth:`ScoreViewer.warm_up_steps` one step per event-loop turn (a pane, a few
    tenths of a second), so the first scan the user opens shows in well under a second and
    the window answers all along.

    The panes the layout shows are made first. A scan asked for before they are made waits
    (:meth:`defer`) and is handed back by :attr:`ready` as soon as they are; the hidden
    panes and the spare contour layers are made afterwards, under the open scan, while the
    user is not working in the window (:data:`QUIET_S`).

    Attributes
    ----------
    progress : Signal(str)
        A status message while a scan waits.
    ready : Signal(object)
        The waiting scan entry can open now (the shown panes are made).
    """

    progress = Signal(str)
    ready = Signal(object)

    def __init__(self, score_viewer, parent=None):
        super().__init__(parent)
        self.score_viewer = score_viewer
        self._steps = None
        self._timer = None
        self._deferred = None
        self._last_input = float("-inf")

    @property
    def running(self) -> bool:
        return self._steps is not None

    @property
    def blocks_opening(self) -> bool:
        """Whether a scan must wait: the panes the layout shows are not made yet."""
        return self.running and self.score_viewer.shown_panes_left() > 0

    def start(self, layout: str) -> None:
        """Make the layers in ``layout`` (the one they will show in)."""
        self.score_viewer.set_layout(layout)
        self._steps = self.score_viewer.warm_up_steps()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._step)
        self._timer.start(0)
        QApplication.instance().installEventFilter(self)

    def defer(self, entry) -> None:
        """Open ``entry`` as soon as the panes the layout shows are made."""
        self._deferred = entry
        self._say_what_waits()

    def open_waiting_now(self) -> None:
        """Make the panes the layout shows now, then hand back a waiting scan (the rest of
        the warm-up goes on in the event loop)."""
        if self.running:
            self.score_viewer.make_shown_panes()
        self._hand_back()

    def finish(self) -> None:
        """Make the layers not made yet now, then hand back a waiting scan."""
        if self._steps is not None:
            for _ in self._steps:
                pass
        self.stop()
        self._hand_back()

    def stop(self) -> None:
        """Stop without making the rest (the window closes)."""
        self._steps = None
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
            QApplication.instance().removeEventFilter(self)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt name)
        if event.type() in _INPUT_EVENTS:
            self._last_input = time.monotonic()
        return False

    def _user_busy(self) -> bool:
        """A stroke under way, or a scan open and the user working in the window."""
        if QApplication.mouseButtons():
            return True     # never swap the active layer under a stroke
        return (self._deferred is None and self.score_viewer.scan is not None
                and time.monotonic() - self._last_input < QUIET_S)

    def _step(self) -> None:
        if self._user_busy():
            self._timer.setInterval(100)     # look again soon, without spinning
            return
        self._timer.setInterval(0)
        if self._steps is None or next(self._steps, StopIteration) is StopIteration:
            self.stop()
            self._hand_back()
            return
        if self._deferred is None:
            return
        if self.score_viewer.shown_panes_left() == 0:
            self._hand_back()
        else:
            self._say_what_waits()

    def _say_what_waits(self) -> None:
        left = self.score_viewer.shown_panes_left()
        self.progress.emit(f"Preparing the viewer: {left} pane{'s' if left != 1 else ''} to make; "
                           f"{self._deferred.stem} opens next")

    def _hand_back(self) -> None:
        entry, self._deferred = self._deferred, None
        if entry is not None:
            self.ready.emit(entry)
