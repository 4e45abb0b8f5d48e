"""The window's actions, toolbar and menus, built in one place from
:data:`score_studio.shortcuts.ACTIONS` (names, texts, icons, shortcuts).

Examples
--------
>>> sorted(set(name for group in TOOLBAR_GROUPS for name in group) - set(ACTIONS))
[]
"""

from __future__ import annotations

from typing import Callable

import qtawesome as qta
from qtpy.QtCore import Qt
from qtpy.QtGui import QAction, QActionGroup, QKeySequence

from score_studio.modes import MODES
from score_studio.shortcuts import ACTIONS

ICON_COLOR = "#d8dee9"
EXTRA_ICONS = ("fa5s.history",)
"""Icons used outside :data:`~score_studio.shortcuts.ACTIONS` (tests check they exist)."""

LAYOUT_ACTIONS = ("layout_all", "layout_working", "layout_single")
MODE_ACTIONS = tuple(f"mode_{mode}" for mode in MODES)

TOOLBAR_GROUPS = (("open_study", "open_scan"), ("save", "undo", "redo"), ("prev_scan", "next_scan"),
                  (*LAYOUT_ACTIONS, "zoom_cord"), ("segment",), MODE_ACTIONS, ("shortcuts",))
"""The toolbar, a separator after each group."""

ICON_ONLY = {"open_scan", "undo", "redo", "prev_scan", "next_scan", *LAYOUT_ACTIONS, "zoom_cord", "shortcuts"}
"""Toolbar buttons without text (their icons are well known, or their tooltips say)."""

MENUS = {
    "&File": ["open_scan", "open_study", "import_dicom", "open_demo", None, "recent", None,
              "save", "rater", None, "quit"],
    "&Edit": ["undo", "redo", None, "accept_slice", "next_to_label", None, "consensus"],
    "&View": ["prev_slice", "next_slice", "prev_scan", "next_scan", None, *LAYOUT_ACTIONS, "zoom_cord",
              None, "docks"],
    "&Segment": ["segment", "segment_all", "cancel"],
    "&Mode": list(MODE_ACTIONS),
    "&Help": ["shortcuts"],
}
"""Menu titles and their entries: action names, None for a separator, ``recent`` for the
recent files, ``docks`` for the docks' show/hide toggles."""


def icon(name: str):
    """An icon in the window's colour."""
    return qta.icon(name, color=ICON_COLOR)


def build_actions(window, handlers: dict[str, Callable]) -> dict[str, QAction]:
    """One window-wide :class:`QAction` per entry of :data:`ACTIONS`, triggering its handler.

    Layouts and modes are exclusive checkable groups (``window.layout_group``,
    ``window.mode_group``).
    """
    actions = {}
    for name, spec in ACTIONS.items():
        action = QAction(icon(spec.icon), spec.text, window)
        if spec.shortcut:
            action.setShortcut(QKeySequence(spec.shortcut))
            # Window-wide (the canvas may have the focus), not in dialogs.
            action.setShortcutContext(Qt.WindowShortcut)
        action.setToolTip(spec.tooltip())
        action.setStatusTip(spec.tooltip())
        action.triggered.connect(lambda _checked=False, f=handlers[name]: f())
        window.addAction(action)
        actions[name] = action
    window.layout_group = _exclusive_group(window, [actions[name] for name in LAYOUT_ACTIONS])
    window.mode_group = _exclusive_group(window, [actions[name] for name in MODE_ACTIONS])
    return actions


def _exclusive_group(window, actions: list[QAction]) -> QActionGroup:
    group = QActionGroup(window)
    for action in actions:
        action.setCheckable(True)
        group.addAction(action)
    return group


def build_toolbar(window, actions: dict[str, QAction]):
    """The main toolbar of :data:`TOOLBAR_GROUPS`."""
    bar = window.addToolBar("Main")
    bar.setObjectName("mainToolbar")
    bar.setMovable(False)
    bar.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
    for group in TOOLBAR_GROUPS:
        for name in group:
            bar.addAction(actions[name])
            if name in ICON_ONLY:
                bar.widgetForAction(actions[name]).setToolButtonStyle(Qt.ToolButtonIconOnly)
        bar.addSeparator()
    return bar


def build_menus(window, actions: dict[str, QAction], docks: list, recent_paths: Callable[[], list[str]],
                open_path: Callable[[str], object]):
    """The menu bar of :data:`MENUS`; returns the "Open recent" menu (filled from
    ``recent_paths()`` each time it opens, entries calling ``open_path``)."""
    recent_menu = None
    for title, names in MENUS.items():
        menu = window.menuBar().addMenu(title)
        for name in names:
            if name is None:
                menu.addSeparator()
            elif name == "docks":
                for dock in docks:
                    menu.addAction(dock.toggleViewAction())
            elif name == "recent":
                recent_menu = menu.addMenu(icon(EXTRA_ICONS[0]), "Open &recent")
                recent_menu.aboutToShow.connect(lambda: fill_recent_menu(recent_menu, recent_paths(), open_path))
            else:
                menu.addAction(actions[name])
    fill_recent_menu(recent_menu, recent_paths(), open_path)
    return recent_menu


def fill_recent_menu(menu, paths: list[str], open_path: Callable[[str], object]) -> None:
    menu.clear()
    for path in paths:
        action = menu.addAction(path)
        action.triggered.connect(lambda _c=False, p=path: open_path(p))
    if not paths:
        menu.addAction("(nothing yet)").setEnabled(False)
