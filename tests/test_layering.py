"""Dependency rules: bitstream never imports torch; the decoder never imports training code."""
import subprocess
import sys

import pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "tiny-v1.0.nfc"


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout


def test_decoding_does_not_import_training_code():
    out = _run(f"import sys, nfcodec; nfcodec.decode({str(GOLDEN)!r}); "
               "print('nfcodec.fit' in sys.modules, 'nfcodec.encoder' in sys.modules)")
    assert out.strip() == "False False"


def test_probe_and_info_need_no_torch():
    out = _run(f"import sys, nfcodec, nfcodec.api, nfcodec.cli.main; nfcodec.probe({str(GOLDEN)!r}); "
               "print('torch' in sys.modules)")
    assert out.strip() == "False"


GOLDEN_VIDEO = ROOT / "tests" / "golden" / "tiny-video-v1.0.nfc"


def test_video_decoding_does_not_import_training_code():
    out = _run(f"import sys, nfcodec; list(nfcodec.decode_frames({str(GOLDEN_VIDEO)!r})); "
               "print([m in sys.modules for m in ('nfcodec.fit', 'nfcodec.encoder', 'nfcodec.samplers', 'av')])")
    assert out.strip() == "[False, False, False, False]"


def test_video_probe_needs_no_torch_or_pyav():
    out = _run(f"import sys, nfcodec, nfcodec.cli.main; nfcodec.probe({str(GOLDEN_VIDEO)!r}); "
               "print('torch' in sys.modules, 'av' in sys.modules)")
    assert out.strip() == "False False"


def test_every_package_is_installed():
    """pyproject lists packages explicitly: a new subpackage must be added there (a wheel would lack it)."""
    tomllib = pytest.importorskip("tomllib")      # Python 3.11+

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"nfcodec." + ".".join(p.parent.relative_to(ROOT / "nfcodec").parts) if p.parent != ROOT / "nfcodec"
             else "nfcodec" for p in (ROOT / "nfcodec").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
