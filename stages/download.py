"""download stage: bring the photos and label pictures into data/raw, checked, with a manifest.

The tiles come from ``params.data.source``: generated (synthetic), downloaded zip archives (url) or
archives and folders already on disk (local). Downloads are cached in data/downloads, which is kept
between runs so an interrupted download resumes. data/raw is built aside and swapped in only when
every tile has passed its checks, so a failure leaves the previous data/raw as it was.
"""

import tempfile
from pathlib import Path

from aerialseg.config import DataParams, load_params
from aerialseg.palette import Palette
from aerialseg.sources import collect_local, collect_url, find_tile_pairs, prepare_raw
from aerialseg.synthetic import write_dataset
from aerialseg.tiles import atomic_dir

RAW = Path("data/raw")
DOWNLOADS = Path("data/downloads")


def collect_pairs(data: DataParams, palette: Palette, work: Path) -> dict[str, tuple[Path, Path]]:
    """Photo and label file of every tile of the chosen source, unpacked or generated into ``work``."""
    if data.source == "url":
        return collect_url([(file.url, file.sha256) for file in data.url.files], DOWNLOADS, work)
    if data.source == "local":
        return collect_local(data.local.paths, work)
    synthetic = data.synthetic
    write_dataset(work / "images", work / "labels", synthetic.tiles, synthetic.size, synthetic.seed, palette)
    return find_tile_pairs([work])


def main() -> None:
    params = load_params()
    RAW.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=RAW.parent) as work, atomic_dir(RAW) as raw:
        pairs = collect_pairs(params.data, params.palette, Path(work))
        prepare_raw(pairs, raw, params.palette, params.data.ignore_unknown_colours, params.data.source)


if __name__ == "__main__":
    main()
