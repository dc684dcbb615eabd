"""Pictures of a run: training curves, map comparisons, snapshots, confusion matrices, class shares.

Each ``*_figure`` function builds a matplotlib Figure (so a stage can save it or hand it to
MLflow), and ``save_figure`` writes it atomically. Maps are passed as RGB pictures already
coloured with the palette (``Palette.index_to_rgb``); the palette itself only draws the legend.
The progress animation is written with imageio (ffmpeg for MP4, Pillow for GIF); tables for the
Markdown report go through pandas (``markdown_table``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI

import cv2
import imageio.v2 as imageio_v2
import imageio.v3 as imageio
import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from aerialseg.data.palette import Palette
from aerialseg.pipeline.atomic import atomic_file

DPI = 110
_MACRO_BLOCK = 16  # H.264 encoders want frame sides that are multiples of 16


def save_figure(figure: Figure, path: str | Path) -> None:
    """Write ``figure`` (format from the suffix) atomically, then free it."""
    with atomic_file(path) as tmp:
        figure.savefig(tmp, dpi=DPI, bbox_inches="tight")
    plt.close(figure)


def training_curves_figure(history: pd.DataFrame) -> Figure:
    """Loss and jaccard (mean IoU) per epoch, training and validation, side by side."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, metric, title in ((axes[0], "loss", "Loss"), (axes[1], "jaccard", "Jaccard (mean IoU)")):
        axis.plot(history["epoch"], history[metric], marker=".", label="train")
        axis.plot(history["epoch"], history[f"val_{metric}"], marker=".", label="validation")
        axis.set(title=title, xlabel="epoch")
        axis.grid(alpha=0.3)
        axis.legend()
    axes[1].set_ylim(0, 1)
    figure.tight_layout()
    return figure


def comparison_figure(
    photo: np.ndarray, truth: np.ndarray, plain: np.ndarray, smooth: np.ndarray, palette: Palette, title: str = ""
) -> Figure:
    """Photo | ground truth | plain prediction | smooth prediction, with a legend of classes."""
    panels = {
        "photo": photo,
        "ground truth": truth,
        "plain (tiles side by side)": plain,
        "smooth (blended windows)": smooth,
    }
    aspect = photo.shape[0] / photo.shape[1]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2 * aspect + 1.2))
    for axis, (name, picture) in zip(axes, panels.items()):
        _show(axis, picture, name)
    _add_legend(figure, palette)
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    return figure


def snapshot_grid_figure(
    truth: np.ndarray, snapshots: Sequence[tuple[int, dict[str, np.ndarray]]], palette: Palette, title: str = ""
) -> Figure:
    """One row per snapshot epoch: ground truth, then the map of the same tile in each mode
    (``{"plain": map, "smooth": map}``, or one of them)."""
    columns = 1 + len(snapshots[0][1])
    row_height = 3.3 * truth.shape[0] / truth.shape[1] + 0.3
    figure, axes = plt.subplots(
        len(snapshots), columns, figsize=(3.3 * columns + 0.1, row_height * len(snapshots) + 0.8), squeeze=False
    )
    for row, (epoch, maps) in zip(axes, snapshots):
        for axis, (name, picture) in zip(row, {"ground truth": truth, **maps}.items()):
            _show(axis, picture, f"epoch {epoch}: {name}")
    _add_legend(figure, palette)
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.05, 1, 0.98))
    return figure


def confusion_figure(cm: np.ndarray, class_names: Sequence[str], title: str = "") -> Figure:
    """Heat map of the confusion matrix, each row normalised to the true class's pixels (recall)."""
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    shares = np.divide(cm, totals, out=np.full_like(cm, np.nan), where=totals > 0)
    size = 1.5 + 0.9 * len(class_names)
    figure, axis = plt.subplots(figsize=(size + 1.5, size))
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, column), share in np.ndenumerate(shares):
        if not np.isnan(share):
            axis.text(
                column,
                row,
                f"{share:.0%}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if share > 0.5 else "black",
            )
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=40, ha="right")
    axis.set_yticks(ticks, class_names)
    axis.set(xlabel="predicted class", ylabel="true class", title=title)
    figure.colorbar(image, ax=axis, fraction=0.046, label="share of the true class's pixels")
    figure.tight_layout()
    return figure


def class_distribution_figure(counts: dict[str, dict[str, int]], palette: Palette | None = None) -> Figure:
    """Grouped bars: each class's share of the labelled pixels, one bar per split.

    With a ``palette``, each class name on the axis sits on its map colour, so the chart reads
    against the predicted maps.
    """
    table = pd.DataFrame(counts).fillna(0)  # rows = classes, columns = splits
    shares = 100 * table / table.sum(axis=0).replace(0, np.nan)
    figure, axis = plt.subplots(figsize=(2 + 1.2 * len(table), 4.5))
    shares.plot.bar(ax=axis, rot=30, width=0.8)
    axis.set(ylabel="share of the split's labelled pixels (%)", xlabel="", title="Class distribution per split")
    axis.legend(title="split", labels=[f"{split} ({int(table[split].sum()):,} px)" for split in table.columns])
    axis.grid(axis="y", alpha=0.3)
    plt.setp(axis.get_xticklabels(), ha="right")
    if palette is not None:
        _colour_class_labels(axis.get_xticklabels(), palette)
    figure.tight_layout()
    return figure


def class_distribution_chart(
    counts: dict[str, dict[str, int]], path: str | Path, palette: Palette | None = None
) -> None:
    """Save the class-distribution bar chart of ``counts`` ({split: {class: pixels}}) to ``path``."""
    save_figure(class_distribution_figure(counts, palette), path)


def progress_frames(truth: np.ndarray, maps: Sequence[tuple[int, np.ndarray]], max_side: int = 480) -> list[np.ndarray]:
    """Frames of the animation: ground truth beside the map of each epoch, under an 'epoch N' header.

    Maps are shrunk (nearest neighbour, so colours stay class colours) to ``max_side`` so that
    a GIF of a 6000-px tile stays small, and padded to multiples of 16 px for the H.264 encoder.
    """
    truth = _shrink(truth, max_side)
    gap = np.full((truth.shape[0] + 2, 8, 3), 255, np.uint8)
    frames = []
    for epoch, picture in maps:
        body = np.hstack([_frame(truth), gap, _frame(_shrink(picture, max_side, truth.shape[:2]))])
        frames.append(_pad_to_blocks(np.vstack([_header(f"epoch {epoch}  (left: ground truth)", body.shape[1]), body])))
    return frames


def write_animation(frames: Sequence[np.ndarray], path: str | Path, fps: float) -> None:
    """Write ``frames`` as an MP4 (H.264) or a looping GIF, chosen by the suffix of ``path``."""
    path = Path(path)
    if not frames:
        raise ValueError(f"{path}: no frames to write")
    with atomic_file(path) as tmp:
        if path.suffix.lower() == ".gif":
            imageio.imwrite(tmp, np.stack(frames), extension=".gif", duration=1000 / fps, loop=0)
        else:
            with imageio_v2.get_writer(
                tmp, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=_MACRO_BLOCK
            ) as writer:
                for frame in frames:
                    writer.append_data(frame)


def markdown_table(table: pd.DataFrame, floatfmt: str = ".4f") -> str:
    """A table for the Markdown report; integers stay integers, missing values are empty cells."""
    return table.astype(object).where(table.notna(), None).to_markdown(index=False, floatfmt=floatfmt, missingval="")


def _show(axis, picture: np.ndarray, title: str) -> None:
    """Draw a picture framed (white impervious surfaces would blend into the page otherwise)."""
    axis.imshow(picture, interpolation="nearest")
    axis.set_title(title, fontsize=10)
    axis.set_xticks([])
    axis.set_yticks([])


def _add_legend(figure: Figure, palette: Palette) -> None:
    handles = [
        Patch(facecolor=np.asarray(colour) / 255, edgecolor="black", label=name)
        for name, colour in zip(palette.names, palette.colours)
    ]
    figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), frameon=False)


def _colour_class_labels(labels, palette: Palette) -> None:
    colours = dict(zip(palette.names, palette.colours))
    for label in labels:
        colour = np.asarray(colours.get(label.get_text(), (255, 255, 255))) / 255
        dark = colour @ (0.299, 0.587, 0.114) < 0.5
        label.set_bbox(dict(facecolor=colour, edgecolor="black", boxstyle="round,pad=0.25"))
        label.set_color("white" if dark else "black")


def _shrink(picture: np.ndarray, max_side: int, shape: tuple[int, int] | None = None) -> np.ndarray:
    if shape is None:
        scale = min(1.0, max_side / max(picture.shape[:2]))
        shape = (max(1, round(picture.shape[0] * scale)), max(1, round(picture.shape[1] * scale)))
    if picture.shape[:2] == tuple(shape):
        return picture
    return cv2.resize(picture, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def _frame(picture: np.ndarray) -> np.ndarray:
    """A 1-px black border, so white areas stay visible against the white page."""
    return cv2.copyMakeBorder(picture, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def _header(text: str, width: int, height: int = 32) -> np.ndarray:
    strip = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(strip, text, (6, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def _pad_to_blocks(frame: np.ndarray) -> np.ndarray:
    pad_rows, pad_columns = (-frame.shape[0]) % _MACRO_BLOCK, (-frame.shape[1]) % _MACRO_BLOCK
    return np.pad(frame, ((0, pad_rows), (0, pad_columns), (0, 0)), constant_values=255)
