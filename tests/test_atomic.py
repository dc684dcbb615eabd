import pytest

from aerialseg.pipeline.atomic import PARTIAL, atomic_dir, atomic_file


def test_atomic_file_keeps_old_content_on_failure(tmp_path):
    target = tmp_path / "m.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("stage failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_atomic_dir_replaces_only_on_success(tmp_path):
    out = tmp_path / "raw"
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError
    assert sorted(p.name for p in out.iterdir()) == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_leftovers_of_a_killed_writer_go_when_the_output_is_written_again(tmp_path):
    killed_file = tmp_path / f".epoch_002.weights{PARTIAL}abc.weights.h5"  # SIGKILL: no cleanup ran
    killed_folder = tmp_path / f".raw{PARTIAL}xyz"
    killed_file.write_text("half")
    killed_folder.mkdir()
    other = tmp_path / f".epoch_003.weights{PARTIAL}def.weights.h5"
    other.write_text("half, of another output")
    with atomic_file(tmp_path / "epoch_002.weights.h5") as tmp:
        assert tmp.name.endswith(".weights.h5")  # Keras insists on the suffix
        tmp.write_text("whole")
    with atomic_dir(tmp_path / "raw"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([other.name, "epoch_002.weights.h5", "raw"])
