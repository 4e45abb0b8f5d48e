"""``score-gui`` on the command line: bad input, and ``--screenshot`` producing a real picture."""

from __future__ import annotations

import numpy as np
from PIL import Image

from score_napari._qt.viewer_controller import REFERENCE_COLORS
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
    # Other raters' labels are drawn as contours in their reference colours.
    shares = [colour_share(canvas, colour) for colour in REFERENCE_COLORS[:2]]
    assert max(shares) > 0.002, shares
