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


def interval(cal: Calibration, kind: str = "time", fm: FamilyModel | None = None
             ) -> Interval | None:
    """The 90% interval of a prediction of ``kind`` (``time`` or ``speedup``), None: no
    out-of-sample evidence has been recorded."""
    fm = fm if fm is not None else load_families()
    field = "intervals" if kind == "time" else "speedup_intervals"
    pooled = fm.evidence.get(POOLED)
    for status in FALLBACK[cal.status]:
        own = getattr(cal.evidence, field).get(status) if cal.evidence is not None else None
        pool = getattr(pooled, field).get(status) if pooled is not None else None
        q = _widest(own, pool)
        if q is not None:
            basis = f"{cal.family if own else POOLED}/{status}"
            return Interval(math.exp(-q["q95"]), math.exp(-q["q05"]), int(q.get("n", 0)), basis)
    return None


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
        if self.kernel.status == "datasheet-only" or self.baseline.status == "datasheet-only":
            who = self.kernel.family if self.kernel.status == "datasheet-only" else self.baseline.family
            return (f"datasheet-only: no measured row of {who} anywhere; {kernel} on {gpu} is "
                    "predicted from datasheet facts and prior parameters (wide interval)")
        gpus = ", ".join((self.kernel.evidence.gpus if self.kernel.evidence else [])[:4])
        return (f"transferred: no measured row of {self.kernel.family} on {gpu}; parameters "
                f"fitted on {gpus or 'other GPUs'} carried over with {gpu}'s datasheet")


def certainty(profile: HardwareProfile, family: str, baseline_family: str,
              fm: FamilyModel | None = None) -> Certainty:
    """Status and intervals of a kernel family's prediction against a baseline family's."""
    fm = fm if fm is not None else load_families()
    k, b = calibration_of(profile, family, fm), calibration_of(profile, baseline_family, fm)
    return Certainty(k, b, interval(k, "time", fm), interval(b, "time", fm),
                     interval(k, "speedup", fm))
