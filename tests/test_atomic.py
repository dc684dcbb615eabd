import pytest
from output_helpers import Writer

from aerialseg.pipeline.atomic import ASIDE, HOST, OWNED, PARTIAL, atomic_dir, atomic_file, owner, remove_stale


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
    with atomic_dir(out) as tmp:
        (tmp / "b").write_text("2")
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "c").write_text("3")
        raise RuntimeError
    assert sorted(p.name for p in out.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # no old folder aside, no temporary


def test_writers_into_one_folder_at_once_keep_each_others_temporaries(tmp_path):
    """A second process writing the same folder, even the same file, leaves the first one's
    temporary alone: the first finishes, and its file is whole."""
    first = Writer(tmp_path / "map.tif", "first")
    with atomic_file(tmp_path / "other.tif") as tmp:  # sweeps the folder for stale temporaries
        tmp.write_text("other")
    with atomic_file(tmp_path / "map.tif") as tmp:
        tmp.write_text("second")
    assert (tmp_path / first.temporary).read_text() == "half"
    assert first.finish() == 0
    assert (tmp_path / "map.tif").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.tif", "other.tif"]


def test_a_killed_writers_temporary_goes_at_the_next_write_of_any_name(tmp_path):
    killed, running = Writer(tmp_path / "a.tif"), Writer(tmp_path / "b.tif")
    killed.kill()
    assert (tmp_path / killed.temporary).read_text() == "half"  # SIGKILL: no cleanup ran
    with atomic_file(tmp_path / "c.tif") as tmp:
        tmp.write_text("c")
    assert not (tmp_path / killed.temporary).exists()
    assert (tmp_path / running.temporary).exists()
    assert running.finish() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tif", "c.tif"]


def test_only_temporaries_whose_owner_is_gone_are_stale(tmp_path):
    host, pid, start = owner().split("-")
    names = {
        "mine": f".a{PARTIAL}{owner()}-x1.tif",  # this process: running
        "reused id": f".b{PARTIAL}{host}-{pid}-{int(start) + 1}-x2.tif",  # this id, another start: gone
        "other host": f".c{PARTIAL}{'0' if HOST != '00000000' else '1'}0000000-{pid}-1-x3.tif",
        "no owner": f".d{PARTIAL}abc123.tif",  # not named by this module: not ours to delete
        "a folder": f".e{PARTIAL}{host}-{pid}-{int(start) + 1}-x4",
    }
    for key, name in names.items():
        (tmp_path / name).mkdir() if key == "a folder" else (tmp_path / name).write_text(key)
    remove_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names["mine"], names["other host"], names["no owner"]])


def test_an_old_folder_left_aside_by_a_kill_between_the_two_renames_is_put_back(tmp_path):
    """Killed after renaming the old output aside and before renaming the new one in: nothing is at
    its place, and the old folder, a whole output, must come back rather than go as stale."""
    dead = Writer(tmp_path / "other.tif")
    dead.kill()
    named = OWNED.match(dead.temporary)
    aside = tmp_path / f".raw{PARTIAL}{named['host']}-{named['pid']}-{named['start']}-{ASIDE}x1"
    aside.mkdir()
    (aside / "tile.tif").write_text("old")
    (tmp_path / dead.temporary).unlink()
    remove_stale(tmp_path)
    assert (tmp_path / "raw/tile.tif").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]
