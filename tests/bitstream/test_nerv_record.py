"""The NeRV ARCH record (arch wire id 1): golden bytes, ranges and cross-field rules."""
from __future__ import annotations

import dataclasses
import struct

import pytest

from nfcodec.bitstream import ARCH_RECORDS, FieldRangeError, NervArch, unpack_arch

SLOTS = dict(factor0=5, channels0=96, factor1=2, channels1=48, factor2=2, channels2=24,
             factor3=0, channels3=0, factor4=0, channels4=0, factor5=0, channels5=0)
NERV = NervArch(pe_b=1.25, pe_l=80, mlp_hidden=128, c1=16, h0=9, w0=16, kernel=3, head_kernel=3, act=0, crop=0,
                **SLOTS)


def test_golden_nerv_arch():
    golden = ("0000a03f" "50" "8000" "1000" "0900" "1000" "03" "03" "00" "00"
              "05" "6000" "02" "3000" "02" "1800" "00" "0000" "00" "0000" "00" "0000")
    assert NERV.pack().hex() == golden and NervArch.size() == 35
    assert unpack_arch(1, bytes.fromhex(golden)) == NERV
    assert ARCH_RECORDS[1] is NervArch and NervArch.ARCH_ID == 1


def test_derived_sizes():
    assert NERV.blocks == ((5, 96), (2, 48), (2, 24))
    assert NERV.upscale == 20 and NERV.padded_size == (180, 320)


@pytest.mark.parametrize("changes, match", [
    ({"pe_b": 0.5}, r"ARCH\.pe_b=0\.5 outside \[1\.0, 4\.0\]"),
    ({"pe_l": 0}, r"ARCH\.pe_l=0 outside"),
    ({"kernel": 4}, r"ARCH\.kernel=4 must be odd"),
    ({"act": 1}, r"ARCH\.act=1 not in"),
    ({"crop": 1}, r"ARCH\.crop=1 not in"),
    ({"factor0": 9}, r"ARCH\.factor0=9 outside \[0, 8\]"),
    ({"factor1": 0, "channels1": 0}, r"ARCH\.factor2=2 after an unused slot"),
    ({"channels2": 0}, r"ARCH\.factor2=2 with ARCH\.channels2=0"),
    ({"factor0": 0, "channels0": 0, "factor1": 0, "channels1": 0, "factor2": 0, "channels2": 0},
     r"needs at least one block"),
    ({"c1": 4096, "h0": 4096, "w0": 4096}, r"c1\*h0\*w0 = .* exceeds"),
])
def test_nerv_record_rules(changes, match):
    with pytest.raises(FieldRangeError, match=match):
        dataclasses.replace(NERV, **changes)


def test_nan_pe_base_refused_on_unpack():
    data = bytearray(NERV.pack())
    data[0:4] = struct.pack("<f", float("nan"))
    with pytest.raises(FieldRangeError, match=r"ARCH\.pe_b=nan outside"):
        unpack_arch(1, bytes(data))
