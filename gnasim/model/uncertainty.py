"""How sure a prediction is: its calibration status and its 90% interval.

A prediction of an implementation on a GPU is

* ``calibrated`` when the fitted model saw that implementation family on that GPU,
* ``transferred`` when it saw the family only on other GPUs (datasheet facts carry it over),
* ``datasheet-only`` when it never saw the family (its parameters are the priors).

Its interval comes from out-of-sample residuals ``log(predicted / measured)`` of the same class
(leave-one-GPU-out and leave-one-source-out refits, :mod:`gnasim.calibration.transfer`), stored
in the ``[evidence]`` tables of the fitted family model: the family's own 5% / 95% quantiles where
it has enough of them, widened to its class's pooled quantiles (never narrower than what other
families of the class showed), else the pooled ones. A measured time ``m`` then lies in
``[predicted * exp(-q95), predicted * exp(-q05)]`` for about 90% of such predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gnasim.hardware.profile import HardwareProfile
from gnasim.model.families import Evidence, FamilyModel, load_families

POOLED = "pooled"      # the evidence entry holding every family's residuals of a class
FALLBACK = {"calibrated": ("calibrated", "transferred", "datasheet-only"),
            "transferred": ("transferred", "datasheet-only"),
            "datasheet-only": ("datasheet-only", "transferred")}


@dataclass(frozen=True)
class Interval:
    """A multiplicative interval: ``value * low_factor`` to ``value * high_factor``."""

    low_factor: float
    high_factor: float
    n: int                # residuals behind it
    basis: str            # "FAMILY/STATUS" or "pooled/STATUS"

    def around(self, value: Any) -> tuple[Any, Any]:
        return value * self.low_factor, value * self.high_factor


@dataclass(frozen=True)
class Calibration:
    """What the fit knew of one implementation family on one GPU."""

    family: str
    status: str
    evidence: Evidence | None

    def to_dict(self) -> dict[str, Any]:
        e = self.evidence
        return {"family": self.family, "rows": e.rows if e else 0,
                "gpus": list(e.gpus) if e else [], "sources": list(e.sources) if e else [],
                "oos_mape_time_pct": e.oos_mape_time_pct if e else None}


def calibration_of(profile: HardwareProfile, family: str, fm: FamilyModel | None = None
                   ) -> Calibration:
    """The calibration status of a family on a GPU."""
    if profile.model is not None:                  # a profile fitted on its own rows
        return Calibration(family, "calibrated", None)
    fm = fm if fm is not None else load_families()
    ev = fm.evidence.get(family)
    if ev is None or ev.rows == 0:
        return Calibration(family, "datasheet-only", ev)
    return Calibration(family, "calibrated" if profile.name in ev.gpus else "transferred", ev)


def _widest(a: dict[str, float] | None, b: dict[str, float] | None) -> dict[str, float] | None:
    if a is None or b is None:
        return a or b
    return {"q05": min(a["q05"], b["q05"]), "q95": max(a["q95"], b["q95"]),
            "n": a.get("n", 0) + b.get("n", 0)}


def choose_quantiles(own: dict[str, dict[str, float]], pooled: dict[str, dict[str, float]],
                     status: str) -> tuple[dict[str, float], str] | None:
    """The interval rule, written once: for the first class in ``FALLBACK[status]`` with any
    evidence, the wider of the family's own quantiles (``own[class]``) and the class's pooled
    ones (``pooled[class]``); returns the quantiles and their basis (``own`` or ``pooled``)."""
    for st in FALLBACK[status]:
        q = _widest(own.get(st), pooled.get(st))
        if q is not None:
            return q, f"{'own' if own.get(st) else 'pooled'}/{st}"
    return None


def ratio_quantiles(num: dict[str, float], den: dict[str, float]) -> dict[str, float]:
    """Quantiles of ``log(predicted / measured)`` of a ratio ``num / den`` (a speedup: dense time
    over GNA time) from those of its two times: centres subtract, half-widths add in quadrature
    (independent errors; correlated ones, such as a shared clock, make this conservative)."""
    centre = (num["q05"] + num["q95"]) / 2 - (den["q05"] + den["q95"]) / 2
    half = math.hypot((num["q95"] - num["q05"]) / 2, (den["q95"] - den["q05"]) / 2)
    return {"q05": centre - half, "q95": centre + half, "n": min(num.get("n", 0), den.get("n", 0))}


def speedup_quantiles(direct: tuple[dict[str, float], str] | None,
                      gna: tuple[dict[str, float], str] | None,
                      dense: tuple[dict[str, float], str] | None) -> dict[str, float] | None:
    """A speedup's quantiles: its direct (held-out speedup) evidence, else what its two times'
    evidence implies (errors shared by both times, such as the clock, cancel in a speedup, so
    direct evidence is the narrower honest answer where it exists)."""
    if direct is not None:
        return direct[0]
    if gna is None or dense is None:
        return None
    return ratio_quantiles(dense[0], gna[0])


def interval(cal: Calibration, kind: str = "time", fm: FamilyModel | None = None
             ) -> Interval | None:
    """The 90% interval of a prediction of ``kind`` (``time`` or ``speedup``), None: no
    out-of-sample evidence has been recorded."""
    fm = fm if fm is not None else load_families()
    field = "intervals" if kind == "time" else "speedup_intervals"
    pooled = fm.evidence.get(POOLED)
    own = getattr(cal.evidence, field) if cal.evidence is not None else {}
    hit = choose_quantiles(own, getattr(pooled, field) if pooled is not None else {}, cal.status)
    if hit is None:
        return None
    q, basis = hit
    basis = basis.replace("own", cal.family, 1).replace("pooled", POOLED, 1)
    return Interval(math.exp(-q["q95"]), math.exp(-q["q05"]), int(q.get("n", 0)), basis)


@dataclass(frozen=True)
class Certainty:
    """The calibration of a prediction's kernel and of its dense baseline, and the intervals of
    its time, the baseline's time and the speedup (None: no evidence recorded)."""

    kernel: Calibration
    baseline: Calibration
    time: Interval | None
    dense_time: Interval | None
    speedup: Interval | None

    @property
    def status(self) -> str:
        """The weaker of the kernel's and the baseline's status."""
        order = ("calibrated", "transferred", "datasheet-only")
        return max(self.kernel.status, self.baseline.status, key=order.index)

    def warning(self, kernel: str, gpu: str) -> str | None:
        """One line for a prediction that is not calibrated on this GPU."""
        if self.status == "calibrated":
            return None
        weak = self.kernel if self.kernel.status != "calibrated" else self.baseline
        if self.kernel.status == "datasheet-only" or self.baseline.status == "datasheet-only":
            weak = self.kernel if self.kernel.status == "datasheet-only" else self.baseline
            return (f"datasheet-only: no measured row of {weak.family} anywhere; {kernel} on {gpu} "
                    "is predicted from datasheet facts and a typical kernel's fitted parameters "
                    "(wide interval)")
        gpus = ", ".join((weak.evidence.gpus if weak.evidence else [])[:4])
        return (f"transferred: no measured row of {weak.family} on {gpu}; parameters "
                f"fitted on {gpus or 'other GPUs'} carried over with {gpu}'s datasheet")


def certainty(profile: HardwareProfile, family: str, baseline_family: str,
              fm: FamilyModel | None = None) -> Certainty:
    """Status and intervals of a kernel family's prediction against a baseline family's."""
    fm = fm if fm is not None else load_families()
    k, b = calibration_of(profile, family, fm), calibration_of(profile, baseline_family, fm)
    t, d, direct = interval(k, "time", fm), interval(b, "time", fm), interval(k, "speedup", fm)
    logq = lambda iv: None if iv is None else ({"q05": -math.log(iv.high_factor),
                                                "q95": -math.log(iv.low_factor), "n": iv.n}, "")
    q = speedup_quantiles(logq(direct), logq(t), logq(d))
    speed = None if q is None else Interval(math.exp(-q["q95"]), math.exp(-q["q05"]),
                                            int(q.get("n", 0)), "speedup and time evidence")
    return Certainty(k, b, t, d, speed)
