"""The study browser's ranking column: which scans a rater should label first."""

from __future__ import annotations

import pandas as pd
import pytest

from score_studio.study_browser import COLUMNS, ENTRY_ROLE, StudyBrowser

pytestmark = pytest.mark.gui


def test_next_column_orders_scans_by_mean_uncertainty(qtbot, study):
    browser = StudyBrowser()
    qtbot.addWidget(browser)
    browser.set_study(study)
    stems = [entry.stem for entry in study.scans]
    ranking = pd.DataFrame({"scan": [stems[1], stems[1], stems[0]], "slice": [0, 2, 1],
                            "score": [0.4, 0.2, 0.1], "reason": ["", "", ""]})
    browser.set_ranking(ranking)
    column = COLUMNS.index("Next")
    shown = {item.data(0, ENTRY_ROLE).stem: item for item in browser.scan_items()}
    assert shown[stems[1]].text(column) == "#1"
    assert "first: 2 unlabelled slices, mean uncertainty 0.30" in shown[stems[1]].toolTip(column)
    assert shown[stems[0]].text(column) == "#2"
    assert all(shown[stem].text(column) == "" for stem in stems[2:])
    browser.refresh_all()                                  # a refresh keeps the ranking
    assert shown[stems[1]].text(column) == "#1"
    browser.set_ranking(None)
    assert shown[stems[1]].text(column) == ""
