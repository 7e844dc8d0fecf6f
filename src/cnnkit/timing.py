"""Timing a call honestly: enough repetitions, the spread shown, unreliable figures said to be so.

A single best-of-2 falls apart when another process shares the cores. `time_call` repeats until it has at
least `min_repeats` timings and has spent `min_seconds`, reports the best (least disturbed) and the median, and
the relative spread between the quartiles; a spread above `UNRELIABLE_SPREAD` means the machine was busy and
the figure should not be trusted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

UNRELIABLE_SPREAD = 0.25  # interquartile range over the median


@dataclass(frozen=True)
class Timing:
    """Seconds per call.

    Attributes:
        best: the fastest call.
        median: the median call.
        spread: (75th - 25th percentile) / median.
        repeats: how many calls were timed.
    """

    best: float
    median: float
    spread: float
    repeats: int

    @property
    def reliable(self) -> bool:
        return self.spread <= UNRELIABLE_SPREAD

    def describe(self, unit: str = "ms", scale: float = 1e3) -> str:
        """E.g. '12.3 ms (median 12.9, spread 4%, 9 runs)' with ', unreliable: the machine was busy' when it was."""
        text = (f"{self.best * scale:.3g} {unit} (median {self.median * scale:.3g}, spread {self.spread:.0%}, "
                f"{self.repeats} runs")
        return text + (")" if self.reliable else ", unreliable: the machine was busy)")


def time_call(fn: Callable[[], object], *, min_repeats: int = 5, min_seconds: float = 0.2,
              max_repeats: int = 200, warmup: int = 1) -> Timing:
    """Time `fn()` after `warmup` untimed calls; at least `min_repeats` calls and `min_seconds` in all."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    spent = 0.0
    while len(times) < max_repeats and (len(times) < min_repeats or spent < min_seconds):
        start = time.perf_counter()
        fn()
        t = time.perf_counter() - start
        times.append(t)
        spent += t
    times.sort()
    n = len(times)

    def quantile(q: float) -> float:  # linear interpolation, as numpy's default
        pos = q * (n - 1)
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        return times[lo] + (times[hi] - times[lo]) * (pos - lo)

    median = quantile(0.5)
    return Timing(best=times[0], median=median, spread=(quantile(0.75) - quantile(0.25)) / median if median else 0.0,
                  repeats=n)
