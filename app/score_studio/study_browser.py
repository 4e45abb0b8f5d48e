"""The study browser: subjects > sessions > scans, with who labelled what and QC progress.

Columns: the scan, the raters with labels (``desc-rater<ID>``), whether the automatic
segmentation exists (``desc-score``, plus ``consensus``), QC progress (slices
reviewed / slices, failed) from the study's QC log, and, once the rater's unlabelled
slices are ranked (:mod:`score_napari._qt.ranking`), which scans to label first.
"""

from __future__ import annotations

from pathlib import Path

import qtawesome as qta
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QFont
from qtpy.QtWidgets import (QHeaderView, QLabel, QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout,
                            QWidget)

from score_gui.study import ScanEntry, Study

ENTRY_ROLE = Qt.UserRole + 1
COLUMNS = ("Scan", "Raters", "Auto", "QC", "Next")
BROWSER_ICONS = {"subject": "fa5s.user", "session": "fa5s.calendar-alt", "scan": "fa5s.file-medical-alt"}


def short_scan_name(entry: ScanEntry) -> str:
    """The stem without the ``sub-``/``ses-`` entities that the tree already shows.

    Examples
    --------
    >>> from pathlib import Path
    >>> short_scan_name(ScanEntry(Path("/s"), Path("/s/sub-01/ses-02/anat/sub-01_ses-02_amira.nii.gz")))
    'amira'
    """
    parts = [p for p in entry.stem.split("_") if not p.startswith(("sub-", "ses-"))]
    return "_".join(parts) or entry.stem


def _ordinal(place: int) -> str:
    """``1 -> 'first'``, ``2 -> 'second'``, then ``'#4'``."""
    return {1: "first", 2: "second", 3: "third"}.get(place, f"#{place}")


def qc_table(study: Study):
    """The QC decisions in force for ``study`` (a DataFrame), or None without a readable log."""
    from score_gui.qc.log import QCLog

    try:
        table = QCLog(study.root).in_force()
    except Exception:   # a damaged log must not break browsing; the QC mode reports it
        return None
    return table if len(table) else None


def qc_progress(table, entry: ScanEntry) -> str:
    """``'5 pass, 1 fail'``: slices with a QC decision in force for ``entry`` (any source).

    Examples
    --------
    >>> import pandas as pd
    >>> from pathlib import Path
    >>> table = pd.DataFrame({"scan": ["a", "a", "b"], "source": ["score"] * 3, "slice": [0, 1, 0],
    ...                       "status": ["pass", "fail", "pass"]})
    >>> qc_progress(table, ScanEntry(Path("/s"), Path("/s/sub-1/anat/a.nii.gz")))
    '1 pass, 1 fail'
    """
    if table is None:
        return ""
    mine = table[table["scan"] == entry.stem]
    if mine.empty:
        return ""
    per_slice = mine.drop_duplicates("slice", keep="last")   # one verdict per slice
    failed = int((per_slice["status"] == "fail").sum())
    passed = int((per_slice["status"] == "pass").sum())
    return ", ".join(part for part in (f"{passed} pass" if passed else "",
                                       f"{failed} fail" if failed else "") if part)


class StudyBrowser(QWidget):
    """A filterable tree of a study's scans; emits :attr:`scan_selected` with a ScanEntry."""

    scan_selected = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.study: Study | None = None
        self._qc = None
        self._scan_ranks: dict[str, tuple[int, int, float]] = {}
        self.title = QLabel("No study open: File > Open study, or drop a folder here.")
        self.title.setWordWrap(True)
        self.title.setObjectName("studyTitle")
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter scans (subject, session, name)")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._apply_filter)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setUniformRowHeights(True)
        self.tree.setIndentation(14)
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(30)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        for column, width in zip(range(1, len(COLUMNS)), (50, 40, 72, 40)):
            header.setSectionResizeMode(column, QHeaderView.Interactive)
            header.resizeSection(column, width)
        self.tree.setColumnHidden(COLUMNS.index("Next"), True)
        self.tree.currentItemChanged.connect(self._on_current)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree)

    # -- content ----------------------------------------------------------------------------
    def set_study(self, study: Study | None) -> None:
        """Show ``study`` (None empties the browser)."""
        self.study = study
        self.tree.blockSignals(True)
        self.tree.clear()
        if study is None:
            self.title.setText("No study open")
            self.tree.blockSignals(False)
            return
        self.title.setText(f"<b>{study.root.name}</b> &nbsp; {len(study.scans)} scans, "
                           f"{len(study.subjects())} subjects")
        self.title.setToolTip(str(study.root))
        self._qc = qc_table(study)
        bold = QFont()
        bold.setBold(True)
        for subject in study.subjects():
            subject_item = QTreeWidgetItem(self.tree, [f"sub-{subject}"])
            subject_item.setIcon(0, qta.icon(BROWSER_ICONS["subject"], color="#9aa4b2"))
            subject_item.setFont(0, bold)
            for session in study.sessions(subject):
                parent = subject_item
                if session is not None:
                    parent = QTreeWidgetItem(subject_item, [f"ses-{session}"])
                    parent.setIcon(0, qta.icon(BROWSER_ICONS["session"], color="#9aa4b2"))
                for entry in study.scans:
                    if entry.subject == subject and entry.session == session:
                        self._add_scan(parent, entry)
        self.tree.expandAll()
        self.tree.blockSignals(False)
        self._apply_filter(self.filter.text())

    def _add_scan(self, parent: QTreeWidgetItem, entry: ScanEntry) -> QTreeWidgetItem:
        item = QTreeWidgetItem(parent, [short_scan_name(entry)])
        item.setData(0, ENTRY_ROLE, entry)
        item.setIcon(0, qta.icon(BROWSER_ICONS["scan"], color="#c8ccd4"))
        item.setToolTip(0, str(entry.path))
        self._fill_state(item, entry)
        return item

    def _fill_state(self, item: QTreeWidgetItem, entry: ScanEntry) -> None:
        sources = entry.label_sources()
        raters = entry.raters()
        item.setText(1, ", ".join(raters))
        item.setToolTip(1, "Raters with labels: " + (", ".join(raters) or "none"))
        auto = []
        if "score" in sources:
            auto.append("seg")
        if "consensus" in sources:
            auto.append("cons")
        item.setText(2, " ".join(auto))
        item.setToolTip(2, "seg: automatic segmentation (desc-score); cons: rater consensus")
        item.setText(3, qc_progress(self._qc, entry))
        item.setToolTip(3, "QC: slices reviewed (failed)")
        rank = self._scan_ranks.get(entry.stem)
        item.setText(4, f"#{rank[0]}" if rank else "")
        item.setToolTip(4, f"Label this scan {_ordinal(rank[0])}: {rank[1]} unlabelled slices, mean "
                           f"uncertainty {rank[2]:.2f}" if rank else "Not ranked (or nothing left to label)")

    def set_ranking(self, table) -> None:
        """Show which scans to label first from a slice ranking (:func:`score_gui.rank.rank_slices`;
        None clears the column)."""
        from score_gui.rank import rank_scans

        self._scan_ranks = {} if table is None or table.empty else {
            str(row.scan): (place, int(row.slices), float(row.score))
            for place, row in enumerate(rank_scans(table).itertuples(index=False), start=1)}
        for item in self.scan_items():
            self._fill_state(item, item.data(0, ENTRY_ROLE))
        self.tree.setColumnHidden(COLUMNS.index("Next"), not self._scan_ranks)   # room for names until ranked

    def refresh_entry(self, entry: ScanEntry) -> None:
        """Re-read one scan's state (after a save, segmentation or QC decision)."""
        item = self.item_for(entry)
        if item is not None:
            self._fill_state(item, entry)

    def refresh_all(self) -> None:
        """Re-read every scan's state and the QC log."""
        self._qc = qc_table(self.study) if self.study is not None else None
        for item in self.scan_items():
            self._fill_state(item, item.data(0, ENTRY_ROLE))

    # -- selection --------------------------------------------------------------------------
    def scan_items(self) -> list[QTreeWidgetItem]:
        items = []
        stack = [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        while stack:
            item = stack.pop(0)
            if item.data(0, ENTRY_ROLE) is not None:
                items.append(item)
            stack[0:0] = [item.child(i) for i in range(item.childCount())]
        return items

    def item_for(self, entry: ScanEntry) -> QTreeWidgetItem | None:
        for item in self.scan_items():
            if Path(item.data(0, ENTRY_ROLE).path) == Path(entry.path):
                return item
        return None

    def select(self, entry: ScanEntry) -> None:
        item = self.item_for(entry)
        if item is not None:
            self.tree.setCurrentItem(item)

    def current_entry(self) -> ScanEntry | None:
        item = self.tree.currentItem()
        return item.data(0, ENTRY_ROLE) if item is not None else None

    def neighbour(self, step: int) -> ScanEntry | None:
        """The visible scan ``step`` places after (or before) the current one."""
        visible = [i for i in self.scan_items() if not i.isHidden()]
        if not visible:
            return None
        current = self.tree.currentItem()
        index = visible.index(current) + step if current in visible else 0
        if 0 <= index < len(visible):
            return visible[index].data(0, ENTRY_ROLE)
        return None

    def _on_current(self, current: QTreeWidgetItem | None, _previous=None) -> None:
        if current is not None and current.data(0, ENTRY_ROLE) is not None:
            self.scan_selected.emit(current.data(0, ENTRY_ROLE))

    def _apply_filter(self, text: str) -> None:
        needle = text.strip().lower()
        for item in self.scan_items():
            entry = item.data(0, ENTRY_ROLE)
            item.setHidden(bool(needle) and needle not in str(entry.path.relative_to(entry.study_root)).lower())
        # Hide subjects/sessions whose scans are all hidden.
        for top in range(self.tree.topLevelItemCount()):
            self._hide_empty(self.tree.topLevelItem(top))

    def _hide_empty(self, item: QTreeWidgetItem) -> bool:
        if item.data(0, ENTRY_ROLE) is not None:
            return not item.isHidden()
        any_visible = False
        for i in range(item.childCount()):
            any_visible |= self._hide_empty(item.child(i))
        item.setHidden(not any_visible)
        return any_visible
