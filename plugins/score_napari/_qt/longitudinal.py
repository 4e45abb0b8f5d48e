"""Longitudinal view: one subject's sessions side by side, and which area changes are real.

:class:`LongitudinalWidget` shows, for one subject of a study and one label source (the
ensemble's ``score``, a rater, the consensus, ...):

- **the same slice of every session side by side** (:class:`LinkedPanes`): the chosen average
  with that session's labels as contours in the QC thumbnails' colours; zoom (wheel) and pan
  (drag) move every pane together, so a rater compares the same anatomy at the same scale;
- **the chosen compartment's area per slice (or level) for every session**
  (:class:`ChangePlot`) with the scan-rescan band around the baseline, ``baseline * (1 ± LSC)``
  with ``LSC = 2.77 * RSD`` (:mod:`score_gui.longitudinal`); a point outside the band is
  ringed in red: a change larger than scan-rescan noise. Click a slice to show it above;
- one line per session: slices compared, how many left the band, how many would by chance.

Failed QC slices are drawn as a grey cross on the plot and never compared. The plot saves
as PNG or SVG like the export panel's.

Programmatic use (tests, the application)::

    widget = LongitudinalWidget(study_root, subject="ms01", source="score")
    widget.set_compartment("gm"); widget.set_position(5)
    widget.table            # the plotted numbers (score_gui.longitudinal.changes)
    widget.save_plot("gm.png")
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from qtpy.QtCore import QRectF, QSize, Qt, Signal
from qtpy.QtGui import QImage
from qtpy.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QSplitter, QVBoxLayout,
                            QWidget)

from score_gui.errors import ScoreInputError
from score_gui.longitudinal import change_summary, subject_series, subject_visits
from score_gui.qc.report import crop_box
from score_gui.study import Study
from score_napari._qt.longitudinal_views import (AVERAGES, BEYOND_COLOR, COMPARTMENTS, ChangePlot,
                                                 LinkedPanes, is_true, session_title_color)
from score_napari._qt.plots import TITLES, render_image, save_drawing


class LongitudinalWidget(QWidget):
    """One subject's sessions: the same slice side by side and the area plot with its band.

    Parameters
    ----------
    study_root : path, optional
        The study; :meth:`set_study` later otherwise.
    subject : str, optional
        Subject ID (without ``sub-``); default: the first with the most sessions.
    source : str
        Label source (``score``, ``raterA``, ``consensus``, ...).
    compartment : str
        An areas column; :data:`COMPARTMENTS` are offered.
    rsd : float or dict, optional
        Scan-rescan RSD (%) overriding :data:`score_gui.longitudinal.RESCAN_RSD_PERCENT`.
    """

    position_changed = Signal(str)
    subject_changed = Signal(str)

    def __init__(self, study_root=None, subject: str | None = None, source: str = "score",
                 compartment: str = "cord", rsd=None, parent=None):
        super().__init__(parent)
        self.study: Study | None = None
        self.series = None
        self.table: pd.DataFrame | None = None
        self.rsd = rsd
        self.position: str | None = None
        self._scans: dict[Path, object] = {}
        self._labels: dict[tuple[Path, str], object] = {}

        self.subject_box = QComboBox()
        self.subject_box.setToolTip("The subject followed over its sessions")
        self.source_box = QComboBox()
        self.source_box.setToolTip("Whose labels: score (the ensemble), a rater, the consensus, ...")
        self.compartment_box = QComboBox()
        for name in COMPARTMENTS:
            self.compartment_box.addItem(TITLES.get(name, name), name)
        self.compartment_box.setCurrentIndex(COMPARTMENTS.index(compartment) if compartment in COMPARTMENTS else 0)
        self.by_box = QComboBox()
        self.by_box.addItem("slice", "slice")
        self.by_box.addItem("level (mean)", "level")
        self.by_box.setToolTip("Compare slice by slice (same slice index in every session), or the mean "
                               "of each vertebral level's slices")
        self.average_box = QComboBox()
        self.average_box.addItems(AVERAGES)
        self.average_box.setToolTip("Images averaged for the panes (1-5: GM/WM contrast, 6-8: WM/CSF)")
        self.position_box = QComboBox()
        self.position_box.setToolTip("The slice (or level) shown in every session's pane")
        save = QPushButton("Save plot...")
        save.clicked.connect(self._save_dialog)
        controls = QHBoxLayout()
        for text, box in (("Subject", self.subject_box), ("Labels", self.source_box),
                          ("Area", self.compartment_box), ("Per", self.by_box), ("Slice", self.position_box),
                          ("Image", self.average_box)):
            controls.addWidget(QLabel(text))
            controls.addWidget(box)
        controls.addStretch(1)
        controls.addWidget(save)

        self.panes = LinkedPanes()
        self.plot = ChangePlot()
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.plot, 1)
        lower_layout.addWidget(self.summary)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.panes)
        splitter.addWidget(lower)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.message)
        layout.addWidget(splitter, 1)

        self.subject_box.activated.connect(lambda _i: self.set_subject(self.subject_box.currentData()))
        self.source_box.activated.connect(lambda _i: self.set_source(self.source_box.currentText()))
        self.compartment_box.activated.connect(lambda _i: self.set_compartment(self.compartment_box.currentData()))
        self.by_box.activated.connect(lambda _i: self.set_by(self.by_box.currentData()))
        self.average_box.activated.connect(lambda _i: self._show_panes())
        self.position_box.activated.connect(lambda _i: self.set_position(self.position_box.currentText()))
        self.plot.position_clicked.connect(self.set_position)
        self._source = source
        if study_root is not None:
            self.set_study(study_root, subject)

    # -- choices ----------------------------------------------------------------------------
    @property
    def compartment(self) -> str:
        return self.compartment_box.currentData()

    @property
    def by(self) -> str:
        return self.by_box.currentData()

    @property
    def source(self) -> str:
        return self._source

    @property
    def subject(self) -> str | None:
        return self.series.subject if self.series is not None else None

    def set_study(self, root, subject: str | None = None) -> None:
        """Open a study; show ``subject`` (default: the first with the most sessions)."""
        self.study = Study.open(root)
        self._scans.clear()
        self._labels.clear()
        counts = {s: len(self.study.sessions(s)) for s in self.study.subjects()}
        self.subject_box.clear()
        for name in self.study.subjects():
            n = counts[name]
            self.subject_box.addItem(f"sub-{name} ({n} session{'s' if n != 1 else ''})", name)
        if not counts:
            self.message.setText("This study has no scans.")
            return
        if subject is None:
            subject = max(counts, key=lambda s: (counts[s], -self.study.subjects().index(s)))
        self.set_subject(subject)

    def set_subject(self, subject: str) -> None:
        if self.study is None:
            return
        from score_napari._qt.qc_widget import study_sources

        self.subject_box.setCurrentIndex(max(self.subject_box.findData(subject), 0))
        sources = study_sources(SimpleNamespace(scans=subject_visits(self.study, subject)))
        self.source_box.clear()
        self.source_box.addItems(sources)
        if self._source not in sources and sources:
            self._source = sources[0]
        self.source_box.setCurrentText(self._source)
        self._load(subject)
        self.subject_changed.emit(subject)

    def set_source(self, source: str) -> None:
        self._source = source
        self.source_box.setCurrentText(source)
        if self.series is not None:
            self._load(self.series.subject)

    def set_compartment(self, name: str) -> None:
        self.compartment_box.setCurrentIndex(COMPARTMENTS.index(name))
        self._recompute()

    def set_by(self, by: str) -> None:
        self.by_box.setCurrentIndex(self.by_box.findData(by))
        self.position = None
        self._recompute()

    def set_average(self, name: str) -> None:
        self.average_box.setCurrentText(name)
        self._show_panes()

    def set_position(self, position) -> None:
        """Show a position (its name, e.g. ``"C3 s4"``, or a slice index) in every pane."""
        if self.table is None or self.table.empty:
            return
        positions = list(dict.fromkeys(self.table["position"]))
        if isinstance(position, (int, np.integer)):
            named = self.table.loc[self.table["slice"] == int(position), "position"]
            if named.empty:
                raise ValueError(f"no slice {position} in this subject's sessions")
            position = named.iloc[0]
        if position not in positions:
            raise ValueError(f"unknown position {position!r}; one of {positions}")
        self.position = position
        self.position_box.setCurrentIndex(positions.index(position))
        self._draw_plot()
        self._show_panes()
        self.position_changed.emit(position)

    def follow(self, subject: str, slice_index: int | None = None) -> None:
        """Follow the scan on screen elsewhere: show ``subject`` (when it is in the study) and,
        per slice, ``slice_index`` (when its sessions have it)."""
        if self.study is None or subject not in self.study.subjects():
            return
        if self.subject != subject:
            self.set_subject(subject)
        if slice_index is not None and self.table is not None and self.by == "slice" \
                and int(slice_index) in set(self.table["slice"]):
            self.set_position(int(slice_index))

    # -- data -------------------------------------------------------------------------------
    def _load(self, subject: str) -> None:
        errors: dict[str, str] = {}
        self._labels.clear()   # labels may have been saved since (scans are not edited)
        try:
            self.series = subject_series(self.study, subject, self._source, errors=errors)
        except ScoreInputError as exc:
            self.series, self.table = None, None
            self.message.setText(str(exc))
            self.plot.set_data(None, self.compartment)
            return
        notes = [f"could not read {Path(p).name}: {m}" for p, m in errors.items()]
        if self.series.missing:
            notes.append(f"no {self._source} labels for {', '.join(self.series.missing)}")
        if len(self.series.sessions) == 1:
            notes.append("only one session with these labels: nothing to compare yet")
        self.message.setText("; ".join(notes))
        self.message.setVisible(bool(notes))
        self.position = None
        self._recompute(refit=True)

    def _recompute(self, refit: bool = False) -> None:
        if self.series is None:
            return
        self.table = self.series.changes(self.compartment, rsd=self.rsd, by=self.by)
        positions = list(dict.fromkeys(self.table["position"]))
        self.position_box.blockSignals(True)
        self.position_box.clear()
        self.position_box.addItems(positions)
        self.position_box.blockSignals(False)
        if positions:
            if self.position not in positions:
                self.position = positions[len(positions) // 2]
            self.position_box.setCurrentIndex(positions.index(self.position))
        else:
            self.position = None
        self._draw_plot()
        self._show_panes(refit=refit)

    def _draw_plot(self) -> None:
        title = ""
        if self.series is not None:
            title = (f"{TITLES.get(self.compartment, self.compartment)}: sub-{self.series.subject}, "
                     f"{self._source} labels, per {self.by}")
        self.plot.set_data(self.table, self.compartment, title, self.position)
        self.summary.setText(self.summary_text())

    def summary_text(self) -> str:
        """One line per later session: slices beyond the band, expected by chance, mean change."""
        if self.table is None or self.table.empty:
            return ""
        if not np.isfinite(self.table["lsc_percent"].iloc[0]):
            return "No scan-rescan RSD is known for this compartment, so no change can be called real."
        unit = "slices" if self.by == "slice" else "levels"
        lines = []
        for row in change_summary(self.table).itertuples():
            mean = f", mean change {row.mean_change_percent:+.1f} %" if row.n_compared else ""
            text = (f"<b>{row.session}</b>: {row.n_beyond} of {row.n_compared} {unit} beyond "
                    f"±{self.table['lsc_percent'].iloc[0]:.1f} % ({row.expected_by_chance:g} expected by chance)"
                    f"{mean}")
            if row.n_beyond > max(1.0, 2 * row.expected_by_chance):
                text = f"<span style='color:{BEYOND_COLOR}'>{text}</span>"
            lines.append(text)
        baseline = self.table["baseline"].iloc[0]
        return f"Baseline {baseline}. " + "<br>".join(lines)

    # -- panes ------------------------------------------------------------------------------
    def _scan(self, entry):
        from score_gui.scan import read_scan

        if entry.path not in self._scans:
            self._scans[entry.path] = read_scan(entry.path)
        return self._scans[entry.path]

    def _labels_of(self, entry, scan):
        from score_gui.labels import read_labels

        key = (entry.path, self._source)
        if key not in self._labels:
            self._labels[key] = read_labels(entry.dseg_path(self._source), scan)
        return self._labels[key]

    def shown_slice(self) -> int | None:
        """The slice index the panes show (a level's middle slice when comparing levels)."""
        if self.table is None or self.position is None:
            return None
        rows = self.table[self.table["position"] == self.position]
        if self.by == "slice":
            return int(rows["slice"].iloc[0])
        areas = self.series.areas
        levels = areas["level"].fillna("").astype(str)
        named = levels.where(levels != "", "slice " + areas["slice"].astype(str))
        slices = areas.loc[(named == self.position) & (areas["scan"] == self.series.entry(
            rows["baseline"].iloc[0]).stem), "slice"]
        return int(slices.iloc[len(slices) // 2]) if len(slices) else None

    def _show_panes(self, refit: bool = False) -> None:
        if self.series is None or self.table is None or self.table.empty:
            self.panes.set_count(0)
            return
        sessions = list(dict.fromkeys(self.table["session"]))
        self.panes.set_count(len(sessions))
        s = self.shown_slice()
        average = self.average_box.currentText()
        rows = self.table[self.table["position"] == self.position].set_index("session")
        box = None
        for k, session in enumerate(sessions):
            entry = self.series.entry(session)
            pane, title = self.panes.panes[k], self.panes.titles[k]
            try:
                scan = self._scan(entry)
                labels = self._labels_of(entry, scan)
            except ScoreInputError as exc:
                pane.show_slice(None, None, None)
                title.setText(f"<b>{session}</b><br>{exc}")
                continue
            if s is None or s >= scan.n_slices:
                pane.show_slice(None, None, None)
                title.setText(f"<b>{session}</b><br>no such slice")
                continue
            averages = scan.averages()
            image = averages.get(average, averages["all"])[s]
            lesion = None if labels.lesion is None else labels.lesion[s]
            pane.show_slice(image, labels.dseg[s], lesion)
            if box is None:
                box = crop_box(labels.dseg[s], image.shape)
            title.setText(self._pane_title(session, k, rows.loc[session] if session in rows.index else None))
        if box is not None and (refit or not any(p.transform().m11() > 1.0 for p in self.panes.panes)):
            rect = QRectF(box[1].start, box[0].start, box[1].stop - box[1].start, box[0].stop - box[0].start)
            self.panes.fit(rect)

    def _pane_title(self, session: str, k: int, row) -> str:
        color = session_title_color(k).name()
        head = f"<b style='color:{color}'>{session}</b>"
        if row is None:
            return head
        if row["qc_status"] == "fail":
            return f"{head} · {self.position}<br><span style='color:#888'>failed QC: not compared</span>"
        if not np.isfinite(row["area_mm2"]):
            return f"{head} · {self.position}<br>unlabelled"
        text = f"{head} · {self.position}<br>{row['area_mm2']:.1f} mm²"
        if session == row["baseline"]:
            return text + " (baseline)"
        if np.isfinite(row["change_percent"]):
            text += f" ({row['change_percent']:+.1f} %)"
            if is_true(row["beyond_lsc"]):
                text = f"{text} <b style='color:{BEYOND_COLOR}'>beyond LSC</b>"
        return text

    # -- saving -----------------------------------------------------------------------------
    def plot_image(self, size: QSize = QSize(1100, 520)) -> QImage:
        return render_image(self.plot.draw, size)

    def save_plot(self, path, size: QSize = QSize(1100, 520)) -> Path:
        """The plot as PNG (or another image format) or SVG."""
        return save_drawing(self.plot.draw, path, size)

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the plot", f"longitudinal_{self.compartment}.png",
                                              "PNG (*.png);;SVG (*.svg)")
        if path:
            try:
                self.save_plot(path)
            except ScoreInputError as exc:
                self.message.setText(str(exc))
                self.message.setVisible(True)
