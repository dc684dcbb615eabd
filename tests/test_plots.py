import cv2
import imageio.v2 as imageio_v2
import imageio.v3 as imageio
import numpy as np
import pandas as pd
import pytest

from aerialseg.data.palette import Palette
from aerialseg.evaluate import figures

PALETTE = Palette(("road", "building", "clutter"), ((255, 255, 255), (0, 0, 255), (255, 0, 0)))


def class_map(shift: int = 0, size: int = 60) -> np.ndarray:
    index = np.zeros((size, size), np.uint8)
    index[10 + shift : 30 + shift, 10:40] = 1
    index[40:55, 5:25] = 2
    return PALETTE.index_to_rgb(index)


def read_png(path) -> np.ndarray:
    picture = cv2.imread(str(path))
    assert picture is not None, f"{path} is not a readable picture"
    return picture


def test_training_curves(tmp_path):
    epochs = np.arange(1, 6)
    history = pd.DataFrame(
        {
            "epoch": epochs,
            "loss": 1 / epochs,
            "accuracy": 0.1 * epochs,
            "jaccard": 0.1 * epochs,
            "val_loss": 1.2 / epochs,
            "val_accuracy": 0.09 * epochs,
            "val_jaccard": 0.08 * epochs,
        }
    )
    figures.save_figure(figures.training_curves_figure(history), tmp_path / "curves.png")
    height, width, _ = read_png(tmp_path / "curves.png").shape
    assert width > 2 * height > 300  # two panels side by side


def test_comparison_shows_four_panels_and_a_legend(tmp_path):
    photo = cv2.GaussianBlur(class_map(), (0, 0), 2)
    figure = figures.comparison_figure(photo, class_map(), class_map(3), class_map(1), PALETTE, "tile 2_10")
    assert len(figure.axes) == 4
    assert [text.get_text() for text in figure.legends[0].get_texts()] == list(PALETTE.names)
    figures.save_figure(figure, tmp_path / "comparison.png")
    height, width, _ = read_png(tmp_path / "comparison.png").shape
    assert width > 3 * height


def test_snapshot_grid_has_a_row_per_epoch_and_a_column_per_mode(tmp_path):
    snapshots = [(epoch, {"plain": class_map(epoch), "smooth": class_map(epoch // 2)}) for epoch in (5, 10, 15)]
    figure = figures.snapshot_grid_figure(class_map(), snapshots, PALETTE)
    assert len(figure.axes) == 9
    assert [axis.get_title() for axis in figure.axes[3:6]] == [
        "epoch 10: ground truth",
        "epoch 10: plain",
        "epoch 10: smooth",
    ]
    figures.save_figure(figure, tmp_path / "grid.png")
    height, width, _ = read_png(tmp_path / "grid.png").shape
    assert height > width  # three rows of three

    plain_only = figures.snapshot_grid_figure(
        class_map(), [(epoch, {"plain": maps["plain"]}) for epoch, maps in snapshots], PALETTE
    )
    assert [axis.get_title() for axis in plain_only.axes[2:4]] == ["epoch 10: ground truth", "epoch 10: plain"]


def test_confusion_heat_map_is_row_normalised(tmp_path):
    cm = np.array([[80, 20, 0], [10, 30, 0], [0, 0, 0]])
    figure = figures.confusion_figure(cm, PALETTE.names, "smooth")
    shares = figure.axes[0].images[0].get_array()
    np.testing.assert_allclose(shares[:2].sum(axis=1), 1)
    assert np.ma.getmaskarray(shares)[2].all()  # no true clutter pixels: a blank row, not a division by zero
    assert [t.get_text() for t in figure.axes[0].texts[:2]] == ["80%", "20%"]
    figures.save_figure(figure, tmp_path / "confusion.png")
    assert read_png(tmp_path / "confusion.png").shape[0] > 200


def test_class_distribution_chart(tmp_path):
    counts = {
        "train": {"road": 600, "building": 300, "clutter": 100},
        "val": {"road": 50, "building": 50, "clutter": 0},
    }
    figures.class_distribution_chart(counts, tmp_path / "distribution.png", PALETTE)
    assert read_png(tmp_path / "distribution.png").shape[1] > 300


def test_progress_animation_has_one_labelled_frame_per_epoch(tmp_path):
    maps = [(epoch, class_map(epoch)) for epoch in (5, 10, 15, 20)]
    frames = figures.progress_frames(class_map(), maps)
    assert all(frame.shape[0] % 16 == 0 and frame.shape[1] % 16 == 0 for frame in frames)
    headers = [frame[:32] for frame in frames]
    assert all((header < 128).any() for header in headers)  # dark text on the white strip
    assert not np.array_equal(headers[0], headers[1])  # a different epoch number

    figures.write_animation(frames, tmp_path / "progress.gif", fps=2)
    figures.write_animation(frames, tmp_path / "progress.mp4", fps=2)

    gif = imageio.imread(tmp_path / "progress.gif", index=None)
    assert gif.shape[:3] == (4, *frames[0].shape[:2])
    with imageio_v2.get_reader(tmp_path / "progress.mp4") as video:
        assert video.count_frames() == 4
        assert video.get_meta_data()["fps"] == 2
        assert video.get_meta_data()["size"] == (frames[0].shape[1], frames[0].shape[0])


def test_progress_frames_shrink_large_maps():
    frames = figures.progress_frames(class_map(size=1000), [(1, class_map(size=1000))], max_side=200)
    assert frames[0].shape[0] <= 200 + 32 + 16


def test_an_animation_without_frames_is_refused_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="progress.gif: no frames"):
        figures.write_animation([], tmp_path / "progress.gif", fps=2)
    assert list(tmp_path.iterdir()) == []
