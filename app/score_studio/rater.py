"""The rater: who is labelling, saving their labels, autosave and crash recovery.

A rater identifies once (the ID is remembered in :class:`~score_studio.settings.AppSettings`);
their labels save to ``<stem>_desc-rater<ID>_dseg.nii.gz`` in the study's derivatives through
:func:`score_gui.labels.write_labels` (atomic; the first save of a session and every explicit
save keep the previous file in ``.history``). While they work:

* every change marks the session dirty and, shortly after, writes the labels to a recovery
  file in ``SCORE_HOME/recovery`` (only when dirty, so idle time costs nothing);
* every slice change and every 30 s an autosave writes the real label files (only when dirty);
* a clean save removes the recovery file, so a recovery file found at start-up means the
  application stopped with unsaved work: it is offered back to the rater.

Examples
--------
>>> normalize_rater_id(" A1 "), normalize_rater_id("rater b"), normalize_rater_id("")
('A1', None, None)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from qtpy.QtCore import QObject, QTimer, Signal
from qtpy.QtWidgets import QInputDialog, QLineEdit, QMessageBox, QWidget

from score_gui.atomic import atomic_path
from score_gui.labels import LABELLED_STRUCTURE_KEYS, LabelMap, write_labels
from score_gui.scan import Scan
from score_gui.study import ScanEntry

from score_studio.settings import score_home

AUTOSAVE_INTERVAL_MS = 30_000
RECOVERY_DELAY_MS = 250
"""Changes within this delay share one recovery write (a brush stroke fires many)."""


def normalize_rater_id(text: str) -> str | None:
    """The rater ID from what was typed (trimmed), or None if it is not alphanumeric."""
    text = (text or "").strip()
    if text.lower().startswith("rater") and len(text) > 5:
        text = text[5:]
    return text if text.isalnum() and text.isascii() else None


def ask_rater_id(parent: QWidget | None, current: str = "") -> str | None:
    """Ask the rater for their ID (until it is valid or they cancel)."""
    prompt = ("Your rater ID (letters and digits, e.g. A or JD2).\n"
              "Your labels are saved as desc-rater<ID>; other raters' labels stay read-only.")
    text = current
    while True:
        text, ok = QInputDialog.getText(parent, "Who is rating?", prompt, QLineEdit.Normal, text)
        if not ok:
            return None
        rater = normalize_rater_id(text)
        if rater:
            return rater
        QMessageBox.warning(parent, "Rater ID", f"{text!r} is not a valid ID: use letters and digits only.")


# ---------------------------------------------------------------------------------------
# Recovery files
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recovery:
    """One recovery file: unsaved labels of ``who`` on the scan at ``scan_path``."""

    file: Path
    scan_path: Path
    who: str
    saved_at: float

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.saved_at))
        return f"{self.scan_path.name} ({self.who}, {when})"


class RecoveryStore:
    """Recovery files in ``SCORE_HOME/recovery``: one ``.npz`` per (scan, rater).

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> store = RecoveryStore(Path(tempfile.mkdtemp()))
    >>> labels = LabelMap(np.ones((2, 3, 3), np.uint8), np.zeros((2, 3, 3), np.uint8))
    >>> record = store.write(Path("/data/a.nii.gz"), "raterA", labels)
    >>> [r.who for r in store.pending()], int(store.load(record).dseg.sum())
    (['raterA'], 18)
    >>> store.discard(record); store.pending()
    []
    """

    def __init__(self, folder: Path | None = None):
        self.folder = Path(folder) if folder is not None else score_home() / "recovery"

    def file_for(self, scan_path: Path, who: str) -> Path:
        key = hashlib.sha1(f"{Path(scan_path).resolve()}|{who}".encode()).hexdigest()[:16]
        return self.folder / f"{who}_{key}.npz"

    def write(self, scan_path: Path, who: str, labels: LabelMap) -> Recovery:
        """Write (atomically) the labels to recover for ``who`` on this scan."""
        target = self.file_for(scan_path, who)
        # Provenance too: a recovered proposal must not come back as drawn (and be trained on).
        meta = {"scan_path": str(Path(scan_path).resolve()), "who": who, "saved_at": time.time(),
                "labelled": sorted(labels.labelled), "provenance": labels.provenance}
        lesion = labels.lesion if labels.lesion is not None else np.zeros((0,), np.uint8)
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as handle:   # a handle: np.savez must not append ".npz"
                np.savez(handle, dseg=labels.dseg, lesion=lesion, meta=np.array(json.dumps(meta)))
        return Recovery(target, Path(meta["scan_path"]), who, meta["saved_at"])

    def pending(self) -> list[Recovery]:
        """Every readable recovery file, newest first."""
        found = []
        for file in sorted(self.folder.glob("*.npz")) if self.folder.is_dir() else []:
            try:
                with np.load(file) as data:
                    meta = json.loads(str(data["meta"]))
                found.append(Recovery(file, Path(meta["scan_path"]), meta["who"], float(meta["saved_at"])))
            except (OSError, ValueError, KeyError):
                continue   # a damaged file cannot be offered; leave it for inspection
        return sorted(found, key=lambda r: -r.saved_at)

    def find(self, scan_path: Path, who: str) -> Recovery | None:
        file = self.file_for(scan_path, who)
        return next((r for r in self.pending() if r.file == file), None)

    def load(self, record: Recovery) -> LabelMap:
        with np.load(record.file) as data:
            meta = json.loads(str(data["meta"]))
            lesion = data["lesion"] if data["lesion"].size else None
            labelled = set(meta.get("labelled", LABELLED_STRUCTURE_KEYS))
            return LabelMap(dseg=data["dseg"].copy(), lesion=None if lesion is None else lesion.copy(),
                            labelled=labelled, who=record.who, provenance=meta.get("provenance"))

    def discard(self, record: Recovery) -> None:
        record.file.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------
# The editing session of one rater on one scan
# ---------------------------------------------------------------------------------------

class RaterSession(QObject):
    """Saving one rater's labels of one scan: dirty tracking, autosave, recovery.

    Parameters
    ----------
    get_labels : callable
        Returns the labels being edited (a :class:`LabelMap` in display orientation).
    recovery : RecoveryStore
        Where unsaved work goes on every change.
    """

    saved = Signal(object)          # dict of written paths
    dirty_changed = Signal(bool)
    save_failed = Signal(str)

    def __init__(self, get_labels: Callable[[], LabelMap], recovery: RecoveryStore | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        self._get_labels = get_labels
        self.recovery = recovery or RecoveryStore()
        self.scan: Scan | None = None
        self.entry: ScanEntry | None = None
        self.who = ""
        self.dirty = False
        self._saves = 0
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_INTERVAL_MS)
        self.autosave_timer.timeout.connect(self.autosave)
        self._recovery_timer = QTimer(self)
        self._recovery_timer.setSingleShot(True)
        self._recovery_timer.setInterval(RECOVERY_DELAY_MS)
        self._recovery_timer.timeout.connect(self.write_recovery)

    # -- lifetime ---------------------------------------------------------------------------
    def start(self, scan: Scan, entry: ScanEntry, rater_id: str) -> None:
        """Begin editing ``scan`` as ``rater<rater_id>`` (call :meth:`finish` first)."""
        self.scan, self.entry, self.who = scan, entry, f"rater{rater_id}"
        self._saves = 0
        self._set_dirty(False)
        self.autosave_timer.start()

    def finish(self) -> None:
        """Save what is unsaved and stop the timers (before another scan is opened)."""
        if self.active:
            self.autosave()
        self.autosave_timer.stop()
        self._recovery_timer.stop()
        self.scan = self.entry = None

    @property
    def active(self) -> bool:
        return self.scan is not None and self.entry is not None and bool(self.who)

    @property
    def out_dir(self) -> Path:
        return self.entry.derivatives_dir

    @property
    def dseg_path(self) -> Path:
        return self.entry.dseg_path(self.who)

    # -- changes ----------------------------------------------------------------------------
    def mark_dirty(self, *_args) -> None:
        """The labels changed: remember it and schedule a recovery write."""
        if not self.active:
            return
        self._set_dirty(True)
        self._recovery_timer.start()

    def _set_dirty(self, dirty: bool) -> None:
        if dirty != self.dirty:
            self.dirty = dirty
            self.dirty_changed.emit(dirty)

    def write_recovery(self) -> Recovery | None:
        """Write the unsaved labels to the recovery file (only when dirty)."""
        self._recovery_timer.stop()
        if not (self.active and self.dirty):
            return None
        return self.recovery.write(self.entry.path, self.who, self._get_labels())

    # -- saving -----------------------------------------------------------------------------
    def autosave(self, *_args) -> dict | None:
        """Save if there is anything unsaved (slice change, timer, closing)."""
        return self.save(explicit=False) if self.active and self.dirty else None

    def save(self, explicit: bool = True) -> dict | None:
        """Write the rater's label files; the previous version goes to ``.history`` on the
        first save of the session and on every explicit save."""
        if not self.active:
            return None
        labels = self._get_labels()
        try:
            written = write_labels(self.scan, labels, self.out_dir, self.who,
                                   keep_previous=explicit or self._saves == 0)
        except (OSError, ValueError) as exc:
            # Keep the recovery file: the work is safe there until a save succeeds.
            self.write_recovery()
            self.save_failed.emit(str(exc))
            return None
        self._saves += 1
        self._recovery_timer.stop()
        record = self.recovery.find(self.entry.path, self.who)
        if record is not None:
            self.recovery.discard(record)
        self._set_dirty(False)
        self.saved.emit(written)
        return written
