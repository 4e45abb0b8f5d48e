"""Dice, Hausdorff and HD95 against an independent brute-force implementation, empty cases,
and ``score evaluate``."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from score_gui.cli import main
from score_gui.metrics import COMPARTMENTS, compare_labels, dice, mask_metrics, with_mean_rows


def brute_force(a, b, spacing):
    """Boundary pixels found by checking the 4 neighbours by hand; all pairwise distances in mm."""
    def edge_coords(mask):
        padded = np.pad(mask, 1)
        inner = padded[1:-1, 1:-1]
        neighbours_in = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
        return np.argwhere(inner & ~neighbours_in) * np.asarray(spacing, float)
    ea, eb = edge_coords(a), edge_coords(b)
    pairwise = np.sqrt(((ea[:, None, :] - eb[None, :, :]) ** 2).sum(-1))
    d_ab, d_ba = pairwise.min(axis=1), pairwise.min(axis=0)
    hd = max(d_ab.max(), d_ba.max())
    hd95 = np.percentile(np.concatenate([d_ab, d_ba]), 95)
    overlap = 2 * (a & b).sum() / (a.sum() + b.sum())
    return overlap, hd, hd95


def random_mask(rng, shape):
    noise = ndimage.gaussian_filter(rng.random(shape), 2.0)
    return noise > np.quantile(noise, rng.uniform(0.5, 0.9))


@pytest.mark.parametrize("seed", range(12))
def test_matches_brute_force_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(12, 40)), int(rng.integers(12, 40)))
    spacing = (float(rng.uniform(0.3, 1.0)), float(rng.uniform(0.3, 1.0)))  # non-square pixels
    a, b = random_mask(rng, shape), random_mask(rng, shape)
    result = mask_metrics(a, b, spacing)
    expected_dice, expected_hd, expected_hd95 = brute_force(a, b, spacing)
    assert result["dice"] == pytest.approx(expected_dice)
    assert result["hausdorff_mm"] == pytest.approx(expected_hd)
    assert result["hd95_mm"] == pytest.approx(expected_hd95)
    assert result["area_pred_mm2"] == pytest.approx(a.sum() * spacing[0] * spacing[1])


def test_anisotropic_spacing_matters():
    a = np.zeros((20, 20), bool); a[5:10, 5:10] = True
    b = np.zeros((20, 20), bool); b[8:13, 5:10] = True  # 3 rows down
    assert mask_metrics(a, b, (0.5, 2.0))["hausdorff_mm"] == pytest.approx(1.5)
    assert mask_metrics(a, b, (2.0, 0.5))["hausdorff_mm"] == pytest.approx(6.0)


def test_empty_cases():
    empty, full = np.zeros((6, 6), bool), np.zeros((6, 6), bool)
    full[2:4, 2:4] = True
    both = mask_metrics(empty, empty, (0.5, 0.5))
    assert (both["dice"], both["hausdorff_mm"], both["hd95_mm"]) == (1.0, 0.0, 0.0)
    one = mask_metrics(full, empty, (0.5, 0.5))
    assert one["dice"] == 0.0 and np.isnan(one["hausdorff_mm"]) and np.isnan(one["hd95_mm"])
    assert dice(full, full) == 1.0


def phantom(shape, shift=0):
    dseg = np.zeros(shape, np.uint8)
    dseg[:, 4:28, 4 + shift:28 + shift] = 1
    dseg[:, 8:24, 8 + shift:24 + shift] = 2
    dseg[:, 12:20, 10 + shift:22 + shift] = 3
    dseg[:, 12:14, 10 + shift:13 + shift] = 4
    dseg[:, 17:20, 10 + shift:13 + shift] = 5
    dseg[:, 15:16, 15 + shift:17 + shift] = 6
    return dseg


def test_compare_labels_rows_and_means():
    truth = phantom((3, 32, 36))
    truth[1] = 0  # an unlabelled truth slice is skipped
    pred = phantom((3, 32, 36), shift=1)
    truth_lesion = np.zeros_like(truth); truth_lesion[0, 9:11, 9:11] = 1
    pred_lesion = np.zeros_like(truth)
    table = compare_labels(pred, truth, (0.6, 0.7), pred_lesion=pred_lesion, truth_lesion=truth_lesion)
    assert sorted(table["slice"].unique()) == [0, 2]
    assert list(dict.fromkeys(table["compartment"])) == list(COMPARTMENTS)
    lesion = table[table["compartment"] == "lesion"].set_index("slice")
    assert lesion.loc[0, "dice"] == 0 and np.isnan(lesion.loc[0, "hausdorff_mm"])
    assert lesion.loc[2, "dice"] == 1 and lesion.loc[2, "hausdorff_mm"] == 0
    cord = table[table["compartment"] == "cord"].iloc[0]
    assert cord["hausdorff_mm"] == pytest.approx(0.7)  # one column shift
    assert cord["area_diff_mm2"] == pytest.approx(0.0)
    full = with_mean_rows(table)
    mean_lesion = full[(full["compartment"] == "lesion") & (full["slice"] == "mean")].iloc[0]
    assert mean_lesion["dice"] == pytest.approx(0.5) and mean_lesion["n_undefined"] == 1
    assert mean_lesion["hausdorff_mm"] == 0.0  # NaN skipped


def save(path, volume_sxy, spacing=(0.6, 0.7)):
    img = nib.Nifti1Image(np.moveaxis(volume_sxy, 0, 2).astype(np.uint8),
                          np.diag([spacing[0], spacing[1], 8.0, 1.0]))
    nib.save(img, str(path))
    return path


def test_cli_evaluate(tmp_path, capsys):
    truth = save(tmp_path / "s_desc-consensus_dseg.nii.gz", phantom((2, 32, 36)))
    pred = save(tmp_path / "s_desc-score_dseg.nii.gz", phantom((2, 32, 36), shift=1))
    out = tmp_path / "metrics.csv"
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth), "-o", str(out)]) == 0
    table = pd.read_csv(out)
    for column in ("dice", "hausdorff_mm", "hd95_mm", "area_pred_mm2", "area_truth_mm2"):
        assert column in table.columns
    assert set(table["compartment"]) == set(COMPARTMENTS) - {"lesion"}  # no lesion maps
    assert (table["slice"] == "mean").sum() == 7 and len(table) == 7 * 3
    cord = table[(table["compartment"] == "cord") & (table["slice"] == "0")].iloc[0]
    assert cord["hausdorff_mm"] == pytest.approx(0.7)  # shifted along file axis 1: pixdim[2]


def test_cli_evaluate_bad_input(tmp_path, capsys):
    truth = save(tmp_path / "t_dseg.nii.gz", phantom((2, 32, 36)))
    other = save(tmp_path / "p_dseg.nii.gz", phantom((2, 32, 40)))
    out = tmp_path / "m.csv"
    assert main(["evaluate", "--pred", str(other), "--truth", str(truth), "-o", str(out)]) == 2
    assert "does not match" in capsys.readouterr().err
    assert main(["evaluate", "--pred", str(tmp_path / "nope.nii.gz"), "--truth", str(truth), "-o",
                 str(out)]) == 2
    assert "file not found" in capsys.readouterr().err
    moved = tmp_path / "moved_dseg.nii.gz"
    nib.save(nib.Nifti1Image(np.moveaxis(phantom((2, 32, 36)), 0, 2), np.diag([0.9, 0.7, 8, 1])), str(moved))
    assert main(["evaluate", "--pred", str(moved), "--truth", str(truth), "-o", str(out)]) == 2
    assert not out.exists()
