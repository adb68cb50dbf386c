"""Fast structure-aware fuzzing of the decoder (harness: tests/nfc_fuzz.py; long runs:
benchmarks/fuzz.py).

``test_fuzz_campaign_*`` run 500 deterministic cases (campaign seed 0) in a memory-capped worker
subprocess (4 GiB address space, 20 s per case) and asserts that no case fails -- every refusal is
a typed ``BitstreamError`` / ``NFCodecError``, nothing hangs or crashes, format 2.x pixels are
identical with the numpy and torch backends and with the independent reference decoder, and the
single-mutation oracles hold (known, reported decoder bugs listed in ``nfc_fuzz.KNOWN_FAILURES``
would be exempt: the list is empty).  It also asserts that the mutations exercise the decoder:
seeds of every architecture x representation, every mutation kind, successful decodes (many with
pixels no seed has) and many distinct typed error classes.  The last tests pin the bugs the
harness found (now refused with typed errors).
About 15 s on a 2-core machine (generating the cases is most of it).
"""
from __future__ import annotations

import numpy as np
import pytest

import nfc_fuzz
from nfcodec.bitstream import CodedTensor
from nfcodec.bitstream.errors import FormatError
from nfcodec.errors import LimitError

CASES = 500
SEED = 0
#: Coherent geometries kept small here (the long run allows more; see benchmarks/fuzz.py).
BUDGET = nfc_fuzz.Budget(frame_macs=2**27, frame_pixels=2**18)


@pytest.fixture(scope="module")
def report() -> dict:
    return nfc_fuzz.run_campaign(CASES, SEED, budget=BUDGET)


def test_fuzz_campaign_has_no_unknown_failures(report):
    unknown = [f for f in report["failures"] if f["known"] is None]
    assert not unknown, "decoder failures:\n" + nfc_fuzz.format_report(
        dict(report, failures=unknown, n_failures=len(unknown), failing_cases=len({f["case"] for f in unknown})))
    assert report["cases"] == CASES


def test_fuzz_campaign_exercises_the_decoder(report):
    hist = report["outcomes"]
    typed = {k for k in hist if k not in ("pixels", "info") and not k.startswith("FAIL:")}
    # successful decodes, a fair share of them with pixels that no seed file renders
    assert hist.get("pixels", 0) >= 80, hist
    assert report["cases_with_new_pixels"] >= 40
    # refusals from every layer: container, records, payloads, registries, limits
    assert {"FormatError", "FieldRangeError", "TruncatedError", "ChecksumError", "UnsupportedFeatureError",
            "LimitError"} <= typed, hist
    assert len(typed) >= 7, hist
    # every seed (arch x representation x format version) and every mutation kind was used
    assert set(report["per_seed_file"]) == {s.name for s in nfc_fuzz.load_seeds()}
    assert set(report["per_mutation_kind"]) == set(nfc_fuzz.MUTATORS)
    # both backends rendered, and the single-mutation oracles were checked
    assert report["per_op_outcomes"]["numpy"].get("pixels", 0) >= 60
    assert report["per_op_outcomes"]["torch"].get("pixels", 0) >= 80
    assert report["oracle_checked"] >= 40
    assert report["worker_restarts"] == 0


def test_cases_are_deterministic():
    a, b = nfc_fuzz.make_case(7, 123), nfc_fuzz.make_case(7, 123)
    assert a.data == b.data and a.steps == b.steps
    assert nfc_fuzz.make_case(7, 124).data != a.data


def test_classification_uses_the_typed_base_classes():
    assert nfc_fuzz.classify(FormatError("x")) == (True, "FormatError")   # also a ValueError
    assert nfc_fuzz.classify(LimitError("x")) == (True, "LimitError")
    assert nfc_fuzz.classify(ValueError("x")) == (False, "ValueError")
    assert nfc_fuzz.classify(IndexError("x")) == (False, "IndexError")


def test_runner_reports_timeouts_crashes_and_the_memory_cap():
    with nfc_fuzz.Runner(mem_cap=nfc_fuzz.DEFAULT_MEM_CAP, timeout=20, warm=False) as runner:
        res = runner.run({"cmd": "sleep", "seconds": 30}, timeout=1)
        assert [f["kind"] for f in res["failures"]] == ["timeout"]
        res = runner.run({"cmd": "crash"})
        assert [f["kind"] for f in res["failures"]] == ["crash"] and "SIGSEGV" in res["failures"][0]["message"]
        res = runner.run({"cmd": "alloc", "bytes": 2 * nfc_fuzz.DEFAULT_MEM_CAP})
        assert [f["kind"] for f in res["failures"]] == ["MemoryError"]
        res = runner.run({"cmd": "alloc", "bytes": 1 << 20})   # a fresh worker after each of those
        assert res["failures"] == [] and runner.restarts == 3


def _with_step(name: str, step: int) -> bytes:
    """A golden file with the step index of its first tensor set to ``step``."""
    seed = next(s for s in nfc_fuzz.load_seeds() if s.name == name)
    doc = seed.doc.copy()
    i = doc.index_of(b"TDAT")[0]
    tensors = list(nfc_fuzz._tensors_of(doc.chunks[i].body))
    tensors[0] = CodedTensor(tensors[0].index, step, np.asarray(tensors[0].symbols))
    nfc_fuzz._set_body(doc, i, nfc_fuzz._encode_payload(tensors))
    return doc.to_bytes()


# Regression tests for what this harness found (reported; fixed in the decoder by its owners).

@pytest.mark.parametrize("name", ["v2/siren-image-dense.nfc", "v2/nerv-pruned.nfc", "tiny-v1.0.nfc"])
@pytest.mark.parametrize("step", [192, 255])
def test_step_index_outside_the_table_is_a_typed_refusal(name, step):
    # found: a u8 step index >= 192 (the step table has 192 entries) raised IndexError from
    # STEP_TABLE[step] (QTensor.scale for format 2.x, quant.dequantize for format 1.x)
    result = nfc_fuzz.evaluate(_with_step(name, step), ops=("probe", "numpy", "torch"))
    assert result["failures"] == [], result["failures"]
    assert result["ops"]["torch"] not in ("pixels",)


def test_context_mask_rows_cannot_stall_the_decoder():
    # found: a ~170-byte file whose MASK codes a 2048x2048 all-ones mask with the context coder in
    # rows of one bit kept the decoder busy for ~40 s (one Python step per row; 2**24 rows, ~3 min,
    # fit the parameter limit).  Run in the worker: a regression shows as a timeout, not a hang.
    data = nfc_fuzz.context_rows_file(2048)
    assert len(data) < 256
    with nfc_fuzz.Runner(timeout=20, warm=False) as runner:
        result = runner.evaluate(data, ops=("probe", "numpy"))
    assert result["failures"] == [], result["failures"]
    assert result["ops"]["numpy"] not in ("pixels",) and sum(result["seconds"].values()) < 5
