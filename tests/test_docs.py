"""Every ```python block in docs/*.md and README.md runs (from the repository root).

Fragments that are not meant to run stand in ```py blocks.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks():
    for md in sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")]):
        for i, code in enumerate(BLOCK.findall(md.read_text())):
            if code.strip() and code.strip() != "import nfcodec":
                yield pytest.param(code, id=f"{md.name}#{i}")


@pytest.mark.parametrize("code", list(_blocks()))
def test_doc_example_runs(code, monkeypatch):
    monkeypatch.chdir(ROOT)
    exec(compile(code, "<doc>", "exec"), {"__name__": "__doc__"})
