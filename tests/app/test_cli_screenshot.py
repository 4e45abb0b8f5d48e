"""``score-gui`` on the command line: bad input, and ``--screenshot`` producing a real picture."""

from __future__ import annotations

import numpy as np
from PIL import Image

from score_studio.main import main


def test_missing_input_exits_2_with_one_line(capsys, tmp_path):
    assert main([str(tmp_path / "nothing.nii.gz"), "--screenshot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "nothing.nii.gz" in err[0]
    assert main(["--screenshot", str(tmp_path / "no" / "such" / "x.png")]) == 2


def colour_share(rgb: np.ndarray, hex_colour: str, tolerance: int = 40) -> float:
    """Fraction of pixels within ``tolerance`` (per channel) of a colour."""
    target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return float((np.abs(rgb.astype(int) - target).max(axis=-1) <= tolerance).mean())


def test_screenshot_of_a_study_shows_images_and_label_colours(qapp, tmp_path, study_builder):
    study = study_builder(tmp_path / "study", n_hc=0, n_ms=1, raters=("B",))
    out = tmp_path / "shot.png"
    assert main([str(study.root), "--screenshot", str(out), "--mode", "annotate"]) == 0
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape[0] >= 900 and image.shape[1] >= 1600
    assert image.std() > 25                                   # not blank
    canvas = image[100:-60, 350:-450]                          # the viewer area
    grey = np.abs(canvas[..., 0].astype(int) - canvas[..., 2]) < 8
    assert grey.mean() > 0.3 and canvas[grey].std() > 20       # MR images with structure
    # Rater B's labels (nobody else's: no rater is identified) are drawn as outlines in the
    # paper's colours: the gold canal/cord border and the red anterior horns.
    from score_gui.labels import ANTERIOR_HORNS, CSF, LABEL_COLORS

    assert colour_share(canvas, LABEL_COLORS[CSF]) > 0.0005
    assert colour_share(canvas, LABEL_COLORS[ANTERIOR_HORNS]) > 0.00005


def test_demo_study_opens_in_qc_mode_with_a_grid_of_contours(qapp, tmp_path, monkeypatch):
    """``score-gui --demo --mode qc``: the reviewer's first look is the grid with the ensemble's
    contours (the demo study carries the default models' desc-score), even before they
    have identified themselves."""
    import score_gui.phantom.study as phantom_study
    from score_gui.labels import LABEL_COLORS
    from score_gui.study import Study

    real_make_study = phantom_study.make_study
    monkeypatch.setenv("SCORE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(phantom_study, "make_study", lambda root, **kw: real_make_study(
        root, n_hc=1, n_ms=0, n_slices=3, shape=(96, 96), **kw))        # small, same code path
    out = tmp_path / "qc.png"
    assert main(["--demo", "--mode", "qc", "--screenshot", str(out)]) == 0
    demo = Study.open(tmp_path / "home" / "demo-study")
    assert all("score" in entry.label_sources() for entry in demo.scans)
    image = np.asarray(Image.open(out).convert("RGB"))
    dock = image[:, int(image.shape[1] * 0.65):]                         # the QC panel
    assert colour_share(dock, LABEL_COLORS[1]) > 0.001                   # cord contours on the tiles
    assert colour_share(dock, LABEL_COLORS[4]) > 0.0002                  # and anterior horns
