"""The workflow modes of the window's right-hand dock: one page (and its controller) each.

Examples
--------
>>> MODES
('annotate', 'segment', 'qc', 'export', 'train', 'longitudinal')
"""

from __future__ import annotations

MODES = ("annotate", "segment", "qc", "export", "train", "longitudinal")
MODE_TITLES = {"annotate": "Annotate", "segment": "Segment", "qc": "QC", "export": "Export", "train": "Train",
               "longitudinal": "Over time"}
MODE_DOCK_WIDTHS = {"annotate": 400, "segment": 400, "qc": 560, "export": 640, "train": 480, "longitudinal": 960}
"""Dock width per mode: QC tiles and export plots need more room than the annotation tools."""


def mode_tab_widget(pages: dict, icon) -> "QTabWidget":  # noqa: F821 (Qt imported when called)
    """The pages of :data:`MODES` as tabs without a tab bar: the toolbar's mode switcher
    replaces it (one control, not two). ``icon(name)`` makes the tabs' icons."""
    from qtpy.QtWidgets import QTabWidget

    from score_studio.shortcuts import ACTIONS

    tabs = QTabWidget()
    tabs.setObjectName("modeTabs")
    tabs.setDocumentMode(True)
    for mode in MODES:
        spec = ACTIONS[f"mode_{mode}"]
        tabs.addTab(pages[mode], icon(spec.icon), MODE_TITLES[mode])
        tabs.setTabToolTip(tabs.count() - 1, spec.tooltip())
    tabs.tabBar().hide()
    # A tab widget is as wide as its widest page (the over-time panes, the train plot):
    # only the page on show may ask for room, so every mode gets its own dock width.
    tabs.currentChanged.connect(lambda _index: _only_current_page_sized(tabs))
    _only_current_page_sized(tabs)
    return tabs


def _only_current_page_sized(tabs) -> None:
    from qtpy.QtWidgets import QSizePolicy

    for index in range(tabs.count()):
        page = tabs.widget(index)
        policy = QSizePolicy.Preferred if index == tabs.currentIndex() else QSizePolicy.Ignored
        page.setSizePolicy(policy, policy)
    tabs.updateGeometry()
