"""Dependency rules: bitstream never imports torch; the decoder never imports training code."""
import subprocess
import sys
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
