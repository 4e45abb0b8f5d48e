"""Fixtures of the application tests: a small real study and one main window per module."""

from __future__ import annotations

import gc

import pytest

from score_gui.phantom import make_study

N_SLICES = 4
SHAPE = (80, 80)


def build_study(root, n_hc: int = 1, n_ms: int = 1, raters=("B",)):
    """A small phantom study (H1's ``make_study``): sub-hc01 with two sessions, sub-ms01
    with one; true labels (``desc-truth``) and each rater's simulated labels."""
    return make_study(root, n_hc=n_hc, n_ms=n_ms, n_slices=N_SLICES, raters=raters, shape=SHAPE)


@pytest.fixture(scope="session")
def study_builder():
    """:func:`build_study`, for tests that need their own study."""
    return build_study


@pytest.fixture(scope="module")
def isolated_home(tmp_path_factory):
    """SCORE_HOME and napari settings for module-scoped windows: the same folders as the
    function-level isolation of ``tests/conftest.py``, so both see the same files."""
    from tests.conftest import isolate_home

    mp = pytest.MonkeyPatch()
    yield isolate_home(tmp_path_factory, mp)
    mp.undo()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return build_study(tmp_path_factory.mktemp("study") / "study")


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
    win.open_study(study.root)
    yield win
    win.rater.autosave_timer.stop()
    win.dispose()
    gc.collect()   # napari's make_napari_viewer (plugin tests) checks no QtViewer is left
