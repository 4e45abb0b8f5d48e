"""The models' proposals, visibly marked until the rater edits or accepts them.

A slice whose labels were copied from the ensemble (:meth:`score_gui.editing.LabelEditor.propose`)
stays ``proposed`` until the rater changes it (``proposed-edited``) or accepts it
(``proposed-accepted``); training skips it meanwhile. :class:`ProposalMarker` shows that on
the canvas, above every pane, so nobody mistakes a proposal for their own work.
"""

from __future__ import annotations

from score_gui.labels import PROPOSED

BANNER = "PROPOSED by the models: correct it, or accept it (Ctrl+Enter)"
BANNER_COLOR = "#ffb347"
"""Orange: no label colour, readable on the dark canvas."""


class ProposalMarker:
    """A banner on the canvas while the slice on screen is an unreviewed proposal.

    Parameters
    ----------
    score_viewer : ScoreViewer
        Whose editor's provenance decides; the banner follows its slice and labels.
    """

    def __init__(self, score_viewer):
        self.score_viewer = score_viewer
        overlay = score_viewer.viewer.text_overlay
        overlay.text = BANNER
        overlay.color = BANNER_COLOR
        overlay.font_size = 11
        overlay.position = "top_center"
        overlay.visible = False
        score_viewer.slice_changed.connect(lambda _index: self.update())
        score_viewer.labels_changed.connect(self.update)
        score_viewer.scan_loaded.connect(self.update)

    @property
    def shown(self) -> bool:
        return bool(self.score_viewer.viewer.text_overlay.visible)

    def update(self) -> None:
        """Show the banner exactly when the current slice is still ``proposed``."""
        editor = self.score_viewer.editor
        index = self.score_viewer.current_slice
        proposed = bool(editor.shape[0]) and 0 <= index < len(editor.provenance) \
            and editor.provenance[index] == PROPOSED
        overlay = self.score_viewer.viewer.text_overlay
        if overlay.visible != proposed:
            overlay.visible = proposed
