"""No-data in photos: pixels a nodata value or an alpha band marks empty are ignored in the labels of
data/raw and data/resized, kept as the photo's mask (without the alpha band), and never counted."""

import numpy as np
import pytest
from conftest import repo_params

from aerialseg.data.palette import IGNORE_INDEX
from aerialseg.data.patches import tile_class_counts
from aerialseg.data.resize import resize_dataset
from aerialseg.data.sources import download_raw
from aerialseg.pipeline.paths import Layout
from aerialseg.raster.pictures import read_image, read_label, read_photo
from aerialseg.testing.pairs_folder import empty_corner, write_pairs_folder

SIZE, CORNER = 64, 16  # px of a photo, and of its empty bottom-right corner
EMPTIED = {"mosaic": "nodata", "cutout": "alpha"}


@pytest.fixture
def stored(tmp_path):
    """A pairs folder of a photo with nodata 0 corners and one with an alpha band, downloaded and
    resized by half: (layout, params, each tile's true class-index map)."""
    truths = write_pairs_folder(tmp_path, list(EMPTIED), SIZE, georeferenced=True)
    for stem, how in EMPTIED.items():
        empty_corner(tmp_path / "images" / f"{stem}.tif", CORNER, how)
    params = repo_params({"data": {"layout": "pairs", "source": "local"}, "evaluate": {"labels": "full"}})
    layout = Layout(tmp_path)
    download_raw(layout, params.data, params.palette, "full")
    resize_dataset(layout.raw, layout.resized, params.palette, scale=0.5, workers=1)
    return layout, params, truths


@pytest.mark.parametrize("tile", list(EMPTIED))
def test_labels_under_empty_photo_pixels_are_ignored_in_raw_and_resized(stored, tile):
    layout, params, truths = stored
    for folder, corner in ((layout.raw, CORNER), (layout.resized, CORNER // 2)):
        label = read_label(folder.label(tile), params.palette)
        assert (label[-corner:, -corner:] == IGNORE_INDEX).all()
        assert (label[:-corner] != IGNORE_INDEX).all()  # nothing else is left out
        photo, valid = read_photo(folder.photo(tile))
        assert photo.shape[2] == 3 and read_image(folder.photo(tile)).shape[2] == 3  # no alpha band stored
        assert not valid[-corner:, -corner:].any() and valid[:-corner].all()
    label = read_label(layout.raw.label(tile), params.palette)
    assert np.array_equal(label[:-CORNER], truths[tile][:-CORNER])


def test_class_counts_leave_empty_pixels_out(stored):
    layout, params, _ = stored
    counts = tile_class_counts(layout.resized, list(EMPTIED), params.palette, ignore_unknown=False)
    side, corner = SIZE // 2, CORNER // 2
    assert counts.sum() == len(EMPTIED) * (side * side - corner * corner)
