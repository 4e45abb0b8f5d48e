"""The numpy region and interpolation operations of the inference path, against SciPy's."""

import numpy as np
import pytest
from scipy import ndimage

from score_gui.mdgru.preprocess import linear_weights, model_grid, sample_crops, to_native
from score_gui.regions import centre_of_mass, label_regions, largest_region


def random_masks():
    rng = np.random.default_rng(5)
    for density in (0.0, 0.2, 0.45, 0.6, 0.9, 1.0):
        for shape in ((1, 1), (1, 17), (23, 1), (31, 29), (64, 64)):
            yield rng.random(shape) < density
    spiral = np.zeros((41, 41), bool)  # one long winding region: the slowest case to converge
    for k in range(0, 20, 2):
        spiral[k, k:41 - k] = spiral[k:41 - k, 40 - k] = spiral[40 - k, k + 2:41 - k] = True
        spiral[k + 2:41 - k, k + 2] = True
    yield spiral


@pytest.mark.parametrize("mask", list(random_masks()))
def test_regions_are_numbered_as_scipy_numbers_them(mask):
    labels, count = label_regions(mask)
    expected, expected_count = ndimage.label(mask)
    assert count == expected_count
    np.testing.assert_array_equal(labels, expected)


def test_largest_region_by_pixels_and_by_weight():
    mask = np.zeros((6, 6), bool)
    mask[0, :3] = True  # 3 pixels
    mask[4:, 4:] = True  # 4 pixels
    assert largest_region(mask).sum() == 4
    weights = np.where(mask, 0.1, 0.0)
    weights[0, :3] = 1.0
    assert largest_region(mask, weights).sum() == 3
    assert not largest_region(np.zeros((3, 3), bool)).any()


def test_centre_of_mass_is_scipys():
    weights = np.random.default_rng(1).random((13, 7))
    np.testing.assert_allclose(centre_of_mass(weights), ndimage.center_of_mass(weights))


def test_a_volume_is_refused():
    with pytest.raises(ValueError, match="2-D"):
        label_regions(np.ones((2, 2, 2), bool))


@pytest.mark.parametrize("outside, mode", [("zero", "constant"), ("nearest", "nearest")])
def test_linear_weights_interpolate_as_map_coordinates(outside, mode):
    rng = np.random.default_rng(2)
    image = rng.standard_normal((19, 23))
    rows = rng.uniform(-3, 22, 40)
    cols = rng.uniform(-3, 26, 30)
    rows[:3], cols[:3] = [0.0, 18.0, 18.0000001], [0.0, 22.0, -1e-9]  # the edges, exactly and just beyond
    ours = linear_weights(rows, 19, outside) @ image @ linear_weights(cols, 23, outside).T
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    theirs = ndimage.map_coordinates(image, [rr, cc], order=1, mode=mode, cval=0.0)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_crops_and_their_way_back_match_the_scipy_resampling():
    rng = np.random.default_rng(3)
    slices = rng.standard_normal((2, 3, 40, 36)).astype(np.float32)
    grids = [model_grid((0.5, 0.6), (40, 36), centre, 0.8, 16) for centre in ((5.0, 30.0), (20.0, 17.5))]
    crops = sample_crops(slices, grids)
    for s, grid in enumerate(grids):
        rr, cc = np.meshgrid(grid.rows, grid.cols, indexing="ij")
        for t in range(3):
            expected = ndimage.map_coordinates(slices[s, t], [rr, cc], order=1, mode="constant", cval=0.0)
            np.testing.assert_allclose(crops[s, t], expected, atol=1e-5)
    probs = rng.dirichlet(np.ones(4), size=(16, 16)).transpose(2, 0, 1).astype(np.float32)
    native = to_native(probs, grids[1], (40, 36))
    box = grids[1].native_box((40, 36))
    u = (np.arange(box[0].start, box[0].stop) - grids[1].rows[0]) / grids[1].step[0]
    v = (np.arange(box[1].start, box[1].stop) - grids[1].cols[0]) / grids[1].step[1]
    uu, vv = np.meshgrid(u, v, indexing="ij")
    inside = (uu >= -0.5) & (uu <= 15.5) & (vv >= -0.5) & (vv <= 15.5)
    for k in range(4):
        expected = ndimage.map_coordinates(probs[k], [uu, vv], order=1, mode="nearest")
        np.testing.assert_allclose(native[k, box[0], box[1]][inside], expected[inside], atol=1e-5)
    np.testing.assert_allclose(native.sum(axis=0), 1.0, atol=1e-5)
    assert native[0, 0, 0] == 1.0  # outside the crop: the outside class for certain
