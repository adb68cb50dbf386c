"""Golden format-2.0 files: one per architecture x representation (and SIREN on a video).

Each must decode, forever and on every machine, to its pinned pixels with both decoder backends
and with the independent implementation of the specification (tests/exact_reference.py).
Format 2.0 pixels are a function of the file, so these hashes are not machine-dependent.

Add the files of a new architecture or representation (existing files are never rewritten):
    GENERATE_EXPECTED=1 pytest tests/test_golden_v2.py
The supermask files (format 2.1) were added with issue 10, the width-chunks ones (2.2) with issue 11,
the tiles, prior-coded and XFRM ones (2.3) with issue 12, the grid ones (2.4 to 2.9) with issue 13.  The prior the prior-coded files name,
``tiny-prior.nfp`` (a SIREN 8x2 for 16x16 tiles), lives next to them; every decode here searches
this folder for priors.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from fractions import Fraction

import numpy as np
import pytest

import nfcodec
from nfcodec.archs import ARCHS
from nfcodec.config import CodecConfig, FitConfig, ModelConfig, PruneConfig, QuantConfig
from nfcodec.decoder import open_stream
from nfcodec.media import load_image
from nfcodec.variants import REPRESENTATIONS

from exact_reference import reference_frames
from nfc_testdata import FAST, GOLDEN, TINY_GRID, TINY_PNG, medium_image, moving_clip

GENERATE = os.getenv("GENERATE_EXPECTED") == "1"
FOLDER = GOLDEN / "v2"
EXPECTED = FOLDER / "expected.json"
PRIOR = FOLDER / "tiny-prior.nfp"

NERV = CodecConfig(ModelConfig(arch="nerv", c1=4, c2=8, min_channels=4, mlp_hidden=16, pe_l=8), QuantConfig(bits=8),
                   FitConfig(epochs=40, batch_frames=2, lr=5e-3, warmup_steps=5, seed=0))
SIREN_VIDEO = CodecConfig(ModelConfig(width=16, depth=2), QuantConfig(bits=10),
                          FitConfig(steps=200, batch_pixels=0, warmup_steps=10, lr=3e-3, seed=0))
PRUNE = PruneConfig(sparsity=0.4, prune_scope="layer")

#: name -> (source, config); the source is the tiny test image or a 4-frame 20x16 clip.
CASES = {
    "siren-image-dense": ("image", FAST),
    "siren-image-pruned": ("image", FAST.replace(representation="pruned", sparsity=0.4, prune_scope="layer")),
    "siren-video-dense": ("video", SIREN_VIDEO),
    "siren-video-pruned": ("video", SIREN_VIDEO.replace(representation="pruned", sparsity=0.4, prune_scope="layer")),
    "nerv-dense": ("video", NERV),
    "nerv-pruned": ("video", NERV.replace(representation="pruned", sparsity=0.4, prune_scope="layer")),
    "siren-image-supermask": ("image", FAST.replace(representation="supermask", width=48)),
    "siren-video-supermask": ("video", SIREN_VIDEO.replace(representation="supermask", width=32)),
    "nerv-supermask": ("video", NERV.replace(representation="supermask", c1=8, c2=16, mlp_hidden=32)),
    # format 2.2: the width-chunks layout (issue 11)
    "siren-image-widthchunks-dense": ("image", FAST.replace(layout="width-chunks", widths=(6, 12, 18))),
    "siren-image-spatial-pruned": ("image", FAST.replace(layout="width-chunks", widths=(8, 16, 24), growing="spatial",
                                                         representation="pruned", sparsity=0.4, prune_scope="layer")),
    "siren-video-temporal-dense": ("video", SIREN_VIDEO.replace(layout="width-chunks", widths=(8, 16),
                                                                growing="temporal")),
    # format 2.3: the tiles layout, prior-coded weights (PRIR) and data transforms (XFRM) (issue 12)
    "siren-image-tiles-dense": ("image", FAST.replace(layout="tiles", tile=16)),
    "siren-image-tiles-prior-dense": ("image", FAST.replace(prior=str(PRIOR), width=8, depth=2, steps=100)),
    # a one-tile prior-coded stream rewritten as layout single (PRIR in a single-layout stream, 4c)
    "siren-image-single-prior-dense": ("tile16", FAST.replace(prior=str(PRIOR), width=8, depth=2, steps=100)),
    "siren-image-permute-dense": ("image", FAST.replace(transform="permute", transform_param=7)),
    "siren-video-gamma-dense": ("video", SIREN_VIDEO.replace(transform="gamma", transform_param=1500)),
    # format 2.4: the latent grid (arch 2) with checkerboard-coded latents (issue 13)
    "grid-image-dense": ("image", TINY_GRID),
    "grid-image-conv-dense": ("image", TINY_GRID.replace(grid_hidden=(8, 6), grid_head_kernel=3)),
    # format 2.5: the latent grid with causal-coded latents (entropy model 5)
    "grid-image-causal-dense": ("image", TINY_GRID.replace(grid_lambda=0.002)),
    # format 2.6: the latent grid with causal4-coded latents (entropy model 6)
    "grid-image-causal4-dense": ("image", TINY_GRID.replace(grid_lambda=0.0015)),
    # format 2.7: the latent grid with arm-coded latents (entropy model 7; the 256x256 sample)
    "grid-image-arm-dense": ("medium", TINY_GRID.replace(grid_lambda=0.001, grid_levels=6, grid_arm=8,
                                                         grid_arm_steps=1500)),
    # format 2.8: the latent grid in the width-chunks layout (latent planes coarse to fine, 3 segments)
    "grid-image-widthchunks-dense": ("image", TINY_GRID.replace(layout="width-chunks", widths=(2, 3, 4))),
    # format 2.9: the video latent grid (arch 3; latent volumes over (t, y, x), trilinear upsampling)
    "grid-video-dense": ("video8", TINY_GRID.replace(arch="grid-video", grid_iters=300, grid_ste_iters=30)),
    # ... and one whose levels 1 and 2 the encoder stores as differences along time (ARCH.tdelta = 6)
    "grid-video-tdelta-dense": ("video16", TINY_GRID.replace(arch="grid-video", grid_iters=300, grid_ste_iters=30)),
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _expected() -> dict:
    return json.loads(EXPECTED.read_text())


def _tiny_prior() -> bytes:
    """The prior of the prior-coded golden files: SIREN init (seed 0) of an 8x2 network, 16x16 tiles."""
    import torch

    from nfcodec.bitstream import SirenArch
    from nfcodec.models.tiled import siren_init
    from nfcodec.priors import pack_prior, prior_from_float

    record = SirenArch(in_features=2, out_features=3, width=8, depth=2, w0_first=30.0, w0_hidden=30.0)
    shapes = [(8, 2), (8,), (8, 8), (8,), (3, 8), (3,)]
    tensors = [t[0].numpy() for t in siren_init(1, shapes, 30.0, torch.Generator().manual_seed(0))]
    return pack_prior(prior_from_float("siren", record, 0, (1, 16, 16), tensors, meta={"inner_steps": 0}))


def _as_single(data: bytes) -> bytes:
    """A one-tile tiles stream as layout single (the TDAT is the same bytes: records carry no shapes)."""
    from nfcodec.bitstream import Chunk, StreamHeader, read_container, write_container

    c = read_container(data)
    h = StreamHeader.unpack(c.chunks[0].data)
    return write_container([Chunk(b"NHDR", dataclasses.replace(h, layout=0).pack())]
                           + [x for x in c.chunks[1:] if x.ctype != b"TILE"], version=c.version)


def _source(kind: str) -> np.ndarray:
    if kind == "video":
        return moving_clip(4, 16, 20)
    if kind == "video8":
        return moving_clip(8, 24, 32)
    if kind == "video16":
        return moving_clip(16, 16, 20)
    if kind == "medium":
        return medium_image()
    image = load_image(TINY_PNG)
    return np.ascontiguousarray(image[:16, 8:24]) if kind == "tile16" else image


@pytest.mark.skipif(not GENERATE, reason="set GENERATE_EXPECTED=1 to regenerate golden files")
def test_generate_golden_v2():
    FOLDER.mkdir(exist_ok=True)
    table = _expected() if EXPECTED.exists() else {}
    if not PRIOR.exists():
        PRIOR.write_bytes(_tiny_prior())
    for name, (kind, config) in CASES.items():
        if name in table:
            continue
        r = nfcodec.encode(_source(kind), config=config, metadata=False, fps=Fraction(25) if kind.startswith("video") else None)
        if kind == "tile16":
            r = dataclasses.replace(r, data=_as_single(r.data))
        (FOLDER / f"{name}.nfc").write_bytes(r.data)
        frames = list(r.reconstruction) if kind.startswith("video") else [r.reconstruction]
        table[name] = {"file_sha256": _sha(r.data), "bytes": len(r.data), "psnr": r.psnr,
                       "frames_sha256": [_sha(f.tobytes()) for f in frames]}
    EXPECTED.write_text(json.dumps(table, indent=2) + "\n")


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("backend", ["numpy", "torch", "reference"])
def test_golden_v2_decodes_to_its_pixels(name, backend):
    want = _expected()[name]
    data = (FOLDER / f"{name}.nfc").read_bytes()
    assert _sha(data) == want["file_sha256"] and len(data) == want["bytes"]
    if backend == "reference":
        frames = list(reference_frames(data, prior=FOLDER))
    else:
        stream = open_stream(data, backend=backend, priors=[str(FOLDER)])
        frames = [f for _, f in stream.frames(range(stream.header.frames))]
    assert [_sha(np.ascontiguousarray(f).tobytes()) for f in frames] == want["frames_sha256"]


@pytest.mark.parametrize("name", ["siren-image-widthchunks-dense", "siren-image-spatial-pruned",
                                  "siren-video-temporal-dense", "grid-image-widthchunks-dense"])
def test_golden_v2_every_level_and_cut(name):
    """Each level of a width-chunks golden file, whole and from its prefix, on both backends."""
    data = (FOLDER / f"{name}.nfc").read_bytes()
    plan = open_stream(data).plan
    for lv in plan.levels:
        want = reference_frames(data, level=lv.index)
        for backend in ("numpy", "torch"):
            for source in (data, data[:lv.end]):
                s = open_stream(source, backend=backend, level=None if len(source) < len(data) else lv.index,
                                partial=True)
                got = np.stack([f for _, f in s.frames(range(s.n_frames))])
                assert s.level == lv.index and np.array_equal(got, np.asarray(want))


@pytest.mark.parametrize("name", ["siren-video-dense", "nerv-pruned", "siren-video-gamma-dense", "grid-video-dense",
                                  "grid-video-tdelta-dense"])
def test_golden_v2_random_access(name):
    want = _expected()[name]["frames_sha256"]
    data = (FOLDER / f"{name}.nfc").read_bytes()
    (k, frame), = nfcodec.decode_frames(data, frames="2:3")
    assert k == 2 and _sha(frame.tobytes()) == want[2]


def test_every_architecture_and_representation_has_a_golden_file():
    names = set(_expected())
    for arch in ARCHS:
        for rep in REPRESENTATIONS:
            if arch.representations is not None and rep.name not in arch.representations:
                continue
            assert any(n.startswith(f"{arch.name}-") and n.endswith(f"-{rep.name}") for n in names), (arch.name, rep.name)


def test_golden_v2_grid_video_records():
    assert nfcodec.probe(FOLDER / "grid-video-dense.nfc").arch.tdelta == 0
    assert nfcodec.probe(FOLDER / "grid-video-tdelta-dense.nfc").arch.tdelta == 6


def test_golden_v2_probe():
    info = nfcodec.probe(FOLDER / "nerv-dense.nfc")
    assert info.version == (2, 0)
    assert (info.header.frames, info.header.width, info.header.height, info.header.arch) == (4, 20, 16, 1)
