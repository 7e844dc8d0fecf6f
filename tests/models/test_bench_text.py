"""`cnnkit bench`'s table states facts: no percentage above 100 without its reason, no project targets."""

from __future__ import annotations

from cnnkit.models.inference import BenchResult, VariantResult


def _result(eager_ips: float, fp32_ips: float) -> BenchResult:
    r = BenchResult(model="m", batch=8, input_shape=(3, 32, 32), threads=2, macs_per_image=10**9, peak_flops=1e11)
    r.variants["eager"] = VariantResult("eager", "plain eager (NCHW, no_grad)", eager_ips, eager_ips)
    r.variants["fp32"] = VariantResult("fp32", "prepared fp32", fp32_ips, fp32_ips)
    return r


def test_percent_above_peak_is_marked_and_explained():
    text = _result(10.0, 80.0).to_text()  # fp32: 2 * 1e9 * 80 = 1.6e11 FLOP/s > 1e11 peak
    assert "160%*" in text
    assert "above the measured matmul peak" in text
    assert "20.0%" in text  # eager: 2e10 / 1e11


def test_no_footnote_and_no_targets_when_below_peak():
    text = _result(10.0, 30.0).to_text()
    assert "*" not in text
    assert "target" not in text and "not met" not in text
    assert "prepared fp32 / plain eager (NCHW, no_grad): 3.00x" in text
