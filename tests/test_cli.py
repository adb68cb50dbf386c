"""The nfc command line: outputs, messages and exit codes (CliRunner, in-process)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from nfcodec.cli.main import cli
from nfcodec.media import load_image

from nfc_testdata import TINY_PNG  # noqa: E402

FAST_ARGS = ["--width", "16", "--depth", "2", "--steps", "300", "--batch-pixels", "0", "--bits", "10", "--lr", "3e-3"]


@pytest.fixture()
def run():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture()
def encoded(tmp_path, run):
    out = tmp_path / "tiny.nfc"
    r = run("encode", str(TINY_PNG), "-o", str(out), *FAST_ARGS, "-q")
    assert r.exit_code == 0, r.output
    return out


def _one_error_line(result, pattern: str) -> None:
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert re.match(rf"nfc: error: .*{pattern}", lines[0]), lines[0]


def test_encode_prints_size_bpp_psnr(tmp_path, run):
    out = tmp_path / "t.nfc"
    r = run("encode", str(TINY_PNG), "-o", str(out), *FAST_ARGS)
    assert r.exit_code == 0
    m = re.search(r"32x24: (\d+) bytes, ([\d.]+) bpp, PSNR ([\d.]+) dB", r.stdout)
    assert m, r.stdout
    assert int(m.group(1)) == out.stat().st_size
    assert float(m.group(2)) == pytest.approx(8 * out.stat().st_size / (32 * 24), abs=1e-4)
    assert 25.5 < float(m.group(3)) < 28.0


def test_encode_json_and_decode_agree(tmp_path, run):
    out, png = tmp_path / "t.nfc", tmp_path / "t.png"
    r = run("encode", str(TINY_PNG), "-o", str(out), *FAST_ARGS, "--json")
    report = json.loads(r.stdout)
    assert report["bytes"] == out.stat().st_size and report["config"]["model"]["width"] == 16
    assert run("decode", str(out), "-o", str(png), "-q").exit_code == 0
    src, dec = load_image(TINY_PNG).astype(float), load_image(png).astype(float)
    assert report["psnr"] == pytest.approx(10 * np.log10(255**2 / np.mean((src - dec) ** 2)), abs=1e-9)


def test_quiet_prints_nothing(tmp_path, run, encoded):
    r = run("decode", str(encoded), "-o", str(tmp_path / "o.png"), "-q")
    assert r.exit_code == 0 and r.output == ""


def test_info_lists_header_and_chunks(run, encoded):
    r = run("info", str(encoded))
    assert r.exit_code == 0
    assert re.search(r"nfc v2\.9, \d+ bytes, [\d.]+ bpp", r.stdout)
    for word in ("width          32", "arch           0 (siren)", "NHDR", "ARCH", "TDAT", "meTA", "NEND",
                 "decoding       exact arithmetic (the same pixels everywhere)"):
        assert word in r.stdout
    verbose = run("info", "-v", str(encoded)).stdout
    assert len(re.findall(r"tensor +\d+:", verbose)) == 6       # 3 layers x (weight, bias)
    as_json = json.loads(run("info", "--json", str(encoded)).stdout)
    assert as_json["header"]["width"] == 32 and as_json["nbytes"] == encoded.stat().st_size
    assert as_json["decoding"] == "exact" and as_json["version"] == [2, 9]


def test_missing_input(tmp_path, run):
    _one_error_line(run("encode", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o.nfc")), "input file not found")
    _one_error_line(run("decode", str(tmp_path / "nope.nfc"), "-o", str(tmp_path / "o.png")), "input file not found")
    _one_error_line(run("info", str(tmp_path / "nope.nfc")), "input file not found")
    assert list(tmp_path.iterdir()) == []


def test_not_an_image(tmp_path, run):
    bad = tmp_path / "bad.png"
    bad.write_text("hello")
    _one_error_line(run("encode", str(bad), "-o", str(tmp_path / "o.nfc")), "not a readable image")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png"]


def test_not_an_nfc_file(tmp_path, run):
    _one_error_line(run("decode", str(TINY_PNG), "-o", str(tmp_path / "o.png")), "signature")
    _one_error_line(run("info", str(TINY_PNG)), "signature")
    assert list(tmp_path.iterdir()) == []


def test_truncated_and_corrupted_files(tmp_path, run, encoded):
    data = encoded.read_bytes()
    cut = tmp_path / "cut.nfc"
    cut.write_bytes(data[: len(data) // 2])
    _one_error_line(run("decode", str(cut), "-o", str(tmp_path / "o.png")), "ends inside chunk")
    flipped = tmp_path / "flip.nfc"
    flipped.write_bytes(data[:80] + bytes([data[80] ^ 0xFF]) + data[81:])
    _one_error_line(run("decode", str(flipped), "-o", str(tmp_path / "o.png")), "CRC mismatch")
    assert not (tmp_path / "o.png").exists()


def test_existing_output_refused_and_untouched(tmp_path, run, encoded):
    target = tmp_path / "exists.png"
    target.write_bytes(b"precious")
    _one_error_line(run("decode", str(encoded), "-o", str(target)), "output file exists")
    assert target.read_bytes() == b"precious"
    before = encoded.read_bytes()
    _one_error_line(run("encode", str(TINY_PNG), "-o", str(encoded), *FAST_ARGS), "output file exists")
    assert encoded.read_bytes() == before
    assert run("decode", str(encoded), "-o", str(target), "--force", "-q").exit_code == 0
    assert target.read_bytes().startswith(b"\x89PNG")


def test_decode_never_overwrites_its_input(run, encoded):
    _one_error_line(run("decode", str(encoded), "-o", str(encoded), "--force"), "refusing to overwrite the input")
    assert encoded.read_bytes()[:4] == b"\x89NFC"


def test_bad_option_values_are_usage_errors(tmp_path, run):
    r = run("encode", str(TINY_PNG), "-o", str(tmp_path / "o.nfc"), "--width", "0")
    assert r.exit_code == 2 and "Traceback" not in r.output
    r = run("encode", str(TINY_PNG), "-o", str(tmp_path / "o.nfc"), "--preset", "ultra")
    assert r.exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_unavailable_device(tmp_path, run):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    _one_error_line(run("encode", str(TINY_PNG), "-o", str(tmp_path / "o.nfc"), "--device", "cuda"), "no CUDA GPU")
    _one_error_line(run("encode", str(TINY_PNG), "-o", str(tmp_path / "o.nfc"), "--device", "tpu"), "is not a device")
    assert list(tmp_path.iterdir()) == []
