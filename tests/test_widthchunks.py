"""The width-chunks layout (format 2.2, docs/format.md 4b): streamable files, progressive decoding.

Every level decodes from the bytes before it; a file cut at every offset decodes its last
complete level (or is refused before level 1); truncate / decode_progressive / --level agree.
"""
from __future__ import annotations

import io
import json
import zlib
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner

import nfcodec
from nfcodec.bitstream import (Chunk, ChecksumError, FormatError, GrowRecord, SegmentHeader, TruncatedError,
                               read_container, write_container)
from nfcodec.cli.main import cli
from nfcodec.decoder import open_stream, stream_levels
from nfcodec.errors import ConfigError, UnsupportedFeatureError
from nfcodec.media import load_image
from nfcodec.metrics import psnr
from nfcodec.variants import LAYOUTS, REPRESENTATIONS
from nfcodec.widthchunks import assemble
from nfcodec.exact.layers import QTensor

from nfc_testdata import FAST, TINY_PNG, moving_clip

WIDTHS = (6, 12, 18)
GROW = FAST.replace(layout="width-chunks", widths=WIDTHS, steps=150)


@pytest.fixture(scope="module")
def image():
    return load_image(TINY_PNG)


@pytest.fixture(scope="module")
def spectral(image):
    return nfcodec.encode(image, config=GROW)


def _render(data: bytes, **kw) -> np.ndarray:
    s = open_stream(data, **kw)
    return np.stack([f for _, f in s.frames(range(s.n_frames))])


def test_levels_rise_and_are_listed(spectral, image):
    r = spectral
    assert [lv["level"] for lv in r.levels] == [1, 2, 3]
    assert [lv["width"] for lv in r.levels] == list(WIDTHS)
    ps = [lv["psnr"] for lv in r.levels]
    assert ps[0] < ps[1] < ps[2], ps
    assert 24.0 < ps[-1] < 40.0 and 17.0 < ps[0], ps
    assert ps[-1] == pytest.approx(r.psnr, abs=1e-3)
    ends = [lv["end"] for lv in r.levels]
    assert ends == sorted(ends) and ends[-1] < r.nbytes
    info = nfcodec.probe(r.data)
    assert info.version == (2, 9) and info.header.layout == 1 and info.header.n_segments == 3
    for lv in r.levels:     # the measured PSNR is what the decoder gives for that level
        got = _render(r.data, level=lv["level"])[0]
        assert psnr(got, image) == pytest.approx(lv["psnr"], abs=1e-3)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_every_level_same_on_both_backends(spectral, backend):
    for k in (1, 2, 3):
        assert np.array_equal(_render(spectral.data, level=k, backend=backend), _render(spectral.data, level=k))


def test_cut_at_every_offset(spectral):
    data = spectral.data
    ends = [lv["end"] for lv in spectral.levels]
    images = {k: _render(data, level=k) for k in (1, 2, 3)}
    last_psnr = -1.0
    for cut in range(len(data) + 1):
        want = sum(e <= cut for e in ends)
        if want == 0:
            with pytest.raises((TruncatedError, FormatError)) as e:
                open_stream(data[:cut], partial=True)
            assert "\n" not in str(e.value)
            continue
        s = open_stream(data[:cut], partial=True)
        assert s.level == want, cut
        got = np.stack([f for _, f in s.frames(range(s.n_frames))])
        assert np.array_equal(got, images[want]), cut
        assert (s.note == "") == (cut == len(data)), (cut, s.note)
        if cut < len(data):
            assert s.note == f"decoded level {want} of 3: the file ends at byte {cut}"
        p = spectral.levels[want - 1]["psnr"]
        assert p >= last_psnr
        last_psnr = p
        if cut < len(data):
            with pytest.raises(TruncatedError):
                open_stream(data[:cut])          # strict


def test_other_layouts_cut_anywhere_are_refused(image):
    data = nfcodec.encode(image, config=FAST).data
    for cut in range(10, len(data), 23):
        with pytest.raises(TruncatedError):
            open_stream(data[:cut], partial=True)


def _chunks(data: bytes) -> list[Chunk]:
    return list(read_container(data).chunks)


def test_damaged_segment_decodes_levels_before_it(spectral):
    data = bytearray(spectral.data)
    tdats = [c for c in _chunks(bytes(data)) if c.ctype == b"TDAT"]
    data[tdats[2].offset + 9] ^= 0x40          # a bit inside level 3's TDAT
    s = open_stream(bytes(data), partial=True)
    assert s.level == 2
    assert s.note == f"decoded level 2 of 3: the chunk at byte {tdats[2].offset} is damaged (CRC mismatch)"
    assert np.array_equal(_render(bytes(data), partial=True), _render(spectral.data, level=2))
    with pytest.raises(ChecksumError):
        open_stream(bytes(data))
    data = bytearray(spectral.data)
    data[tdats[0].offset + 9] ^= 0x40          # level 1 damaged: nothing decodes
    with pytest.raises(ChecksumError, match=f"byte {tdats[0].offset} is damaged .CRC mismatch., before level 1 of 3 "
                                            "is complete"):
        open_stream(bytes(data), partial=True)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_truncate_equals_level(spectral, k):
    out = nfcodec.truncate(spectral.data, level=k)
    info = nfcodec.probe(out)
    assert info.header.n_segments == k and info.arch.width == WIDTHS[k - 1]
    assert np.array_equal(_render(out), _render(spectral.data, level=k))
    assert len(out) < spectral.levels[k - 1]["end"] + 12 or k == 3


def test_truncate_max_bytes(spectral):
    sizes = [len(nfcodec.truncate(spectral.data, level=k)) for k in (1, 2, 3)]
    assert len(nfcodec.truncate(spectral.data, max_bytes=sizes[1])) == sizes[1]
    assert len(nfcodec.truncate(spectral.data, max_bytes=sizes[1] - 1)) == sizes[0]
    with pytest.raises(ConfigError, match="below the smallest file"):
        nfcodec.truncate(spectral.data, max_bytes=sizes[0] - 1)
    with pytest.raises(ConfigError, match="level 4 outside"):
        nfcodec.truncate(spectral.data, level=4)


def test_truncate_refuses_other_layouts(image):
    with pytest.raises(UnsupportedFeatureError, match="only width-chunks"):
        nfcodec.truncate(nfcodec.encode(image, config=FAST).data, level=1)


@pytest.mark.parametrize("feed", ["chunks", "filelike"])
def test_decode_progressive_yields_each_level_early(spectral, feed):
    data = spectral.data
    ends = [lv["end"] for lv in spectral.levels]
    pieces = [data[i:i + 64] for i in range(0, len(data), 64)]
    source = iter(pieces) if feed == "chunks" else io.BytesIO(data)
    got = list(nfcodec.decode_progressive(source))
    assert [g.level for g in got] == [1, 2, 3] and [g.end for g in got] == ends
    for g in got:
        assert np.array_equal(g.image, _render(data, level=g.level)[0])
        if feed == "chunks":                    # decoded as soon as the level's bytes were in
            assert g.received < g.end + 64


def test_decode_progressive_of_a_cut_stream(spectral):
    data = spectral.data[:spectral.levels[1]["end"] + 3]
    assert [g.level for g in nfcodec.decode_progressive([data[:100], data[100:]])] == [1, 2]
    with pytest.raises(TruncatedError):
        list(nfcodec.decode_progressive([spectral.data[:40]]))


def test_stream_levels(spectral):
    ends = [lv["end"] for lv in spectral.levels]
    assert stream_levels(spectral.data) == ends
    assert stream_levels(spectral.data[:ends[1]]) == ends[:2]
    assert stream_levels(spectral.data[:ends[0] - 1]) == []


def test_spatial_growing(image):
    r = nfcodec.encode(image, config=GROW.replace(growing="spatial"))
    h, w = image.shape[:2]
    covers = [lv["cover"] for lv in r.levels]
    assert covers == [round(w * (k + 1) / 3) for k in range(3)]
    for lv in r.levels:
        got = _render(r.data, level=lv["level"])[0]
        assert got.shape == (h, lv["cover"], 3)
        assert psnr(got, image[:, :lv["cover"]]) == pytest.approx(lv["psnr"], abs=1e-3)
        assert lv["psnr"] > 20.0
    # the decoded part of level 1 is the same columns of level 3 (older units unchanged), nearly
    assert r.reconstruction.shape == image.shape


def test_temporal_growing_video():
    clip = moving_clip(4, 16, 20)
    cfg = FAST.replace(arch="siren", layout="width-chunks", widths=(6, 12), growing="temporal", steps=150)
    r = nfcodec.encode(clip, config=cfg, fps=Fraction(25))
    assert [lv["cover"] for lv in r.levels] == [2, 4]
    s1 = open_stream(r.data, level=1)
    assert s1.n_frames == 2
    frames = np.stack([f for _, f in s1.frames(range(2))])
    assert psnr(frames, clip[:2]) == pytest.approx(r.levels[0]["psnr"], abs=1e-3)
    assert r.reconstruction.shape == clip.shape
    res = nfcodec.decode(r.data[:r.levels[0]["end"]])
    assert res.frames.shape == (2, 16, 20, 3) and res.level == 1 and "level 1 of 2" in res.note


@pytest.mark.parametrize("rep", [r.name for r in REPRESENTATIONS])
def test_every_representation_either_grows_or_is_refused(image, rep):
    cfg = GROW.replace(representation=rep, widths=(6, 12), steps=80)
    if not getattr(REPRESENTATIONS.by_name(rep), "growable", False):
        with pytest.raises(ConfigError, match="not supermask|supports the dense"):
            nfcodec.encode(image, config=cfg)
        return
    if rep == "pruned":
        cfg = cfg.replace(sparsity=0.4, prune_scope="layer")
    r = nfcodec.encode(image, config=cfg)
    assert r.info.header.representation == REPRESENTATIONS.by_name(rep).wire_id
    assert [lv["level"] for lv in r.levels] == [1, 2]
    assert r.levels[0]["psnr"] < r.levels[1]["psnr"]
    for k in (1, 2):
        assert np.array_equal(_render(r.data, level=k, backend="torch"), _render(r.data, level=k))


def test_pruned_prunes_only_each_level_own_weights(image):
    cfg = GROW.replace(representation="pruned", sparsity=0.5, prune_scope="global", widths=(16, 32), steps=80)
    r = nfcodec.encode(image, config=cfg)
    rows = [m for c in _chunks(r.data) if c.ctype == b"MASK" for m in nfcodec.bitstream.mask_report(c.data)]
    assert rows and all(0.4 < row["kept"] / row["n"] < 0.6 for row in rows), rows


def test_nerv_cannot_grow():
    with pytest.raises(ConfigError, match="nerv cannot grow"):
        nfcodec.encode(moving_clip(4, 16, 20), arch="nerv", layout="width-chunks", epochs=1, fps=25)


def test_slimmable_training(image):
    r = nfcodec.encode(image, config=GROW.replace(grow_training="slimmable"))
    ps = [lv["psnr"] for lv in r.levels]
    assert ps[0] < ps[2] and ps[0] > 15.0, ps
    with pytest.raises(ConfigError, match="spectral growing only"):
        nfcodec.encode(image, config=GROW.replace(grow_training="slimmable", growing="spatial"))


def test_rate_control_bpp_and_level_bpp(image):
    pixels = image.shape[0] * image.shape[1]
    r = nfcodec.encode(image, config=GROW.replace(widths=()), bpp=16.0, metadata=False)
    assert 0.95 * 16.0 <= r.bpp <= 16.0
    assert r.rate_control["mode"] == "bpp" and len(r.rate_control["widths"]) == 4
    ps = [lv["psnr"] for lv in r.levels]
    assert all(a <= b for a, b in zip(ps, ps[1:])) and ps[-1] > ps[0], ps
    targets = (4.0, 7.0, 12.0)
    r = nfcodec.encode(image, config=GROW.replace(widths=(4, 8, 12), level_bpp=targets), metadata=False)
    for lv, t in zip(r.levels, targets):
        assert lv["end"] <= t * pixels / 8 + (r.nbytes - r.levels[-1]["end"]) * (lv["level"] == 3), (lv, t)
    assert r.bpp <= targets[-1]
    with pytest.raises(ConfigError, match="--psnr is not supported"):
        nfcodec.encode(image, config=GROW, psnr=30)


def test_assemble_rule():
    a = QTensor(np.array([[3, 0]], np.int64), 9)        # step(9) = 15 * 2^-5
    b = QTensor(np.array([[0, -2]], np.int64), 26)      # step(26) = 14 * 2^-7
    (t,) = assemble([(1, 2)], [[((slice(0, 1), slice(0, 1)), QTensor(a.q[:, :1], 9)),
                                 ((slice(0, 1), slice(1, 2)), QTensor(b.q[:, 1:], 26))]])
    assert t.step == 8 * 7 and t.q.tolist() == [[3 * 15 * 4, -2 * 14]]
    assert (t.q * t.scale).tolist() == [[3 * 15 / 32, -2 * 14 / 128]]
    with pytest.raises(FormatError, match="finer than this layout allows"):
        assemble([(1,)], [[((slice(0, 1),), QTensor(np.array([1], np.int64), 160))]])


def _rewrite(data: bytes, edit) -> bytes:
    chunks = edit(_chunks(data))
    return write_container(chunks, version=(2, 2))


def test_structure_errors(spectral):
    data = spectral.data

    def seg_index(chunks):
        return [Chunk(b"SEGM", SegmentHeader(index=5, kind=1, start=0, stop=6).pack()) if c.ctype == b"SEGM"
                and SegmentHeader.unpack(c.data).index == 0 else c for c in chunks]

    def no_grow(chunks):
        return [c for c in chunks if c.ctype != b"GROW"]

    def wrong_width(chunks):
        g = GrowRecord(0, (6, 12, 20), (0, 0, 0))
        return [Chunk(b"GROW", g.pack()) if c.ctype == b"GROW" else c for c in chunks]

    def missing_tdat(chunks):
        t = [c for c in chunks if c.ctype == b"TDAT"][1]
        return [c for c in chunks if c is not t]

    for edit, msg in [(seg_index, "GROW needs index 0"), (no_grow, "one GROW chunk"),
                      (wrong_width, "not the ARCH record's"), (missing_tdat, "segment lacks TDAT")]:
        with pytest.raises(FormatError, match=msg):
            open_stream(_rewrite(data, edit))


def test_grow_record_bounds():
    for bad, msg in [((0, (4, 4), (0, 0)), "grow strictly"), ((1, (4, 8), (5, 5)), "grows strictly"),
                     ((0, (4,), (3,)), "must be 0"), ((3, (4,), (0,)), "unknown")]:
        with pytest.raises(FormatError, match=msg):
            GrowRecord(*bad)
    with pytest.raises(FormatError, match="needs 2 \\+ 6 x levels"):
        GrowRecord.unpack(b"\x00\x02" + b"\x00" * 6)


def test_layout_registry_ids():
    assert LAYOUTS.by_name("single").wire_id == 0 and LAYOUTS.by_name("width-chunks").wire_id == 1
    assert LAYOUTS.by_name("width-chunks").progressive and not LAYOUTS.by_name("single").progressive


# --------------------------------------------------------------------------- CLI

@pytest.fixture()
def run():
    runner = CliRunner()
    return lambda *a: runner.invoke(cli, list(a), catch_exceptions=False)


def test_cli_round_trip(tmp_path, run, spectral):
    src = tmp_path / "a.nfc"
    src.write_bytes(spectral.data)
    r = run("info", "--json", str(src))
    assert r.exit_code == 0
    levels = json.loads(r.stdout)["levels"]
    assert [lv["end"] for lv in levels] == [lv["end"] for lv in spectral.levels]
    assert [lv["psnr"] for lv in levels] == [pytest.approx(lv["psnr"], abs=0.006) for lv in spectral.levels]
    assert "level 2: width 12" in run("info", str(src)).stdout
    cut = tmp_path / "cut.nfc"
    cut.write_bytes(spectral.data[:levels[1]["end"] + 5])
    r = run("decode", str(cut), "-o", str(tmp_path / "c.png"))
    assert r.exit_code == 0
    assert r.stderr.strip() == f"nfc: decoded level 2 of 3: the file ends at byte {levels[1]['end'] + 5}"
    r = run("decode", str(cut), "-o", str(tmp_path / "s.png"), "--strict")
    assert r.exit_code == 1 and "Traceback" not in r.output and not (tmp_path / "s.png").exists()
    run("decode", str(src), "-o", str(tmp_path / "l2.png"), "--level", "2")
    assert np.array_equal(load_image(tmp_path / "l2.png"), load_image(tmp_path / "c.png"))
    r = run("truncate", str(src), str(tmp_path / "t.nfc"), "--level", "2")
    assert r.exit_code == 0
    run("decode", str(tmp_path / "t.nfc"), "-o", str(tmp_path / "t.png"))
    assert np.array_equal(load_image(tmp_path / "t.png"), load_image(tmp_path / "l2.png"))
    r = run("truncate", str(src), str(tmp_path / "u.nfc"))
    assert r.exit_code == 2
    r = run("decode", str(src), "-o", str(tmp_path / "x.png"), "--level", "7")
    assert r.exit_code == 1 and r.stderr.strip() == "nfc: error: level 7 outside [1, 3]: this stream has 3 levels"


def test_cli_encode_options(tmp_path, run):
    out = tmp_path / "g.nfc"
    r = run("encode", str(TINY_PNG), "-o", str(out), "--layout", "width-chunks", "--widths", "4,8",
            "--growing", "spatial", "--depth", "2", "--steps", "60", "--batch-pixels", "0", "-q")
    assert r.exit_code == 0, r.output
    info = nfcodec.probe(out)
    assert info.header.layout == 1 and info.arch.width == 8
    r = run("encode", str(TINY_PNG), "-o", str(tmp_path / "h.nfc"), "--layout", "width-chunks", "--widths", "8,4")
    assert r.exit_code == 1 and "strictly increasing" in r.stderr


def test_crc_damage_in_ancillary_psnr_is_ignored(spectral):
    data = bytearray(spectral.data)
    p = [c for c in _chunks(bytes(data)) if c.ctype == b"pSNR"][0]
    data[p.offset + 9] ^= 1
    s = open_stream(bytes(data))
    assert s.level == 3 and s.plan.psnr == ()
    assert zlib.crc32(bytes(data)) != zlib.crc32(spectral.data)


def test_decode_progressive_from_a_socket(spectral):
    """Levels come out while the sender still holds the rest of the file back."""
    import socket
    import threading

    data, ends = spectral.data, [lv["end"] for lv in spectral.levels]
    a, b = socket.socketpair()
    go_on = threading.Event()

    def sender() -> None:
        a.sendall(data[:ends[0] + 5])
        go_on.wait(30)
        a.sendall(data[ends[0] + 5:])
        a.close()

    t = threading.Thread(target=sender)
    t.start()
    got = []
    for p in nfcodec.decode_progressive(b):
        got.append(p.level)
        if p.level == 1:
            assert not go_on.is_set()      # level 1 decoded before the rest was sent
            go_on.set()
    t.join()
    b.close()
    assert got == [1, 2, 3]


def test_cli_info_of_a_cut_file(tmp_path, run, spectral):
    ends = [lv["end"] for lv in spectral.levels]
    cut = tmp_path / "cut.nfc"
    cut.write_bytes(spectral.data[:ends[1] + 3])
    r = run("info", str(cut))
    assert r.exit_code == 0 and f"{ends[1] + 3} bytes" in r.stdout and "(cut: 2 of its 3 levels complete)" in r.stdout
    assert [lv["end"] for lv in json.loads(run("info", "--json", str(cut)).stdout)["levels"]] == ends[:2]
    plain = tmp_path / "plain.nfc"
    plain.write_bytes(nfcodec.encode(load_image(TINY_PNG), config=FAST.replace(steps=20)).data[:200])
    r = run("info", str(plain))
    assert r.exit_code == 1 and "file ends inside" in r.stderr


def test_default_widths():
    from nfcodec.grow import default_widths

    assert default_widths(64) == (32, 43, 53, 64) and default_widths(48) == (24, 32, 40, 48)
    assert default_widths(4) == (2, 3, 4) and default_widths(1) == (1,) and default_widths(64, 1) == (64,)
