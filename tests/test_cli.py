"""The command itself: help, usage errors and error reporting."""

import pytest

from cnnkit.errors import UnknownNameError
from cnnkit.models import create_model, list_models


def test_no_command_prints_help_and_exits_2(run_cli):
    code, out, _ = run_cli()
    assert code == 2
    assert "usage: cnnkit" in out


def test_unknown_option_is_one_line_exit_2(run_cli):
    code, _, err = run_cli("tour", "--no-such-option")
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "--no-such-option" in err


def test_unknown_tour_section_names_it(run_cli, tmp_path):
    code, _, err = run_cli("tour", "--out", tmp_path, "--only", "no_such_section")
    assert code == 2
    assert "no_such_section" in err and "Traceback" not in err


def test_unknown_model_lists_close_matches():
    names = list_models()
    if not names:
        pytest.skip("no models registered yet")
    wrong = names[0] + "x"
    with pytest.raises(UnknownNameError, match="did you mean"):
        create_model(wrong)


def test_help_shows_defaults(capsys):
    """Every option with a default says it in --help, once (not when the help text already names it)."""
    import pytest

    from cnnkit.cli.main import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--epochs EPOCHS (default: 10, or the task's)" in out  # a task may set its own (Task.train_defaults)
    assert "(default: adamw, or the task's)" in out
    assert "seed of weights, data order and augmentation (default: 0)" in out
    assert "(default 64) (default" not in out and "(default: None)" not in out and "(default: False)" not in out


def test_models_pattern_matching_nothing_says_so(run_cli):
    code, out, err = run_cli("models", "zzz")
    assert code == 2 and out == "" and "no registered model matches 'zzz'" in err and "'*zzz*'" in err
    code, out, _ = run_cli("models", "resnet5*")
    assert code == 0 and "resnet50" in out.split()


def test_ctrl_c_exits_130_and_says_how_to_resume(run_cli, monkeypatch):
    import cnnkit.cli.train as train_cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli, "run", interrupted)
    code, _, err = run_cli("train", "--model", "lenet5", "--data", "digits", "--out", "run")
    assert code == 130 and "interrupted" in err and "--resume" in err and "Traceback" not in err


def test_device_cuda_without_a_gpu_is_one_line(run_cli):
    import torch

    if torch.cuda.is_available():
        return
    code, _, err = run_cli("train", "--model", "lenet5", "--data", "digits", "--out", "run", "--device", "cuda")
    assert code == 2 and "'cuda' is not available" in err and "--device cpu" in err
    code, _, err = run_cli("train", "--model", "lenet5", "--data", "digits", "--out", "run", "--device", "gpu0")
    assert code == 2 and "expected cpu, cuda or cuda:N" in err


@pytest.mark.parametrize("args, expected", [
    (("--warmup-epochs", "5", "--epochs", "2"), "is not shorter than the run"),
    (("--finetune-last", "1",), "without --weights they are random"),
    (("--freeze", "backbone"), "without --weights they are random"),
])
def test_meaningless_train_options_refused(run_cli, tmp_path, args, expected):
    code, _, err = run_cli("train", "--model", "lenet5", "--data", "digits", "--out", tmp_path / "r", *args)
    assert code == 2 and expected in err and not (tmp_path / "r" / "last.state.pt").exists()


def test_predict_reports_good_images_and_names_bad_ones(run_cli, tmp_path):
    import numpy as np
    import torch
    from PIL import Image

    from cnnkit.checkpoint import save_model_file
    from cnnkit.models import create_model

    model = create_model("lenet5")
    ckpt = save_model_file(tmp_path / "m.safetensors", model,
                           {"model": "lenet5", "model_kwargs": {}, "classes": [str(i) for i in range(10)],
                            "input_size": [1, 32, 32], "mean": [0.5], "std": [0.5]})
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(good)
    (tmp_path / "bad.png").write_text("not an image")
    code, out, err = run_cli("predict", ckpt, good, tmp_path / "bad.png")
    assert code == 2 and str(good) in out and "bad.png" in err and "Traceback" not in err
    torch.save(model.state_dict(), tmp_path / "w.pth")
    code, _, err = run_cli("predict", tmp_path / "w.pth", good)
    assert code == 2 and "is a PyTorch .pth/.pt file" in err


def test_train_on_images_too_small_for_the_model_says_which_flag(run_cli, tmp_path):
    code, _, err = run_cli("train", "--model", "alexnet", "--data", "digits", "--out", tmp_path / "r", "--epochs", "1")
    assert code == 2 and "alexnet cannot take 32x32 images" in err and "--image-size 224" in err
    assert "internal error" not in err


def test_one_class_data_is_refused(run_cli, tmp_path):
    import numpy as np
    from PIL import Image

    (tmp_path / "data" / "cats").mkdir(parents=True)
    for i in range(6):
        Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(tmp_path / "data" / "cats" / f"{i}.png")
    code, _, err = run_cli("train", "--model", "lenet5", "--data", tmp_path / "data", "--out", tmp_path / "r")
    assert code == 2 and "holds one class (cats)" in err


def test_output_cut_short_by_the_reader_is_quiet(tmp_path):
    """`cnnkit models | head -1`: the reader closes the pipe; no 'internal error', no traceback."""
    import os
    import subprocess
    import sys

    # the command starts writing only once the reader has gone (a reader that leaves early, deterministically)
    code = "import sys; sys.stdin.readline(); from cnnkit.cli.main import main; sys.exit(main(['models']))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc.stdout.close()  # what `head -1` does after its line
    proc.stdin.write(b"go\n")
    proc.stdin.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""
