"""The exact decoding arithmetic of format 2.0: tables, backends, bounds, determinism."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nfcodec
from nfcodec.archs import ARCHS
from nfcodec.bitstream import FormatError
from nfcodec.decoder import open_stream
from nfcodec.errors import UnsupportedFeatureError
from nfcodec.exact import get_ops, layers, tables
from nfcodec.exact.layers import QTensor, make_layer
from nfcodec.exact.numpy_ops import NumpyOps
from nfcodec.variants import REPRESENTATIONS

from exact_reference import reference_frames
from nfc_testdata import GOLDEN, supports, tiny_config, tiny_source

ROOT = Path(__file__).resolve().parents[1]


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


# --------------------------------------------------------------------------- tables (golden vectors)

def test_table_golden_vectors():
    sin, gelu = tables.sine_table(), tables.gelu_table()
    assert tables.table_digest(sin) == "0ea9bbe283fd4b1b2ac9b0e4d24322677055d07e284cdd4b491ccde5ecd82051"
    assert tables.table_digest(gelu) == "77aaacb7ddf418cbb13d1f6e465a7cab713873193c8f483a109162d2c325593c"
    assert sin.shape == (65536,) and gelu.shape == (131072,)
    assert [int(sin[k]) for k in (0, 1, 8192, 16384, 32768, 49152, 65535)] == [0, 3, 23170, 32768, 0, -32768, -3]
    assert [int(gelu[j]) for j in (0, 65536 - 2048, 65536, 65536 + 2048, 131071)] == [0, -325, 0, 1723, 65535]
    assert int(gelu.min()) == -348 and int(gelu.argmin()) == 65536 - 1616      # gelu(-0.789) = -0.170


def test_docs_state_the_table_digests():
    text = (ROOT / "docs" / "format.md").read_text()
    for table in (tables.sine_table(), tables.gelu_table()):
        assert tables.table_digest(table) in text


def test_exact_fallback_agrees_with_the_float_estimates():
    sin, gelu = tables.sine_table(), tables.gelu_table()
    for k in (1, 777, 16383, 40000, 65535):
        assert int(tables._sin_exact(k).to_integral_value(rounding="ROUND_HALF_EVEN")) == sin[k]
    for j in (65536 - 7000, 65536 - 100, 65537, 65536 + 9000):
        assert int(tables._gelu_exact(j).to_integral_value(rounding="ROUND_HALF_EVEN")) == gelu[j]


def test_turn_constant():
    assert tables.TURN == 1 / (2 * 3.141592653589793) and tables.ROUND_MAGIC == 6755399441055744.0


# --------------------------------------------------------------------------- every arch x representation

def _encode(arch: str, rep: str):
    extra = dict(representation=rep, **(dict(sparsity=0.5, prune_scope="layer") if rep == "pruned" else {}))
    source, fps = tiny_source(arch)
    return nfcodec.encode(source, config=tiny_config(arch).replace(**extra), fps=fps)


@pytest.mark.parametrize("rep", REPRESENTATIONS.names())
@pytest.mark.parametrize("arch", ARCHS.names())
def test_backends_and_reference_agree_on_fresh_encodes(arch, rep):
    if not supports(arch, rep):
        pytest.skip(f"{arch} does not support {rep} (tests/test_representations.py checks the refusal)")
    r = _encode(arch, rep)
    assert r.info.version == (2, 9) and r.info.header.arch == ARCHS.by_name(arch).wire_id
    assert r.info.header.representation == REPRESENTATIONS.by_name(rep).wire_id
    want = r.reconstruction if r.reconstruction.ndim == 4 else r.reconstruction[None]
    assert np.array_equal(reference_frames(r.data), want)
    for backend in ("numpy", "torch"):
        stream = open_stream(r.data, backend=backend)
        got = np.stack([f for _, f in stream.frames(range(stream.header.frames))])
        assert stream.backend == backend and np.array_equal(got, want)


def _siren_layer(scale: int, width: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    w = QTensor(rng.integers(-scale, scale + 1, (width, width)), 72)
    b = QTensor(rng.integers(-500, 500, width), 90)
    return make_layer("sine", w, b, f_in=15, x_max=2**15, w0=30.0)


def test_float32_and_float64_gemm_paths_agree(monkeypatch):
    layer = _siren_layer(2, width=32)                     # sum |q| * 2^15 < 2^24: the float32 path
    assert layer.f32_exact()
    x = np.take(tables.sine_table_f64(), np.random.default_rng(1).integers(0, 65536, (300, 32)))
    fast = NumpyOps(1).dense(layer, x).copy()
    monkeypatch.setattr(layers, "F32_LIMIT", 0)            # force float64
    assert not layer.f32_exact()
    assert np.array_equal(NumpyOps(1).dense(layer, x), fast)


@pytest.mark.parametrize("workers", [1, 3])
def test_tiles_and_threads_do_not_change_pixels(workers, monkeypatch):
    data = (GOLDEN / "v2" / "nerv-pruned.nfc").read_bytes()
    stream = open_stream(data)
    want = [_sha(f) for _, f in stream.frames(range(4))]
    import nfcodec.exact.convgeom as cg
    import nfcodec.exact.numpy_ops as no
    monkeypatch.setattr(cg, "BAND_VALUES", 1 << 9)        # one-row bands
    monkeypatch.setattr(no, "_TILE_VALUES", 1 << 8)
    ops = NumpyOps(workers)
    with ops.session():
        assert [_sha(stream.program.render(ops, k)) for k in range(4)] == want
    image = open_stream((GOLDEN / "v2" / "siren-image-dense.nfc").read_bytes())
    assert _sha(image.program.render(ops, 0)) == _sha(image.render(0))


# --------------------------------------------------------------------------- bounds of the file

def test_accumulator_bound_is_checked():
    w = QTensor(np.full((4, 4096), 2**30, np.int64), 80)         # int32 symbols: 2^30 * 4096 * 2^15
    with pytest.raises(FormatError, match=r"SIREN layer 1: accumulator bound 2\^57\.00 reaches 2\^53"):
        make_layer("sine", w, QTensor(np.zeros(4, np.int64), 80), f_in=15, x_max=2**15, w0=30.0,
                   where="SIREN layer 1")


def test_sine_phase_bound_is_checked():
    w = QTensor(np.full((4, 64), 2**20, np.int64), 0)     # step 1.0: weights 2^20, w0 10000
    with pytest.raises(FormatError, match=r"sine phase bound .* reaches 2\^50"):
        make_layer("sine", w, QTensor(np.zeros(4, np.int64), 0), f_in=15, x_max=2**15, w0=10000.0)


def test_huge_weights_in_a_file_are_a_format_error(tiny_encoded):
    from nfcodec.bitstream import Chunk, CodedTensor, decode_tensors, encode_tensors, read_container, write_container

    chunks = read_container(tiny_encoded.data).chunks
    tdat = next(c for c in chunks if c.ctype == b"TDAT")
    ts = decode_tensors(tdat.data)
    ts[2] = CodedTensor(2, 0, np.full(ts[2].symbols.size, 2**30 - 1, np.int64))     # weights ~1e9
    bad = write_container([Chunk(c.ctype, encode_tensors(ts) if c.ctype == b"TDAT" else c.data) for c in chunks])
    with pytest.raises(FormatError, match=r"SIREN layer 1: sine phase bound 5\.38e\+15 bins reaches 2\^50"):
        nfcodec.decode(bad)


# --------------------------------------------------------------------------- backends and versions

def test_format_1_files_need_the_torch_backend():
    v1 = GOLDEN / "tiny-v1.0.nfc"
    with pytest.raises(UnsupportedFeatureError, match=r"format 1\.0 files decode only with the float32 torch renderer"):
        nfcodec.decode(v1, backend="numpy")
    assert nfcodec.decode(v1).backend == "torch"             # auto picks the legacy renderer


def test_unknown_backend_and_numpy_device():
    data = (GOLDEN / "v2" / "siren-image-dense.nfc").read_bytes()
    with pytest.raises(nfcodec.ConfigError, match=r"unknown decoder backend 'cupy' \(choose from auto, numpy, torch\)"):
        nfcodec.decode(data, backend="cupy")
    with pytest.raises(nfcodec.ConfigError, match="the numpy backend runs on the CPU only"):
        get_ops("numpy", "cuda")


def test_missing_gpu_is_a_config_error():
    data = (GOLDEN / "v2" / "siren-image-dense.nfc").read_bytes()
    import torch

    if torch.cuda.is_available():
        with pytest.raises(nfcodec.ConfigError, match="no such GPU"):
            nfcodec.decode(data, backend="torch", device=f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(nfcodec.ConfigError, match=r"device='cuda:3' requested but no CUDA GPU is available"):
            nfcodec.decode(data, backend="torch", device="cuda:3")
    with pytest.raises(nfcodec.ConfigError, match="is not a device"):
        nfcodec.decode(data, backend="torch", device="gpu!")


def test_auto_decodes_images_without_torch():
    code = (f"import sys, nfcodec; r = nfcodec.decode({str(GOLDEN / 'v2' / 'siren-image-dense.nfc')!r}); "
            "print(r.backend, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["numpy", "False"]


@pytest.mark.parametrize("threads", ["1", "2", "4"])
def test_same_pixels_in_separate_processes_and_thread_counts(threads):
    """One hash whatever the thread counts of our pool, BLAS, OpenMP and torch (separate processes)."""
    files = [GOLDEN / "v2" / n for n in ("siren-image-pruned.nfc", "nerv-dense.nfc")]
    code = ("import sys, hashlib, numpy as np; from nfcodec.decoder import open_stream\n"
            "for b in ('numpy', 'torch'):\n"
            "    for f in sys.argv[1:]:\n"
            "        s = open_stream(open(f, 'rb').read(), backend=b)\n"
            "        frames = np.stack([x for _, x in s.frames(range(s.header.frames))])\n"
            "        print(hashlib.sha256(frames.tobytes()).hexdigest())\n")
    env = {**os.environ, "NFCODEC_THREADS": threads, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
           "MKL_NUM_THREADS": threads}
    out = subprocess.run([sys.executable, "-c", code, *map(str, files)], capture_output=True, text=True, check=True,
                         cwd=ROOT, env=env).stdout.split()
    here = []
    for f in files:
        s = open_stream(f.read_bytes())
        here.append(_sha(np.stack([x for _, x in s.frames(range(s.header.frames))])))
    assert out == here + here                               # numpy == torch == this process


def test_torch_backend_ignores_the_callers_matmul_precision():
    import torch

    data = (GOLDEN / "v2" / "nerv-dense.nfc").read_bytes()
    want = [_sha(f) for _, f in open_stream(data, backend="numpy").frames(range(4))]
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")          # an embedding application's setting
    try:
        stream = open_stream(data, backend="torch")
        assert [_sha(f) for _, f in stream.frames(range(4))] == want
        assert torch.get_float32_matmul_precision() == "medium"     # restored afterwards
    finally:
        torch.set_float32_matmul_precision(before)
