"""Meta-learning tasks: random crops of the prior's tile size from images and video frames.

A *task* is one signal the inner loop fits: a ``th x tw`` RGB crop, as targets in ``[-1, 1]``
(``x / 127.5 - 1``, as the codec fits them) on the coordinates :func:`nfcodec.models.tiled.grid_coords`.

Sources are image files (``nfcodec.media.IMAGE_SUFFIXES``: PNG, JPEG, ...) and videos
(``nfcodec.media.VIDEO_SUFFIXES``, read through :func:`nfcodec.video_io.read_video`; every
``video_stride``-th frame, at most ``max_video_frames`` of them, evenly spaced), given as files,
folders (searched recursively, hidden entries skipped) or glob patterns.  Everything is decoded once
and kept in memory (uint8).

Drawing a task (all randomness from one seeded :class:`numpy.random.Generator`, in a fixed order):
pick a file uniformly (a video's frames share its one weight), a frame of it, a scale ``s`` in
``[min_scale, max_scale]`` (raised where the source is smaller than the crop), a ``th/s x tw/s``
window uniformly inside the frame, resized to ``th x tw`` (Pillow, box filter when shrinking,
bicubic when enlarging): the same as rescaling the whole source by ``s`` and cropping, at the cost
of one crop.  With ``augment``: a horizontal flip (p = 1/2) and a rotation by a multiple of 90
degrees (square crops; 0 or 180 degrees otherwise).
"""
from __future__ import annotations

import glob as _glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import ConfigError, InputError
from ..media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, load_image

__all__ = ["TaskSource", "collect_files", "to_targets", "parse_tile_size", "tile_grid_crops"]


def parse_tile_size(spec: str | int | Sequence[int]) -> tuple[int, int]:
    """``"64x64"`` / ``"64"`` / ``64`` / ``(th, tw)`` -> ``(th, tw)`` (height first; ``WxH`` text for non-square).

    Raises:
        ConfigError: malformed text or a side outside [2, 1024].
    """
    try:
        if isinstance(spec, str):
            parts = [int(v) for v in spec.lower().replace(" ", "").split("x")]
            if len(parts) == 1:
                parts = parts * 2
            if len(parts) != 2:
                raise ValueError
            tw, th = parts
        elif isinstance(spec, (int, np.integer)):
            th = tw = int(spec)
        else:
            th, tw = (int(v) for v in spec)
    except (TypeError, ValueError):
        raise ConfigError(f"size {spec!r}: expected WIDTHxHEIGHT, e.g. 64x64") from None
    if not (2 <= th <= 1024 and 2 <= tw <= 1024):
        raise ConfigError(f"size {spec!r}: tile sides must be in [2, 1024] pixels")
    return th, tw


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "video" if suffix in VIDEO_SUFFIXES else None


def collect_files(paths: Iterable[str | os.PathLike]) -> list[tuple[Path, str]]:
    """``[(path, "image" | "video")]`` of the given files, folders (recursive) and glob patterns.

    A file named explicitly with an unknown extension is read as an image; inside folders,
    only known image/video extensions count.  Duplicates are dropped (first one kept).

    Raises:
        InputError: a path that does not exist, a pattern matching nothing, or no files at all.
    """
    out: list[tuple[Path, str]] = []
    seen: set[str] = set()

    def add(p: Path, kind: str) -> None:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            out.append((p, kind))

    def walk(folder: Path) -> None:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                kind = _kind(Path(name))
                if kind and not name.startswith("."):
                    add(Path(root) / name, kind)

    given = [str(p) for p in paths]
    if not given:
        raise InputError("no training data given (image/video files or folders)")
    for text in given:
        p = Path(text)
        if p.is_dir():
            walk(p)
        elif p.is_file():
            add(p, _kind(p) or "image")
        elif any(ch in text for ch in "*?["):
            matches = sorted(_glob.glob(text, recursive=True))
            if not matches:
                raise InputError(f"{text}: no files match")
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    walk(mp)
                elif _kind(mp):
                    add(mp, _kind(mp))  # type: ignore[arg-type]
        else:
            raise InputError(f"training data not found: {text}")
    if not out:
        raise InputError(f"no images or videos found in {', '.join(given)} "
                         f"(looked for {', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))})")
    return out


def to_targets(tiles: np.ndarray):
    """``(n, th, tw, 3)`` uint8 -> ``(n, th*tw, 3)`` float32 torch targets in ``[-1, 1]``."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.uint8))
    return t.reshape(t.shape[0], -1, t.shape[-1]).float() / 127.5 - 1.0


@dataclass
class _Source:
    path: Path
    kind: str
    frames: np.ndarray      # (n, H, W, 3) uint8


class TaskSource:
    """Tasks (random augmented crops) drawn from images and videos; see the module docstring.

    Raises:
        InputError: no files, an unreadable image or video.
        ConfigError: bad size, scales or video options.
    """

    def __init__(self, paths: Iterable[str | os.PathLike], size: Sequence[int] | str = (64, 64), *,
                 augment: bool = True, min_scale: float = 0.5, max_scale: float = 1.0,
                 video_stride: int = 4, max_video_frames: int = 64) -> None:
        self.size = parse_tile_size(size)
        if not (0 < min_scale <= max_scale):
            raise ConfigError(f"scales: need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
        if video_stride < 1 or max_video_frames < 1:
            raise ConfigError("video_stride and max_video_frames must be >= 1")
        self.augment, self.min_scale, self.max_scale = bool(augment), float(min_scale), float(max_scale)
        self.sources: list[_Source] = []
        for path, kind in collect_files(paths):
            if kind == "image":
                frames = load_image(path)[None]
            else:
                from ..video_io import read_video

                frames = read_video(path, frames=f"::{video_stride}").frames
                if len(frames) > max_video_frames:
                    keep = np.linspace(0, len(frames) - 1, max_video_frames).round().astype(int)
                    frames = np.ascontiguousarray(frames[keep])
            self.sources.append(_Source(path, kind, frames))

    # ------------------------------------------------------------------ description
    def summary(self) -> dict:
        """Counts for the prior's metadata: files, images, videos, video frames, pixels."""
        vids = [s for s in self.sources if s.kind == "video"]
        return {"files": len(self.sources), "images": len(self.sources) - len(vids), "videos": len(vids),
                "video_frames": int(sum(len(s.frames) for s in vids)),
                "pixels": int(sum(s.frames.shape[0] * s.frames.shape[1] * s.frames.shape[2] for s in self.sources))}

    def paths(self) -> list[str]:
        return [str(s.path) for s in self.sources]

    # ------------------------------------------------------------------ drawing
    def crop(self, rng: np.random.Generator) -> np.ndarray:
        """One ``(th, tw, 3)`` uint8 task."""
        th, tw = self.size
        src = self.sources[int(rng.integers(len(self.sources)))]
        frame = src.frames[int(rng.integers(len(src.frames)))]
        h, w = frame.shape[:2]
        need = max(th / h, tw / w)              # scale below which the window exceeds the frame
        lo, hi = max(self.min_scale, need), max(self.max_scale, need)
        s = float(rng.uniform(lo, hi))
        rh, rw = min(h, max(1, round(th / s))), min(w, max(1, round(tw / s)))
        r0, c0 = int(rng.integers(h - rh + 1)), int(rng.integers(w - rw + 1))
        tile = frame[r0:r0 + rh, c0:c0 + rw]
        if (rh, rw) != (th, tw):
            from PIL import Image

            shrink = rh * rw > th * tw
            tile = np.asarray(Image.fromarray(np.ascontiguousarray(tile)).resize(
                (tw, th), Image.Resampling.BOX if shrink else Image.Resampling.BICUBIC), dtype=np.uint8)
        if self.augment:
            flip = bool(rng.integers(2))
            rot = int(rng.integers(4)) if th == tw else 2 * int(rng.integers(2))
            if flip:
                tile = tile[:, ::-1]
            if rot:
                tile = np.rot90(tile, rot)
        return np.ascontiguousarray(tile)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``(n, th, tw, 3)`` uint8 tasks."""
        return np.stack([self.crop(rng) for _ in range(n)])

    def targets(self, rng: np.random.Generator, n: int):
        """``(n, th*tw, 3)`` float32 torch targets in ``[-1, 1]``."""
        return to_targets(self.sample(rng, n))


def tile_grid_crops(image: np.ndarray, size: Sequence[int], limit: int | None = None) -> np.ndarray:
    """The whole ``th x tw`` tiles of an image, row-major (no augmentation): held-out evaluation sets."""
    th, tw = size
    rows, cols = image.shape[0] // th, image.shape[1] // tw
    tiles = [image[r * th:(r + 1) * th, c * tw:(c + 1) * tw] for r in range(rows) for c in range(cols)]
    if limit is not None:
        tiles = tiles[:limit]
    return np.stack(tiles) if tiles else np.zeros((0, th, tw, 3), np.uint8)

