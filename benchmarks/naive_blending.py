"""The widely copied "smooth tiled predictions" code, kept as the benchmark's reference.

A faithful port of ``smooth_tiled_predictions.py`` by Guillaume Chevalier (Vooban, MIT licence,
https://github.com/Vooban/Smoothly-Blend-Image-Patches), used ONLY by benchmarks/blending.py to
measure what aerialseg.predict.blending improves. Its behaviour is kept on purpose, flaws included:

* all 8 rotated / mirrored copies of the padded image exist at once, and for each one every
  window and every prediction is stacked in one array, in float64 (tens of GB at 6000 x 6000);
* windows are placed with ``range(0, len - window + 1, step)`` along the first axis's length for
  both axes, so a non-square image breaks and the last strip of a size that is not a multiple
  of the step is left unpredicted;
* the sum of weights is assumed to be ``subdivisions ** 2`` rather than measured.

Changes: ``scipy.signal.triang`` is now ``scipy.signal.windows.triang``; ``np.expand_dims(w, 3)``
on a 1-D array, which today's NumPy refuses, is written with axis 1 (the same (w, w, 1) window);
the original's ``gc.collect()`` calls and its tqdm bar are left out (they only cost time).
"""

import numpy as np
import scipy.signal


def _spline_window(window_size, power=2):
    """Squared spline (power 2) window function."""
    intersection = int(window_size / 4)
    wind_outer = (abs(2 * (scipy.signal.windows.triang(window_size))) ** power) / 2
    wind_outer[intersection:-intersection] = 0

    wind_inner = 1 - (abs(2 * (scipy.signal.windows.triang(window_size) - 1)) ** power) / 2
    wind_inner[:intersection] = 0
    wind_inner[-intersection:] = 0

    wind = wind_inner + wind_outer
    wind = wind / np.average(wind)
    return wind


def _window_2D(window_size, power=2):
    wind = _spline_window(window_size, power)
    wind = np.expand_dims(np.expand_dims(wind, 1), 1)
    return wind * wind.transpose(1, 0, 2)


def _pad_img(img, window_size, subdivisions):
    aug = int(round(window_size * (1 - 1.0 / subdivisions)))
    more_borders = ((aug, aug), (aug, aug), (0, 0))
    return np.pad(img, pad_width=more_borders, mode="reflect")


def _unpad_img(padded_img, window_size, subdivisions):
    aug = int(round(window_size * (1 - 1.0 / subdivisions)))
    return padded_img[aug:-aug, aug:-aug, :]


def _rotate_mirror_do(im):
    mirrs = []
    mirrs.append(np.array(im))
    mirrs.append(np.rot90(np.array(im), axes=(0, 1), k=1))
    mirrs.append(np.rot90(np.array(im), axes=(0, 1), k=2))
    mirrs.append(np.rot90(np.array(im), axes=(0, 1), k=3))
    im = np.array(im)[:, ::-1]
    mirrs.append(np.array(im))
    mirrs.append(np.rot90(np.array(im), axes=(0, 1), k=1))
    mirrs.append(np.rot90(np.array(im), axes=(0, 1), k=2))
    mirrs.append(np.rot90(np.array(im), axes=(0, 1), k=3))
    return mirrs


def _rotate_mirror_undo(im_mirrs):
    origs = []
    origs.append(np.array(im_mirrs[0]))
    origs.append(np.rot90(np.array(im_mirrs[1]), axes=(0, 1), k=3))
    origs.append(np.rot90(np.array(im_mirrs[2]), axes=(0, 1), k=2))
    origs.append(np.rot90(np.array(im_mirrs[3]), axes=(0, 1), k=1))
    origs.append(np.array(im_mirrs[4])[:, ::-1])
    origs.append(np.rot90(np.array(im_mirrs[5]), axes=(0, 1), k=3)[:, ::-1])
    origs.append(np.rot90(np.array(im_mirrs[6]), axes=(0, 1), k=2)[:, ::-1])
    origs.append(np.rot90(np.array(im_mirrs[7]), axes=(0, 1), k=1)[:, ::-1])
    return np.mean(origs, axis=0)


def _windowed_subdivs(padded_img, window_size, subdivisions, nb_classes, pred_func):
    WINDOW_SPLINE_2D = _window_2D(window_size=window_size, power=2)
    step = int(window_size / subdivisions)
    padx_len = padded_img.shape[0]
    subdivs = []
    for i in range(0, padx_len - window_size + 1, step):
        subdivs.append([])
        for j in range(0, padx_len - window_size + 1, step):
            patch = padded_img[i : i + window_size, j : j + window_size, :]
            subdivs[-1].append(patch)
    subdivs = np.array(subdivs)
    a, b, c, d, e = subdivs.shape
    subdivs = subdivs.reshape(a * b, c, d, e)
    subdivs = pred_func(subdivs)
    subdivs = np.array([patch * WINDOW_SPLINE_2D for patch in subdivs])
    subdivs = subdivs.reshape(a, b, c, d, nb_classes)
    return subdivs


def _recreate_from_subdivs(subdivs, window_size, subdivisions, padded_out_shape):
    step = int(window_size / subdivisions)
    padx_len = padded_out_shape[0]
    y = np.zeros(padded_out_shape)
    a = 0
    for i in range(0, padx_len - window_size + 1, step):
        b = 0
        for j in range(0, padx_len - window_size + 1, step):
            windowed_patch = subdivs[a, b]
            y[i : i + window_size, j : j + window_size] = y[i : i + window_size, j : j + window_size] + windowed_patch
            b += 1  # noqa: SIM113  kept as the original writes it
        a += 1  # noqa: SIM113
    return y / (subdivisions**2)


def predict_img_with_smooth_windowing(input_img, window_size, subdivisions, nb_classes, pred_func):
    """(H, W, nb_classes) float64 probabilities; ``pred_func`` gets ALL windows of one rotation at once."""
    pad = _pad_img(input_img, window_size, subdivisions)
    pads = _rotate_mirror_do(pad)
    res = []
    for pad in pads:
        sd = _windowed_subdivs(pad, window_size, subdivisions, nb_classes, pred_func)
        one_padded_result = _recreate_from_subdivs(
            sd, window_size, subdivisions, padded_out_shape=list(pad.shape[:-1]) + [nb_classes]
        )
        res.append(one_padded_result)
    padded_results = _rotate_mirror_undo(res)
    prd = _unpad_img(padded_results, window_size, subdivisions)
    prd = prd[: input_img.shape[0], : input_img.shape[1], :]
    return prd
