"""BD-rate / BD-PSNR (nfcodec.bdrate): known cases, an independent cubic computation, input checks."""
from __future__ import annotations

import math

import numpy as np
import pytest

from nfcodec.bdrate import bd_compare, bd_psnr, bd_quality, bd_rate, rd_curve
from nfcodec.errors import ConfigError, NFCodecError

RATES = [0.11, 0.23, 0.41, 0.87, 1.6]
PSNR = [27.3, 30.1, 32.2, 35.0, 37.4]

# x264 (anchor) and x265 RD points (crf 18/23/28/33/38) from ../shared/design/ECOSYSTEM.md section 4.
X264 = ([.0716, .0434, .0267, .0196, .0160], [41.98, 40.77, 39.19, 37.35, 35.45])
X265 = ([.0546, .0340, .0218, .0153, .0117], [41.97, 40.74, 39.27, 37.58, 35.85])


@pytest.mark.parametrize("method", ["akima", "cubic", "pchip"])
def test_rates_scaled_by_0_8_give_minus_20_percent(method):
    r = bd_rate(RATES, PSNR, [0.8 * x for x in RATES], PSNR, method=method)
    assert r.ok and r.reason == "" and r.overlap == 1.0
    assert r.value == pytest.approx(-20.0, abs=1e-6)
    assert float(r) == r.value
    # the same curve against itself: 0 %, and the anchor against the test: +25 %
    assert bd_rate(RATES, PSNR, RATES, PSNR, method=method).value == pytest.approx(0.0, abs=1e-9)
    assert bd_rate([0.8 * x for x in RATES], PSNR, RATES, PSNR, method=method).value == pytest.approx(25.0, abs=1e-6)


@pytest.mark.parametrize("method", ["akima", "cubic"])
def test_one_db_shift_of_a_log_linear_curve(method):
    slope = 9.0                                   # dB per decade of rate
    q = [30 + slope * math.log10(r) for r in RATES]
    shifted = [v + 1.0 for v in q]
    assert bd_psnr(RATES, q, RATES, shifted, method=method).value == pytest.approx(1.0, abs=1e-9)
    assert bd_quality is bd_psnr
    # +1 dB on a line of `slope` dB/decade is the same quality at 10**(-1/slope) times the rate
    expected = (10 ** (-1.0 / slope) - 1) * 100
    r = bd_rate(RATES, q, RATES, shifted, method=method)
    assert r.value == pytest.approx(expected, abs=1e-6)
    assert 0 < r.overlap < 1


def _cubic_by_hand(ra, qa, rt, qt, kind):
    """VCEG-M33 written out: degree-3 polyfit in the log-rate domain, integrated over the overlap."""
    la, lt = np.log10(ra), np.log10(rt)
    if kind == "rate":
        xa, ya, xt, yt = np.asarray(qa), la, np.asarray(qt), lt
    else:
        xa, ya, xt, yt = la, np.asarray(qa), lt, np.asarray(qt)
    pa, pt = np.polyint(np.polyfit(xa, ya, 3)), np.polyint(np.polyfit(xt, yt, 3))
    lo, hi = max(xa.min(), xt.min()), min(xa.max(), xt.max())
    avg = ((np.polyval(pt, hi) - np.polyval(pt, lo)) - (np.polyval(pa, hi) - np.polyval(pa, lo))) / (hi - lo)
    return (10 ** avg - 1) * 100 if kind == "rate" else avg


def test_cubic_matches_an_independent_computation():
    ra, qa = [0.09, 0.2, 0.47, 1.1], [26.1, 29.4, 33.0, 36.2]
    rt, qt = [0.12, 0.25, 0.52, 1.3], [27.9, 30.8, 34.1, 37.9]
    rate = bd_rate(ra, qa, rt, qt, method="cubic")
    assert rate.value == pytest.approx(_cubic_by_hand(ra, qa, rt, qt, "rate"), abs=1e-6)
    gain = bd_psnr(ra, qa, rt, qt, method="cubic")
    assert gain.value == pytest.approx(_cubic_by_hand(ra, qa, rt, qt, "quality"), abs=1e-6)
    assert rate.value < 0 < gain.value           # the test curve is better
    # the input order does not matter
    assert bd_rate(ra[::-1], qa[::-1], rt[::-1], qt[::-1], method="cubic").value == pytest.approx(rate.value, abs=1e-12)


def test_published_x264_x265_values():
    # the 4-point pair (crf 23..38) and the 5-point pair, as measured in ECOSYSTEM.md section 4
    four = [v[1:] for v in X264], [v[1:] for v in X265]
    assert bd_rate(*four[0], *four[1], method="cubic").value == pytest.approx(-23.121, abs=5e-4)
    assert bd_rate(*four[0], *four[1], method="akima").value == pytest.approx(-23.112, abs=5e-4)
    assert bd_psnr(*four[0], *four[1], method="cubic").value == pytest.approx(1.187, abs=5e-4)
    assert bd_rate(*X264, *X265, method="akima").value == pytest.approx(-22.891, abs=5e-4)
    assert bd_rate(*X264, *X265, method="cubic").value == pytest.approx(-22.850, abs=5e-4)


def test_no_overlap_gives_nan_with_a_reason():
    r = bd_rate(RATES, PSNR, RATES, [v + 20 for v in PSNR])
    assert not r.ok and math.isnan(r.value) and r.overlap == 0.0
    assert r.reason == "quality ranges do not overlap (anchor 27.3-37.4, test 47.3-57.4)"
    p = bd_psnr(RATES, PSNR, [100 * x for x in RATES], PSNR)
    assert not p.ok and p.reason.startswith("rate ranges do not overlap (anchor 0.11-1.6, test 11-160)")
    out = bd_compare(RATES, PSNR, RATES, [v + 20 for v in PSNR])
    assert all(math.isnan(out[k]) for k in ("bd_rate_akima", "bd_rate_cubic"))
    assert out["bd_db_akima"] == pytest.approx(20.0)   # same rates: the log-rate ranges do overlap
    assert "quality ranges do not overlap" in out["reason"]


def test_few_points():
    # 2 points: akima is a straight line in the log domain; cubic needs 4 points
    r2, q2 = RATES[:2], PSNR[:2]
    two = bd_rate(r2, q2, [0.8 * x for x in r2], q2)
    assert two.value == pytest.approx(-20.0, abs=1e-6) and two.note == "fewer than 4 points"
    three = bd_rate(RATES[:3], PSNR[:3], [0.8 * x for x in RATES], PSNR, method="cubic")
    assert math.isnan(three.value)
    assert three.reason == "cubic (VCEG-M33) needs 4 points per curve (anchor 3, test 5)"
    # different point counts are fine (the fits differ a little: 5-point least squares vs 4-point)
    fewer = bd_rate(RATES, PSNR, [0.8 * x for x in RATES[:4]], PSNR[:4], method="cubic")
    assert fewer.value == pytest.approx(-20, abs=0.05)


def test_duplicates_are_dropped_and_points_sorted():
    r, q = rd_curve([0.4, 0.1, 0.4, 0.2], [33, 28, 33, 30])
    assert r.tolist() == [0.1, 0.2, 0.4] and q.tolist() == [28, 30, 33]


@pytest.mark.parametrize("rates, quality, message", [
    ([0.1], [30.0], "anchor: BD needs at least 2 distinct rate-quality points, got 1"),
    ([0.1, 0.1], [30.0, 30.0], "anchor: BD needs at least 2 distinct rate-quality points, got 1"),
    ([0.1, 0.2], [30.0], "anchor: 2 rates but 1 quality values"),
    ([0.0, 0.2], [30.0, 31.0], "anchor: rate 0 at point 0 must be finite and > 0"),
    ([0.1, 0.2], [30.0, math.inf], "anchor: quality inf at point 1 must be finite (leave out lossless points)"),
    ([0.1, 0.1], [30.0, 31.0], "anchor: two points at rate 0.1 with different quality (30 and 31)"),
    ([0.1, 0.2, 0.3], [30.0, 32.0, 31.0], "anchor: quality does not increase with rate (31 at rate 0.3 after 32 "
                                          "at rate 0.2); BD needs a monotone curve"),
])
def test_bad_curves_raise_one_line_errors(rates, quality, message):
    with pytest.raises(ConfigError) as e:
        bd_rate(rates, quality, RATES, PSNR)
    assert str(e.value) == message and isinstance(e.value, NFCodecError)
    assert bd_compare(rates, quality, RATES, PSNR)["reason"] == message


def test_unknown_method():
    with pytest.raises(ConfigError, match=r"^unknown BD method 'spline' \(choose from akima, cubic, pchip\)$"):
        bd_rate(RATES, PSNR, RATES, PSNR, method="spline")
