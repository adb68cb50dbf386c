"""The benchmark scripts whose output docs/benchmarks.md quotes run as their docstrings say and print
the quoted figures (issue 13, eighteenth session).  A script that rots silently (grid_arm_recode.py
called a renamed function for several sessions) fails here; the long measurements themselves stay in
benchmarks/.  The CSV-only scripts read committed records; grid_arm_recode.py reads a file encoded
here with the tiny test configuration."""
from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import nfcodec
from nfcodec import grid_arm
from nfcodec.bitstream import decode_tensors, read_container
from nfcodec.bitstream.headers import GridArch
from nfcodec.models.grid import latent_sizes

from nfc_testdata import TINY_GRID, TINY_PNG

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
GRID = BENCH / "results" / "grid"


def _run(*args) -> str:
    p = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def _bd_table(path: Path) -> dict[str, float]:
    """nfc eval's bdrate.md: nfc-grid's BD-rate (akima, %) against each anchor."""
    rows = re.findall(r"^\| nfc-grid \| (\w+) \| (-?\d+\.\d+) \|", path.read_text(), re.M)
    return {anchor: float(v) for anchor, v in rows}


def _record_bd(out: str, which: str) -> dict[str, float]:
    """grid_record_delta.py's mean BD-rates of the ``which`` ("new" or "old") record per anchor."""
    line = next(x for x in out.splitlines() if x.startswith(f"BD-rate of the {which} record"))
    return {a: float(v) for a, v in re.findall(r"(webp|avif|jpeg) ([+-]\d+\.\d)%", line)}


def test_record_delta_reproduces_the_judged_kodak_figures():
    """The judged record (kodak-r15) against the twelfth round's: the equal-rate mean quoted in
    benchmarks.md, and BD-rates equal to the ones nfc eval wrote in the record's bdrate.md."""
    out = _run(BENCH / "grid_record_delta.py", GRID / "kodak-r15" / "results.csv", GRID / "kodak-r12" / "results.csv")
    assert "all 48 rows: equal rate +0.038 dB" in out
    assert re.search(r"^bpp=1\.5: 12 images, equal rate \+0\.069 dB", out, re.M)
    ours = _record_bd(out, "new")
    assert ours == {"webp": 23.4, "avif": 48.9, "jpeg": -23.4}
    table = _bd_table(GRID / "kodak-r15" / "bdrate.md")
    assert {a: round(table[a], 1) for a in ours} == ours


def test_record_delta_reproduces_the_sixteen_unit_records_figures():
    """The judged record (kodak-r17, 16-unit context network) against kodak-r15: the per-rate and
    overall equal-rate figures quoted in benchmarks.md and grid.md, and its BD-rates equal to
    nfc eval's bdrate.md; the old record's line reproduces kodak-r15's own judged figures."""
    out = _run(BENCH / "grid_record_delta.py", GRID / "kodak-r17" / "results.csv", GRID / "kodak-r15" / "results.csv")
    assert "all 48 rows: equal rate +0.128 dB" in out
    means = re.findall(r"^bpp=([\d.]+): 12 images, equal rate ([+-]\d\.\d+) dB", out, re.M)
    assert means == [("0.25", "+0.035"), ("0.5", "+0.125"), ("1.0", "+0.148"), ("1.5", "+0.204")]
    assert "kodim05.png bpp=0.25: 23.292 dB at 0.2484 bpp (old 23.292 at 0.2484); equal rate +0.000 dB" in out
    bd = {k: _record_bd(out, k) for k in ("new", "old")}
    assert bd == {"new": {"webp": 20.0, "avif": 44.7, "jpeg": -25.4}, "old": {"webp": 23.4, "avif": 48.9, "jpeg": -23.4}}
    table = _bd_table(GRID / "kodak-r17" / "bdrate.md")
    assert {a: round(table[a], 1) for a in bd["new"]} == bd["new"]


def test_record_delta_reproduces_the_trim_by_moves_records_figures():
    """The judged record (kodak-r21, the --bpp trim moves single latents) against kodak-r17: the
    per-rate and overall equal-rate figures and the unchanged files quoted in benchmarks.md and
    grid.md, no row worse, and its BD-rates equal to nfc eval's bdrate.md."""
    out = _run(BENCH / "grid_record_delta.py", GRID / "kodak-r21" / "results.csv", GRID / "kodak-r17" / "results.csv")
    assert "all 48 rows: equal rate +0.181 dB" in out
    means = re.findall(r"^bpp=([\d.]+): 12 images, equal rate ([+-]\d\.\d+) dB", out, re.M)
    assert means == [("0.25", "+0.121"), ("0.5", "+0.108"), ("1.0", "+0.176"), ("1.5", "+0.321")]
    rows = re.findall(r"^kodim\d\d\.png bpp=[\d.]+: .*; equal rate ([+-]\d\.\d+) dB", out, re.M)
    assert len(rows) == 48 and min(map(float, rows)) >= 0.0 and rows.count("+0.000") == 8
    bd = {k: _record_bd(out, k) for k in ("new", "old")}
    assert bd == {"new": {"webp": 16.6, "avif": 39.5, "jpeg": -27.4}, "old": {"webp": 20.0, "avif": 44.7, "jpeg": -25.4}}
    table = _bd_table(GRID / "kodak-r21" / "bdrate.md")
    assert {a: round(table[a], 1) for a in bd["new"]} == bd["new"]


def test_record_delta_gives_the_unseen_image_its_webp_margin():
    """coffee.png, twelfth round: "+0.41 dB over WebP" (the rows against WebP's curve at their bpp)."""
    out = _run(BENCH / "grid_record_delta.py", GRID / "unseen-r12" / "results.csv", GRID / "unseen-r12" / "results.csv")
    assert "against webp at the same bpp (its curve, linear in log bpp): mean +0.41 dB over 3 rows" in out
    assert "all 3 rows: equal rate +0.000 dB" in out


def test_unseen_image_with_the_judged_encoder_meets_issue_13s_criterion():
    """coffee.png with kodak-r21's encoder (unseen-r21): each --bpp file within 5% of its target and
    under 600 s, "+0.64 dB over WebP" on average, "+0.150 dB" at equal rate over unseen-r17, and the
    BD-rates quoted in benchmarks.md (-13.5% vs WebP, +20.3% vs AVIF)."""
    out = _run(BENCH / "grid_record_delta.py", GRID / "unseen-r21" / "results.csv", GRID / "unseen-r17" / "results.csv")
    assert "against webp at the same bpp (its curve, linear in log bpp): mean +0.64 dB over 3 rows (min +0.38, max +0.88)" in out
    assert "all 3 rows: equal rate +0.150 dB" in out
    with open(GRID / "unseen-r21" / "results.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["codec"] == "nfc-grid"]
    assert sorted(r["setting"] for r in rows) == ["bpp=0.25", "bpp=0.5", "bpp=1.0"]
    for r in rows:
        target = float(r["setting"][4:])
        assert 0.95 * target <= float(r["bpp"]) <= target and float(r["encode_s"]) <= 600, r
    table = _bd_table(GRID / "unseen-r21" / "bdrate.md")
    assert {a: round(table[a], 1) for a in ("webp", "avif", "jpeg")} == {"webp": -13.5, "avif": 20.3, "jpeg": -46.4}


def test_compare_rounds_and_record_delta_agree_on_the_twelfth_records_bd_rates():
    """Two scripts, one figure: each Kodak file's BD-rate of the twelfth round's record against WebP,
    from grid_compare_rounds.py and from grid_record_delta.py (as the old record: the anchors are
    the same deterministic WebP encodes in both records)."""
    out = _run(BENCH / "grid_compare_rounds.py", GRID / "kodak-r12" / "results.csv")
    per_file = re.findall(r"^kodim(\d\d)\.png: vs webp ([+-]\d+\.\d)%", out, re.M)
    assert [i for i, _ in per_file] == [f"{i:02d}" for i in range(1, 13)]
    delta = _run(BENCH / "grid_record_delta.py", GRID / "kodak-r15" / "results.csv", GRID / "kodak-r12" / "results.csv")
    old = next(line for line in delta.splitlines() if line.startswith("BD-rate of the old record"))
    webp = re.search(r"webp [+-]\d+\.\d% \(([^)]*)\)", old).group(1).split()
    assert webp == [v for _, v in per_file]
    assert dict(per_file)["12"] == "+43.8"


def test_arm_recode_fits_the_network_on_a_files_latents(tmp_path):
    """grid_arm_recode.py on a tiny grid file: its base is the latents' bytes without the network
    (computed here from the file), and a fit prints coded bytes and the models chosen per level."""
    path = tmp_path / "tiny.nfc"
    path.write_bytes(nfcodec.encode(TINY_PNG, config=TINY_GRID).data)
    out = _run(BENCH / "grid_arm_recode.py", path, "--hidden", "4", "--steps", "20", "--batch", "256")
    c = read_container(path.read_bytes())
    arch = GridArch.unpack(next(x.data for x in c.chunks if x.ctype == b"ARCH"))
    tensors = decode_tensors(next(x.data for x in c.chunks if x.ctype == b"TDAT"))
    planes = [tensors[l].symbols.reshape(s) for l, s in enumerate(latent_sizes(arch.height, arch.width, arch.levels))]
    assert f"latents {grid_arm.arm_bytes(planes, None)} B without the network" in out
    m = re.search(r"4 hidden, 20 steps \([\d.]+ s\): float ideal \d+ B, coded (\d+) B \(([+-]\d+\.\d)%\), F=(\d), "
                  r"models \[(.*)\]", out)
    assert m, out
    assert int(m.group(1)) > 0 and int(m.group(3)) in (6, 7, 8)
    assert len(m.group(4).split(",")) == arch.levels
    assert np.isfinite(float(m.group(2)))


def test_grid_docs_records_table_matches_the_records():
    """docs/grid.md's table of Kodak records: every row that names a record folder carries that
    folder's bdrate.md figures (BD-rate akima to 0.1%, files, mean PSNR per rate to 0.01 dB)."""
    doc = (ROOT / "docs" / "grid.md").read_text()
    rows = re.findall(r"^\| `(kodak-[\w-]+)` \([^|]*\) \| (\d+) \| \**([+-]\d+\.\d)%\** \| \**([+-]\d+\.\d)%\** \| "
                      r"([+-]\d+\.\d)% \| ([\d. /]+) dB \|$", doc, re.M)
    assert len(rows) >= 3
    for name, files, webp, avif, jpeg, psnr in rows:
        text = (GRID / name / "bdrate.md").read_text()
        bd = _bd_table(GRID / name / "bdrate.md")
        assert {a: f"{bd[a]:+.1f}" for a in ("webp", "avif", "jpeg")} == {"webp": webp, "avif": avif, "jpeg": jpeg}, name
        assert re.search(rf"^\| nfc-grid \| webp \| [^|]+ \| [^|]+ \| [^|]+ \| [^|]+ \| {files} \|", text, re.M), name
        means = re.findall(r"^\| nfc-grid \| bpp=[\d.]+ \| [\d.]+ \| (\d+\.\d\d) \|", text, re.M)
        assert " / ".join(means) == psnr.strip(), name


def test_arm_context_probe_builds_each_context_and_distribution(tmp_path):
    """grid_arm_context_probe.py on a tiny grid file: the inputs and weights of each variant follow
    from its context (12 or 24 neighbours, + 1 or 5 coarser latents, + the level) and distribution
    (2 outputs, 3 for the spike mixture), and the ideal bytes are finite and positive."""
    path = tmp_path / "tiny.nfc"
    path.write_bytes(nfcodec.encode(TINY_PNG, config=TINY_GRID).data)
    variants = {"n12": (12, 2), "n24+up5": (29, 2), "n12+up1+lvl@lap0": (14, 3), "n12@gauss": (12, 2)}
    out = _run(BENCH / "grid_arm_context_probe.py", path, "--hidden", "4", "--steps", "10", "--variants", *variants)
    for v, (inputs, outputs) in variants.items():
        m = re.search(rf"^  {re.escape(v)} +(\d+) inputs, (\d+) weights: float ideal (\d+) B", out, re.M)
        assert m, out
        assert int(m.group(1)) == inputs and int(m.group(2)) == inputs * 4 + 4 + 4 * 4 + 4 + 4 * outputs + outputs
        assert int(m.group(3)) > 0
