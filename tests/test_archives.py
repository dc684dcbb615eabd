"""aerialseg.data.archives on real zips nested in zips: only the members asked for are read and written."""

import io
import os
import re
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from aerialseg.data.archives import ArchiveError, extract

DECOY = 24 << 20  # bytes of the product nobody asks for: far more than everything else together


def inner_zip(members: dict[str, bytes], method=zipfile.ZIP_DEFLATED, seekable=True) -> bytes:
    """A zip of ``members``; written to an unseekable stream, its members carry data descriptors
    (sizes after the data, not in the header), as streaming zip writers make them."""
    buffer = io.BytesIO()
    target = buffer if seekable else _Unseekable(buffer)
    with zipfile.ZipFile(target, "w", method) as zipped:
        for name, data in members.items():
            zipped.writestr(name, data)
    return buffer.getvalue()


class _Unseekable(io.RawIOBase):
    def __init__(self, buffer):
        self.buffer = buffer

    def writable(self):
        return True

    def write(self, data):
        return self.buffer.write(data)


PHOTOS = {
    "2_Ortho_RGB/top_potsdam_2_10_RGB.tif": b"photo 2_10 " * 5000 + os.urandom(3000),
    "2_Ortho_RGB/top_potsdam_2_10_RGB.tfw": b"0.05\n0\n0\n-0.05\n366000.025\n5811999.975\n",
    "2_Ortho_RGB/top_potsdam_2_11_RGB.tif": os.urandom(400_000),
}
LABELS = {"top_potsdam_2_10_label.tif": b"label" * 100000, "top_potsdam_2_11_label.tif": os.urandom(5000)}


def potsdam_zip(path: Path, compress_nested: bool, labels_streamed: bool = False) -> Path:
    """Potsdam.zip: a large decoy product, photos and labels, each in its own nested zip."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress_nested else zipfile.ZIP_STORED) as outer:
        outer.writestr("Potsdam/1_DSM.zip", inner_zip({"1_DSM/dsm.tif": os.urandom(DECOY)}, zipfile.ZIP_STORED))
        outer.writestr("Potsdam/2_Ortho_RGB.zip", inner_zip(PHOTOS))
        outer.writestr("Potsdam/5_Labels_all.zip", inner_zip(LABELS, seekable=not labels_streamed))
        outer.writestr("Potsdam/readme.txt", b"ISPRS Potsdam")
    return path


def tile_2_10(path: PurePosixPath) -> bool:
    return "2_10" in path.name


def not_dsm(path: PurePosixPath) -> bool:
    return "DSM" not in path.name


def bytes_read() -> int:
    """Bytes this process has read through system calls so far (Linux), page cache or not."""
    return int(re.search(r"^rchar: (\d+)", Path("/proc/self/io").read_text(), re.M)[1])


@pytest.mark.parametrize("compress_nested", [False, True], ids=["stored", "compressed"])
def test_only_the_members_asked_for_are_written_and_shut_archives_are_not_read(tmp_path, compress_nested):
    archive = potsdam_zip(tmp_path / "Potsdam.zip", compress_nested)
    before = bytes_read()
    done = extract(archive, tmp_path / "out", want=tile_2_10, enter=not_dsm)
    read = bytes_read() - before

    expected = {
        "Potsdam/2_Ortho_RGB/2_Ortho_RGB/top_potsdam_2_10_RGB.tif": PHOTOS["2_Ortho_RGB/top_potsdam_2_10_RGB.tif"],
        "Potsdam/2_Ortho_RGB/2_Ortho_RGB/top_potsdam_2_10_RGB.tfw": PHOTOS["2_Ortho_RGB/top_potsdam_2_10_RGB.tfw"],
        "Potsdam/5_Labels_all/top_potsdam_2_10_label.tif": LABELS["top_potsdam_2_10_label.tif"],
    }
    files = [path for path in (tmp_path / "out").rglob("*") if path.is_file()]
    assert {path.relative_to(tmp_path / "out").as_posix(): path.read_bytes() for path in files} == expected
    assert done.written[tmp_path / "out" / "Potsdam/5_Labels_all/top_potsdam_2_10_label.tif"] == (
        f"{archive}!Potsdam/5_Labels_all.zip!top_potsdam_2_10_label.tif"
    )
    assert done.unopened == [f"{archive}!Potsdam/1_DSM.zip"]
    assert sorted(done.passed) == [
        f"{archive}!Potsdam/2_Ortho_RGB.zip!2_Ortho_RGB/top_potsdam_2_11_RGB.tif",
        f"{archive}!Potsdam/5_Labels_all.zip!top_potsdam_2_11_label.tif",
        f"{archive}!Potsdam/readme.txt",
    ]
    others = archive.stat().st_size - DECOY
    assert read < others + (1 << 20), f"read {read} bytes: the {DECOY} bytes of 1_DSM.zip must stay unread"
    if not compress_nested:  # random access: not even the tiles passed over are read
        assert read < others - len(PHOTOS["2_Ortho_RGB/top_potsdam_2_11_RGB.tif"]) // 2


def test_members_with_data_descriptors_are_read_from_a_compressed_nested_zip(tmp_path):
    archive = potsdam_zip(tmp_path / "Potsdam.zip", compress_nested=True, labels_streamed=True)
    with zipfile.ZipFile(io.BytesIO(zipfile.ZipFile(archive).read("Potsdam/5_Labels_all.zip"))) as labels:
        assert all(info.flag_bits & 0x8 for info in labels.infolist())  # sizes after the data
    extract(archive, tmp_path / "out", want=lambda path: "label" in path.name, enter=not_dsm)
    for name, data in LABELS.items():
        assert (tmp_path / "out/Potsdam/5_Labels_all" / name).read_bytes() == data


@pytest.mark.parametrize("compress_nested", [False, True], ids=["stored", "compressed"])
def test_a_damaged_member_of_a_nested_zip_is_named_through_the_archives(tmp_path, compress_nested):
    damaged = bytearray(inner_zip(PHOTOS, zipfile.ZIP_STORED))
    start = damaged.index(b"photo 2_10")
    damaged[start : start + 5] = b"PHOTO"  # the bytes no longer match the member's CRC-32
    archive = tmp_path / "Potsdam.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED if compress_nested else zipfile.ZIP_STORED) as outer:
        outer.writestr("Potsdam/2_Ortho_RGB.zip", bytes(damaged))
    with pytest.raises(ArchiveError) as error:
        extract(archive, tmp_path / "out", want=tile_2_10, enter=not_dsm)
    member = f"{archive}!Potsdam/2_Ortho_RGB.zip!2_Ortho_RGB/top_potsdam_2_10_RGB.tif"
    assert str(error.value).startswith(f"{member}: corrupt") and "CRC" in str(error.value)


@pytest.mark.parametrize("compress_nested", [False, True], ids=["stored", "compressed"])
def test_a_truncated_nested_zip_is_named_by_the_outer_archive(tmp_path, compress_nested):
    archive = tmp_path / "Potsdam.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED if compress_nested else zipfile.ZIP_STORED) as outer:
        outer.writestr("Potsdam/2_Ortho_RGB.zip", inner_zip(PHOTOS, zipfile.ZIP_STORED)[:30000])
    with pytest.raises(
        ArchiveError, match=rf"^{re.escape(str(archive))}!Potsdam/2_Ortho_RGB\.zip.*: .*(corrupt|trunc)"
    ):
        extract(archive, tmp_path / "out", want=tile_2_10, enter=not_dsm)


def test_a_member_that_cannot_be_streamed_names_the_way_out(tmp_path):
    """LZMA (method 14) cannot be read front to back; stream-unzip stops in the member's local header,
    before it returns the member's name, so the member is named by the one before it."""
    archive = tmp_path / "Potsdam.zip"
    photos = {"2_Ortho_RGB/readme.txt": b"deflated"} | PHOTOS
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zipped:
        for name, data in photos.items():
            zipped.writestr(name, data, zipfile.ZIP_DEFLATED if name.endswith(".txt") else zipfile.ZIP_LZMA)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as outer:
        outer.writestr("Potsdam/2_Ortho_RGB.zip", inner.getvalue())
    with pytest.raises(ArchiveError) as error:
        extract(archive, tmp_path / "out", want=tile_2_10, enter=not_dsm)
    message = str(error.value)
    assert message.startswith(f"{archive}!Potsdam/2_Ortho_RGB.zip: the member after 2_Ortho_RGB/readme.txt ")
    assert "method 14" in message and "unzip Potsdam.zip" in message and "data.local.paths" in message
    assert "\n" not in message


def test_bzip2_members_are_read_from_a_compressed_nested_zip(tmp_path):
    archive = tmp_path / "Potsdam.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as outer:
        outer.writestr("Potsdam/2_Ortho_RGB.zip", inner_zip(PHOTOS, zipfile.ZIP_BZIP2))
    extract(archive, tmp_path / "out", want=tile_2_10, enter=not_dsm)
    name = "2_Ortho_RGB/top_potsdam_2_10_RGB.tif"
    assert (tmp_path / "out/Potsdam/2_Ortho_RGB" / name).read_bytes() == PHOTOS[name]


def test_member_names_cannot_leave_the_folder(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../../top_potsdam_2_10_RGB.tif", b"x")
    extract(archive, tmp_path / "out", want=tile_2_10, enter=not_dsm)
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.tif")] == ["out/top_potsdam_2_10_RGB.tif"]
