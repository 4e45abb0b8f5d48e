"""Train panel: learn a study's own model set from its raters' labels, without leaving the GUI.

The rater picks whose labels to learn (one or more raters, or their consensus), the folds of
the subject-grouped cross-validation, the iterations per network, the starting model (the
default models, one of the study's model sets, or random weights) and a name. The core's
generator (:func:`score_gui.model_sets.train_model_set`) runs in napari's ``thread_worker``:
the panel shows a progress bar, the ETA, a live plot of the training loss and a Cancel
button. A cancelled or crashed run stays in the study's ``models/.<name>.training/`` and
**Resume** continues it (finished folds are kept, a stopped network continues from its last
checkpoint). When the run ends, the new set's out-of-fold Dice per compartment is shown next
to that of the model it would replace, and :attr:`TrainPanel.model_set_written` announces
it (the Segment panel then offers it).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Generator
from datetime import datetime
from pathlib import Path

from qtpy.QtCore import QPointF, Qt, Signal
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import (QAbstractItemView, QComboBox, QFormLayout, QHBoxLayout, QHeaderView, QLabel,
                            QLineEdit, QListWidget, QListWidgetItem, QProgressBar, QPushButton, QSizePolicy,
                            QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from score_gui.progress import Progress, format_eta

CANCELLED = "cancelled"
CHECKPOINTS_PER_NETWORK = 20
"""Resumable checkpoints per network: a cancelled run loses at most 1/20 of a network's steps."""


def train_job(study_root, name: str, sources: list[str], stop: threading.Event, *, folds: int,
              iterations: int, init: str, resume: bool, training_args: dict | None = None,
              retrain: bool = False) -> Generator[Progress, None, object]:
    """Drive :func:`score_gui.model_sets.train_model_set` (``retrain``: the set ``name``'s
    :func:`score_gui.retraining.retrain_model_set`) until done or ``stop`` is set.

    Runs in the worker thread. A stop closes the core generator there, between two
    steps (its staging folder stays for Resume), and returns :data:`CANCELLED`.
    """
    import torch

    from score_gui.model_sets import train_model_set
    from score_gui.training.loop import default_batch_size
    from score_napari._qt.segmentation import reserve_ui_core

    torch.set_num_threads(reserve_ui_core())  # one core stays with the window
    args = {"batch_size": default_batch_size(init != "none"),
            "checkpoint_every": max(1, iterations // CHECKPOINTS_PER_NETWORK), "loader_workers": 0,
            **(training_args or {})}
    if retrain:
        from score_gui.retraining import retrain_model_set

        job = retrain_model_set(study_root, name, iterations=iterations, resume=resume, **args)
    else:
        job = train_model_set(study_root, name, sources, folds=folds, iterations=iterations, init=init,
                              resume=resume, **args)
    try:
        while True:
            if stop.is_set():
                job.close()
                return CANCELLED
            yield next(job)
    except StopIteration as done:
        return done.value


def default_set_name() -> str:
    """``set-20240131-1405``: a fresh name for the next model set."""
    return f"set-{datetime.now():%Y%m%d-%H%M}"


class LossPlot(QWidget):
    """The training loss as it falls: one line per network (members coloured, localisers grey).

    Attributes
    ----------
    series : list of (label, [loss, ...])
        In the order trained; the x axis counts the steps shown.
    """

    MEMBER_COLOUR = QColor("#4aa3df")
    LOCALISER_COLOUR = QColor("#9a9a9a")

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.series: list[tuple[str, list[float]]] = []
        self.setMinimumHeight(130)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        self.setToolTip("Training loss (smoothed) per network: members blue, canal localisers grey")

    @property
    def n_points(self) -> int:
        return sum(len(values) for _, values in self.series)

    def clear(self) -> None:
        self.series = []
        self.update()

    def add(self, label: str, loss: float) -> None:
        if not math.isfinite(loss):
            return
        if not self.series or self.series[-1][0] != label:
            self.series.append((label, []))
        self.series[-1][1].append(float(loss))
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        rect = self.rect().adjusted(36, 8, -8, -18)
        text = self.palette().color(self.foregroundRole())
        painter.setPen(QPen(text, 1))
        painter.drawLine(rect.bottomLeft(), rect.bottomRight())
        painter.drawLine(rect.bottomLeft(), rect.topLeft())
        values = [v for _, vs in self.series for v in vs]
        if not values:
            painter.drawText(rect, Qt.AlignCenter, "The loss appears here while training")
            return
        top, bottom = max(values), min(0.0, min(values))
        span = (top - bottom) or 1.0
        n = max(len(values) - 1, 1)
        painter.drawText(2, rect.top() + 10, f"{top:.2f}")
        painter.drawText(2, rect.bottom(), f"{bottom:.1f}")
        painter.drawText(rect.left(), rect.bottom() + 15, f"loss {values[-1]:.3f}, {len(values)} steps")
        index = 0
        for label, series in self.series:
            colour = self.LOCALISER_COLOUR if "localiser" in label else self.MEMBER_COLOUR
            painter.setPen(QPen(colour, 1.6))
            points = QPolygonF([QPointF(rect.left() + rect.width() * (index + i) / n,
                                        rect.bottom() - rect.height() * (v - bottom) / span)
                                for i, v in enumerate(series)])
            painter.drawPolyline(points)
            index += len(series)


def network_of(message: str) -> str:
    """``"raterA: fold 1/3 member iteration 5/300"`` -> ``"raterA: fold 1/3 member"``."""
    return message.split(" iteration ")[0]


class TrainPanel(QWidget):
    """Train a named model set on a study's labels (see the module docstring).

    Parameters
    ----------
    study_root : path, optional
        The study; :meth:`set_study` changes it.
    training_args : dict, optional
        Passed on to the core's cross-validation (e.g. a small ``architecture`` for tests).
    """

    model_set_written = Signal(object)   # score_gui.model_sets.ModelSet
    running_changed = Signal(bool)
    failed = Signal(str)

    def __init__(self, study_root=None, training_args: dict | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.study_root: Path | None = None
        self.training_args = dict(training_args or {})
        self.worker = None
        self.last_progress: Progress | None = None
        self.result = None
        self._stop = threading.Event()

        self.study_label = QLabel("No study open.")
        self.study_label.setWordWrap(True)
        self.sources = QListWidget()
        self.sources.setSelectionMode(QAbstractItemView.NoSelection)
        self.sources.setMaximumHeight(64)
        self.sources.setToolTip("Whose labels the models learn: each rater ticked gives the ensemble one "
                                "model per fold; slices still marked 'proposed' are left out")
        self.folds = QSpinBox()
        self.folds.setRange(2, 10)
        self.folds.setValue(3)
        self.folds.setToolTip("Cross-validation folds, grouped by subject (all sessions of a subject together)")
        self.iterations = QSpinBox()
        self.iterations.setRange(1, 100000)
        self.iterations.setSingleStep(50)
        self.iterations.setValue(300)
        self.iterations.setToolTip("Training steps per fold model (300 when starting from a model set)")
        self.start_model = QComboBox()
        self.start_model.setToolTip("Starting weights: the shipped default models, one of this study's "
                                    "model sets, or random weights")
        self.name = QLineEdit(default_set_name())
        self.name.setToolTip("Folder name in derivatives/score/models (letters, digits, - and _)")
        self.name.textChanged.connect(lambda _t: self._update_buttons())

        self.train_button = QPushButton("Train")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the interrupted run of this name (finished folds are kept)")
        self.cancel_button = QPushButton("Cancel")
        self.train_button.clicked.connect(lambda: self.start(resume=False))
        self.resume_button.clicked.connect(lambda: self.start(resume=True))
        self.cancel_button.clicked.connect(self.cancel)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.eta_label = QLabel("")
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        self.loss_plot = LossPlot()
        self.result_title = QLabel("")
        self.result_title.setWordWrap(True)
        self.result_table = QTableWidget(0, 4)
        self.result_table.setHorizontalHeaderLabels(["compartment", "new set", "replaces", "change"])
        self.result_table.verticalHeader().setVisible(False)
        self.result_table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.result_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.result_table.setToolTip("Mean out-of-fold Dice per compartment, against the raters' labels")

        intro = QLabel("Train an ensemble on this study's labels. Every scan is scored by a model that "
                       "never saw its subject (out-of-fold), so the Dice below is what to expect on "
                       "new scans.")
        intro.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Learn from:", self.sources)
        form.addRow("Folds:", self.folds)
        form.addRow("Iterations:", self.iterations)
        form.addRow("Start from:", self.start_model)
        form.addRow("Name:", self.name)
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.resume_button)
        progress = QHBoxLayout()
        progress.addWidget(self.progress_bar, 1)
        progress.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.study_label)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addLayout(progress)
        layout.addWidget(self.eta_label)
        layout.addWidget(self.message_label)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.result_title)
        layout.addWidget(self.result_table, 1)
        self.set_study(study_root)

    # -- study ------------------------------------------------------------------------------
    def set_study(self, root) -> None:
        """Show the choices of the study at ``root`` (None: no study)."""
        from score_gui.study import Study

        self.study_root = Path(root).resolve() if root is not None else None
        self.sources.clear()
        if self.study_root is None:
            self.study_label.setText("No study open: open a scan of a study.")
            self.refresh_start_models()
            self._update_buttons()
            return
        study = Study.open(self.study_root)
        raters = sorted({r for entry in study.scans for r in entry.raters()})
        has_consensus = any("consensus" in entry.label_sources() for entry in study.scans)
        for rater in raters:
            count = sum(rater in entry.raters() for entry in study.scans)
            self._add_source(f"rater{rater}", f"Rater {rater} ({count} scan{'s' * (count != 1)})",
                             checked=len(raters) == 1 or rater == raters[0])
        if has_consensus:
            self._add_source("consensus", "Consensus of the raters", checked=False)
        self.study_label.setText(f"Study: <b>{self.study_root.name}</b>, {len(study.scans)} scans, "
                                 f"raters {', '.join(raters) or 'none'}")
        self.refresh_start_models()
        self._update_buttons()

    def _add_source(self, who: str, text: str, checked: bool) -> None:
        item = QListWidgetItem(text)
        item.setData(Qt.UserRole, who)
        item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
        item.setCheckState(Qt.Checked if checked else Qt.Unchecked)
        self.sources.addItem(item)
        rows = min(max(self.sources.count(), 1), 4)
        self.sources.setMaximumHeight(rows * self.sources.sizeHintForRow(0) + 2 * self.sources.frameWidth() + 4)

    def refresh_start_models(self) -> None:
        """Default models, the study's model sets (with their GM Dice), random weights."""
        from score_gui.model_sets import list_model_sets

        current = self.start_model.currentData()
        self.start_model.clear()
        self.start_model.addItem("Default models", "default")
        for model_set in list_model_sets(self.study_root) if self.study_root is not None else []:
            self.start_model.addItem(f"Study set {model_set.label()}", model_set.name)
        self.start_model.addItem("None (random weights)", "none")
        index = self.start_model.findData(current)
        self.start_model.setCurrentIndex(max(index, 0))

    # -- choices ----------------------------------------------------------------------------
    def chosen_sources(self) -> list[str]:
        return [self.sources.item(i).data(Qt.UserRole) for i in range(self.sources.count())
                if self.sources.item(i).checkState() == Qt.Checked]

    def check_sources(self, sources) -> None:
        wanted = set(sources)
        for i in range(self.sources.count()):
            item = self.sources.item(i)
            item.setCheckState(Qt.Checked if item.data(Qt.UserRole) in wanted else Qt.Unchecked)

    def set_start_model(self, value: str) -> None:
        index = self.start_model.findData(value)
        if index < 0:
            raise ValueError(f"no starting model {value!r}")
        self.start_model.setCurrentIndex(index)

    def resumable(self) -> bool:
        """Whether an interrupted run of the name typed waits in the study."""
        from score_gui.model_sets import interrupted_runs

        return self.study_root is not None and self.name.text().strip() in interrupted_runs(self.study_root)

    # -- running ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker is not None

    def retrain(self, name: str) -> None:
        """Retrain the study's set ``name`` on the labels as they are now (its sources, folds
        and subjects per fold; :data:`score_gui.retraining.RETRAIN_ITERATIONS` steps)."""
        from score_gui.model_sets import find_model_set
        from score_gui.retraining import RETRAIN_ITERATIONS

        model_set = find_model_set(self.study_root, name) if self.study_root is not None else None
        if self.running or model_set is None:
            return
        self.check_sources(model_set.sources)
        self.folds.setValue(int(model_set.info.get("folds") or self.folds.value()))
        self.iterations.setValue(RETRAIN_ITERATIONS)
        self.set_start_model(name)
        self.name.setText(name)
        self.start(retrain=True)

    def start(self, resume: bool = False, retrain: bool = False) -> None:
        """Train (or resume) the model set named in the panel, in a worker thread."""
        from napari.qt.threading import create_worker

        from score_gui.errors import ScoreInputError
        from score_gui.model_sets import check_set_name

        if self.running:
            return
        if self.study_root is None:
            self.message_label.setText("Open a study first.")
            return
        sources = self.chosen_sources()
        if not sources:
            self.message_label.setText("Tick at least one rater (or the consensus) to learn from.")
            return
        name = self.name.text().strip()
        try:
            check_set_name(name)
        except ScoreInputError as exc:
            self.message_label.setText(str(exc))
            return
        self.result = None
        self.last_progress = None
        self._stop = threading.Event()
        self.loss_plot.clear()
        self.result_table.setRowCount(0)
        self.result_title.setText("")
        self.worker = create_worker(train_job, self.study_root, name, sources, self._stop,
                                    folds=self.folds.value(), iterations=self.iterations.value(),
                                    init=self.start_model.currentData() or "default", resume=resume,
                                    training_args=self.training_args, retrain=retrain, _start_thread=False)
        self.worker.yielded.connect(self._on_yielded)
        self.worker.returned.connect(self._on_returned)
        self.worker.errored.connect(self._on_errored)
        self.worker.finished.connect(self._on_finished)
        self.progress_bar.setRange(0, 0)   # busy until the first step gives the scale
        doing = "Retraining" if retrain else "Resuming" if resume else "Training"
        self.message_label.setText(f"{doing} {name} on {', '.join(sources)}...")
        self._set_running(True)
        self.worker.start()

    def cancel(self) -> None:
        """Stop after the current step; the run can be resumed later."""
        if self.worker is not None:
            self.message_label.setText("Cancelling after the current step...")
            self._stop.set()

    def _set_running(self, running: bool) -> None:
        for widget in (self.sources, self.folds, self.iterations, self.start_model, self.name):
            widget.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self._update_buttons()
        self.running_changed.emit(running)

    def _update_buttons(self) -> None:
        idle = not self.running and self.study_root is not None
        self.train_button.setEnabled(idle)
        self.resume_button.setEnabled(idle and self.resumable())
        self.cancel_button.setEnabled(self.running)

    def _on_yielded(self, step: Progress) -> None:
        self.last_progress = step
        if self.progress_bar.maximum() != step.total:
            self.progress_bar.setRange(0, step.total)
        self.progress_bar.setValue(step.done)
        self.eta_label.setText(f"{100 * step.fraction:.0f} %  ETA {format_eta(step.eta_seconds())}")
        self.message_label.setText(step.message)
        loss = (step.extra or {}).get("loss")
        if loss is not None:
            self.loss_plot.add(network_of(step.message), loss)

    def _on_returned(self, result) -> None:
        self.eta_label.setText("")
        if result == CANCELLED:
            self.message_label.setText("Cancelled. Resume continues this run where it stopped.")
            return
        self.result = result
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1)
        where = result.path.relative_to(self.study_root) if self.study_root in result.path.parents else result.path
        self.message_label.setText(f"Saved model set {result.name} in {where.as_posix()}. "
                                   "The Segment panel offers it.")
        self.show_model_set(result)
        self.refresh_start_models()
        self.model_set_written.emit(result)

    def show_model_set(self, model_set) -> None:
        """Its mean out-of-fold Dice per compartment next to the model it would replace."""
        baseline = model_set.baseline
        rows = model_set.comparison()
        old_name = baseline.get("name", "")
        self.result_title.setText(
            f"<b>{model_set.name}</b>: out-of-fold Dice vs <b>{old_name or 'no comparison'}</b>"
            + (f" ({baseline['how']})" if baseline.get("how") else "") + verdict(model_set.name, old_name, rows))
        self.result_table.setHorizontalHeaderLabels(["compartment", model_set.name, old_name or "replaces",
                                                     "change"])
        self.result_table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            change = row["difference"]
            cells = [row["compartment"].replace("_", " "), _number(row["dice"]), _number(row["baseline_dice"]),
                     "" if not math.isfinite(change) else f"{change:+.3f}"]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if c == 3 and math.isfinite(change) and abs(change) >= 0.005:
                    item.setForeground(QColor("#3cb44b") if change > 0 else QColor("#e6194b"))
                self.result_table.setItem(r, c, item)

    def _on_errored(self, exc: Exception) -> None:
        self.eta_label.setText("")
        self.message_label.setText(f"Training failed: {exc}")
        self.failed.emit(str(exc))

    def _on_finished(self) -> None:
        self.worker = None
        if self.progress_bar.maximum() == 0:
            self.progress_bar.setRange(0, 1)
        self._set_running(False)


def verdict(new: str, old: str, rows: list[dict]) -> str:
    """One sentence on which model to use, from the mean change over the compared compartments.

    Examples
    --------
    >>> verdict("lab", "default", [{"difference": -0.2}, {"difference": 0.1}])
    '. <br>On average 0.050 lower than default: keep default for segmenting.'
    >>> verdict("lab", "", [])
    ''
    """
    changes = [r["difference"] for r in rows if math.isfinite(r["difference"])]
    if not old or not changes:
        return ""
    mean = sum(changes) / len(changes)
    if mean >= 0:
        return f". <br>On average {mean:.3f} higher than {old}: {new} may replace it."
    return f". <br>On average {-mean:.3f} lower than {old}: keep {old} for segmenting."


def _number(value: float) -> str:
    return f"{value:.3f}" if value is not None and math.isfinite(value) else "-"
