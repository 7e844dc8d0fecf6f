"""Transfer learning (freeze, fine-tune the last N stages, load weights with a new head) and the feature cache.

The expected stage of every parameter is written out by name here, from the architecture (which layer feeds
which stage), independently of the autograd-graph probe that `split_parameters` uses.
"""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from torch.utils.data import TensorDataset

from cnnkit.checkpoint import load_model_file, save_model_file
from cnnkit.errors import InputError
from cnnkit.models import create_model
from cnnkit.train import TrainConfig, fit
from cnnkit.train.feature_cache import cache_key, cached_features, fit_head_on_cache
from cnnkit.train.transfer import (
    apply_transfer,
    discriminative_param_groups,
    set_trainable,
    split_parameters,
    stage_modules,
)

KW = {"in_chans": 1, "width": 4, "num_classes": 10}




def _cifar(**kw):
    return create_model("resnet20_cifar", **{**KW, **kw})


def _expected_stage_cifar(name: str) -> int | None:
    """Stage of a CIFAR ResNet parameter: the stem and layer1 are stage 0; fc is the head (None)."""
    if name.startswith(("conv1.", "bn1.", "layer1.")):
        return 0
    if name.startswith("layer2."):
        return 1
    if name.startswith("layer3."):
        return 2
    assert name.startswith("fc."), name
    return None


def _expected_stage_lenet(name: str) -> int | None:
    return {"c1": 0, "c3": 1, "c5": 2}.get(name.split(".")[0])


def _trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def _data(n=96, classes=3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 1, size, size, generator=g), torch.randint(0, classes, (n,), generator=g))


@pytest.mark.parametrize("name, expected", [("resnet20_cifar", _expected_stage_cifar),
                                            ("lenet5", _expected_stage_lenet)])
def test_split_parameters_matches_architecture(name, expected):
    model = _cifar() if name == "resnet20_cifar" else create_model(name)
    split = split_parameters(model)
    for k, names in enumerate(split.stages):
        assert names and all(expected(n) == k for n in names)
    assert split.head and all(expected(n) is None for n in split.head)
    assert not split.unused
    assert sum(map(len, split.stages)) + len(split.head) == len(list(model.parameters()))


def test_stage_modules_of_cifar_resnet():
    model = _cifar()
    stages = stage_modules(model)
    assert [list(s) for s in stages] == [[model.conv1, model.bn1, model.layer1], [model.layer2], [model.layer3]]


def test_freeze_backbone_leaves_only_the_head_trainable():
    model = apply_transfer(_cifar(), freeze="backbone", num_classes=3)
    assert _trainable(model) == {"fc.weight", "fc.bias"}
    assert model.fc.out_features == 3


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_finetune_last_n_unfreezes_exactly_the_last_n_stages(n):
    model = apply_transfer(_cifar(), finetune_last=n)
    want = {name for name, _ in model.named_parameters()
            if _expected_stage_cifar(name) is None or _expected_stage_cifar(name) >= 3 - n}
    assert _trainable(model) == want


def test_finetune_last_on_lenet_and_unfreeze_again():
    model = create_model("lenet5")
    apply_transfer(model, freeze="backbone", finetune_last=1)
    assert _trainable(model) == {"c5.weight", "c5.bias", "f6.weight", "f6.bias", "output.weight", "output.bias"}
    set_trainable(model)  # no freeze: everything trains again
    assert _trainable(model) == {n for n, _ in model.named_parameters()}


def test_bad_arguments_are_refused():
    with pytest.raises(InputError, match="finetune_last"):
        apply_transfer(_cifar(), finetune_last=4)
    with pytest.raises(InputError, match="freeze"):
        apply_transfer(_cifar(), freeze="everything")
    with pytest.raises(InputError, match="num_classes"):
        apply_transfer(_cifar(), num_classes=0)
    with pytest.raises(InputError, match="Backbone"):
        apply_transfer(torch.nn.Linear(3, 3), freeze="backbone")


def test_weights_load_with_classifier_skipped_when_class_counts_differ(tmp_path, caplog):
    torch.manual_seed(1)
    source = _cifar(num_classes=10)
    path = save_model_file(tmp_path / "src.safetensors", source, {"model": "resnet20_cifar", "model_kwargs": KW})
    torch.manual_seed(2)
    target = _cifar(num_classes=3)
    own_fc = copy.deepcopy(target.fc.state_dict())
    with caplog.at_level(logging.WARNING):
        apply_transfer(target, weights=path)
    assert "classifier not loaded" in caplog.text
    src, dst = source.state_dict(), target.state_dict()
    for k, v in dst.items():
        if k.startswith("fc."):
            assert torch.equal(v, own_fc[k.removeprefix("fc.")])  # its own fresh head, not the file's
        else:
            assert torch.equal(v, src[k]), k


def test_num_classes_gives_a_new_head_after_loading(tmp_path):
    source = _cifar(num_classes=10)
    path = save_model_file(tmp_path / "src.safetensors", source, {"model": "resnet20_cifar", "model_kwargs": KW})
    target = apply_transfer(_cifar(num_classes=10), weights=path, num_classes=4, freeze="backbone")
    assert target.fc.out_features == 4
    assert torch.equal(target.layer3[0].conv1.weight, source.layer3[0].conv1.weight)


def test_freezing_layers_the_file_does_not_provide_is_refused(tmp_path):
    source = _cifar(in_chans=3)
    path = save_model_file(tmp_path / "rgb.safetensors", source, {"model": "resnet20_cifar", "model_kwargs": KW})
    with pytest.raises(InputError, match="conv1.weight"):
        apply_transfer(_cifar(in_chans=1), weights=path, freeze="backbone")
    with pytest.raises(InputError, match="frozen tensors"):
        apply_transfer(_cifar(in_chans=1), weights=path, finetune_last=2)  # conv1 is in the first stage
    model = apply_transfer(_cifar(in_chans=1), weights=path)  # everything trains: conv1 simply starts afresh
    assert torch.equal(model.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    # a missing BatchNorm statistic of a frozen layer counts too
    state = {k: v for k, v in source.state_dict().items() if k != "layer2.0.bn1.running_var"}
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "partial.safetensors"))
    with pytest.raises(InputError, match="running_var"):
        apply_transfer(_cifar(in_chans=3), weights=tmp_path / "partial.safetensors", freeze="backbone")
    apply_transfer(_cifar(in_chans=3), weights=tmp_path / "partial.safetensors", finetune_last=2)  # layer2 trains


def test_frozen_backbone_is_unchanged_by_fit_and_runs_in_eval_mode():
    model = apply_transfer(_cifar(), freeze="backbone", num_classes=3)
    before = copy.deepcopy(model.state_dict())
    fit(model, _data(), None, TrainConfig(epochs=2, batch_size=16, optimizer="sgd", lr=0.1), progress=False)
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == {"fc.weight", "fc.bias"}  # BatchNorm running statistics included: unchanged
    # in train mode the frozen BatchNorm layers still use their stored statistics
    x = torch.randn(4, 1, 16, 16)
    model.train()
    y_train = model.forward_features(x)
    model.eval()
    assert torch.allclose(y_train, model.forward_features(x))


def test_finetuned_stages_do_update_batchnorm_statistics():
    model = apply_transfer(_cifar(), finetune_last=1, num_classes=3)
    model.train()
    model(torch.randn(8, 1, 16, 16))
    assert not torch.equal(model.layer3[0].bn1.running_mean, torch.zeros_like(model.layer3[0].bn1.running_mean))
    assert torch.equal(model.layer2[0].bn1.running_mean, torch.zeros_like(model.layer2[0].bn1.running_mean))


def test_discriminative_param_groups():
    model = apply_transfer(_cifar(), finetune_last=2)
    groups = discriminative_param_groups(model, 1.0, decay=0.5)
    names = {id(p): n for n, p in model.named_parameters()}
    lr_of = {names[id(p)]: g["lr"] for g in groups for p in g["params"]}
    assert set(lr_of) == _trainable(model)
    for n, lr in lr_of.items():
        stage = _expected_stage_cifar(n)
        assert lr == (1.0 if stage is None else 0.5 ** (3 - stage)), n
    assert all(g.get("weight_decay") == 0.0 for g in groups if g["params"][0].ndim == 1)


# -- feature cache --------------------------------------------------------------------------------------------


def test_head_trained_on_cache_equals_head_trained_through_frozen_backbone(tmp_path):
    model = apply_transfer(_cifar(), freeze="backbone", num_classes=3)
    through, on_cache = copy.deepcopy(model), copy.deepcopy(model)
    data, val = _data(100), _data(40, seed=1)
    cfg = TrainConfig(epochs=3, batch_size=16, optimizer="sgd", lr=0.05, schedule="cosine", seed=3)
    r1 = fit(through, data, val, cfg, progress=False)
    r2 = fit_head_on_cache(on_cache, data, val, cfg, cache_dir=tmp_path, progress=False)
    assert r2.model is on_cache
    assert not torch.allclose(through.fc.weight, model.fc.weight)  # it did train
    assert torch.allclose(through.fc.weight, on_cache.fc.weight, rtol=1e-5, atol=1e-6)
    assert torch.allclose(through.fc.bias, on_cache.fc.bias, rtol=1e-5, atol=1e-6)
    for a, b in zip(r1.history, r2.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_acc"] == b["val_acc"]


def test_cache_is_reused_and_never_stale(tmp_path):
    model = apply_transfer(_cifar(), freeze="backbone", num_classes=3)
    data = _data(40)
    first = cached_features(model, data, tmp_path, progress=False)
    assert not first.from_cache and first.path.is_file()
    again = cached_features(model, data, tmp_path, progress=False)
    assert again.from_cache and torch.equal(again.features, first.features)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(first.features, model.forward_features(data.tensors[0]), atol=1e-6)
        assert torch.equal(first.labels, data.tensors[1])

    # the head changes: the features do not, the cache stays valid
    with torch.no_grad():
        model.fc.weight.add_(1.0)
    assert cached_features(model, data, tmp_path, progress=False).from_cache

    # a backbone weight changes: a new key, features computed again
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.layer2[0].conv1.weight[0, 0, 0, 0] += 1e-3
    miss = cached_features(changed, data, tmp_path, progress=False)
    assert not miss.from_cache and miss.key != first.key
    # a BatchNorm statistic (a buffer) changes: also a miss
    changed_bn = copy.deepcopy(model)
    changed_bn.bn1.running_var[0] += 0.5
    assert cache_key(changed_bn, data) != first.key

    # one pixel or one label of the data changes: a miss
    x, y = data.tensors
    x2 = x.clone()
    x2[5, 0, 3, 3] += 0.01
    assert not cached_features(model, TensorDataset(x2, y), tmp_path, progress=False).from_cache
    y2 = y.clone()
    y2[0] = (y2[0] + 1) % 3
    assert not cached_features(model, TensorDataset(x, y2), tmp_path, progress=False).from_cache


def test_damaged_cache_file_is_recomputed(tmp_path):
    model = apply_transfer(_cifar(), freeze="backbone", num_classes=3)
    data = _data(24)
    first = cached_features(model, data, tmp_path, progress=False)
    first.path.write_bytes(first.path.read_bytes()[:100])
    again = cached_features(model, data, tmp_path, progress=False)
    assert not again.from_cache and torch.equal(again.features, first.features)
    assert cached_features(model, data, tmp_path, progress=False).from_cache


def test_cache_needs_a_frozen_backbone(tmp_path):
    model = apply_transfer(_cifar(), finetune_last=1, num_classes=3)
    with pytest.raises(InputError, match="not frozen"):
        fit_head_on_cache(model, _data(16), None, TrainConfig(epochs=1), cache_dir=tmp_path, progress=False)


def test_checkpoint_of_cached_head_training_is_a_whole_model_file(tmp_path):
    model = apply_transfer(_cifar(), freeze="backbone", num_classes=3)
    meta = {"model": "resnet20_cifar", "model_kwargs": {**KW, "num_classes": 3}}
    fit_head_on_cache(model, _data(32), _data(16, seed=2), TrainConfig(epochs=1, batch_size=16),
                      cache_dir=tmp_path / "cache", out_dir=tmp_path / "run", meta=meta, progress=False)
    loaded, _ = load_model_file(tmp_path / "run" / "last.safetensors")
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_tour_section_quick(tmp_path):
    from cnnkit.tour import run_tour

    index, failed = run_tour(tmp_path, only=["s080_transfer"], quick=True)
    assert not failed, index.read_text()[-2000:]
    picture = tmp_path / "transfer-learning-freeze-fine-tune-or-train-from-scratch-transfer-settings.png"
    assert picture.stat().st_size > 10_000
    assert (tmp_path / "transfer-pretrained-digits0-4.safetensors").is_file()
    assert "too little for a conclusion" in index.read_text()  # quick mode never states the full run's lesson
