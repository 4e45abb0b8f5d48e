"""QC mode: review every slice of a study's scans as a grid of thumbnails, by keyboard.

``QCWidget(study_root, reviewer, source="score")`` shows all slices of one scan at a time
(the chosen average with the contours of one label source, as in the SCORE paper's
Figure 2), and records decisions in the study's append-only QC log (:mod:`score_gui.qc.log`).
Any source of the study can be reviewed (the ensemble's ``score``, a rater, the consensus:
the "Labels" box). An image-level fail (image artifact, poor image quality, posterior arch
contact) fails the slice for every source, so the tiles of every source show it; a
segmentation-level fail stays with the reviewed source; a pass clears an image-level fail.

Keys (the grid has the focus):

====================  =====================================================================
arrows                move between slices
P                     pass the slice (and move on)
F                     fail: a reason panel opens; 1-6 pick the reason, Tab to a comment,
                      Enter records, Esc cancels
U                     undo your latest decision (appends a restoring decision)
N / B, PgDn / PgUp    next / previous scan
====================  =====================================================================

Suggestions from :mod:`score_gui.qc.suggest` are shown as orange badges (tooltips say
why); they are never applied by themselves. Filters show every slice, the unreviewed,
the failed or the suggested ones. Progress (reviewed/total) is shown per scan and study.
"""

from __future__ import annotations

from qtpy.QtCore import QSize, Qt, Signal
from qtpy.QtGui import QBrush, QColor, QIcon
from qtpy.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QListView, QListWidget, QListWidgetItem, QPushButton,
                            QVBoxLayout, QWidget)

from score_gui.errors import ScoreInputError
from score_gui.qc.log import Decision, QCLog, is_image_level
from score_gui.qc.report import STATUS_COLORS, thumbnail_rgb
from score_gui.study import Study
from score_napari._qt.qc_tiles import ReasonPanel, tile_caption, tile_pixmap, tile_tooltip

FILTERS = ("all", "unreviewed", "failed", "suggested")
AVERAGES = ("6-8", "1-5", "all")
SLICE_ROLE = Qt.UserRole + 1


def study_sources(study) -> list[str]:
    """Label sources with a dseg for any scan of ``study``: score, consensus, raters, others.

    Examples
    --------
    >>> class S:  # two scans' label sources
    ...     scans = [type("E", (), {"label_sources": lambda self: ["raterB", "score", "truth"]})(),
    ...              type("E", (), {"label_sources": lambda self: ["consensus", "raterA"]})()]
    >>> study_sources(S())
    ['score', 'consensus', 'raterA', 'raterB', 'truth']
    """
    found = {who for entry in study.scans for who in entry.label_sources()}
    return sorted(found, key=lambda who: (who != "score", who != "consensus", not who.startswith("rater"), who))


class QCWidget(QWidget):
    """Review the slices of a study's scans and record pass/fail decisions.

    Parameters
    ----------
    study_root : path
        The study folder (``Study.open``).
    reviewer : str
        Who is reviewing (the app remembers it); written with every decision. Empty: the
        grid and the decisions in force are shown, recording is refused until a name is given.
    source : str
        Which labels are reviewed first (``score``, ``raterA``, ``consensus``, ...); when
        the study has none of them, its first source. :meth:`set_source` changes it.
    """

    decision_recorded = Signal(object)  # the Decision appended to the log
    scan_changed = Signal(str)
    slice_selected = Signal(int)  # the slice under review (the app shows it in the viewer)

    def __init__(self, study_root, reviewer: str, source: str = "score", average: str = "6-8",
                 tile_size: int = 150, parent=None):
        super().__init__(parent)
        self.study = Study.open(study_root)
        self.log = QCLog(self.study.root)
        self.reviewer = str(reviewer or "").strip()
        self.sources = study_sources(self.study)
        self.source = source if source in self.sources or not self.sources else self.sources[0]
        self.tile_size = int(tile_size)
        self._scan_index = -1
        self._scan = None
        self._labels = None
        self._hints: dict[tuple[str, str], dict] = {}
        self._n_slices: dict[str, int] = {}
        self._status: dict[int, tuple[str, str]] = {}
        self._build(average)
        if self.study.scans:
            self.set_scan(0)
        else:
            self.message.setText("This study has no scans.")

    # -- layout ---------------------------------------------------------------------------
    def _build(self, average: str) -> None:
        self.scan_box = QComboBox()
        self.scan_box.addItems([e.stem for e in self.study.scans])
        self.scan_box.currentIndexChanged.connect(self.set_scan)
        self.average_box = QComboBox()
        self.average_box.addItems(AVERAGES)
        self.average_box.setCurrentText(average if average in AVERAGES else "6-8")
        self.average_box.currentTextChanged.connect(lambda _: self._reload_tiles())
        self.source_box = QComboBox()
        self.source_box.setObjectName("qc-source")
        self.source_box.addItems(self.sources or [self.source])
        self.source_box.setCurrentText(self.source)
        self.source_box.setToolTip("Labels under review: the ensemble's result (score), a rater, the consensus")
        self.source_box.currentTextChanged.connect(self.set_source)
        self.filter_box = QComboBox()
        self.filter_box.addItems(FILTERS)
        self.filter_box.currentTextChanged.connect(self.set_filter)
        previous, following = QPushButton("◀ scan (B)"), QPushButton("scan (N) ▶")
        previous.clicked.connect(lambda: self.step_scan(-1))
        following.clicked.connect(lambda: self.step_scan(1))
        for widget in (self.scan_box, self.source_box, self.average_box, self.filter_box, previous, following):
            widget.setFocusPolicy(Qt.ClickFocus)
        top = QHBoxLayout()      # two rows: the dock stays narrow enough for the viewer beside it
        top.addWidget(QLabel("Scan"))
        top.addWidget(self.scan_box, 1)
        top.addWidget(previous)
        top.addWidget(following)
        choices = QHBoxLayout()
        for label, widget in (("Labels", self.source_box), ("Image", self.average_box), ("Show", self.filter_box)):
            choices.addWidget(QLabel(label))
            choices.addWidget(widget)
        choices.addStretch(1)
        self.scan_progress = QLabel()
        self.study_progress = QLabel()
        choices.addWidget(self.scan_progress)
        choices.addWidget(self.study_progress)

        self.grid = QListWidget()
        self.grid.setObjectName("qc-grid")
        self.grid.setViewMode(QListView.IconMode)
        self.grid.setResizeMode(QListView.Adjust)
        self.grid.setMovement(QListView.Static)
        self.grid.setIconSize(QSize(self.tile_size, self.tile_size))
        self.grid.setGridSize(QSize(self.tile_size + 16, self.tile_size + 46))
        self.grid.setWordWrap(True)
        self.grid.setSpacing(4)
        self.grid.setUniformItemSizes(True)
        self.grid.setStyleSheet("QListWidget{background:#202020;color:#e8e8e8}"
                                "QListWidget::item:selected{background:#3d6fb4}")
        self.grid.installEventFilter(self)
        self.grid.currentItemChanged.connect(lambda *_: self._show_current())

        self.reason_panel = ReasonPanel()
        self.reason_panel.chosen.connect(self._fail_chosen)
        self.reason_panel.cancelled.connect(self.grid.setFocus)
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.message = QLabel()
        help_text = QLabel("<small>arrows move · <b>P</b> pass · <b>F</b> fail (1-6 reason) · "
                           "<b>U</b> undo · <b>N</b>/<b>B</b> next/previous scan</small>")
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(choices)
        layout.addWidget(self.grid, 1)
        layout.addWidget(self.reason_panel)
        layout.addWidget(self.details)
        layout.addWidget(self.message)
        layout.addWidget(help_text)

    # -- scans ----------------------------------------------------------------------------
    @property
    def entry(self):
        return self.study.scans[self._scan_index] if self._scan_index >= 0 else None

    def set_scan(self, index_or_stem) -> None:
        """Show one scan (by index or stem)."""
        from score_gui.scan import read_scan

        index = index_or_stem if isinstance(index_or_stem, int) else \
            [e.stem for e in self.study.scans].index(index_or_stem)
        if index == self._scan_index or not 0 <= index < len(self.study.scans):
            return
        self._scan_index = index
        entry = self.entry
        self._scan = read_scan(entry.path)
        self._n_slices[entry.stem] = self._scan.n_slices
        self.scan_box.blockSignals(True)
        self.scan_box.setCurrentIndex(index)
        self.scan_box.blockSignals(False)
        self._load_labels(keep_position=False)
        self.scan_changed.emit(entry.stem)

    def set_source(self, source: str) -> None:
        """Review another label source (``score``, ``raterA``, ``consensus``, ...)."""
        if source == self.source or not source:
            return
        self.source = source
        if self.source_box.currentText() != source:
            self.source_box.blockSignals(True)
            if self.source_box.findText(source) < 0:
                self.source_box.addItem(source)
            self.source_box.setCurrentText(source)
            self.source_box.blockSignals(False)
        if self._scan is not None:
            self._load_labels(keep_position=True)

    def _load_labels(self, keep_position: bool) -> None:
        from score_gui.labels import read_labels

        entry = self.entry
        dseg_path = entry.dseg_path(self.source)
        self._labels = read_labels(dseg_path, self._scan) if dseg_path.exists() else None
        key = (entry.stem, self.source)
        if key not in self._hints:
            from score_gui.qc.suggest import scan_suggestions

            self._hints[key] = scan_suggestions(entry, self.source, self.study)
        self.message.setText("")
        self._reload_tiles(keep_position=keep_position)
        if self._labels is None:
            todo = ("segment it first (Segment mode)" if self.source == "score"
                    else "pick other labels in the Labels box")
            others = [who for who in entry.label_sources() if who != self.source]
            self.message.setText(f"No desc-{self.source} labels for this scan yet: {todo}; the tiles show "
                                 f"the images only." + (f" This scan has {', '.join(others)}." if others else ""))

    def step_scan(self, step: int) -> None:
        target = self._scan_index + step
        if 0 <= target < len(self.study.scans):
            self.set_scan(target)
        else:
            self.message.setText("Last scan of the study." if step > 0 else "First scan of the study.")

    def _reload_tiles(self, keep_position: bool = True) -> None:
        """Redraw every tile; on a new scan start at its first unreviewed slice."""
        if self._scan is None:
            return
        current = self.current_slice() if keep_position else None
        self._status = self.log.status_map(self.entry.stem, self.source)
        image = self._scan.averages().get(self.average_box.currentText(), self._scan.average())
        self._images = image
        self.grid.clear()
        for s in range(self._scan.n_slices):
            item = QListWidgetItem()
            item.setData(SLICE_ROLE, s)
            self.grid.addItem(item)
            self._paint_item(item)
        self.set_filter(self.filter_box.currentText())
        if current is None:
            todo = [s for s in self.visible_slices() if s not in self._status]
            current = todo[0] if todo else (self.visible_slices() or [0])[0]
        self._select(min(current, self._scan.n_slices - 1))
        self._update_progress()
        self.grid.setFocus()

    def _paint_item(self, item: QListWidgetItem) -> None:
        s = item.data(SLICE_ROLE)
        labels = self._labels
        rgb = thumbnail_rgb(self._images[s], None if labels is None else labels.dseg[s],
                            None if labels is None or labels.lesion is None else labels.lesion[s],
                            size=self.tile_size)
        status, reason = self._status.get(s, ("unreviewed", ""))
        hints = self.hints(s)
        pixmap = tile_pixmap(rgb, status, len(hints))
        icon = QIcon(pixmap)
        icon.addPixmap(pixmap, QIcon.Selected)  # no selection tint over the image
        item.setIcon(icon)
        item.setText(tile_caption(s, self._scan.level(s), status, reason))
        item.setForeground(QBrush(QColor(STATUS_COLORS[status] if status != "unreviewed" else "#dddddd")))
        item.setToolTip(tile_tooltip(s, status, reason, hints))

    # -- state ----------------------------------------------------------------------------
    def hints(self, slice_index: int) -> list:
        """The automatic suggestions for a slice of the current scan."""
        return self._hints.get((self.entry.stem, self.source), {}).get(slice_index, []) if self.entry else []

    def status(self, slice_index: int) -> tuple[str, str]:
        return self._status.get(slice_index, ("unreviewed", ""))

    def current_slice(self) -> int | None:
        item = self.grid.currentItem() if hasattr(self, "grid") else None
        return None if item is None else int(item.data(SLICE_ROLE))

    def visible_slices(self) -> list[int]:
        return [int(self.grid.item(i).data(SLICE_ROLE)) for i in range(self.grid.count())
                if not self.grid.item(i).isHidden()]

    def progress(self) -> tuple[int, int, int, int]:
        """``(reviewed, total)`` for the current scan, then for the study."""
        per_scan = self.log.reviewed_counts(self.source)
        study_total = 0
        for entry in self.study.scans:
            if entry.stem not in self._n_slices:
                from score_gui.niftilib import nib

                self._n_slices[entry.stem] = int(nib.load(str(entry.path)).shape[2])
            study_total += self._n_slices[entry.stem]
        stem = self.entry.stem if self.entry else ""
        return (per_scan.get(stem, 0), self._n_slices.get(stem, 0),
                sum(per_scan.get(e.stem, 0) for e in self.study.scans), study_total)

    def _update_progress(self) -> None:
        done, total, study_done, study_total = self.progress()
        self.scan_progress.setText(f"scan {self._scan_index + 1}/{len(self.study.scans)}: "
                                   f"<b>{done}/{total}</b>")
        self.scan_progress.setToolTip("slices of this scan with a decision in force for these labels")
        self.study_progress.setText(f"study: <b>{study_done}/{study_total}</b>")

    def _show_current(self) -> None:
        s = self.current_slice()
        if s is None:
            self.details.clear()
            return
        self.slice_selected.emit(s)
        status, reason = self.status(s)
        lines = [f"<b>{self.entry.stem}</b> slice {s} ({self.source}): {status}" + (f" ({reason})" if reason else "")]
        if is_image_level(status, reason):
            lines.append("Image-level: fails this slice for every label source of the scan "
                         "(P passes the image again).")
        lines += [f"<span style='color:#e08a00'>● {h.kind}</span>: {h.detail} → <i>{h.reason}</i>"
                  for h in self.hints(s)]
        self.details.setText("<br>".join(lines))

    def set_filter(self, name: str) -> None:
        """Show ``all``, ``unreviewed``, ``failed`` or ``suggested`` slices."""
        if self.filter_box.currentText() != name:
            self.filter_box.setCurrentText(name)
            return
        for i in range(self.grid.count()):
            item = self.grid.item(i)
            s = int(item.data(SLICE_ROLE))
            status = self.status(s)[0]
            shown = {"all": True, "unreviewed": status == "unreviewed", "failed": status == "fail",
                     "suggested": bool(self.hints(s))}[name]
            item.setHidden(not shown)
        current = self.grid.currentItem()
        if current is None or current.isHidden():
            visible = self.visible_slices()
            if visible:
                self._select(visible[0])

    def _select(self, slice_index: int) -> None:
        for i in range(self.grid.count()):
            if int(self.grid.item(i).data(SLICE_ROLE)) == slice_index:
                self.grid.setCurrentRow(i)
                return

    # -- decisions ------------------------------------------------------------------------
    def _decision(self, s: int, status: str, reason: str = "", comment: str = "") -> Decision:
        entry = self.entry
        return Decision(entry.subject, entry.session or "", entry.stem, s, self.source, status,
                        reason, self.reviewer, comment)

    def _can_record(self) -> bool:
        if self.reviewer:
            return True
        self.message.setText("<span style='color:#d0312d'>Not recorded: identify as a reviewer first "
                             "(File &gt; Change rater in the application).</span>")
        return False

    def _record(self, decision: Decision, advance: bool) -> None:
        try:
            self.log.record(decision)
        except ScoreInputError as exc:  # e.g. a read-only study: say so, lose nothing else
            self.message.setText(f"<span style='color:#d0312d'>Not recorded: {exc}</span>")
            return
        self._refresh_slice(decision.slice)
        self.message.setText(f"Recorded: slice {decision.slice} {decision.status}"
                             + (f" ({decision.reason})" if decision.reason else "")
                             + (", for every label source" if is_image_level(decision.status, decision.reason)
                                else f" for {decision.source}") + ".")
        self.decision_recorded.emit(decision)
        if advance:
            self._advance_from(decision.slice)

    def _refresh_slice(self, s: int) -> None:
        self._status = self.log.status_map(self.entry.stem, self.source)
        for i in range(self.grid.count()):
            if int(self.grid.item(i).data(SLICE_ROLE)) == s:
                self._paint_item(self.grid.item(i))
        self._update_progress()
        self._show_current()

    def _advance_from(self, s: int) -> None:
        order = list(range(self._scan.n_slices))
        self.set_filter(self.filter_box.currentText())
        visible = set(self.visible_slices())
        following = [t for t in order[s + 1:] if t in visible]
        if following:
            self._select(following[0])
            return
        if s in visible:
            self._select(s)
        done, total = self.progress()[:2]
        if done == total:
            self.message.setText(f"All {total} slices of this scan reviewed: N for the next scan.")

    def pass_current(self) -> None:
        s = self.current_slice()
        if s is not None and self._can_record():
            self._record(self._decision(s, "pass"), advance=True)

    def ask_fail(self) -> None:
        s = self.current_slice()
        if s is None or not self._can_record():
            return
        hints = self.hints(s)
        self.reason_panel.ask(f"slice {s}", hints[0].reason if hints else None)

    def fail_current(self, reason: str, comment: str = "") -> None:
        s = self.current_slice()
        if s is not None and self._can_record():
            self._record(self._decision(s, "fail", reason, comment), advance=True)

    def _fail_chosen(self, reason: str, comment: str) -> None:
        self.fail_current(reason, comment)
        self.grid.setFocus()

    def undo(self) -> None:
        """Undo this reviewer's latest decision (appends a restoring one) and show that slice."""
        if not self._can_record():
            return
        try:
            restored = self.log.undo_last(self.reviewer)
        except ScoreInputError as exc:
            self.message.setText(f"<span style='color:#d0312d'>Undo failed: {exc}</span>")
            return
        if restored is None:
            self.message.setText("Nothing to undo.")
            return
        if restored.scan != self.entry.stem:
            self.set_scan(restored.scan)
        self._refresh_slice(restored.slice)
        self.set_filter(self.filter_box.currentText())
        self._select(restored.slice)
        self.message.setText(f"Undone: slice {restored.slice} is {restored.status} again.")
        self.grid.setFocus()

    # -- keys -----------------------------------------------------------------------------
    def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
        if obj is self.grid and event.type() == event.Type.KeyPress and not event.modifiers() & (
                Qt.ControlModifier | Qt.AltModifier | Qt.MetaModifier):
            action = {Qt.Key_P: self.pass_current, Qt.Key_F: self.ask_fail, Qt.Key_U: self.undo,
                      Qt.Key_N: lambda: self.step_scan(1), Qt.Key_PageDown: lambda: self.step_scan(1),
                      Qt.Key_B: lambda: self.step_scan(-1), Qt.Key_PageUp: lambda: self.step_scan(-1),
                      }.get(event.key())
            if action is not None:
                action()
                return True
            if event.text().isalnum():
                return True  # no keyboard search jumping to slices by their caption
        return super().eventFilter(obj, event)

