"""Class boundaries in label maps: the ISPRS boundary-free ("eroded") ground truth.

Boundaries drawn by hand are uncertain by a few pixels, so the ISPRS benchmark scores maps on
labels whose class boundaries are eroded away (``top_potsdam_<tile>_label_noBoundary.tif``: a band
around every boundary painted black). The synthetic source makes its own the same way, and the
evaluate stage can erode any labels further (``evaluate.erode_radius``). Free of Keras, so the
download stage can use it.
"""

from __future__ import annotations

import cv2
import numpy as np

from aerialseg.data.palette import IGNORE_INDEX

ISPRS_RADIUS = 3  # px: the ISPRS boundary-free labels leave out a disc of radius 3 around boundaries


def erode_boundaries(label: np.ndarray, radius: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Set every pixel within ``radius`` px of a class boundary to ``ignore_index``.

    This is the ISPRS "eroded" ground truth: boundaries drawn by hand are uncertain by a few
    pixels, so they are not scored. A pixel is on a boundary band when its disc of radius
    ``radius`` holds more than one value, i.e. when the grey dilation (maximum) and erosion
    (minimum) of the label map differ there. Edges of ignored areas count as boundaries too;
    the picture's outer edge does not.
    """
    label = np.asarray(label)
    if radius <= 0:
        return label.copy()
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    band = cv2.dilate(label, disc) != cv2.erode(label, disc)
    return np.where(band, np.asarray(ignore_index, label.dtype), label)
