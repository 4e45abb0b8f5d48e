"""Everyone else's labels on the open scan: which exist, which show as contours, where they are.

Examples
--------
>>> reference_title("raterB"), reference_title("score"), reference_title("modelX")
('Rater B', 'Automatic (score)', 'modelX')
"""

from __future__ import annotations

from typing import Callable

from score_gui.errors import ScoreInputError
from score_gui.labels import LabelMap, read_labels
from score_gui.scan import Scan
from score_gui.study import ScanEntry
from score_napari._qt.camera import mask_box, union_of_boxes

REFERENCE_TITLES = {"score": "Automatic (score)", "consensus": "Rater consensus", "truth": "Truth (phantom)"}
HIDDEN_REFERENCE_PREFIXES = ("truth", "model")
"""References hidden until asked for: a phantom's truth and single ensemble members."""


def reference_title(who: str) -> str:
    """What a reference's checkbox says."""
    return f"Rater {who[5:]}" if who.startswith("rater") else REFERENCE_TITLES.get(who, who)


class ReferenceLabels:
    """The other sources' labels of one scan and the user's choice of which to show.

    Parameters
    ----------
    score_viewer : ScoreViewer
        Where the references show as contours. Layers on 11 panes are what costs, so a
        reference gets layers only when shown (or when it had them on the previous scan).
    """

    def __init__(self, score_viewer):
        self.score_viewer = score_viewer
        self.labels: dict[str, LabelMap] = {}
        self.box: tuple | None = None       # around every reference's canal, for zooming
        self._choice: dict[str, bool] = {}  # remembered while the application runs

    def shown(self, who: str) -> bool:
        return self._choice.get(who, not who.startswith(HIDDEN_REFERENCE_PREFIXES))

    def read(self, entry: ScanEntry, scan: Scan, mine: str, skipped: Callable[[str, Exception], None]) -> None:
        """Read every source's labels on ``entry`` but ``mine`` (cheap); ``skipped(who, error)``
        hears of those that cannot be read."""
        self.box = None
        self.labels = {}
        for who in entry.label_sources():
            if who == mine:
                continue
            try:
                labels = read_labels(entry.dseg_path(who), scan)
            except ScoreInputError as exc:
                skipped(who, exc)
                continue
            self._keep(who, labels)

    def to_draw(self) -> dict[str, LabelMap]:
        """The references to give layers when the scan loads: those shown, and those drawn on
        the previous scan (their layers are reused)."""
        return {who: labels for who, labels in self.labels.items()
                if self.shown(who) or who in self.score_viewer.references}

    def add(self, who: str, labels: LabelMap) -> None:
        """A new or updated reference (the consensus, the automatic result)."""
        self._keep(who, labels)
        if self.shown(who) or who in self.score_viewer.references:
            self.score_viewer.add_reference_labels(who, labels)   # hidden layers update in place

    def show(self, who: str, visible: bool) -> bool:
        """Show or hide one reference's contours; True when its layers were made now (a
        reference hidden when the scan opened has none)."""
        self._choice[who] = visible
        if who in self.score_viewer.references:
            self.score_viewer.set_reference_visible(who, visible)
        elif visible and who in self.labels:
            self.score_viewer.add_reference_labels(who, self.labels[who])
            return True
        return False

    def _keep(self, who: str, labels: LabelMap) -> None:
        self.labels[who] = labels
        self.box = union_of_boxes(self.box, mask_box((labels.dseg > 0).any(axis=0)))
