"""The bitstream layer must stay importable and usable without torch (``nfc info`` on any box)."""
from __future__ import annotations

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
import nfcodec.bitstream as bs
assert "torch" not in sys.modules, "importing nfcodec.bitstream loaded torch"
header = bs.StreamHeader(0, 4, 4, 1, 0, 1, 3, 8, 0, 0, 0, 0, 1)
arch = bs.SirenArch(2, 3, 8, 2, 30.0, 30.0)
data = bs.write_container([bs.Chunk(b"NHDR", header.pack()), bs.Chunk(b"ARCH", arch.pack()), bs.Chunk(b"NEND", b"")])
assert bs.probe(data).header == header
bs.decode_tensors(bs.encode_tensors([bs.CodedTensor(0, 0, [1, 2, 2])]))
assert "torch" not in sys.modules, "probing / entropy coding loaded torch"
"""


def test_bitstream_never_imports_torch():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
