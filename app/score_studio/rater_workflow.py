"""Who rates: asking for the rater ID, changing it, saving, offering crash recovery."""

from __future__ import annotations

from pathlib import Path

from score_gui.scan import Scan
from score_gui.study import ScanEntry

from score_studio.rater import ask_rater_id


class RaterWorkflow:
    """The rater's side of a :class:`~score_studio.main_window.MainWindow`.

    Parameters
    ----------
    window : MainWindow
        Its settings (the rater ID), rater session, viewer and status bar.
    """

    def __init__(self, window):
        self.window = window

    @property
    def my_source(self) -> str:
        """``rater<ID>``, or "" when nobody is identified."""
        rater_id = self.window.settings.rater_id
        return f"rater{rater_id}" if rater_id else ""

    def ensure_rater(self) -> None:
        """Ask for the rater ID once, when interactive."""
        window = self.window
        if window.settings.rater_id or not window.interactive:
            return
        rater = ask_rater_id(window)
        if rater:
            window.settings.rater_id = rater
            window.settings.save()

    def change_rater(self) -> None:
        """Ask for another ID; the open scan opens again with that rater's labels."""
        window = self.window
        rater = ask_rater_id(window, window.settings.rater_id)
        if not rater or rater == window.settings.rater_id:
            return
        window.rater.finish()
        window.settings.rater_id = rater
        window.settings.save()
        entry, window.entry = window.entry, None
        if entry is not None:
            window.open_entry(entry)
        window.update_rater_badge()

    def save(self) -> None:
        window = self.window
        if not window.rater.active:
            window.report_error("Not identified as a rater: labels cannot be saved (File > Change rater)")
            return
        window.rater.save(explicit=True)

    def on_saved(self, written: dict) -> None:
        window = self.window
        window.statusBar().showMessage(f"Saved {Path(written['dseg']).name}", 4000)
        window.export.stale = True
        if window.entry is not None:
            window.browser.refresh_entry(window.entry)
        window.update_rater_badge()

    def offer_recovery(self, entry: ScanEntry, scan: Scan) -> None:
        """Unsaved labels of this rater on ``entry`` from a crash: restore them, or drop them."""
        window, session = self.window, self.window.rater
        record = session.recovery.find(entry.path, session.who)
        if record is None:
            return
        labels = session.recovery.load(record)
        if labels.dseg.shape != scan.label_shape:
            return
        question = (f"SCORE Studio stopped with unsaved labels on {entry.stem} "
                    f"({record.describe()}). Restore them?")
        if window.confirm("Recover unsaved labels", question):
            labels.who = session.who
            window.score_viewer.set_labels(labels)
            session.mark_dirty()
            session.write_recovery()
            window.statusBar().showMessage("Recovered the unsaved labels; save to keep them.", 8000)
        else:
            session.recovery.discard(record)

    def offer_pending_recoveries(self) -> bool:
        """At start-up: open the scan with the newest unsaved work, if the rater wants it."""
        window = self.window
        pending = [r for r in window.rater.recovery.pending() if r.scan_path.exists()]
        if not pending:
            return False
        record = pending[0]
        if not window.confirm("Unsaved work found",
                              f"Unsaved labels were found for {record.describe()}. Open that scan?"):
            return False
        if record.who.startswith("rater") and not window.settings.rater_id:
            window.settings.rater_id = record.who[len("rater"):]
        window.open_path(record.scan_path)
        return True

    def compute_consensus(self) -> None:
        """Majority vote of every rater's saved labels on this scan -> ``desc-consensus``
        (:func:`score_gui.consensus.raters_consensus`), shown as a reference."""
        from score_gui.consensus import raters_consensus
        from score_gui.errors import ScoreInputError

        window = self.window
        if window.entry is None:
            return
        if window.rater.active:
            window.rater.autosave()     # this rater's latest labels count too
        try:
            consensus, _ = raters_consensus(window.entry, window.scan)
        except ScoreInputError as exc:
            window.report_error(str(exc))
            return
        window.add_reference("consensus", consensus)
        window.browser.refresh_entry(window.entry)
        window.statusBar().showMessage(f"Consensus of {len(window.entry.raters())} raters saved (desc-consensus)",
                                       6000)

    def accept_slice(self) -> None:
        """Accept the models' proposal on the slice on screen as it is (Ctrl+Enter)."""
        window = self.window
        if window.scan is None:
            return
        index = window.current_slice()
        if window.score_viewer.accept_slices([index]):
            window.statusBar().showMessage(f"Slice {index + 1}: proposal accepted.", 5000)
        else:
            window.statusBar().showMessage(f"Slice {index + 1} is not an unreviewed proposal.", 5000)
