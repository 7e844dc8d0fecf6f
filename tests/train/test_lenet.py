"""The LeNet-5 experiment: the tour's recipe reaches 98% test accuracy on the built-in digits."""

import time

import pytest
import torch


def test_lenet5_reaches_98_percent_on_digits_test_split():
    from cnnkit.tour.sections import s060_lenet
    from cnnkit.train import evaluate

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        result, test, seconds = s060_lenet.train_lenet(seed=0)
        metrics = evaluate(result.model, test)
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(before)
    assert metrics["n"] == 269  # cnnkit's standard 15% test split of the 1,797 digits
    assert metrics["accuracy"] >= 0.98, metrics["accuracy"]
    print(f"LeNet-5 digits: test accuracy {metrics['accuracy']:.4f}, training {seconds:.1f} s, total {elapsed:.1f} s")


@pytest.mark.timeout(120)
def test_tour_section_quick(tmp_path):
    from cnnkit.tour import run_tour

    index, failed = run_tour(tmp_path, only=["s060_lenet"], quick=True)
    assert failed == []
    for name in ("curves", "filters", "confusion"):
        assert (tmp_path / f"lenet-5-on-handwritten-digits-{name}.png").stat().st_size > 2000
    text = index.read_text()
    assert "LeNet-5 on handwritten digits" in text
    # quick mode says so, and no project target is shown as a fact
    assert "quick mode: one epoch on 300 images" in text and "target:" not in text
