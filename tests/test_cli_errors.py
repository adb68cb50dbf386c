"""One line and a non-zero exit for every way a command can fail (issue 9, item 6).

Each case runs the real ``nfc`` entry point in-process (CliRunner, exceptions not caught by the
runner): a traceback would fail the test.  No output file may be left behind.
"""
from __future__ import annotations

import dataclasses
import re

import pytest
from click.testing import CliRunner

from nfcodec.bitstream import Chunk, StreamHeader, read_container, write_container
from nfcodec.cli.main import cli

from nfc_testdata import GOLDEN

V2 = GOLDEN / "v2"


@pytest.fixture()
def run():
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _one_line(result, pattern: str, code: int = 1) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert re.match(rf"nfc: error: .*{pattern}", lines[0]), lines[0]


def _resized(name: str, tmp_path, width: int, height: int):
    chunks = read_container((V2 / name).read_bytes()).chunks
    h = dataclasses.replace(StreamHeader.unpack(chunks[0].data), width=width, height=height)
    path = tmp_path / f"resized-{name}"
    path.write_bytes(write_container([Chunk(c.ctype, h.pack() if c.ctype == b"NHDR" else c.data) for c in chunks]))
    return path


def test_muxer_refusal_is_one_line(tmp_path, run):
    src = _resized("siren-video-dense.nfc", tmp_path, 1, 3)            # FFV1 cannot take a 1-wide frame
    out = tmp_path / "out.mkv"
    _one_line(run("decode", src, "-o", out), r"cannot write a 1x3 ffv1 video: .*Function not implemented")
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_pillow_write_refusal_is_one_line(tmp_path, run):
    src = _resized("siren-image-dense.nfc", tmp_path, 16500, 2)          # WebP stops at 16383 pixels
    out = tmp_path / "big.webp"
    _one_line(run("decode", src, "-o", out), r"cannot write 16500x2 as WEBP to .*big\.webp: .*16383")
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_pillow_read_errors_other_than_oserror(tmp_path, run):
    bad = tmp_path / "bad.ppm"
    bad.write_bytes(b"P6\n2 2\n99999999\n" + b"\x00" * 30)              # Pillow raises ValueError
    _one_line(run("encode", bad, "-o", tmp_path / "x.nfc"), r"bad\.ppm: not a readable image \(ValueError: maxval")


@pytest.mark.parametrize("command", ["encode", "decode"])
def test_missing_gpu_is_one_line(tmp_path, run, command):
    import torch

    if torch.cuda.is_available():
        device, pattern = f"cuda:{torch.cuda.device_count()}", "no such GPU"
    else:
        device, pattern = "cuda:1", r"device='cuda:1' requested but no CUDA GPU is available"
    src = GOLDEN / "tiny-v1.0.nfc"
    if command == "encode":
        args = ("encode", GOLDEN.parent / "data" / "tiny.png", "-o", tmp_path / "x.nfc", "--device", device)
    else:
        args = ("decode", V2 / "siren-image-dense.nfc", "-o", tmp_path / "x.png", "--backend", "torch", "--device", device)
    _one_line(run(*args), pattern)
    assert src.exists() and not list(tmp_path.iterdir())


def test_memory_error_is_one_line(tmp_path, run, monkeypatch):
    import nfcodec.api

    def boom(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(nfcodec.api, "decode", boom)
    _one_line(run("decode", V2 / "siren-image-dense.nfc", "-o", tmp_path / "x.png"), "out of memory")


def test_unexpected_errors_are_one_line_unless_debugging(tmp_path, run, monkeypatch):
    import nfcodec.api

    def bug(*args, **kwargs):
        raise KeyError("oops")

    monkeypatch.setattr(nfcodec.api, "decode", bug)
    _one_line(run("decode", V2 / "siren-image-dense.nfc", "-o", tmp_path / "x.png"),
              r"internal error \(KeyError: 'oops'\); no output written; please report it")
    monkeypatch.setenv("NFC_DEBUG", "1")
    with pytest.raises(KeyError):
        run("decode", V2 / "siren-image-dense.nfc", "-o", tmp_path / "x.png")


def test_limits_and_unsupported_chunks_are_one_line(tmp_path, run):
    bomb = _resized("siren-image-dense.nfc", tmp_path, 8192, 4096)
    _one_line(run("decode", bomb, "-o", tmp_path / "x.png"), "refused as a decompression bomb")
    many = tmp_path / "many.nfc"                                       # 2^22 frames from 2 kB
    chunks = read_container((V2 / "nerv-dense.nfc").read_bytes()).chunks
    h = dataclasses.replace(StreamHeader.unpack(chunks[0].data), frames=2**22)
    many.write_bytes(write_container([Chunk(c.ctype, h.pack() if c.ctype == b"NHDR" else c.data) for c in chunks]))
    _one_line(run("decode", many, "-o", tmp_path / "v.mkv", "--frames", "0:2"), "decompression bomb")
    ok = run("decode", many, "-o", tmp_path / "v.mkv", "--frames", "0:2", "--no-limits")
    assert ok.exit_code == 0 and "2 frames of 20x16" in ok.stdout
    chunks = list(read_container((V2 / "nerv-dense.nfc").read_bytes()).chunks)
    chunks.insert(2, Chunk(b"SEED", bytes(9)))
    odd = tmp_path / "seed.nfc"
    odd.write_bytes(write_container(chunks))
    _one_line(run("decode", odd, "-o", tmp_path / "w.mkv"), "critical chunk SEED at offset 94 is not used")
    _one_line(run("decode", V2 / "siren-image-dense.nfc", "-o", tmp_path / "x.png", "--backend", "numpy", "--device",
                  "cuda"), "the numpy backend runs on the CPU only")
