"""Every registered architecture x representation, automatically (a new one is covered on registration).

Round trip through the real encoder, wire ids from the format's tables, the payload chunks are
exactly what the representation consumes, the payload's rate is the file's, and a golden file
exists.  (Both decoder backends and the spec's reference decoder: tests/test_exact.py.)
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import nfcodec
from nfcodec.archs import ARCHS
from nfcodec.bitstream import headers, read_container
from nfcodec.cli.main import _names
from nfcodec.encoder import fit_signal, quant_problem, stream_header
from nfcodec.media import load_image
from nfcodec.variants import LAYOUTS, REPRESENTATIONS

from nfcodec.errors import ConfigError

from nfc_testdata import GOLDEN, TINY_PNG, supports, tiny_config, tiny_source

FRAME = {"fixed": (b"NHDR", b"ARCH", b"meTA", b"NEND")}


def _config(arch: str, rep: str):
    base = tiny_config(arch)
    extra = {"sparsity": 0.3} if rep == "pruned" else {}
    return base.replace(representation=rep, **extra)


def _source(arch: str):
    return tiny_source(arch)[0]


@pytest.mark.parametrize("rep", REPRESENTATIONS.names())
@pytest.mark.parametrize("arch", ARCHS.names())
def test_round_trip_wire_ids_and_chunks(arch, rep):
    if not supports(arch, rep):     # refused before any work, with one line naming what it supports
        with pytest.raises(ConfigError, match=f"arch {arch} supports representation .*, not {rep}"):
            nfcodec.encode(_source(arch), config=_config(arch, rep))
        return
    r = nfcodec.encode(_source(arch), config=_config(arch, rep), fps=tiny_source(arch)[1])
    h = r.info.header
    assert (h.arch, h.representation, h.layout) == (ARCHS.by_name(arch).wire_id, REPRESENTATIONS.by_name(rep).wire_id,
                                                    LAYOUTS.by_name("single").wire_id)
    assert headers.ARCHS[h.arch] == arch and headers.REPRESENTATIONS[h.representation] == rep
    payload_types = [c.ctype for c in read_container(r.data).chunks if c.ctype not in FRAME["fixed"]]
    assert set(payload_types) == set(REPRESENTATIONS.by_name(rep).consumes)
    decoded = nfcodec.decode(r.data)
    got = decoded.image if h.media == 0 else decoded.frames
    assert np.array_equal(got, r.reconstruction)


@pytest.mark.parametrize("rep", REPRESENTATIONS.names())
def test_payload_rate_is_the_file_size(rep):
    """The RD problem's exact byte count (overhead + searchable records) equals the written file."""
    arch = "siren"
    cfg = _config(arch, rep)
    frames = load_image(TINY_PNG)[None]
    from fractions import Fraction

    from nfcodec.encoder import container_bytes

    fitted = fit_signal(frames, 0, Fraction(0), cfg)
    problem = quant_problem(fitted, None)
    steps = fitted.payload.steps
    assert problem.total_bytes(steps) == len(container_bytes(fitted, steps, None))
    assert len(steps) == problem.n_tensors
    assert stream_header(frames, 0, Fraction(0), cfg).representation == REPRESENTATIONS.by_name(rep).wire_id


@pytest.mark.parametrize("rep", REPRESENTATIONS.names())
@pytest.mark.parametrize("arch", ARCHS.names())
def test_every_pair_has_a_golden_file(arch, rep):
    if not supports(arch, rep):
        pytest.skip(f"{arch} does not support {rep}")
    names = [p.stem for p in (GOLDEN / "v2").glob("*.nfc")]
    assert any(n.startswith(f"{arch}-") and n.endswith(f"-{rep}") for n in names)


@pytest.mark.parametrize("rep", REPRESENTATIONS.names())
def test_predicted_bits_are_positive_and_grow_with_the_network(rep):
    r = REPRESENTATIONS.by_name(rep)
    cfg = _config("siren", rep)
    small = [(16, 2), (16,), (16, 16), (16,), (3, 16), (3,)]
    big = [(64, 2), (64,), (64, 64), (64,), (3, 64), (3,)]
    assert 0 < r.predicted_bits(small, cfg) < r.predicted_bits(big, cfg)
    assert math.isfinite(r.predicted_bits(big, cfg))


def test_cli_choices_come_from_the_registries():
    assert _names("representation") == REPRESENTATIONS.names() == ["dense", "pruned", "supermask"]
    assert _names("architecture") == ARCHS.names()


def test_no_shared_encoder_code_names_a_representation():
    """Shared encoder modules plug representations in through hooks, never by name."""
    from pathlib import Path

    root = Path(nfcodec.__file__).parent
    for name in ("encoder.py", "fit.py", "rdsearch.py", "ratecontrol.py", "api.py"):
        text = (root / name).read_text()
        for rep in REPRESENTATIONS.names():
            if rep == "dense":
                continue
            assert f'"{rep}"' not in text and f"'{rep}'" not in text, (name, rep)
