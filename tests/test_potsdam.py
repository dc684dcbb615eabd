from aerialseg.potsdam import parse_tile_name, prediction_name, tile_order


def test_potsdam_names():
    assert parse_tile_name("top_potsdam_2_10_RGB.tif") == ("2_10", "RGB")
    assert parse_tile_name("top_potsdam_7_8_label.tif") == ("7_8", "label")
    assert parse_tile_name("readme.txt") is None
    assert prediction_name("2_10", ".png") == "top_potsdam_2_10_pred.png"


def test_tiles_sort_by_number_not_text():
    assert sorted(["2_10", "2_9", "10_1"], key=tile_order) == ["2_9", "2_10", "10_1"]
