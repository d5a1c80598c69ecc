"""The attention-map figure (like the paper's Fig. 4), drawn with matplotlib's Agg canvas.

For each sample face two rows: the predefined (initial) attention maps built from the network's
predicted landmarks, and the refined maps; one column per AU, each map blended over the face, and
a first column with the face and its landmarks (green: ground truth, red: predicted).
Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend switch).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def attention_figure(path: str | Path, faces: np.ndarray, initial: np.ndarray, refined: np.ndarray,
                     au_names: list[str], *, predicted_landmarks: np.ndarray | None = None,
                     true_landmarks: np.ndarray | None = None, captions: list[str] | None = None,
                     title: str | None = None, dpi: int = 100) -> Path:
    """Write a PNG; returns its path.

    faces: (N, S, S, 3) uint8 crops as the network saw them; initial, refined: (N, F, F, n_au)
    maps in [0, 1] over the same crop; landmarks: (N, 2K) interleaved x, y in crop pixels.
    """
    from matplotlib import cm
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    faces = np.asarray(faces)
    n, size = faces.shape[0], faces.shape[1]
    n_au = len(au_names)
    if initial.shape[:1] != (n,) or refined.shape != initial.shape or initial.shape[-1] != n_au:
        raise ValueError(f"faces {faces.shape}, initial {initial.shape} and refined {refined.shape} "
                         f"maps disagree (expected {n} faces and {n_au} AUs)")
    columns = n_au + 1
    cell = 1.25
    top_inches = 0.55 if title else 0.25  # room for the title and the AU names
    height = cell * 2 * n + top_inches + 0.05
    fig = Figure(figsize=(cell * columns + 0.9, height), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2 * n, columns + 1, width_ratios=[1] * columns + [0.08],
                            wspace=0.04, hspace=0.12, left=0.07, right=0.95,
                            bottom=0.05 / height, top=1 - top_inches / height)
    norm = Normalize(0.0, 1.0)
    extent = (-0.5, size - 0.5, size - 0.5, -0.5)
    gray = faces.astype(np.float32).mean(axis=-1)
    for i in range(n):
        for r, (maps, label) in enumerate(((initial, "initial"), (refined, "refined"))):
            row = 2 * i + r
            ax = fig.add_subplot(grid[row, 0])
            ax.imshow(faces[i], extent=extent)
            if r == 0:
                for lm, color in ((true_landmarks, "#2ca02c"), (predicted_landmarks, "#d62728")):
                    if lm is not None:
                        ax.scatter(lm[i, 0::2], lm[i, 1::2], s=1.5, c=color, linewidths=0)
            ax.set_xlim(extent[0], extent[1])
            ax.set_ylim(extent[2], extent[3])
            ax.set_ylabel((captions[i] + "\n" if captions and r == 0 else "") + label, fontsize=7)
            _bare(ax)
            for j in range(n_au):
                ax = fig.add_subplot(grid[row, j + 1])
                ax.imshow(gray[i], cmap="gray", vmin=0, vmax=255, extent=extent)
                ax.imshow(maps[i, :, :, j], cmap="jet", norm=norm, alpha=0.5, extent=extent,
                          interpolation="bilinear")
                if row == 0:
                    ax.set_title(au_names[j], fontsize=8)
                _bare(ax)
    bar = fig.add_subplot(grid[:, -1])
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap="jet"), cax=bar)
    bar.tick_params(labelsize=7)
    bar.set_ylabel("attention weight", fontsize=7)
    return _save(fig, path, title, 1 - 0.08 / height, dpi)


def _save(fig, path, title, title_top: float, dpi: int) -> Path:
    """Title the figure (its top at `title_top`, a fraction of its height) and write it."""
    if title:
        fig.suptitle(title, fontsize=9, y=title_top, va="top")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Crops in [-1, 1] (as the network sees them) back to uint8 for display."""
    return np.clip(np.round((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def inpainting_figure(path: str | Path, masked: np.ndarray, inpainted: np.ndarray,
                      true: np.ndarray, *, captions: list[str] | None = None,
                      title: str | None = None, dpi: int = 100) -> Path:
    """RoI inpainting (docs/auxiliary-tasks.md): per face, one row of the masked input, the
    network's inpainted face (its output inside the masked squares, the input elsewhere: what
    the task asks it to recover) and the true face. All (N, S, S, 3) uint8."""
    columns = (("masked input", masked), ("inpainted", inpainted), ("true face", true))
    return _image_rows(path, columns, captions, title, dpi)


def flow_figure(path: str | Path, faces: np.ndarray, target: np.ndarray, predicted: np.ndarray,
                *, captions: list[str] | None = None, title: str | None = None,
                dpi: int = 100) -> Path:
    """Single-image optical flow (docs/auxiliary-tasks.md): per face, the face with the target
    flow drawn as arrows, then the target and the predicted flow in the colour-wheel coding
    (hue: direction, saturation: length, white: no motion), one length scale for the whole
    figure. faces (N, S, S, 3) uint8; target, predicted (N, F, F, 2) (dx, dy) in crop pixels."""
    target, predicted = np.asarray(target, np.float32), np.asarray(predicted, np.float32)
    scale = max(float(np.percentile(np.linalg.norm(target, axis=-1), 99)), 1e-3)
    faces = np.asarray(faces)
    # Arrows magnified so that the figure's longest ones span about a twelfth of the face.
    magnify = faces.shape[1] / 12 / scale
    columns = (("target flow", faces), ("target", flow_colours(target, scale)),
               ("predicted", flow_colours(predicted, scale)))
    return _image_rows(path, columns, captions,
                       (title + "\n" if title else "")
                       + f"full colour = {scale:.2f} px; arrows x {magnify:.1f}",
                       dpi, arrows={0: (target, magnify)})


def flow_colours(flow: np.ndarray, scale: float) -> np.ndarray:
    """(..., 2) flow -> (..., 3) uint8 colour-wheel image: hue from the direction, saturation
    from the length relative to `scale` (clipped at 1), full brightness."""
    from matplotlib.colors import hsv_to_rgb
    dx, dy = flow[..., 0], flow[..., 1]
    hue = (np.arctan2(-dy, -dx) / (2 * np.pi)) % 1.0
    saturation = np.clip(np.hypot(dx, dy) / scale, 0.0, 1.0)
    hsv = np.stack([hue, saturation, np.ones_like(hue)], axis=-1)
    return np.round(hsv_to_rgb(hsv) * 255).astype(np.uint8)


def _image_rows(path, columns, captions, title, dpi, arrows=None) -> Path:
    """A figure of one row per face, one column per (heading, (N, H, W, 3) uint8 images); where
    `arrows` maps a column to ((N, F, F, 2) flows, magnification), they are drawn over its
    images."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(columns[0][1])
    cell = 1.6
    top_inches = 0.65 if title else 0.3
    height = cell * n + top_inches + 0.05
    fig = Figure(figsize=(cell * len(columns) + 0.5, height), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(n, len(columns), wspace=0.04, hspace=0.06, left=0.1, right=0.98,
                            bottom=0.05 / height, top=1 - top_inches / height)
    for i in range(n):
        for j, (heading, images) in enumerate(columns):
            ax = fig.add_subplot(grid[i, j])
            size = images[i].shape[0]
            ax.imshow(images[i], extent=(-0.5, size - 0.5, size - 0.5, -0.5))
            if arrows and j in arrows:
                flows, magnify = arrows[j]
                flow = flows[i]
                step = size / flow.shape[0]
                centres = (np.arange(flow.shape[0]) + 0.5) * step - 0.5
                every = max(1, flow.shape[0] // 12)
                x, y = np.meshgrid(centres[::every], centres[::every])
                ax.quiver(x, y, flow[::every, ::every, 0], flow[::every, ::every, 1],
                          color="#ffdd00", angles="xy", scale_units="xy", scale=1 / magnify,
                          width=0.012)
            if i == 0:
                ax.set_title(heading, fontsize=8)
            if j == 0 and captions:
                ax.set_ylabel(captions[i], fontsize=7)
            _bare(ax)
    return _save(fig, path, title, 1 - 0.06 / height, dpi)
