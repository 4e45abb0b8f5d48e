"""Fixtures of the application tests: a small real study and one main window per module."""

from __future__ import annotations

import numpy as np
import pytest

from score_gui.labels import LabelMap, write_labels
from score_gui.phantom import make_slice, random_subject
from score_gui.scan import Scan, read_scan, write_scan
from score_gui.study import ScanEntry, Study, scan_path

N_SLICES = 4
SHAPE = (80, 80)


def build_study(root, n_subjects: int = 2, n_slices: int = N_SLICES, shape=SHAPE,
                truth_as: dict[int, str] | None = None):
    """Phantom scans in a BIDS-like study; ``truth_as`` maps subject index -> who gets the
    true labels (e.g. ``{1: "raterB"}``). Returns ``(study, truths)``."""
    truths = {}
    for i in range(n_subjects):
        rng = np.random.default_rng(10 + i)
        subject = random_subject(rng, "ms" if i % 2 else "hc", n_slices)
        levels = ("C2", "C3", "C4", "C5")
        slices = [make_slice(rng, level=levels[k % 4], subject=subject, shape=shape) for k in range(n_slices)]
        path = scan_path(root, f"{i + 1:02d}", "01")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_scan(Scan.from_arrays(np.stack([s.images for s in slices]), pixel_spacing=(0.67, 0.67)), path)
        truth = LabelMap(np.stack([s.dseg for s in slices]), np.stack([s.lesion for s in slices]))
        truths[i] = truth
        if truth_as and i in truth_as:
            write_labels(read_scan(path), truth, ScanEntry(root, path).derivatives_dir, truth_as[i])
    return Study.open(root), truths


@pytest.fixture(scope="session")
def study_builder():
    """:func:`build_study`, for tests that need their own study."""
    return build_study


@pytest.fixture(scope="module")
def isolated_home(tmp_path_factory):
    """SCORE_HOME and napari settings for module-scoped windows: the same folders as the
    function-level isolation of ``tests/conftest.py``, so both see the same files."""
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.getbasetemp() / "home"
    home.mkdir(exist_ok=True)
    mp.setenv("SCORE_HOME", str(home / "score"))
    mp.setenv("NAPARI_CONFIG", str(home / "napari.yaml"))
    mp.setenv("XDG_CONFIG_HOME", str(home / "config"))
    mp.setenv("XDG_DATA_HOME", str(home / "data"))
    yield home
    mp.undo()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    return build_study(root, truth_as={1: "raterB"})


@pytest.fixture(scope="module")
def window(qapp, isolated_home, study):
    """A shown main window with rater A identified and the study open."""
    from score_studio.main_window import MainWindow
    from score_studio.settings import AppSettings

    settings = AppSettings(rater_id="A")
    win = MainWindow(settings=settings, interactive=False)
    win.resize(1400, 900)
    win.show()
    win.settle()
    win.open_study(study[0].root)
    yield win
    win.rater.autosave_timer.stop()
    win.close()
    win.deleteLater()
    qapp.processEvents()
