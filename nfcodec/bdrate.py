"""Bjontegaard deltas: BD-rate and BD-PSNR between two rate-distortion curves.

The standard method (G. Bjontegaard, VCEG-M33, 2001; piecewise variant of VCEG-AL22 / JVET CTC)
fits each curve in the log-rate domain and averages the gap over the range where both curves
are defined:

* **BD-rate** (percent): log10(rate) is interpolated as a function of quality for the anchor and
  the test curve; the mean difference ``d`` of the two over the *overlapping quality range*
  becomes ``(10**d - 1) * 100``.  Negative means the test codec needs fewer bits for the same
  quality (-20 % = a fifth fewer bits).
* **BD-PSNR** (dB, or the BD of any quality measured in dB): quality is interpolated as a
  function of log10(rate) and the mean difference over the *overlapping log-rate range* is
  reported.  Positive means the test codec is better.

The interpolation and integration come from the maintained ``bjontegaard`` package
(``method="akima"``: piecewise Akima interpolation, the primary value here; ``"cubic"``: the
original VCEG-M33 cubic polynomial fit, reported to compare with older papers; ``"pchip"`` also
works).  This module validates the points first (finite, positive rates, at least 2 points, a
monotone curve after sorting by rate, exact duplicates removed) and returns NaN with a reason
instead of a number when the curves do not overlap or a method cannot be applied (``cubic``
needs 4 points per curve).  Rates may be bpp or bytes: only their ratios matter.

Example::

    from nfcodec.bdrate import bd_rate
    r = bd_rate([0.1, 0.2, 0.4, 0.8], [28, 31, 34, 37], [0.08, 0.16, 0.32, 0.64], [28, 31, 34, 37])
    r.value   # -20.0 (percent)
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .errors import ConfigError

__all__ = ["BDResult", "bd_rate", "bd_psnr", "bd_quality", "bd_compare", "rd_curve", "METHODS", "MIN_POINTS",
           "RECOMMENDED_POINTS"]

#: Interpolation methods of the ``bjontegaard`` package.
METHODS = ("akima", "cubic", "pchip")
#: Fewest points per curve for any BD value (2 points: a straight line in the log domain).
MIN_POINTS = 2
#: Points per curve the method is designed for (and the minimum of ``method="cubic"``).
RECOMMENDED_POINTS = 4


@dataclass(frozen=True)
class BDResult:
    """One Bjontegaard delta.

    ``value`` is the BD-rate in percent (:func:`bd_rate`) or the BD of the quality measure in its
    unit, dB for PSNR (:func:`bd_quality`); NaN when undefined, with ``reason`` saying why.
    ``overlap`` is the share of the union of the two curves' ranges (quality for BD-rate, log
    rate for BD-PSNR) that both cover, 0 to 1.  ``note`` flags results to read with care
    (fewer than 4 points, less than 75 % overlap), without making them NaN.
    """

    value: float
    method: str
    overlap: float
    reason: str = ""
    note: str = ""

    @property
    def ok(self) -> bool:
        """Whether ``value`` is a number (not NaN)."""
        return not math.isnan(self.value)

    def __float__(self) -> float:
        return self.value


def rd_curve(rates: Sequence[float], quality: Sequence[float], *,
             label: str = "curve") -> tuple[np.ndarray, np.ndarray]:
    """Validate one rate-distortion curve and return ``(rates, quality)`` sorted by rate.

    Exact duplicate points are dropped.  Raises ``ConfigError`` (one line, naming ``label``) for
    mismatched lengths, fewer than 2 distinct points, a rate that is not finite and positive, a
    quality that is not finite (e.g. the infinite PSNR of a lossless point), two points at the
    same rate, or quality that does not strictly increase with rate.
    """
    r = np.asarray(rates, dtype=np.float64).ravel()
    q = np.asarray(quality, dtype=np.float64).ravel()
    if r.size != q.size:
        raise ConfigError(f"{label}: {r.size} rates but {q.size} quality values")
    for i, (ri, qi) in enumerate(zip(r, q)):
        if not (math.isfinite(ri) and ri > 0):
            raise ConfigError(f"{label}: rate {ri:g} at point {i} must be finite and > 0")
        if not math.isfinite(qi):
            raise ConfigError(f"{label}: quality {qi:g} at point {i} must be finite (leave out lossless points)")
    points = sorted(set(zip(r.tolist(), q.tolist())))
    if len(points) < MIN_POINTS:
        raise ConfigError(f"{label}: BD needs at least {MIN_POINTS} distinct rate-quality points, got {len(points)}")
    for (r0, q0), (r1, q1) in zip(points, points[1:]):
        if r1 == r0:
            raise ConfigError(f"{label}: two points at rate {r0:g} with different quality ({q0:g} and {q1:g})")
        if q1 <= q0:
            raise ConfigError(f"{label}: quality does not increase with rate ({q1:g} at rate {r1:g} after {q0:g} "
                              f"at rate {r0:g}); BD needs a monotone curve")
    out = np.array(points)
    return out[:, 0].copy(), out[:, 1].copy()


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown BD method {method!r} (choose from {', '.join(METHODS)})")


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(low, high, share of the union) of the intersection of two value ranges."""
    lo, hi = float(max(a.min(), b.min())), float(min(a.max(), b.max()))
    union = float(max(a.max(), b.max()) - min(a.min(), b.min()))
    return lo, hi, (max(hi - lo, 0.0) / union) if union > 0 else 0.0


def _delta(kind: str, anchor: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
           method: str) -> BDResult:
    import bjontegaard

    (ra, qa), (rt, qt) = anchor, test
    axis_a, axis_t = (qa, qt) if kind == "rate" else (np.log10(ra), np.log10(rt))
    lo, hi, share = _overlap(axis_a, axis_t)
    if hi <= lo:
        unit = "quality" if kind == "rate" else "rate"
        span = (lambda v: f"{v.min():.4g}-{v.max():.4g}") if kind == "rate" else (
            lambda v: f"{10 ** v.min():.4g}-{10 ** v.max():.4g}")
        return BDResult(math.nan, method, 0.0,
                        reason=f"{unit} ranges do not overlap (anchor {span(axis_a)}, test {span(axis_t)})")
    if method == "cubic" and min(ra.size, rt.size) < RECOMMENDED_POINTS:
        return BDResult(math.nan, method, share, reason=f"cubic (VCEG-M33) needs {RECOMMENDED_POINTS} points per curve "
                                                        f"(anchor {ra.size}, test {rt.size})")
    notes = []
    if min(ra.size, rt.size) < RECOMMENDED_POINTS:
        notes.append(f"fewer than {RECOMMENDED_POINTS} points")
    if share < 0.75:
        notes.append(f"{'quality' if kind == 'rate' else 'rate'} ranges overlap on {100 * share:.0f}% of their union")
    fn = bjontegaard.bd_rate if kind == "rate" else bjontegaard.bd_psnr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # overlap warnings: reported in `note` instead
        value = float(fn(ra, qa, rt, qt, method, require_matching_points=False, min_overlap=0))
    return BDResult(value, method, share, note="; ".join(notes))


def bd_rate(rate_anchor: Sequence[float], quality_anchor: Sequence[float], rate_test: Sequence[float],
            quality_test: Sequence[float], *, method: str = "akima") -> BDResult:
    """BD-rate of the test curve against the anchor, in percent (negative: the test saves bits).

    Args:
        rate_anchor, quality_anchor: the anchor's points (rates > 0, e.g. bpp; quality, e.g. PSNR dB).
        rate_test, quality_test: the test codec's points (any number of them, not necessarily
            the anchor's count).
        method: ``akima`` (default), ``cubic`` (VCEG-M33, needs 4 points per curve) or ``pchip``.

    Returns:
        A :class:`BDResult`; ``value`` is NaN (with ``reason``) when the quality ranges do not
        overlap or ``cubic`` lacks points.

    Raises:
        ConfigError: invalid points (see :func:`rd_curve`) or an unknown method.
    """
    _check_method(method)
    anchor = rd_curve(rate_anchor, quality_anchor, label="anchor")
    test = rd_curve(rate_test, quality_test, label="test")
    return _delta("rate", anchor, test, method)


def bd_quality(rate_anchor: Sequence[float], quality_anchor: Sequence[float], rate_test: Sequence[float],
               quality_test: Sequence[float], *, method: str = "akima") -> BDResult:
    """BD of the quality measure (BD-PSNR for PSNR), in its own unit (positive: the test is better).

    Same arguments, validation and NaN rules as :func:`bd_rate`; the average is taken over the
    overlapping range of log10(rate).
    """
    _check_method(method)
    anchor = rd_curve(rate_anchor, quality_anchor, label="anchor")
    test = rd_curve(rate_test, quality_test, label="test")
    return _delta("quality", anchor, test, method)


#: BD-PSNR is :func:`bd_quality` applied to PSNR values.
bd_psnr = bd_quality


def bd_compare(rate_anchor: Sequence[float], quality_anchor: Sequence[float], rate_test: Sequence[float],
               quality_test: Sequence[float], *, methods: Sequence[str] = ("akima", "cubic")) -> dict[str, Any]:
    """BD-rate and BD-quality with several methods at once, never raising for bad curves.

    Returns:
        ``{"bd_rate_<method>": percent, "bd_db_<method>": dB, ..., "overlap": share,
        "reason": text}`` where values are NaN when undefined; ``reason`` collects why (invalid
        points, no overlap, too few points for cubic) and the notes of the primary method,
        empty when everything is defined and unremarkable.
    """
    out: dict[str, Any] = {}
    reasons: list[str] = []
    try:
        for m in methods:
            _check_method(m)
        anchor = rd_curve(rate_anchor, quality_anchor, label="anchor")
        test = rd_curve(rate_test, quality_test, label="test")
    except ConfigError as e:
        out.update({f"bd_{k}_{m}": math.nan for m in methods for k in ("rate", "db")})
        return {**out, "overlap": math.nan, "reason": str(e)}
    overlap = math.nan
    for m in methods:
        for key, kind in (("rate", "rate"), ("db", "quality")):
            r = _delta(kind, anchor, test, m)
            out[f"bd_{key}_{m}"] = r.value
            if key == "rate" and m == methods[0]:
                overlap = r.overlap
            for text in [r.reason, *(r.note.split("; ") if m == methods[0] else [])]:
                if text and text not in reasons:
                    reasons.append(text)
    return {**out, "overlap": overlap, "reason": "; ".join(reasons)}
