"""Whole-tile prediction: exact reconstruction, window layout, weights, streaming."""

import tracemalloc

import numpy as np
import pytest

from aerialseg import d4
from aerialseg.pipeline.params import PredictParams
from aerialseg.predict.blending import (
    Blending,
    plan_grid,
    predict_probabilities,
    probabilities_to_index,
    stream_probabilities,
    weight_sums,
    window_profile,
    window_weights,
)

CLASSES = 6
WINDOW = 32
SIZES = [(1, 1), (5, 7), (64, 64), (100, 37), (300, 513)]


def channel_argmax_one_hot(batch: np.ndarray) -> np.ndarray:
    """Per pixel: one-hot of the brightest channel. A per-pixel function commutes with every
    flip and rotation, so correctly undone TTA and correctly placed windows reproduce it exactly."""
    return np.eye(CLASSES, dtype=np.float32)[batch.argmax(axis=-1)]


def random_image(shape, channels=3, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape + (channels,), dtype=np.uint8)


@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("mode, tta", [("plain", "none")] + [("smooth", tta) for tta in d4.TTA_SETS])
def test_per_pixel_predictor_is_reconstructed_exactly(shape, mode, tta):
    image = random_image(shape)
    probabilities = predict_probabilities(
        image, channel_argmax_one_hot, Blending(window=WINDOW, mode=mode, tta=tta), CLASSES
    )
    assert probabilities.shape == shape + (CLASSES,)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, channel_argmax_one_hot(image.astype(np.float32)), atol=1e-5)


def test_hann_window_reconstructs_exactly_too():
    image = random_image((70, 45))
    probabilities = predict_probabilities(
        image, channel_argmax_one_hot, Blending(window=WINDOW, window_function="hann", subdivisions=4), CLASSES
    )
    np.testing.assert_allclose(probabilities, channel_argmax_one_hot(image.astype(np.float32)), atol=1e-5)


def test_asymmetric_value_map_lands_where_it_came_from():
    """A value channel whose classes form an asymmetric pattern: any wrongly undone rotation or flip
    would move classes to other pixels."""
    rows, cols = np.mgrid[0:90, 0:61]
    image = ((rows * 7 + cols * 3 + rows * cols) % CLASSES)[..., None].astype(np.uint8)

    def one_hot_of_value(batch):
        return np.eye(CLASSES, dtype=np.float32)[batch[..., 0].astype(int)]

    index = probabilities_to_index(
        predict_probabilities(image, one_hot_of_value, Blending(window=WINDOW, tta="d4"), CLASSES)
    )
    np.testing.assert_array_equal(index, image[..., 0])


def top_half_of_window(batch: np.ndarray) -> np.ndarray:
    """Class 0 in the top half of each window, class 1 below: depends on position, not on pixels."""
    window = batch.shape[1]
    rows = np.arange(window)[:, None] < window // 2
    classes = np.broadcast_to(np.where(rows, 0, 1), batch.shape[:3])
    return np.eye(CLASSES, dtype=np.float32)[classes]


def test_plain_windows_start_at_the_image_corner_and_do_not_overlap():
    probabilities = predict_probabilities(
        random_image((100, 37)), top_half_of_window, Blending(window=WINDOW, mode="plain"), CLASSES
    )
    index = probabilities_to_index(probabilities)
    expected_rows = np.where(np.arange(100) % WINDOW < WINDOW // 2, 0, 1)
    np.testing.assert_array_equal(index, np.broadcast_to(expected_rows[:, None], (100, 37)))


@pytest.mark.parametrize("tta", ["flips", "d4"])
def test_tta_averages_every_transform_after_undoing_it(tta):
    """Undone flips map a window's top half onto its bottom half, so averaging them gives exactly
    1/2 for each class at every pixel; without TTA it does not."""
    image = random_image((80, 48))
    averaged = predict_probabilities(image, top_half_of_window, Blending(window=WINDOW, tta=tta), CLASSES)
    np.testing.assert_allclose(averaged[..., :2], 0.5, atol=1e-5)
    single = predict_probabilities(image, top_half_of_window, Blending(window=WINDOW, tta="none"), CLASSES)
    assert np.abs(single[..., 0] - 0.5).max() > 0.1


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (100, 37), (129, 64)])
@pytest.mark.parametrize("subdivisions", [1, 2, 3, 4])
@pytest.mark.parametrize("function", ["spline", "hann"])
def test_weight_map_is_positive_and_covers_each_pixel_with_a_full_set_of_windows(shape, subdivisions, function):
    grid = plan_grid(*shape, WINDOW, subdivisions)
    weight_map = np.outer(*weight_sums(grid, window_profile(WINDOW, function)))
    assert weight_map.shape == shape and (weight_map > 0).all()
    coverage = np.outer(*weight_sums(grid, np.ones(WINDOW, np.float32)))  # windows over each pixel
    step = WINDOW // subdivisions  # 32 / 3 is not whole: then some pixels lie in 4 windows per axis
    assert coverage.min() >= subdivisions**2 and coverage.max() <= (-(-WINDOW // step)) ** 2
    if WINDOW % subdivisions == 0:
        np.testing.assert_array_equal(coverage, subdivisions**2)


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (100, 37)])
def test_strips_are_the_rows_of_the_mirror_padded_image(shape):
    image = random_image(shape)
    grid = plan_grid(*shape, WINDOW, 2)
    after = [padded - grid.border - side for padded, side in zip(grid.padded_shape, shape)]
    padded = np.pad(image, [(grid.border, after[0]), (grid.border, after[1]), (0, 0)], mode="reflect")
    for y in grid.starts(0):
        np.testing.assert_array_equal(grid.padded_rows(image, y), padded[y : y + WINDOW])


def test_spline_windows_half_a_window_apart_sum_to_a_constant():
    profile = window_profile(WINDOW)
    halves = profile[: WINDOW // 2] + profile[WINDOW // 2 :]
    np.testing.assert_allclose(halves, halves[0], rtol=1e-5)
    assert profile.min() > 0 and profile.argmax() in (WINDOW // 2 - 1, WINDOW // 2)


def test_window_weights_are_unchanged_by_flips_and_rotations():
    weights = window_weights(window_profile(WINDOW))
    for turned in (np.rot90(weights), weights[::-1], weights[:, ::-1]):
        np.testing.assert_array_equal(turned, weights)


def test_blended_probabilities_sum_to_one_everywhere():
    rng = np.random.default_rng(1)

    def random_softmax(batch):
        logits = rng.normal(size=batch.shape[:3] + (CLASSES,)).astype(np.float32)
        return np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)

    probabilities = predict_probabilities(random_image((77, 130)), random_softmax, Blending(window=WINDOW), CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1, atol=1e-5)


class CountingPredictor:
    def __init__(self):
        self.calls, self.windows, self.largest_batch = 0, 0, 0

    def __call__(self, batch):
        self.calls += 1
        self.windows += len(batch)
        self.largest_batch = max(self.largest_batch, len(batch))
        return channel_argmax_one_hot(batch)


@pytest.mark.parametrize(
    "mode, tta, expected_windows",
    [
        ("plain", "d4", 4 * 2),  # ceil(100 / 32) x ceil(37 / 32); plain ignores TTA
        # step 16, border 16: 132 px -> 8 rows (last ends at 144), 69 px -> 4 columns (last ends at 80)
        ("smooth", "none", 8 * 4),
        ("smooth", "flips", 8 * 4 * 4),
        ("smooth", "d4", 8 * 4 * 8),
    ],
)
def test_forward_passes_are_one_per_window_and_transform(mode, tta, expected_windows):
    predictor = CountingPredictor()
    predict_probabilities(
        random_image((100, 37)), predictor, Blending(window=WINDOW, mode=mode, tta=tta, batch_size=16), CLASSES
    )
    assert predictor.windows == expected_windows
    assert predictor.calls == -(-expected_windows // 16)


def test_predictor_never_gets_more_than_batch_size_windows():
    predictor = CountingPredictor()
    predict_probabilities(random_image((150, 90)), predictor, Blending(window=WINDOW, batch_size=5), CLASSES)
    assert predictor.largest_batch == 5


def test_memory_peak_is_the_accumulator_plus_one_batch_not_all_windows():
    image = random_image((600, 600))
    grid = plan_grid(600, 600, WINDOW, 2)
    accumulator = 600 * 600 * CLASSES * 4
    all_windows = grid.count() * 8 * WINDOW * WINDOW * CLASSES * 4  # what holding every prediction costs
    tracemalloc.start()
    predict_probabilities(image, channel_argmax_one_hot, Blending(window=WINDOW, tta="d4", batch_size=16), CLASSES)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * accumulator < all_windows / 10


def test_predictor_returning_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"predictor returned shape \(\d+, 32, 32, 5\)"):
        predict_probabilities(
            random_image((40, 40)), lambda batch: np.zeros(batch.shape[:3] + (5,)), Blending(window=WINDOW), CLASSES
        )


@pytest.mark.parametrize(
    "argument, message",
    [
        ({"mode": "blurry"}, "unknown prediction mode 'blurry'"),
        ({"tta": "d8"}, "unknown test-time augmentation 'd8'"),
        ({"window_function": "gauss"}, "unknown window function 'gauss'"),
        ({"subdivisions": 0}, "subdivisions must be between 1 and the window size 32"),
        ({"batch_size": 0}, "must be positive"),
    ],
)
def test_bad_blending_settings_are_refused_when_made(argument, message):
    with pytest.raises(ValueError, match=message):
        Blending(window=WINDOW, **argument)


def test_blending_from_params_takes_every_predict_setting():
    params = PredictParams(subdivisions=4, window_function="hann", tta="flips", batch_size=3)
    assert Blending.from_params(params, WINDOW, "plain") == Blending(
        mode="plain", window=WINDOW, subdivisions=4, window_function="hann", tta="flips", batch_size=3
    )


def test_a_two_dimensional_array_is_refused():
    with pytest.raises(ValueError, match=r"expected an H x W x C image, got an array of shape \(40, 40\)"):
        predict_probabilities(np.zeros((40, 40)), channel_argmax_one_hot, Blending(window=WINDOW), CLASSES)


def test_probabilities_to_index_picks_the_most_probable_class():
    probabilities = np.zeros((2, 3, CLASSES), np.float32)
    probabilities[..., 4] = 0.6
    probabilities[1, 2, 1] = 0.9
    index = probabilities_to_index(probabilities)
    assert index.dtype == np.uint8
    np.testing.assert_array_equal(index, [[4, 4, 4], [4, 4, 1]])


def test_progress_bar_counts_windows(capsys):
    predict_probabilities(
        random_image((40, 40)), channel_argmax_one_hot, Blending(window=WINDOW, mode="plain"), CLASSES, progress=True
    )
    assert "plain windows" in capsys.readouterr().err


def window_dependent(batch: np.ndarray) -> np.ndarray:
    """Softmax of the brightness plus each pixel's place in its window: every window gives other
    numbers for the same pixel, so only the exact same windows, weights and order reproduce it."""
    window = batch.shape[1]
    place = (np.arange(window)[:, None] + 2 * np.arange(window)[None, :]) / (3 * window)
    logits = (batch.astype(np.float32).mean(axis=-1) / 255 + place)[..., None] * np.arange(CLASSES, dtype=np.float32)
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


class RecordingRows:
    """An image that is only ever read by rows, as a raster on disk is; records every read."""

    def __init__(self, image: np.ndarray):
        self.image, self.shape, self.reads = image, image.shape, []

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        assert rows.min() >= 0 and rows.max() < self.shape[0], "rows outside the image are mirrored, never read"
        assert (np.diff(rows) > 0).all(), "rows are asked for in ascending order, once each"
        self.reads.append(rows)
        return self.image[rows]


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (300, 37), (129, 200)])
@pytest.mark.parametrize("mode, subdivisions, batch_size", [("plain", 1, 16), ("smooth", 2, 16), ("smooth", 4, 5)])
def test_streamed_rows_are_the_whole_image_prediction_band_by_band(shape, mode, subdivisions, batch_size):
    image = random_image(shape)
    options = dict(mode=mode, subdivisions=subdivisions, tta="flips", batch_size=batch_size)
    source = RecordingRows(image)
    pieces = list(stream_probabilities(source, window_dependent, Blending(window=WINDOW, **options), CLASSES))
    firsts = [first for first, _ in pieces]
    assert firsts == sorted(firsts) and firsts[0] == 0
    assert [first + len(rows) for first, rows in pieces[:-1]] == firsts[1:]  # no row missing or repeated
    assert sum(len(rows) for _, rows in pieces) == shape[0]
    if shape[0] > 2 * WINDOW:
        assert len(pieces) > 1  # finished rows come out while the windows go on
    whole = predict_probabilities(image, window_dependent, Blending(window=WINDOW, **options), CLASSES)
    np.testing.assert_array_equal(np.concatenate([rows for _, rows in pieces]), whole)
    assert max(len(rows) for rows in source.reads) <= WINDOW  # one window's height of rows at a time
    assert sum(len(rows) for rows in source.reads) <= subdivisions * shape[0] + 2 * WINDOW


def test_streaming_holds_a_few_windows_of_rows_not_the_image():
    """A tall image generated row by row on request: the stream keeps the rows that windows still
    add to, never the whole image's probabilities."""
    height, width = 2000, 400

    class GeneratedRows:
        shape = (height, width, 3)

        def __getitem__(self, rows):
            return np.broadcast_to(
                (rows[:, None, None] * 7 + np.arange(width)[None, :, None] * 3) % 256, (len(rows), width, 3)
            )

    whole_map = height * width * CLASSES * 4
    tracemalloc.start()
    finished = 0
    for first, rows in stream_probabilities(
        GeneratedRows(), channel_argmax_one_hot, Blending(window=WINDOW, tta="none"), CLASSES
    ):
        assert first == finished
        finished += len(rows)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert finished == height
    assert peak < whole_map / 8  # about a batch of windows and their predictions, and 2 windows of rows


def test_a_bad_image_is_refused_before_the_stream_starts():
    with pytest.raises(ValueError, match="expected an H x W x C image"):
        stream_probabilities(np.zeros((40, 40)), channel_argmax_one_hot, Blending(window=WINDOW), CLASSES)
