"""Shared fixtures: isolated settings and small demo data made once per session."""

from __future__ import annotations

import os

import pytest

# Tests never read or write a user's settings.
os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

# PySide6 6.12 drops a reference to None on every void C++ call; on Python 3.11 a long GUI
# test session aborts with "none_dealloc". Nothing applies the reserve on import any more
# (score_napari._qt.guard_singleton_refcounts): the session adds it once, explicitly, as
# the application and ScoreViewer do.
from score_napari._qt import guard_singleton_refcounts  # noqa: E402

guard_singleton_refcounts()


def isolate_home(tmp_path_factory, monkeypatch):
    """Point SCORE_HOME, napari's settings and the XDG folders into the session's temp folder."""
    home = tmp_path_factory.getbasetemp() / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("SCORE_HOME", str(home / "score"))
    monkeypatch.setenv("NAPARI_CONFIG", str(home / "napari.yaml"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    return home


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    isolate_home(tmp_path_factory, monkeypatch)


@pytest.fixture(autouse=True)
def _collect_windows_before_napari_fixture(request):
    """A full collection before ``make_napari_viewer`` checks that no QtViewer is alive.

    Its check collects only the young generations; the application windows of earlier
    modules are closed and deleted, but their Python cycles may have aged into the old
    generation and wait for a full collection (after one, no QtViewer is left).
    """
    if "make_napari_viewer" in request.fixturenames:
        import gc

        gc.collect()


@pytest.fixture(scope="session", autouse=True)
def _freeze_what_collection_imported():
    """Move the objects of every module imported so far (napari, torch, ...) out of the
    collector's sight: the full collections below then take milliseconds, not 0.2-0.3 s."""
    import gc

    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def _collect_qt_garbage_on_the_main_thread(request):
    """After a Qt test, a full collection here, in the main thread.

    Widgets a test made and closed can wait in Python reference cycles; left to the
    collector, they were freed in whichever thread allocated next, once a ranking
    worker's (a QWidget deleted off the GUI thread: a segfault in a whole-suite run).
    """
    yield
    if request.node.get_closest_marker("gui") or {"qtbot", "qapp", "make_napari_viewer"} & set(request.fixturenames):
        import gc

        gc.collect()


def _run_order(item) -> int:
    path = str(item.fspath).replace("\\", "/")
    if path.endswith(("tests/plugins/test_viewer.py", "tests/plugins/test_napari_compat.py")):
        return 1
    if "tests/app/" in path:
        return 2
    return 3 if "tests/plugins/" in path else 0


def pytest_collection_modifyitems(config, items):
    """Order: core, then tests with real napari viewers (plugin viewer, application), then
    the tests using napari's ``make_napari_viewer`` fixture.

    After ``make_napari_viewer`` (which swaps in a mock app-model) a real ``napari.Viewer``
    registers this plugin's commands a second time in napari's global app-model and napari
    refuses the duplicate. Plain napari and the application never share a process, so
    ordering the tests, not patching napari, is the fix. With pytest-xdist each worker
    takes whole files in this order (``./score.sh test``: ``--dist loadfile
    --no-loadscope-reorder``), so no worker meets a real viewer after the fixture.
    """
    items.sort(key=_run_order)
