"""Opening what the user asks for: a scan, a study folder or a DICOM folder, and one scan of it.

Examples
--------
>>> find_study_root(Path("/data/st/sub-01/ses-1/anat/sub-01_ses-1_amira.nii.gz"))
PosixPath('/data/st')
>>> find_study_root(Path("/tmp/loose.nii.gz")) is None
True
>>> is_nifti(Path("scan.nii.gz")), is_nifti(Path("notes.txt"))
(True, False)
"""

from __future__ import annotations

import time
from pathlib import Path

from score_gui.dicom import looks_like_dicom
from score_gui.errors import ScoreInputError
from score_gui.labels import LabelMap, empty_labels, read_labels
from score_gui.scan import NIFTI_SUFFIXES, Scan, read_scan
from score_gui.study import ScanEntry, Study

ZOOM_MARGIN = 0.5
"""Space around the canal when a scan opens (and on a layout change), in canal sizes."""


def find_study_root(path: Path) -> Path | None:
    """The study folder that holds ``path`` (the parent of its ``sub-*`` folder), if any."""
    for parent in Path(path).parents:
        if parent.name.startswith("sub-"):
            return parent.parent
    return None


def is_study_folder(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_dir() for p in folder.glob("sub-*"))


def is_nifti(path: Path) -> bool:
    return path.name.endswith(NIFTI_SUFFIXES)


def kind_of_path(path: Path) -> str:
    """``study``, ``dicom`` or ``scan``.

    Raises
    ------
    ScoreInputError
        The path does not exist, or is none of those (a folder of loose NIfTI files, say).
    """
    if not path.exists():
        raise ScoreInputError(path, "not found")
    if path.is_dir():
        if is_study_folder(path):
            return "study"
        if any(path.rglob("*.nii*")) and not looks_like_dicom(path):
            raise ScoreInputError(path, "no sub-* folders: not a study folder (open a scan file instead)")
        return "dicom"
    if is_nifti(path):
        return "scan"
    raise ScoreInputError(path, "not a NIfTI scan (.nii, .nii.gz), study folder or DICOM folder")


class ScanOpener:
    """Opens studies and scans in a :class:`~score_studio.main_window.MainWindow`.

    Parameters
    ----------
    window : MainWindow
        Where the study and scan show: its browser, viewer, references, rater session.
    """

    def __init__(self, window):
        self.window = window
        self._asked: tuple[Path, float] | None = None   # a scan waiting for the panes, since when

    def open_path(self, path: Path) -> None:
        """Open a scan file, a study folder or a DICOM folder (:class:`ScoreInputError` when
        it is none of those)."""
        opener = {"study": self.open_study, "dicom": self.import_dicom, "scan": self.open_scan_file}
        opener[kind_of_path(path)](path)

    def open_study(self, root: str | Path, select: ScanEntry | None = None) -> Study:
        study = Study.open(root)
        if not study.scans:
            raise ScoreInputError(study.root, "no scans found under sub-*/")
        self._show_study(study, study.root, select or study.scans[0])
        return study

    def open_scan_file(self, path: Path) -> None:
        """A scan of a study opens in its study; a loose scan as a study of one, its
        derivatives beside it."""
        path = Path(path).resolve()
        root = find_study_root(path)
        if root is not None and is_study_folder(root):
            entry = next((e for e in Study.open(root).scans if Path(e.path) == path), None)
            if entry is not None:
                self.open_study(root, select=entry)
                return
        entry = ScanEntry(path.parent, path)
        self._show_study(Study(root=path.parent, scans=[entry]), path, entry)

    def _show_study(self, study: Study, recent: Path, target: ScanEntry) -> None:
        window = self.window
        window.study = study
        window.browser.set_study(study)
        window.export.stale = True
        window.study_opened.emit(study)
        window.settings.add_recent(recent)
        window.settings.save()
        window.browser.select(target)        # opens it through scan_selected
        if window.entry is None or Path(window.entry.path) != Path(target.path):
            window.open_entry(target)

    def import_dicom(self, folder: Path) -> None:
        """Convert a DICOM folder into the data home's ``imported/`` and open the scan."""
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QApplication

        from score_gui.dicom import import_dicom_folder
        from score_studio.settings import score_home

        name = "".join(ch for ch in Path(folder).name if ch.isalnum() or ch in "-_") or "dicom"
        out = score_home() / "imported" / name / f"{name}.nii.gz"
        status = self.window.statusBar()
        status.showMessage(f"Converting DICOM folder {folder}...")
        QApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            scan_file = import_dicom_folder(folder, out)
        finally:
            QApplication.restoreOverrideCursor()
        status.showMessage(f"Converted {folder} to {scan_file}", 8000)
        self.open_scan_file(Path(scan_file))

    def open_entry(self, entry: ScanEntry) -> None:
        """Show one scan: the rater's labels to edit, everyone else's as contours."""
        window = self.window
        if window.entry is not None and Path(entry.path) == Path(window.entry.path) and window.scan is not None:
            return
        if window.warm_up.blocks_opening:
            self._asked = (Path(entry.path), time.perf_counter())   # the wait counts in the message
            window.warm_up.defer(entry)       # opens as soon as the shown panes are made
            return
        started = time.perf_counter()
        if self._asked is not None and self._asked[0] == Path(entry.path):
            started = self._asked[1]
        self._asked = None
        window.rater.finish()
        try:
            scan = read_scan(entry.path)
        except ScoreInputError as exc:
            window.report_error(str(exc))
            return
        self._show_scan(entry, scan)
        window.statusBar().showMessage(f"Opened {entry.stem} in {time.perf_counter() - started:.2f} s", 5000)
        window.follow_scan_in_mode(entry)
        window.scan_opened.emit(entry)

    def _show_scan(self, entry: ScanEntry, scan: Scan) -> None:
        window = self.window
        window.entry, window.scan = entry, scan
        window.averages = scan.averages()
        window.rater_workflow.ensure_rater()
        if window.score_viewer.layout != window.layout_preset:
            window.score_viewer.set_layout(window.layout_preset)   # before loading: no layers toggled twice
        mine = window.rater_workflow.my_source
        window.references.read(entry, scan, mine,
                               lambda who, exc: window.statusBar().showMessage(f"Skipped {who}: {exc}", 8000))
        window.score_viewer.load_scan(scan, self._labels_to_edit(entry, scan, mine),
                                      references=window.references.to_draw(),
                                      frame_box=window.references.box, margin=ZOOM_MARGIN)
        window.annotate_page.update_reference_toggles()
        if window.settings.rater_id:
            window.rater.start(scan, entry, window.settings.rater_id)
            window.rater_workflow.offer_recovery(entry, scan)
        window.update_title()
        window.update_rater_badge()

    def _labels_to_edit(self, entry: ScanEntry, scan: Scan, mine: str) -> LabelMap:
        """The rater's saved labels, else empty ones (a file that cannot be read is kept)."""
        if mine and entry.dseg_path(mine).exists():
            try:
                return read_labels(entry.dseg_path(mine), scan)
            except ScoreInputError as exc:
                self.window.report_error(f"{exc} (starting from empty labels; the file is kept)")
        labels = empty_labels(scan)
        labels.who = mine
        return labels

    # -- asking the user ---------------------------------------------------------------------
    def choose_scan(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self.window, "Open a scan", "", "NIfTI scans (*.nii *.nii.gz)")
        if path:
            self.window.open_path(path)

    def choose_study(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(self.window, "Open a study folder")
        if folder:
            self.window.open_path(folder)

    def choose_dicom(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(self.window, "Import a DICOM folder")
        if folder:
            try:
                self.import_dicom(Path(folder))
            except ScoreInputError as exc:
                self.window.report_error(str(exc))
