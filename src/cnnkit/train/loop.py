"""The training loop: `fit` trains a model for its task (classification, detection ...; see `cnnkit.tasks`).

One epoch is: take this epoch's data order (a function of seed and epoch only, through a
DistributedSampler, so one process and N processes see the same sample-to-rank split every time), then per
batch: collate (the task's), forward (optionally bf16 autocast, channels-last), the task's loss, backward,
clip, step, with a checkpoint every `checkpoint_every` steps; then validate with the task's meter, log,
checkpoint. The loop knows nothing task-specific: the task supplies loss, collation, statistics, metrics and
the metric that picks best.safetensors. Everything that influences the
next step (weights, optimizer, step, batch index, RNG states, the partial epoch sums) is in the checkpoint,
so a run killed at any moment and resumed ends with the same weights as one never interrupted.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from cnnkit.errors import CnnkitError, InputError
from cnnkit.tasks.base import Task, task_for_model
from cnnkit.train import checkpointing, distributed
from cnnkit.train.callbacks import Callback, CallbackList, EarlyStopping, PrintEpochs
from cnnkit.train.config import TrainConfig
from cnnkit.train.evaluation import dataset_of, run_task_eval, seed_worker, to_device
from cnnkit.train.logging import history_columns, save_curves, write_history_csv, write_json
from cnnkit.train.schedule import lr_factor


class NonFiniteLossError(CnnkitError):
    """The loss (or the weights) became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    """What `fit` returns.

    Attributes:
        model: the trained model (the weights of the last epoch), in eval mode.
        history: one dict per epoch: epoch (1-based), train_loss, the task's train statistics (train_acc for
            classification), its validation entries (val_loss, val_acc for classification; val_<metric>
            otherwise), lr, seconds.
        best_value: the best validation value of `best_metric` in the run (None without validation data).
        final_metrics: the last validation metrics (the task meter's), plus best_val_<key>, epochs, stopped_early.
        out_dir: the run folder, when one was given.
        best_metric: the task's metric that picked best.safetensors ("accuracy" for classification).
    """

    model: nn.Module
    history: list[dict[str, Any]]
    best_value: float | None
    final_metrics: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None
    best_metric: str = "accuracy"

    @property
    def best_val_acc(self) -> float | None:
        """The best validation accuracy of a classifier's run (None for other tasks, or without validation)."""
        return self.best_value if self.best_metric == "accuracy" else None


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _EpochView(Dataset):
    """The training set as one epoch sees it: the augmentation of sample i is reseeded from (seed, epoch, i).

    So what a sample looks like depends on nothing else: not on the worker count, the rank, nor the batch a
    resumed run starts from. Applies to data sets with a `reseed(int)` method (cnnkit's ImageDataset, whose
    augmentations draw from their own generator); other data sets pass through unchanged.
    """

    def __init__(self, dataset: Dataset, seed: int, epoch: int):
        self.dataset = dataset
        self.base = ((seed & 0xFFFFFFFF) * 1_000_003 + epoch) << 32
        # look through a torch Subset (a subset of an ImageDataset is still augmented)
        self.reseed = getattr(dataset, "reseed", None) or getattr(getattr(dataset, "dataset", None), "reseed", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        if self.reseed is not None:
            self.reseed(self.base + int(i))
        return self.dataset[i]


def default_meta(model: nn.Module, data, task: Task | None = None) -> dict[str, Any]:
    """Model-file metadata guessed from the model and the training data (fit uses it when given no `meta`).

    The model's registry name comes from `model.cnnkit_name` (set by the CLI) or its class name; the task
    from `task` (default: the model's); classes, mean and std from the dataset's attributes of those names;
    input_size from the first sample.
    """
    ds = dataset_of(data)
    meta: dict[str, Any] = {"model": getattr(model, "cnnkit_name", type(model).__name__.lower()),
                            "model_kwargs": dict(getattr(model, "cnnkit_kwargs", {})),
                            "task": (task or task_for_model(model)).name}
    classes = getattr(ds, "classes", None)
    if classes is not None:
        meta["classes"] = list(classes)
    for key in ("mean", "std"):
        value = getattr(ds, key, None)
        if value is not None:
            meta[key] = [float(v) for v in value]
    if len(ds):
        meta["input_size"] = list(ds[0][0].shape)
    return meta


class Trainer:
    """The state of one training run; `fit` builds one and calls `run`.

    Callbacks see: `model` (unwrapped, even under DDP), `optimizer`, `epoch` (0-based index of the epoch in
    progress), `global_step` (optimizer steps taken so far), `should_stop` (set True to stop after this
    epoch), `config`, `history`, `out_dir`, `params` (the parameters being optimised), `last_grad_norm` (the
    pre-clipping gradient norm when clipping is on), `task`.
    """

    def __init__(self, model: nn.Module, train_data, val_data, config: TrainConfig, *, out_dir=None,
                 callbacks=(), param_groups=None, progress: bool = True, meta: dict[str, Any] | None = None,
                 task: Task | None = None):
        self.config = config
        self.task = task if task is not None else task_for_model(model)
        self.task.configure(config)
        self.distributed = distributed.init_from_env(config.device)
        self.device = distributed.local_device(config.device)
        self.model = model.to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.task.bind(self.model)  # a task whose loss reads the model (YOLO: anchors), on its device; again if bound
        self.train_data = train_data
        self.val_data = val_data
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress = progress and distributed.is_main()
        meta = meta if meta is not None else default_meta(model, train_data, self.task)
        self.meta = {**meta, "task": self.task.name}  # the model file records the task it was trained for
        cbs = list(callbacks)
        if self.progress and not any(isinstance(cb, PrintEpochs) for cb in cbs):
            cbs.append(PrintEpochs())
        if config.early_stopping_patience is not None:
            cbs.append(EarlyStopping(config.early_stopping_patience, monitor=f"val_{self.task.row_key()}",
                                     mode=self.task.best_mode))
        self.callbacks = CallbackList(cbs)
        self.optimizer = self._build_optimizer(param_groups)
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.forward_model = self.model
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.steps_per_epoch = self._steps_per_epoch()
        self.total_steps = config.epochs * self.steps_per_epoch
        self.warmup_steps = round(config.warmup_epochs * self.steps_per_epoch)
        self.epoch = 0
        self.batch = 0  # index, within the epoch, of the next batch to train on
        self.global_step = 0
        self.should_stop = False
        self.history: list[dict[str, Any]] = []
        self.best_value: float | None = None  # of the task's best_metric
        self.last_val: dict[str, Any] | None = None
        self.last_grad_norm: float | None = None
        # this epoch so far: "n" samples, "loss" sum of batch means x batch sizes, and the task's sums
        # ("stat:<key>" from train_stats, "part:<key>" loss parts x batch size); all ranks' at a checkpoint
        self._sums: dict[str, float] = _zero_sums()
        self._epoch_seconds = 0.0

    # -- set-up -------------------------------------------------------------------------------------------
    def _build_optimizer(self, param_groups) -> torch.optim.Optimizer:
        cfg = self.config
        if param_groups is None:
            trainable = [p for p in self.model.parameters() if p.requires_grad]
            # decay the weights of convolutions and linear layers only: decaying biases and norm scales
            # hurts accuracy and buys no regularisation
            param_groups = [{"params": [p for p in trainable if p.ndim > 1]},
                            {"params": [p for p in trainable if p.ndim <= 1], "weight_decay": 0.0}]
        groups = []
        for g in param_groups:
            params = [p for p in g["params"] if p.requires_grad]  # frozen layers are never optimised
            if params:
                groups.append({**g, "params": params, "weight_decay": g.get("weight_decay", cfg.weight_decay),
                               "base_lr": g.get("lr", cfg.lr)})
        if not groups:
            raise InputError("the model has no trainable parameters (everything is frozen); unfreeze some layers")
        for g in groups:
            g["lr"] = g["base_lr"]
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
        betas = (cfg.momentum, 0.999)
        if cfg.optimizer == "adam":
            return torch.optim.Adam(groups, lr=cfg.lr, betas=betas)
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas)

    def _steps_per_epoch(self) -> int:
        if isinstance(self.train_data, DataLoader):
            return len(self.train_data)
        if len(self.train_data) == 0:
            raise InputError("the training data is empty")
        return len(self._epoch_batches(self._epoch_order(0)))

    def _epoch_order(self, epoch: int, rank: int | None = None) -> list[int]:
        """Sample indices of `rank` (default: this one) for `epoch`: a function of seed, epoch, rank and world
        size only."""
        sampler = DistributedSampler(self.train_data, num_replicas=distributed.world_size(),
                                     rank=distributed.rank() if rank is None else rank, shuffle=True,
                                     seed=self.config.seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    def _epoch_batches(self, order: list[int]) -> list[list[int]]:
        bs = self.config.batch_size
        batches = [order[i:i + bs] for i in range(0, len(order), bs)]
        if len(batches) > 1 and len(batches[-1]) == 1:
            batches.pop()  # batch norm cannot train on a single sample; one image less per epoch is harmless
        return batches

    def _train_loader(self, epoch: int, start_batch: int):
        if isinstance(self.train_data, DataLoader):
            # a user's loader: skip the batches already trained on (exact when the loader is deterministic)
            return islice(iter(self.train_data), start_batch, None)
        batches = self._epoch_batches(self._epoch_order(epoch))[start_batch:]
        # the loader's own generator seeds its workers, so creating it never draws from the global RNG
        gen = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch * 1_009 + start_batch)
        view = _EpochView(self.train_data, self.config.seed, epoch)
        return DataLoader(view, batch_sampler=batches, num_workers=self.config.num_workers,
                          collate_fn=self.task.collate, worker_init_fn=seed_worker, generator=gen,
                          pin_memory=self.device.type == "cuda")

    def _data_fingerprint(self) -> list[int]:
        """Rank 0's order for the current epoch: what a resumed run must find again (same data, same seed)."""
        if isinstance(self.train_data, DataLoader) or self.epoch >= self.config.epochs:
            return []
        return self._epoch_order(self.epoch, rank=0)

    # -- checkpoints --------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs besides the weights (see cnnkit.train.checkpointing)."""
        return {
            "epoch": self.epoch, "batch": self.batch, "global_step": self.global_step,
            "epoch_sums": dict(self._sums), "epoch_seconds": self._epoch_seconds, "task": self.task.name,
            "history": self.history, "best_value": self.best_value, "should_stop": self.should_stop,
            "optimizer": self.optimizer.state_dict(), "rng": checkpointing.get_rng_state(),
            "data_order": torch.tensor(self._data_fingerprint(), dtype=torch.int64),
            "callbacks": self.callbacks.state_dict(), "config": self.config.to_dict(),
            "world_size": distributed.world_size(),
        }

    def _global_sums(self) -> dict[str, float]:
        if not self.distributed:
            return dict(self._sums)
        keys = sorted(self._sums)  # every rank holds the same keys (the task's, every batch alike)
        t = distributed.all_reduce_sum(torch.tensor([self._sums[k] for k in keys], dtype=torch.float64))
        return dict(zip(keys, t.tolist(), strict=True))

    def _checkpoint(self) -> None:
        """Save last.state.pt + last.safetensors (rank 0 writes; every rank must call it, for the sums)."""
        if self.out_dir is None:
            return
        if not all(torch.isfinite(p).all() for p in self.params):
            raise NonFiniteLossError(f"the weights became NaN or infinite at step {self.global_step}; "
                                     f"{self._kept()}lower the learning rate (--lr) or clip gradients (--grad-clip)")
        sums = self._global_sums()
        if distributed.is_main():
            local = self._sums
            self._sums = sums
            state = self.state_dict()
            self._sums = local
            checkpointing.save_state(self.out_dir, state, self.model, self.meta)
        distributed.barrier()

    def _kept(self) -> str:
        """What a stopped run leaves behind, for the error message."""
        if self.out_dir is None:
            return ""
        if checkpointing.has_state(self.out_dir):
            return f"the last good checkpoint in {self.out_dir} is kept; "
        return "no checkpoint was written yet; "

    def _resume(self) -> None:
        state = checkpointing.load_state(self.out_dir)
        result = self.model.load_state_dict(state["model"], strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise InputError(f"{self.out_dir} holds a checkpoint of another model (missing "
                             f"{result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}); "
                             "use another --out folder or the same --model")
        if state["world_size"] != distributed.world_size():
            raise InputError(f"the run in {self.out_dir} was trained on {state['world_size']} processes; "
                             f"resume it with the same number (not {distributed.world_size()})")
        self.optimizer.load_state_dict(state["optimizer"])  # with each group's base_lr, as the run began
        self.epoch, self.batch, self.global_step = state["epoch"], state["batch"], state["global_step"]
        saved_task = state.get("task", self.task.name)
        if saved_task != self.task.name:
            raise InputError(f"the run in {self.out_dir} trained a {saved_task} task, not {self.task.name}; "
                             "use another --out folder")
        self.history = state["history"]
        self.best_value = state["best_value"] if "best_value" in state else state.get("best_val_acc")
        self.should_stop = state["should_stop"]
        self._epoch_seconds = state["epoch_seconds"]
        # the saved sums are those of all ranks together: rank 0 carries them, the others start from zero
        sums = _sums_from_state(state["epoch_sums"])
        self._sums = sums if distributed.is_main() else {k: 0.0 for k in sums}
        saved_order = state["data_order"].tolist()
        if saved_order and saved_order != self._data_fingerprint():
            raise InputError(f"the training data differs from the run in {self.out_dir} (another size or "
                             "seed); resume with the same --data, --seed and subset")
        self._resume_rng = state["rng"]
        self._resume_callbacks = state["callbacks"]
        if distributed.is_main():
            checkpointing.sync_last_file(self.out_dir, state, self.model)  # killed between the two writes?
            changed = {k: (v, getattr(self.config, k)) for k, v in state["config"].items()
                       if k not in ("epochs", "num_workers") and getattr(self.config, k, v) != v}
            if changed:
                print(f"cnnkit: resuming with a changed config: {changed} (results will differ from the "
                      "uninterrupted run)")

    # -- the loop -----------------------------------------------------------------------------------------
    def _set_lr(self) -> None:
        cfg = self.config
        factor = lr_factor(min(self.global_step, self.total_steps - 1), schedule=cfg.schedule,
                           total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch,
                           warmup_steps=self.warmup_steps, step_size=cfg.step_size, gamma=cfg.gamma)
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * factor

    def _train_step(self, x: torch.Tensor, y: Any) -> float:
        cfg = self.config
        x, y = to_device(x, self.device, cfg.channels_last), self.task.targets_to(y, self.device)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            outputs = self.forward_model(x)
        loss, parts = self.task.loss(outputs, y)
        value = float(loss.detach())
        if distributed.any_rank(not math.isfinite(value)):
            raise NonFiniteLossError(f"the loss became {value} at epoch {self.epoch + 1}, step {self.global_step + 1}; "
                                     f"{self._kept()}lower the learning rate (--lr) or clip gradients (--grad-clip)")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.callbacks.call("on_after_backward", self)
        if cfg.grad_clip is not None:
            self.last_grad_norm = float(nn.utils.clip_grad_norm_(self.params, cfg.grad_clip))
        self._set_lr()
        self.optimizer.step()
        self.global_step += 1
        n = self.task.batch_size(x, y)
        with torch.no_grad():
            stats = self.task.train_stats(outputs, y)
        self._sums["loss"] += value * n
        self._sums["n"] += n
        _accumulate(self._sums, "stat", stats, 1)  # the task's statistics first, then the loss parts: the rows'
        _accumulate(self._sums, "part", parts, n)  # column order
        return value

    def _train_epoch(self) -> None:
        from tqdm.auto import tqdm

        cfg = self.config
        loader = self._train_loader(self.epoch, self.batch)
        self.model.train()
        bar = tqdm(total=self.steps_per_epoch, initial=self.batch, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                   unit="batch", disable=not self.progress, leave=False, dynamic_ncols=True)
        for x, y in loader:
            loss = self._train_step(x, y)
            self.batch += 1
            self.callbacks.call("on_batch_end", self, self.global_step, loss)
            bar.update(1)
            n = max(self._sums["n"], 1)
            shown = {"loss": f"{self._sums['loss'] / n:.4f}"}
            stat = self.task.main_train_stat
            if stat is not None and f"stat:{stat}" in self._sums:
                shown[stat] = f"{self._sums[f'stat:{stat}'] / n:.3f}"
            bar.set_postfix(shown, refresh=False)
            if (cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0
                    and self.batch < self.steps_per_epoch):  # the epoch's end checkpoints anyway
                self._checkpoint()
        bar.close()
        distributed.broadcast_buffers(self.model)  # validation and the checkpoint see rank 0's statistics

    def _end_epoch(self, started: float) -> dict[str, Any]:
        cfg = self.config
        sums = self._global_sums()
        n = max(sums["n"], 1)
        row: dict[str, Any] = {"epoch": self.epoch + 1, "train_loss": sums["loss"] / n}
        for key in list(self._sums):  # this rank's key order: the task's, as its first batch gave them
            if key.startswith(("stat:", "part:")):
                row[f"train_{key.split(':', 1)[1]}"] = sums[key] / n
        metrics = None
        if self.val_data is not None:
            shard = self.distributed and not isinstance(self.val_data, DataLoader)
            meter = run_task_eval(self.model, self.val_data, self.task, batch_size=cfg.eval_batch_size,
                                  device=self.device, bf16=cfg.bf16, channels_last=cfg.channels_last,
                                  num_workers=cfg.num_workers, shard=shard)
            if shard:
                meter.all_reduce()
            metrics = self.last_val = meter.compute()
        row.update(self.task.history_metrics(metrics))
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        self._epoch_seconds += time.perf_counter() - started
        row["seconds"] = round(self._epoch_seconds, 3)
        return row

    def run(self, resume: bool = False) -> TrainResult:
        """Train (or continue a run) to the configured number of epochs."""
        cfg = self.config
        seed_everything(cfg.seed)
        self._resume_rng = None
        self._resume_callbacks = None
        if resume:
            if self.out_dir is None:
                raise InputError("resume needs the run folder (out_dir) of the run to continue")
            if checkpointing.has_state(self.out_dir):
                self._resume()
            elif self.progress:
                print(f"cnnkit: no checkpoint in {self.out_dir} yet; starting from the beginning")
        self.callbacks.call("on_fit_start", self)
        if self._resume_callbacks is not None:  # after on_fit_start, so a callback's fresh set-up is overwritten
            self.callbacks.load_state_dict(self._resume_callbacks)
        if self._resume_rng is not None:  # last, so nothing in the set-up above can shift the random streams
            checkpointing.set_rng_state(self._resume_rng)
        while self.epoch < cfg.epochs and not self.should_stop:
            started = time.perf_counter()
            if self.batch == 0:
                self.callbacks.call("on_epoch_start", self)
            self._train_epoch()
            row = self._end_epoch(started)
            self.history.append(row)
            value = None
            if self.val_data is not None:
                if self.task.best_metric not in self.last_val:  # a task's bug: say which key is missing
                    raise ValueError(f"task {self.task.name!r}: its meter's compute() has no {self.task.best_metric!r} "
                                     f"(the best_metric); it gave {sorted(self.last_val)}")
                value = self.last_val[self.task.best_metric]
            if self.task.is_better(value, self.best_value):
                self.best_value = value
                if self.out_dir is not None and distributed.is_main():
                    checkpointing.save_best(self.out_dir, self.model, {**self.meta, "epoch": row["epoch"],
                                                                       f"val_{self.task.row_key()}": value})
            self.callbacks.call("on_epoch_end", self, row)
            self.epoch += 1
            self.batch = 0
            self._sums, self._epoch_seconds = _zero_sums(), 0.0
            self._checkpoint()
            if self.out_dir is not None and distributed.is_main():
                write_history_csv(self.out_dir / "log.csv", self.history, history_columns(self.history))
        return self._finish()

    def _finish(self) -> TrainResult:
        cfg = self.config
        task = self.task
        if self.last_val is None and self.val_data is not None:  # resumed a finished run: measure again
            meter = run_task_eval(self.model, self.val_data, task, batch_size=cfg.eval_batch_size,
                                  device=self.device, bf16=cfg.bf16, channels_last=cfg.channels_last,
                                  num_workers=cfg.num_workers)
            self.last_val = meter.compute()
        stopped_early = self.should_stop and self.epoch < cfg.epochs
        last = self.history[-1] if self.history else {}
        final = {"val": self.last_val, f"best_val_{task.row_key()}": self.best_value, "best_metric": task.best_metric,
                 "epochs": len(self.history), "global_step": self.global_step, "stopped_early": stopped_early,
                 **{k: last.get(k) for k in history_columns(self.history) if k.startswith("train_")},
                 "seconds": round(sum(r["seconds"] for r in self.history), 2)}
        final.setdefault("train_loss", None)
        self.callbacks.call("on_fit_end", self)
        if self.out_dir is not None and distributed.is_main():
            write_history_csv(self.out_dir / "log.csv", self.history, history_columns(self.history))
            write_json(self.out_dir / "metrics.json", {**final, "config": cfg.to_dict(), "model": self.meta})
            if self.history:
                save_curves(self.out_dir / "curves.png", self.history, title=str(self.meta.get("model", "")),
                            metric=task.row_key(), metric_label=task.best_metric, loss_label=task.loss_label,
                            mode=task.best_mode)
        self.model.eval()
        return TrainResult(model=self.model, history=self.history, best_value=self.best_value,
                           final_metrics=final, out_dir=self.out_dir, best_metric=task.best_metric)


def fit(model: nn.Module, train_data: Dataset | DataLoader, val_data: Dataset | DataLoader | None,
        config: TrainConfig, *, out_dir: str | Path | None = None, callbacks: tuple[Callback, ...] | list = (),
        resume: bool = False, param_groups: list[dict[str, Any]] | None = None, progress: bool = True,
        meta: dict[str, Any] | None = None, task: Task | None = None) -> TrainResult:
    """Train a model for its task (a classifier with cross-entropy unless the model or `task` says otherwise).

    Args:
        model: any nn.Module; for classification it maps images (B, C, H, W) (or features) to logits
            (B, num_classes), for another task it returns what that task's loss and meter take.
        train_data: a Dataset yielding the task's samples ((Tensor, int label) for classification), or a
            DataLoader. With a Dataset the loop owns the order (shuffled per epoch from the seed, split over
            ranks under torchrun; batched by `task.collate`) and a mid-epoch resume is exact; a DataLoader is
            used as given.
        val_data: the same kinds, or None (then no validation, no best.safetensors).
        config: the TrainConfig.
        out_dir: run folder for last/best checkpoints, log.csv, metrics.json and curves.png; None: no files.
        callbacks: Callback instances, called in order (an EarlyStopping is appended when the config asks).
        resume: continue the run in out_dir from its last checkpoint (starts afresh when it has none).
        param_groups: optimizer groups such as [{"params": [...], "lr": 1e-4}, {"params": [...]}] for
            discriminative learning rates; the schedule scales every group's lr alike. Default: all
            parameters with requires_grad (weights decayed, biases and norm scales not).
        progress: show a tqdm bar with the live loss and the task's main statistic (accuracy for
            classification), and print one line per epoch (`PrintEpochs`).
        meta: metadata for the saved model files ("model", "model_kwargs", "classes", "input_size", "mean",
            "std" ...); default: `default_meta(model, train_data)`. "task" is always set to the task's name.
        task: the Task (loss, collation, metrics, best metric); default `task_for_model(model)`.

    Returns:
        A TrainResult (history, best_value of task.best_metric (best_val_acc for a classifier), final_metrics,
        the model).

    Raises:
        NonFiniteLossError: the loss became NaN or infinite (the last checkpoint, if any, is kept).
        InputError: empty data, nothing to train, or a run folder that belongs to another run.
    """
    trainer = Trainer(model, train_data, val_data, config, out_dir=out_dir, callbacks=callbacks,
                      param_groups=param_groups, progress=progress, meta=meta, task=task)
    return trainer.run(resume=resume)


def _accumulate(sums: dict[str, float], prefix: str, values: dict[str, Any], weight: float) -> None:
    """sums["<prefix>:<key>"] += value * weight for each entry of `values` (floats or 0-d tensors)."""
    for key, v in values.items():
        v = v.detach() if isinstance(v, torch.Tensor) else v  # a value given as a tensor: no graph kept
        sums[f"{prefix}:{key}"] = sums.get(f"{prefix}:{key}", 0.0) + float(v) * weight


def _zero_sums() -> dict[str, float]:
    return {"loss": 0.0, "n": 0.0}


def _sums_from_state(saved) -> dict[str, float]:
    """The epoch sums of a checkpoint (a [loss, correct, n] list in checkpoints of cnnkit before tasks)."""
    if isinstance(saved, (list, tuple)):
        return {"loss": float(saved[0]), "n": float(saved[2]), "stat:acc": float(saved[1])}
    return {k: float(v) for k, v in saved.items()}
