"""aerialseg.pipeline.paths: each file-name rule is written and read back in one place."""

from aerialseg.pipeline.paths import Layout


def test_snapshot_names_written_are_the_epochs_read_back(tmp_path):
    snapshots = Layout(tmp_path).snapshots
    snapshots.path.mkdir(parents=True)
    for epoch in (10, 5, 100):
        snapshots.weights(epoch).write_bytes(b"w")
        snapshots.map(epoch, "smooth").write_bytes(b"png")
    (snapshots.path / "notes.txt").write_text("not a snapshot")
    assert snapshots.epochs() == [5, 10, 100]
    snapshots.clear()
    assert snapshots.epochs() == [] and list(snapshots.path.iterdir()) == [snapshots.path / "notes.txt"]


def test_every_path_lies_under_the_root(tmp_path):
    layout = Layout(tmp_path)
    assert layout.resized.photo("2_10") == tmp_path / "data/resized/images/top_potsdam_2_10_RGB.tif"
    assert layout.raw.label("2_10") == tmp_path / "data/raw/labels/top_potsdam_2_10_label.tif"
    assert (
        layout.predictions.map("plain", "2_13", ".png") == tmp_path / "data/predictions/plain/top_potsdam_2_13_pred.png"
    )
    assert layout.patches.images("val") == tmp_path / "data/patches/val_images.npy"
    assert layout.confusion_rows("smooth") == tmp_path / "metrics/confusion_smooth.csv"
