"""The ``tiles`` layout (wire id 2, format.md section 4c): one small network per tile of the frame.

A tiles stream holds one network of the ``ARCH`` record per tile of a ``TILE``-sized grid over the
frame (:class:`nfcodec.tiles.TileGrid`, row-major).  The representation's payload codes every
parameter tensor of all tiles together, as one tensor of shape ``(tiles, *shape)``: tile ``n``'s
network is slice ``n``.  Each tile renders the ``tile_height x tile_width`` coordinate grid of a
whole image of that size (section 6.3) and is cropped at the right and bottom edges.

This is the layout of prior-coded images (``PRIR``, :mod:`nfcodec.residual`): a meta-learned
prior is learned for one tile size, and the tiles of an image are fitted from it together, as
one batch (:mod:`nfcodec.tile_encoder`).  Decoder side only: no torch.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Sequence

import numpy as np

from .bitstream import FormatError
from .errors import UnsupportedFeatureError
from .bitstream.headers import MAX_TILES, TileRecord
from .exact.layers import QTensor
from .tiles import TileGrid
from .variants import LAYOUTS, Level, Plan

__all__ = ["TilesLayout", "TiledProgram", "tile_grid", "tile_shapes"]


def tile_grid(header: Any, tile: TileRecord) -> TileGrid:
    return TileGrid(header.height, header.width, tile.tile_height, tile.tile_width)


def tile_shapes(arch: Any, record: Any, count: int) -> list[tuple[int, ...]]:
    """The stream's tensor shapes: each of the architecture's, with the tile count in front."""
    return [(count, *s) for s in arch.param_shapes(record)]


@dataclass(frozen=True)
class TiledProgram:
    """The exact program of a tiles stream: one architecture program per tile, cropped and placed."""

    grid: TileGrid
    programs: tuple[Any, ...]

    @property
    def height(self) -> int:
        return self.grid.height

    @property
    def width(self) -> int:
        return self.grid.width

    def render_pixels(self, ops: Any, k: int, pixels: Optional[np.ndarray] = None) -> np.ndarray:
        """``(n, 3)`` uint8 samples at the given row-major pixel indices of the frame (all by default)."""
        g = self.grid
        if pixels is None:
            pixels = np.arange(g.height * g.width, dtype=np.int64)
        pixels = np.asarray(pixels, np.int64)
        rows, cols = np.divmod(pixels, g.width)
        tile = (rows // g.th) * g.cols + cols // g.tw
        local = (rows % g.th) * g.tw + cols % g.tw
        out = np.empty((len(pixels), 3), np.uint8)
        order = np.argsort(tile, kind="stable")
        bounds = np.searchsorted(tile[order], np.arange(g.count + 1))
        for n in range(g.count):
            sel = order[bounds[n]:bounds[n + 1]]
            if len(sel):
                out[sel] = self.programs[n].render_pixels(ops, k, local[sel])
        return out

    def render(self, ops: Any, k: int) -> np.ndarray:
        return self.render_pixels(ops, k).reshape(self.grid.height, self.grid.width, 3)


class TilesLayout:
    """One network per tile, all tiles' tensors coded together (see the module docstring)."""

    name = "tiles"
    consumes: ClassVar[frozenset[bytes]] = frozenset({b"TILE"})
    progressive: ClassVar[bool] = False
    priors: ClassVar[bool] = True

    # ------------------------------------------------------------------ decoder
    def tile_record(self, chunks: Any) -> TileRecord:
        found = [c for c in chunks if c.ctype == b"TILE"]
        if len(found) != 1:
            raise FormatError(f"a tiles stream needs one TILE chunk, found {len(found)}")
        return TileRecord.unpack(found[0].data)

    def plan(self, container: Any, header: Any, record: Any, arch: Any, rep: Any) -> Plan:
        if header.media != 0:
            raise UnsupportedFeatureError("layout tiles: this version tiles images only (NHDR.media=1)")
        if not arch.pixelwise:
            raise UnsupportedFeatureError(f"layout tiles: architecture {arch.name} does not render pixel by pixel "
                                          "(this version tiles siren)")
        tile = self.tile_record(container.chunks)
        grid = tile_grid(header, tile)
        if grid.count > MAX_TILES:
            raise FormatError(f"TILE {tile.tile_height}x{tile.tile_width} cuts the {header.width}x{header.height} "
                              f"frame into {grid.count} tiles, more than {MAX_TILES}")
        if header.n_segments != 1:
            raise FormatError(f"layout tiles: NHDR.n_segments={header.n_segments}, must be 1")
        payload = tuple(c for c in container.chunks if c.critical and c.ctype in rep.consumes)
        return Plan((Level(1, 0, 0, 0, payload, payload[0].offset if payload else 0, container.nbytes),), 1,
                    extra=grid)

    def network(self, plan: Plan, level: Level, record: Any, arch: Any, rep: Any) -> tuple[Any, list[QTensor]]:
        grid: TileGrid = plan.extra
        shapes = tile_shapes(arch, record, grid.count)
        laws = arch.init_laws(record)
        return record, list(rep.materialize(shapes, level.chunks, laws))

    def build(self, plan: Plan, arch: Any, record: Any, header: Any, tensors: Sequence[QTensor]) -> TiledProgram:
        grid: TileGrid = plan.extra
        tile_header = dataclasses.replace(header, height=grid.th, width=grid.tw)
        programs = []
        for n in range(grid.count):
            programs.append(arch.program(record, tile_header, [QTensor(t.q[n], t.step) for t in tensors]))
        return TiledProgram(grid, tuple(programs))

    def extent(self, plan: Plan, level: Level, header: Any) -> tuple[int, int]:
        return header.frames, header.width

    def network_params(self, arch: Any, record: Any, header: Any, tile: TileRecord) -> int:
        return tile_grid(header, tile).count * sum(int(np.prod(s)) for s in arch.param_shapes(record))

    # ------------------------------------------------------------------ encoder
    def segments(self, config: Any) -> int:
        return 1

    def encode(self, frames: np.ndarray, media: int, fps: Any, config: Any, **kwargs: Any) -> Any:
        from .tile_encoder import encode_tiles

        return encode_tiles(frames, media, fps, config, **kwargs)


LAYOUTS.register(TilesLayout())
