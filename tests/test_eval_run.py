"""nfcodec.evaluate and `nfc eval`: rows, resume, BD tables, plots, the command, errors."""
from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

import nfcodec
from nfcodec import evaluate
from nfcodec.baselines import BASELINES
from nfcodec.cli.main import cli
from nfcodec.errors import ConfigError, InputError
from nfcodec.evaluate import COLUMNS, Row, bd_table, format_bd, format_table, plot_rd, read_rows, run_eval
from nfcodec.media import load_image
from nfcodec.video_io import write_video

from nfc_testdata import TINY_PNG, moving_clip  # noqa: E402

NFC = "steps=30,width=16,depth=2"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def counting(monkeypatch):
    """Count encoder calls of jpeg and nfc (to check that resumed jobs do not run again)."""
    calls = {"jpeg": 0, "nfc": 0}
    jpeg, encode = BASELINES["jpeg"], nfcodec.encode

    def jpeg_encode(media, setting):
        calls["jpeg"] += 1
        return type(jpeg).encode(jpeg, media, setting)

    def nfc_encode(*args, **kwargs):
        calls["nfc"] += 1
        return encode(*args, **kwargs)

    monkeypatch.setattr(jpeg, "encode", jpeg_encode)
    monkeypatch.setattr(nfcodec, "encode", nfc_encode)
    return calls


@pytest.fixture()
def clip_mkv(tmp_path):
    path = tmp_path / "clip.mkv"
    write_video(path, enumerate(moving_clip(4)), width=32, height=24, fps=30)
    return path


def test_image_rows_and_resume(tmp_path, counting):
    csv_path, json_path = tmp_path / "out" / "results.csv", tmp_path / "out" / "results.json"
    seen = []
    rows = run_eval([TINY_PNG], ["jpeg", "nfc"], settings={"jpeg": [20, "80"], "nfc": [NFC]}, out_csv=csv_path,
                    out_json=json_path, progress=lambda done, total, label: seen.append((done, total, label)))
    assert counting == {"jpeg": 2, "nfc": 1}
    assert [(r.codec, r.setting) for r in rows] == [("jpeg", "20"), ("jpeg", "80"), ("nfc", NFC)]
    assert seen[0] == (0, 3, "jpeg 20 tiny.png") and seen[-1] == (3, 3, "")
    source = load_image(TINY_PNG)
    for r in rows:
        assert (r.file, r.frames, r.width, r.height) == (str(TINY_PNG), 1, 32, 24)
        assert r.bytes > 0 and r.bpp == 8 * r.bytes / (32 * 24)
        assert r.psnr == r.psnr_pooled and 10 < r.psnr < 40
        assert r.msssim_levels == 2 and 0 < r.msssim < 1
        assert r.encode_s > 0 and r.decode_s > 0
    jpeg80 = BASELINES["jpeg"]
    from nfcodec.metrics import psnr
    assert rows[1].psnr == psnr(type(jpeg80).decode(jpeg80, type(jpeg80).encode(jpeg80, source, 80)), source)
    lines = csv_path.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS) and len(lines) == 4
    assert read_rows(csv_path) == rows == read_rows(json_path)
    assert json.loads(json_path.read_text())[2]["setting"] == NFC

    # resume: nothing runs again; a new setting runs alone and is appended
    again = run_eval([TINY_PNG], ["jpeg", "nfc"], settings={"jpeg": [20, 80, 50], "nfc": [NFC]}, out_csv=csv_path)
    assert counting == {"jpeg": 3, "nfc": 1}
    assert again[:2] == rows[:2] and again[3] == rows[2] and again[2].setting == "50"
    assert len(csv_path.read_text().splitlines()) == 5
    # a run killed in the middle of a line: the broken line is dropped, that job runs again
    csv_path.write_text(csv_path.read_text()[:-20])
    run_eval([TINY_PNG], ["jpeg"], settings={"jpeg": [20, 80, 50]}, out_csv=csv_path)
    assert counting["jpeg"] == 4 and [r.setting for r in read_rows(csv_path)] == ["20", "80", NFC, "50"]
    # resume=False measures again and starts the file afresh
    run_eval([TINY_PNG], ["jpeg"], settings={"jpeg": [20]}, out_csv=csv_path, resume=False)
    assert counting["jpeg"] == 5 and len(read_rows(csv_path)) == 1


def test_resume_refuses_rows_of_another_size(tmp_path):
    csv_path = tmp_path / "results.csv"
    run_eval([TINY_PNG], ["jpeg"], settings={"jpeg": [50]}, out_csv=csv_path)
    csv_path.write_text(csv_path.read_text().replace(",1,32,24,", ",1,64,48,"))
    with pytest.raises(ConfigError, match=r"holds results for .*tiny.png measured on 1 frame\(s\) of 64x48, but this "
                                          r"run reads 1 of 32x24; use another output or do not resume$"):
        run_eval([TINY_PNG], ["jpeg"], settings={"jpeg": [50]}, out_csv=csv_path)


def test_codec_errors_name_the_job(tmp_path, monkeypatch):
    def fail(media, setting):
        raise ConfigError("no file in the band")

    csv_path = tmp_path / "results.csv"
    run_eval([TINY_PNG], ["jpeg"], settings={"jpeg": [20]}, out_csv=csv_path)
    monkeypatch.setattr(BASELINES["jpeg"], "encode", fail)
    with pytest.raises(ConfigError, match=r"^.*tiny\.png: jpeg 50: no file in the band$"):
        run_eval([TINY_PNG], ["jpeg"], settings={"jpeg": [20, 50]}, out_csv=csv_path)
    assert [r.setting for r in read_rows(csv_path)] == ["20"]      # earlier results are kept


def test_video_rows(clip_mkv):
    rows = run_eval([clip_mkv], ["x264", "nfc"], frames="0:3",
                    settings={"x264": [20, 35], "nfc": ["c1=8,c2=16,min_channels=8,mlp_hidden=32,pe_l=16,epochs=5"]})
    assert [r.codec for r in rows] == ["x264", "x264", "nfc"]
    for r in rows:
        assert (r.frames, r.width, r.height) == (3, 32, 24) and r.bpp == 8 * r.bytes / (3 * 32 * 24)
        assert abs(r.psnr - r.psnr_pooled) < 1 and r.msssim_levels == 2
    assert rows[0].bytes > rows[1].bytes and rows[0].psnr > rows[1].psnr


def _rows(file, codec, rates, psnrs, ms=0.9):
    return [Row(file, codec, str(i), 1, 32, 24, int(r * 96), r, q, q, ms, 2, 0.1, 0.01)
            for i, (r, q) in enumerate(zip(rates, psnrs))]


def test_bd_table_per_file_and_mean(tmp_path):
    rates, q = [0.2, 0.4, 0.8, 1.6], [28.0, 31.0, 33.5, 36.0]
    rows = (_rows("a.png", "jpeg", rates, q) + _rows("a.png", "nfc", [0.8 * r for r in rates], q)
            + _rows("b.png", "jpeg", rates, q) + _rows("b.png", "nfc", [0.5 * r for r in rates], q)
            + _rows("a.png", "webp", rates, [v + 1 for v in q]) + _rows("b.png", "webp", rates, [v + 1 for v in q]))
    bd = bd_table(rows)
    assert [(e["anchor"], e["codec"], e["file"]) for e in bd][:3] == [
        ("jpeg", "nfc", "a.png"), ("jpeg", "nfc", "b.png"), ("jpeg", "nfc", "(mean)")]
    a, b, mean = bd[:3]
    assert a["bd_rate_akima"] == pytest.approx(-20, abs=1e-6) and b["bd_rate_cubic"] == pytest.approx(-50, abs=1e-6)
    assert mean["bd_rate_akima"] == pytest.approx(-35, abs=1e-6) and mean["files"] == 2 and mean["reason"] == ""
    assert {e["anchor"] for e in bd} == {"jpeg", "webp"}          # every baseline is an anchor
    webp = next(e for e in bd if e["anchor"] == "jpeg" and e["codec"] == "webp" and e["file"] == "(mean)")
    assert webp["bd_db_akima"] == pytest.approx(1.0, abs=1e-9) and webp["bd_db_cubic"] == pytest.approx(1.0, abs=1e-9)
    only = bd_table(rows, ["webp"], metric="msssim")
    assert {e["anchor"] for e in only} == {"webp"} and all(math.isnan(e["bd_rate_akima"]) for e in only)
    md = format_bd(bd)
    assert md.splitlines()[0] == ("| codec | anchor | BD-rate akima (%) | BD-rate cubic (%) | BD-PSNR akima (dB) | "
                                  "BD-PSNR cubic (dB) | files | note |")
    assert "| nfc | jpeg | -35.00 | -35.00 | " in md
    assert "| nfc | jpeg | a.png | -20.00 |" in format_bd(bd, per_file=True)
    table = format_table(rows)
    assert table.startswith("Mean over 2 files.") and "| nfc | 0 | 0.1300 | 28.00 | 10.00 |" in table
    with pytest.raises(ConfigError, match=r"^anchor 'avif' has no results \(codecs in the results: jpeg, nfc, webp\)$"):
        bd_table(rows, ["avif"])
    path = tmp_path / "rd.png"
    plot_rd(rows, path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("codecs, settings, kwargs, error, message", [
    (["jpeg2000"], None, {}, ConfigError, r"unknown codec 'jpeg2000' \(choose from jpeg, webp, avif, x264, x265, av1, "
                                          r"nfc, nfc-<representation>, nfc-grid, nfc-grid-video\)"),
    (["nfc-foo"], None, {}, ConfigError, r"unknown codec 'nfc-foo': 'foo' is not a representation \(dense.*\) or an architecture \(nerv, siren, grid, grid-video\) \(use nfc-dense, \.\.\.\)"),
    (["nfc"], None, {}, ConfigError, r"nfc has no default settings: give some, e.g. preset=fast, bpp=0.3 or "
                                     r"width=32,steps=500"),
    (["x264"], None, {}, ConfigError, r"x264 is a video codec but the inputs are images"),
    (["nfc"], {"nfc": ["widht=3"]}, {}, ConfigError, r"nfc: unknown setting 'widht' \(known: .*"),
    (["nfc"], {"nfc": ["width=0"]}, {}, ConfigError, r"nfc width=0: width=0 outside \[1, 4096\]"),
    (["nfc"], {"nfc": ["frames=0:3"]}, {}, ConfigError, r"nfc: frames= is an evaluation option \(frames=\), not a "
                                                        r"codec setting"),
    (["nfc"], {"nfc": ["steps"]}, {}, ConfigError, r"nfc: setting part 'steps' is not key=value .*"),
    (["jpeg"], {"jpeg": ["q50"]}, {}, ConfigError, r"jpeg: setting 'q50' is not an integer quality \(0-100\)"),
    (["jpeg"], {"webp": [50]}, {}, ConfigError, r"settings given for webp, which is not among the codecs evaluated"),
    (["jpeg"], None, {"frames": "0:2"}, ConfigError, r"frames and resize apply to videos only"),
])
def test_plan_errors(codecs, settings, kwargs, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        run_eval([TINY_PNG], codecs, settings=settings, **kwargs)


def test_input_errors(tmp_path, clip_mkv):
    with pytest.raises(InputError, match=r"^input file not found: nope\.png$"):
        run_eval(["nope.png"], ["jpeg"])
    with pytest.raises(ConfigError, match=r"^cannot mix images and videos in one evaluation \(.*tiny.png is an image, "
                                          r".*clip.mkv a video\)$"):
        run_eval([TINY_PNG, clip_mkv], ["nfc"], settings={"nfc": [NFC]})


def test_library_entry_points():
    import nfcodec as top

    assert top.evaluate is evaluate and top.bdrate.bd_rate is not None and top.baselines.BASELINES is BASELINES
    assert evaluate.parse_codec("nfc-dense").representation == "dense" and evaluate.parse_codec("NFC").is_nfc
    assert evaluate.parse_nfc_setting("preset=fast, bpp=0.25,factors=5:2:2,metadata=false") == {
        "preset": "fast", "bpp": 0.25, "factors": (5, 2, 2), "metadata": False}


# --------------------------------------------------------------------------- the command


@pytest.fixture()
def run():
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_cli_writes_results_and_resumes(tmp_path, run, counting):
    out = tmp_path / "eval"
    args = ["eval", TINY_PNG, "-c", "jpeg", "-s", "jpeg:20/50,80", "-s", f"nfc-dense:{NFC}", "-o", out]
    r = run(*args, "-q")
    assert r.exit_code == 0, r.output
    assert r.stdout == "" and counting == {"jpeg": 3, "nfc": 1}
    for name in ("results.csv", "results.json", "rd.png", "bdrate.md", "bdrate.csv"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "rd.png").read_bytes()[:8] == PNG_SIGNATURE
    assert [r.setting for r in read_rows(out / "results.csv")] == ["20", "50", "80", NFC]
    md = (out / "bdrate.md").read_text()
    assert md.startswith("# nfc eval: 1 image, jpeg, nfc-dense\n") and "| nfc-dense | jpeg |" in md
    assert (out / "bdrate.csv").read_text().startswith("anchor,codec,file,metric,bd_rate_akima,")
    r = run(*args)                                   # resumed: no encoder runs; prints the BD table
    assert r.exit_code == 0 and counting == {"jpeg": 3, "nfc": 1}
    assert "| codec | anchor | BD-rate akima (%)" in r.stdout and "4 results; wrote " in r.stdout
    r = run(*args, "--no-resume", "-q", "--metric", "msssim")
    assert r.exit_code == 0 and counting == {"jpeg": 6, "nfc": 2}
    assert "BD-MS-SSIM" in (out / "bdrate.md").read_text()


def test_cli_list_codecs(run):
    r = run("eval", "--list-codecs")
    assert r.exit_code == 0
    assert r.stdout.splitlines()[1].split()[:3] == ["jpeg", "image", "10/30/50/70/90"]
    assert "nfc-dense" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["-c", "jpeg2000"], "unknown codec 'jpeg2000' (choose from jpeg, webp, avif, x264, x265, av1, nfc, "
                         "nfc-<representation>, nfc-grid, nfc-grid-video)"),
    (["-c", "nfc"], "nfc has no default settings: give some, e.g. preset=fast, bpp=0.3 or width=32,steps=500"),
    (["-c", "x265"], "x265 is a video codec but the inputs are images"),
    (["-c", "jpeg", "MISSING"], "input file not found: MISSING"),
    (["-c", "jpeg", "--anchor", "webp"], "--anchor webp: not among the codecs evaluated (jpeg)"),
    (["-c", "jpeg", "CLIP"], "cannot mix images and videos in one evaluation (TINY is an image, CLIP a video)"),
])
def test_cli_errors_are_one_line(tmp_path, run, clip_mkv, args, message):
    out = tmp_path / "never"
    subst = {"MISSING": str(tmp_path / "nope.png"), "CLIP": str(clip_mkv), "TINY": str(TINY_PNG)}
    args = [subst.get(a, a) for a in args]
    r = run("eval", TINY_PNG, *args, "-o", out)
    for key, value in subst.items():
        message = message.replace(key, value)
    assert r.exit_code == 1 and r.stderr == f"nfc: error: {message}\n" and r.stdout == ""
    assert not out.exists()                          # nothing written


def test_cli_unreadable_input_leaves_nothing(tmp_path, run):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    r = run("eval", bad, "-c", "jpeg", "-o", tmp_path / "out")
    assert r.exit_code == 1 and r.stderr.startswith(f"nfc: error: {bad}") and len(r.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_usage_errors(tmp_path, run):
    r = run("eval", TINY_PNG, "-s", "jpeg", "-o", tmp_path / "x")
    assert r.exit_code == 2 and "expected CODEC:SETTING[/SETTING...]" in r.stderr
    r = run("eval", TINY_PNG, "-o", tmp_path / "x")
    assert r.exit_code == 2 and "no codecs" in r.stderr
    r = run("eval", "-c", "jpeg", "-o", tmp_path / "x")
    assert r.exit_code == 2 and "no INPUTS" in r.stderr
    assert not (tmp_path / "x").exists()


def test_bd_mean_names_each_reason_once():
    rates, q = [0.2, 0.4, 0.8, 1.6], [28.0, 31.0, 33.5, 36.0]
    rows = (_rows("a.png", "jpeg", rates, q) + _rows("a.png", "nfc", rates[:3], [v + 1 for v in q[:3]])
            + _rows("b.png", "jpeg", rates, q) + _rows("b.png", "nfc", rates[1:], [v + 1 for v in q[1:]]))
    mean = next(e for e in bd_table(rows) if e["file"] == "(mean)")
    assert mean["files"] == 2 and math.isnan(mean["bd_rate_cubic"])
    # each kind of reason once (file a's wording), not once per file
    assert mean["reason"] == ("fewer than 4 points; quality ranges overlap on 69% of their union; rate ranges "
                              "overlap on 67% of their union; cubic (VCEG-M33) needs 4 points per curve (anchor 4, "
                              "test 3)")
