import json

import pytest

from aerialseg.data.splits import (
    SplitError,
    read_split,
    split_tiles,
)

TILES = [f"2_{i}" for i in range(10, 20)]


def test_fraction_split_is_by_tile_seeded_and_complete():
    splits = split_tiles(TILES, [], [], [], 0.2, 0.2, seed=3)
    assert sorted(sum(splits.values(), [])) == sorted(TILES)
    assert len(splits["val"]) == 2 and len(splits["test"]) == 2
    assert splits == split_tiles(TILES, [], [], [], 0.2, 0.2, seed=3)
    assert splits != split_tiles(TILES, [], [], [], 0.2, 0.2, seed=4)


def test_listed_split():
    splits = split_tiles(TILES, ["2_10", "2_11"], ["2_12"], ["2_13"], 0.2, 0.2, 0)
    assert splits == {"train": ["2_10", "2_11"], "val": ["2_12"], "test": ["2_13"]}
    with pytest.raises(SplitError, match="2_99"):
        split_tiles(TILES, ["2_99"], ["2_12"], ["2_13"], 0.2, 0.2, 0)
    with pytest.raises(SplitError, match="more than one split"):
        split_tiles(TILES, ["2_10"], ["2_10"], ["2_13"], 0.2, 0.2, 0)


@pytest.mark.parametrize("lists, fractions", [((["2_10"], [], ["2_11"]), (0.2, 0.2)), (([], [], []), (0.0, 0.2))])
def test_empty_split_is_an_error(lists, fractions):
    with pytest.raises(SplitError, match="'val'"):
        split_tiles(TILES, *lists, *fractions, 0)


def test_read_split_names_the_file_and_the_empty_split(tmp_path):
    path = tmp_path / "splits.json"
    with pytest.raises(FileNotFoundError, match="splits.json: no such file"):
        read_split(path, "test")
    path.write_text(json.dumps({"train": ["2_10"], "val": ["2_11"], "test": []}))
    with pytest.raises(SplitError, match="splits.json: no test tiles"):
        read_split(path, "test")
    assert read_split(path, "val") == ["2_11"]
