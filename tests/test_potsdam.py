from aerialseg.data.potsdam import (
    archive_kinds,
    archive_of,
    from_participants,
    label_name,
    parse_tile_name,
    photo_name,
    prediction_name,
    tile_order,
)


def test_potsdam_names():
    assert parse_tile_name("top_potsdam_2_10_RGB.tif") == ("2_10", "RGB", False)
    assert parse_tile_name("top_potsdam_7_8_label.tif") == ("7_8", "label", False)
    assert parse_tile_name("readme.txt") is None
    assert prediction_name("2_10", ".png") == "top_potsdam_2_10_pred.png"


def test_every_kind_of_the_download_and_its_world_files():
    assert parse_tile_name("4_Ortho_RGBIR/top_potsdam_2_10_RGBIR.tif") == ("2_10", "RGBIR", False)
    assert parse_tile_name("top_potsdam_2_10_IRRG.tfw") == ("2_10", "IRRG", True)
    assert parse_tile_name("top_potsdam_6_7_label_noBoundary.tif") == ("6_7", "label_noBoundary", False)
    assert parse_tile_name("TOP_POTSDAM_2_10_rgb.TIF") == ("2_10", "RGB", False)  # kinds keep one spelling
    assert parse_tile_name("dsm_potsdam_02_10.tif") is None
    assert photo_name("2_10", "IRRG") == "top_potsdam_2_10_IRRG.tif"
    assert label_name("2_10", "no_boundary") == "top_potsdam_2_10_label_noBoundary.tif"


def test_archives_are_known_by_name():
    assert archive_kinds("Potsdam/4_Ortho_RGBIR.zip") == ("RGBIR",)
    assert archive_kinds("Potsdam/5_Labels_for_participants_no_Boundary.zip") == ("label_noBoundary",)
    assert archive_kinds("Potsdam/my_own.zip") is None
    assert archive_of("label") == "5_Labels_all.zip" and archive_of("IRRG") == "3_Ortho_IRRG.zip"
    assert from_participants("Potsdam/5_Labels_for_participants/top_potsdam_4_12_label.tif")
    assert not from_participants("Potsdam/5_Labels_all/top_potsdam_4_12_label.tif")


def test_tiles_sort_by_number_not_text():
    assert sorted(["2_10", "2_9", "10_1"], key=tile_order) == ["2_9", "2_10", "10_1"]
