"""What issue 32's figures say, against the model's own numbers: depthwise tiles are their input channel's
filter, the pointwise kernel is the layer's matrix, a flat mosaic is called flat, a grid ends on white, a
finding's Value is named."""

from __future__ import annotations

import reportgen  # noqa: F401  (quiets TensorFlow before it is imported)

import keras
import numpy as np

from reportgen.analyses.kernel_grid import kernel_grid, pointwise_matrix
from reportgen.analyses.patterns import rise
from reportgen.plots import mosaic
from reportgen.sections.findings import value_means


def _separable(multiplier: int) -> keras.layers.SeparableConv2D:
    keras.utils.set_random_seed(0)
    layer = keras.layers.SeparableConv2D(5, 3, depth_multiplier=multiplier)
    layer.build((None, 8, 8, 3))
    return layer


def test_depthwise_tile_i_is_input_channel_is_filter_and_says_so():
    layer = _separable(1)
    grid = kernel_grid(layer, max_filters=64)
    depthwise = keras.ops.convert_to_numpy(layer.depthwise_kernel)  # (3, 3, in=3, multiplier=1)
    assert (
        grid["channel_chosen_by"] == "depthwise"
        and grid["in_channels"] == 3
        and grid["depth_multiplier"] == 1
    )
    for i in range(3):
        np.testing.assert_array_equal(grid["tiles"][i], depthwise[:, :, i, 0])
    assert grid["labels"] == ["0", "1", "2"]
    two = kernel_grid(_separable(2), max_filters=64)
    d2 = keras.ops.convert_to_numpy(_separable(2).depthwise_kernel)
    np.testing.assert_array_equal(two["tiles"][3], d2[:, :, 1, 1])  # tile 3 = input channel 1, its filter 1
    assert two["labels"][3] == "1.1"


def test_the_pointwise_matrix_is_the_layers_own():
    layer = _separable(1)
    pw = pointwise_matrix(layer)
    kernel = keras.ops.convert_to_numpy(layer.pointwise_kernel)  # (1, 1, 3, 5)
    assert (pw["rows"], pw["columns"]) == (3, 5)
    np.testing.assert_array_equal(pw["matrix"], kernel[0, 0])
    assert pointwise_matrix(keras.layers.Conv2D(2, 3)) is None


def test_a_flat_grey_mosaic_is_not_called_structured():
    rng = np.random.default_rng(0)
    flat = np.full((4, 32, 32, 3), 128, np.uint8)
    flat[:, :2] = 255  # bright borders only (padding gives the ascent an edge): nothing inside
    flat[:, 8:24, 8:24] += rng.integers(0, 3, (4, 16, 16, 3)).astype(np.uint8)  # a level or two of noise
    structured = flat.copy()
    structured[1, 10:20, 10:20] = 30
    assert rise.visible(flat).tolist() == [False] * 4
    assert rise.visible(structured).tolist() == [False, True, False, False]


def test_a_grid_ends_on_white_not_on_dark_filler_cells():
    tiles = [np.full((4, 4), 100, np.uint8)] * 5
    out = mosaic(tiles, columns=4, margin=1, fill=0)
    assert out.shape == (11, 21)
    assert (out[6:, 6:] == 255).all()  # the three empty cells of the last row
    assert (out[6:10, 1:5] == 100).all()  # the fifth tile itself


def test_the_value_column_says_what_its_number_is():
    f = {"kind": "untrained_layer", "value": 0.04, "threshold": 0.1, "filter": None, "layer": "conv"}
    assert value_means(f) == "KS statistic"
    assert value_means({**f, "kind": "cam_unfaithful"}) == "lead over the stronger baseline"
    assert value_means({**f, "threshold": None}) == "how many"  # a roll-up row counts
    assert value_means({**f, "value": None}) == ""
