"""Click correction (score_gui.refine, ``score refine``): labels move toward the truth, nesting
holds, only the chosen slice changes, undo per click, bad clicks exit 2."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from score_gui import labels as lab
from score_gui.cli import main
from score_gui.errors import ScoreInputError
from score_gui.labels import LabelMap, read_labels, validate_labels, write_labels
from score_gui.metrics import dice
from score_gui.phantom import make_scan
from score_gui.click_correction import ClickSession
from score_gui.refine import Click, apply_structure, refine_slice
from score_gui.scan import read_scan


def centre_of_largest_error(current: np.ndarray, truth: np.ndarray) -> Click:
    """The simulated rater: a click at the deepest pixel of the largest error region."""
    best = None
    for error, positive in ((truth & ~current, True), (current & ~truth, False)):
        regions, count = ndimage.label(error)
        for index in range(1, count + 1):
            region = regions == index
            depth = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
            if best is None or region.sum() > best[0]:
                row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
                best = (int(region.sum()), Click(int(row), int(col), positive))
    assert best is not None, "no error left to click on"
    return best[1]


def shrunken_gm(dseg: np.ndarray) -> np.ndarray:
    """Automatic-looking labels: the truth with the gray matter's right half eroded by a pixel."""
    gm = lab.structure_mask(dseg, "gm")
    cols = np.nonzero(gm)[1]
    side = np.zeros_like(gm)
    side[:, int(np.median(cols)):] = True
    lost = gm & side & ~ndimage.binary_erosion(gm)
    wrong = dseg.copy()
    wrong[lost] = lab.WM
    return wrong


@pytest.fixture(scope="module")
def synthetic():
    scan, truth, _ = make_scan("hc", seed=11, n_slices=2, shape=(96, 96))
    return scan, truth


def test_clicks_move_the_gm_border_toward_the_truth_and_keep_nesting(synthetic):
    scan, truth = synthetic
    s = 1
    true_gm = lab.structure_mask(truth.dseg[s], "gm")
    start = shrunken_gm(truth.dseg[s])
    session = ClickSession(scan.images[s], start, truth.lesion[s], "gm", scan.pixel_spacing)
    scores = [dice(lab.structure_mask(start, "gm"), true_gm)]
    current = start
    for _ in range(3):
        current, lesion = session.add(centre_of_largest_error(lab.structure_mask(current, "gm"), true_gm))
        scores.append(dice(lab.structure_mask(current, "gm"), true_gm))
        assert validate_labels(current[None], lesion[None]) == []
    assert scores[-1] > scores[0] + 0.03, scores
    assert scores[1] > scores[0], scores
    # the cord and canal are untouched; new gray matter takes the horn values of its neighbours
    assert np.array_equal(lab.structure_mask(current, "cord"), lab.structure_mask(start, "cord"))
    assert set(np.unique(current[lab.structure_mask(current, "gm")])) <= set(np.unique(truth.dseg[s][true_gm]))
    assert np.array_equal(lesion, truth.lesion[s])


def test_undo_per_click_gives_back_the_labels_before_it(synthetic):
    scan, truth = synthetic
    start = shrunken_gm(truth.dseg[0])
    true_gm = lab.structure_mask(truth.dseg[0], "gm")
    session = ClickSession(scan.images[0], start, None, "gm", scan.pixel_spacing)
    first, _ = session.add(centre_of_largest_error(lab.structure_mask(start, "gm"), true_gm))
    second, _ = session.add(centre_of_largest_error(lab.structure_mask(first, "gm"), true_gm))
    assert not np.array_equal(first, second)
    assert np.array_equal(session.undo()[0], first)
    assert np.array_equal(session.undo()[0], start)
    assert session.clicks == [] and np.array_equal(session.undo()[0], start)


def test_a_refused_click_leaves_the_session_as_it_was(synthetic):
    scan, truth = synthetic
    session = ClickSession(scan.images[0], truth.dseg[0], None, "gm", scan.pixel_spacing)
    with pytest.raises(ScoreInputError, match="refine the cord first"):
        session.add(Click(0, 0, True))
    assert session.clicks == [] and np.array_equal(session.result[0], truth.dseg[0])


def test_a_negative_click_in_the_cord_shrinks_it_and_what_it_held():
    dseg = np.zeros((20, 20), np.uint8)
    dseg[2:18, 2:18] = lab.CSF
    dseg[4:16, 4:16] = lab.WM
    dseg[7:13, 5:15] = lab.GM
    lesion = np.zeros_like(dseg)
    lesion[10:15, 12:15] = 1
    shrunk = lab.structure_mask(dseg, "cord")
    shrunk[:, 12:] = False
    new_dseg, new_lesion = apply_structure(dseg, lesion, "cord", shrunk)
    assert np.array_equal(lab.structure_mask(new_dseg, "cord"), shrunk)
    assert np.array_equal(lab.structure_mask(new_dseg, "canal"), lab.structure_mask(dseg, "canal"))
    assert validate_labels(new_dseg[None], new_lesion[None]) == []
    assert not new_lesion.any()


def test_lesion_clicks_add_a_lesion_inside_the_cord_only():
    dseg = np.zeros((24, 24), np.uint8)
    dseg[3:21, 3:21] = lab.CSF
    dseg[5:19, 5:19] = lab.WM
    images = np.where(dseg == lab.WM, 1.0, 0.2)[None].astype(np.float32)
    images[0, 8:12, 8:12] = 2.0  # a bright lesion in the white matter
    new_dseg, lesion = refine_slice(images, dseg, None, "lesion", [Click(10, 10, True)], (0.7, 0.7))
    assert np.array_equal(new_dseg, dseg)
    assert lesion[10, 10] == 1 and not lesion[~lab.structure_mask(dseg, "cord")].any()
    with pytest.raises(ScoreInputError, match="inside the cord"):
        refine_slice(images, dseg, None, "lesion", [Click(1, 1, True)], (0.7, 0.7))


# ---------------------------------------------------------------------------------------
# score refine
# ---------------------------------------------------------------------------------------

@pytest.fixture()
def demo(tmp_path):
    """A demo scan, its truth, and automatic-looking labels with the GM of slice 1 too small."""
    assert main(["demo", str(tmp_path / "demo"), "--seed", "7", "--slices", "2"]) == 0
    scan_path = next((tmp_path / "demo").glob("*_amira.nii.gz"))
    scan = read_scan(scan_path)
    truth = read_labels(next((tmp_path / "demo").glob("*_desc-truth_dseg.nii.gz")), scan)
    wrong = truth.dseg.copy()
    wrong[1] = shrunken_gm(truth.dseg[1])
    written = write_labels(scan, LabelMap(wrong, truth.lesion.copy()), tmp_path / "auto", "auto")
    return scan_path, scan, truth, written["dseg"], written["lesion"]


def test_score_refine_changes_only_the_slice_and_moves_it_toward_the_truth(demo, tmp_path, capsys):
    scan_path, scan, truth, dseg_path, lesion_path = demo
    before = read_labels(dseg_path, scan)
    true_gm = lab.structure_mask(truth.dseg[1], "gm")
    first = centre_of_largest_error(lab.structure_mask(before.dseg[1], "gm"), true_gm)
    out = tmp_path / "fixed" / "x_desc-raterA_dseg.nii.gz"
    out.parent.mkdir()
    assert main(["refine", str(scan_path), "--dseg", str(dseg_path), "--slice", "1", "--structure", "gm",
                 "--click", str(first), "-o", str(out)]) == 0
    assert "slice 1 gm" in capsys.readouterr().out
    after = read_labels(out, scan)
    assert np.array_equal(after.dseg[0], before.dseg[0])
    gained = dice(lab.structure_mask(after.dseg[1], "gm"), true_gm) - dice(lab.structure_mask(before.dseg[1], "gm"), true_gm)
    assert gained > 0.01
    assert validate_labels(after.dseg, after.lesion) == []
    # the lesion map came along beside the output, unchanged
    assert (out.parent / "x_desc-raterA_lesion.nii.gz").exists()
    assert np.array_equal(after.lesion, before.lesion)
    assert (out.parent / "dseg.tsv").exists()


def test_score_refine_with_the_models_prior(demo, tmp_path, capsys):
    """--prior default: the shipped ensemble segments the slice and weighs in; the click
    still moves the GM toward the truth, only slice 1 changes; a folder that is not a
    model is refused with one line and nothing written."""
    scan_path, scan, truth, dseg_path, _ = demo
    before = read_labels(dseg_path, scan)
    true_gm = lab.structure_mask(truth.dseg[1], "gm")
    first = centre_of_largest_error(lab.structure_mask(before.dseg[1], "gm"), true_gm)
    out = tmp_path / "prior_dseg.nii.gz"
    assert main(["refine", str(scan_path), "--dseg", str(dseg_path), "--slice", "1", "--structure", "gm",
                 "--click", str(first), "--prior", "default", "-o", str(out)]) == 0
    after = read_labels(out, scan)
    assert np.array_equal(after.dseg[0], before.dseg[0])
    assert dice(lab.structure_mask(after.dseg[1], "gm"), true_gm) > dice(lab.structure_mask(before.dseg[1], "gm"), true_gm)
    capsys.readouterr()
    bad = tmp_path / "not_models"
    bad.mkdir()
    out2 = tmp_path / "prior2_dseg.nii.gz"
    assert main(["refine", str(scan_path), "--dseg", str(dseg_path), "--slice", "1", "--structure", "gm",
                 "--click", str(first), "--prior", str(bad), "-o", str(out2)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and str(bad) in err and not out2.exists()


@pytest.mark.parametrize("click, structure, slice_, phrase", [
    ("500,40,+", "gm", "1", "outside the slice"),
    ("-1,40,-", "gm", "1", "outside the slice"),
    ("40,40", "gm", "1", "is not ROW,COL,+"),
    ("a,b,+", "gm", "1", "is not ROW,COL,+"),
    ("40,40,x", "gm", "1", "is not ROW,COL,+"),
    ("2,2,+", "gm", "1", "refine the cord first"),
    ("2,2,+", "wm", "1", "invalid choice: 'wm'"),
    ("40,40,+", "gm", "2", "has slices 0-1"),
])
def test_score_refine_bad_clicks_exit_2_with_one_line(demo, tmp_path, capsys, click, structure, slice_, phrase):
    scan_path, _, _, dseg_path, _ = demo
    out = tmp_path / "out_dseg.nii.gz"
    code = main(["refine", str(scan_path), "--dseg", str(dseg_path), "--slice", slice_, "--structure", structure,
                 f"--click={click}", "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error:") and "\n" not in err and phrase in err, err
    assert not out.exists()


def test_score_refine_refuses_to_overwrite_the_input_unless_forced(demo, capsys):
    scan_path, scan, truth, dseg_path, _ = demo
    original = dseg_path.read_bytes()
    true_gm = lab.structure_mask(truth.dseg[1], "gm")
    click = centre_of_largest_error(lab.structure_mask(read_labels(dseg_path, scan).dseg[1], "gm"), true_gm)
    args = ["refine", str(scan_path), "--dseg", str(dseg_path), "--slice", "1", "--structure", "gm",
            "--click", str(click), "-o", str(dseg_path)]
    assert main(args) == 2
    assert "is one of the command's inputs" in capsys.readouterr().err
    assert dseg_path.read_bytes() == original
    assert main(args + ["--force"]) == 0
    assert dseg_path.read_bytes() != original
    kept = list((dseg_path.parent / ".history").glob("*_" + dseg_path.name))
    assert any(p.read_bytes() == original for p in kept)
