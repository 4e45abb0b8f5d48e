"""The ranking panel: rank a real study's unlabelled slices in a worker, keep the ranking in
the study, open the next slice that is still unlabelled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from score_gui.inference import make_untrained_ensemble
from score_gui.labels import LabelMap, write_labels
from score_gui.phantom import make_study
from score_gui.rank import ranking_path, read_ranking, write_ranking
from score_gui.scan import read_scan
from score_napari._qt.ranking import RankingPanel

pytestmark = pytest.mark.gui

N_SLICES = 3


@pytest.fixture
def study(tmp_path):
    return make_study(tmp_path / "study", n_hc=0, n_ms=2, n_slices=N_SLICES, raters=(), shape=(48, 48))


@pytest.fixture
def panel(qtbot, study, tmp_path):
    models = make_untrained_ensemble(tmp_path / "models", n_members=2, tiny=True)
    widget = RankingPanel(lambda: study, lambda: "A", models=str(models))
    qtbot.addWidget(widget)
    widget.resize(520, 420)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def label_slice(study, stem: str, *indices: int) -> None:
    """Rater A labels these slices of one scan (a canal square each), as if drawn and saved."""
    entry = study.find(stem)
    scan = read_scan(entry.path)
    dseg = np.zeros(scan.label_shape, np.uint8)
    dseg[list(indices), 20:28, 20:28] = 1
    write_labels(scan, LabelMap(dseg, None, who="raterA"), entry.derivatives_dir, "raterA")


def rows(panel) -> list[tuple[str, int]]:
    return [panel.row_key(r) for r in range(panel.list.rowCount())]


def test_rank_keep_and_open_next_unlabelled(qtbot, panel, study):
    assert not panel.next_button.isEnabled()
    panel.rank_button.click()
    qtbot.waitUntil(lambda: panel.table is not None and not panel.running, timeout=120_000)
    listed = rows(panel)
    assert len(listed) == 2 * N_SLICES                     # every slice of both scans is unlabelled
    saved = read_ranking(ranking_path(study, "A"))
    assert [(s, int(i)) for s, i in zip(saved["scan"], saved["slice"])] == listed
    assert list(saved["score"]) == sorted(saved["score"], reverse=True)

    label_slice(study, *listed[0])                         # the rater labels the top slice meanwhile
    with qtbot.waitSignal(panel.open_slice) as opened:
        assert panel.next_slice() == listed[1]
    assert tuple(opened.args) == listed[1]
    assert panel.list.selectedItems()[0].row() == 1
    assert panel.list.item(1, 1).text() == str(listed[1][1] + 1)   # counted from 1 on screen
    assert panel.next_slice() == listed[2]                 # shown slices are not offered again

    image = panel.grab().toImage()
    pixels = np.array([[image.pixelColor(x, y).lightness() for x in range(0, image.width(), 4)]
                       for y in range(0, image.height(), 4)])
    assert pixels.std() > 10                               # a drawn table, not a blank widget


def test_reload_from_the_study_and_exhaustion(qtbot, panel, study):
    assert not panel.reload()                              # nothing ranked yet
    stems = [entry.stem for entry in study.scans]
    ranked = pd.DataFrame({"scan": [stem for stem in stems for _ in range(N_SLICES)],
                           "slice": [i for _ in stems for i in range(N_SLICES)],
                           "score": np.linspace(0.9, 0.1, len(stems) * N_SLICES).round(4),
                           "reason": ["members disagree on GM (5 % of the cord)"] * (len(stems) * N_SLICES)})
    write_ranking(ranked, ranking_path(study, "A"))        # as a ranking of an earlier session left it
    assert panel.reload()
    listed = rows(panel)
    assert listed == list(zip(ranked["scan"], ranked["slice"]))
    panel.show_ranking(None)
    assert panel.list.rowCount() == 0
    assert panel.reload()
    assert rows(panel) == listed
    for stem in {stem for stem, _ in listed}:
        label_slice(study, stem, *range(N_SLICES))
    assert panel.next_slice() is None
    assert "labelled" in panel.message_label.text()
