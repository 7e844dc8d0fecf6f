"""time_call: enough repetitions, quartile spread against numpy, busy machines flagged."""

from __future__ import annotations

import numpy as np

import cnnkit.timing as timing


def test_spread_and_median_match_numpy(monkeypatch):
    durations = [0.010, 0.011, 0.012, 0.030, 0.010, 0.013, 0.011]
    ticks, now = [], 0.0
    for d in durations:  # each call reads the clock at its start and its end
        ticks += [now, now + d]
        now += d
    ticks = iter(ticks)
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(ticks))
    t = timing.time_call(lambda: None, min_repeats=7, min_seconds=0.0, warmup=0)
    q1, med, q3 = np.percentile(durations, [25, 50, 75])
    assert t.repeats == 7 and abs(t.best - min(durations)) < 1e-12
    assert abs(t.median - med) < 1e-9 and abs(t.spread - (q3 - q1) / med) < 1e-6


def test_unreliable_when_spread_is_large():
    steady = timing.Timing(best=1.0, median=1.0, spread=0.05, repeats=9)
    busy = timing.Timing(best=1.0, median=2.0, spread=0.8, repeats=9)
    assert steady.reliable and "unreliable" not in steady.describe()
    assert not busy.reliable and "unreliable" in busy.describe()


def test_repeats_until_min_seconds():
    calls = []
    t = timing.time_call(lambda: calls.append(1), min_repeats=3, min_seconds=0.0, warmup=2)
    assert t.repeats == 3 and len(calls) == 5
