"""Every icon name exists, every tooltip shows its shortcut, the F1 panel lists them all."""

from __future__ import annotations

import qtawesome as qta
from qtpy.QtGui import QKeySequence

from score_studio import actions, study_browser
from score_studio.shortcuts import ACTIONS, VIEWER_KEYS, ShortcutsDialog, shortcut_rows


def all_icon_names() -> set[str]:
    names = {spec.icon for spec in ACTIONS.values()}
    names |= set(study_browser.BROWSER_ICONS.values())
    names |= set(actions.EXTRA_ICONS)
    return names


def test_every_icon_name_exists(qapp):
    for name in sorted(all_icon_names()):
        icon = qta.icon(name)       # raises for an unknown name
        assert not icon.pixmap(16, 16).isNull(), name


def test_shortcuts_are_valid_unique_and_in_tooltips():
    keys = [spec.shortcut for spec in ACTIONS.values() if spec.shortcut]
    assert len(keys) == len(set(keys)), "two actions share a shortcut"
    for name, spec in ACTIONS.items():
        if spec.shortcut:
            assert not QKeySequence(spec.shortcut).isEmpty(), name
            assert spec.tooltip().endswith(f"({spec.shortcut})")


def test_shortcuts_panel_lists_every_shortcut(qtbot):
    dialog = ShortcutsDialog()
    qtbot.addWidget(dialog)
    table = dialog.table
    shown = {table.item(r, 0).text() for r in range(table.rowCount())}
    assert table.rowCount() == len(shortcut_rows())
    assert {spec.shortcut for spec in ACTIONS.values() if spec.shortcut} <= shown
    assert {keys for keys, _ in VIEWER_KEYS} <= shown
    assert "F1" in shown
