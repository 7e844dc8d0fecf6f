"""`cnnkit train`: train a zoo model for its task on a folder, a file or a built-in data set, with checkpoints
and resume. The task (classification, detection ...) follows from the model; it loads the data
(`Task.load_data`) and supplies loss and metrics.

    cnnkit train --model lenet5_modern --data digits --epochs 15 --out runs/lenet
    torchrun --nproc_per_node 2 -m cnnkit train --model lenet5 --data digits --out runs/ddp
"""

from __future__ import annotations

import argparse

from cnnkit.cli.common import device, positive_float, positive_int


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {value}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a model (checkpoints, logs, curves; --resume continues an interrupted run)",
        description="Train a registered model for its task (classification unless the model serves another, "
                    "e.g. detection). For classification DATA is a folder of class sub-folders, a CSV of "
                    "path,label rows, or a built-in name (digits, shapes); other tasks read their own formats. "
                    "Writes RUN_DIR/{last,best}.safetensors, last.state.pt, log.csv, metrics.json (test metrics "
                    "included) and curves.png. Runs under torchrun for data-parallel training.",
    )
    p.add_argument("--model", required=True, help="registered model name (`cnnkit models` lists them)")
    p.add_argument("--data", required=True, help="folder, file or built-in name, read by the model's task "
                                                  "(classifiers: digits, shapes, folders, CSV)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder for checkpoints and logs")
    # flags in TRAIN_DEFAULTS default to None: the model's task may set its own defaults (Task.train_defaults)
    p.add_argument("--epochs", type=positive_int, default=None, help="(default: 10, or the task's)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="per process under torchrun (default: 64, or the task's)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="peak learning rate (default: 1e-3 for adam/adamw, 0.05 for sgd)")
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default=None,
                   help="(default: adamw, or the task's)")
    p.add_argument("--schedule", choices=["none", "cosine", "step", "onecycle"], default=None,
                   help="(default: cosine, or the task's)")
    p.add_argument("--momentum", type=float, default=None,
                   help="SGD momentum / Adam beta1 (default: 0.9, or the task's)")
    p.add_argument("--weight-decay", type=float, default=None, help="(default: 5e-4, or the task's)")
    p.add_argument("--warmup-epochs", type=float, default=None, help="(default: 0, or the task's)")
    p.add_argument("--step-size", type=positive_int, default=10, help="'step' schedule period in epochs")
    p.add_argument("--gamma", type=float, default=0.1, help="'step' schedule factor")
    p.add_argument("--grad-clip", type=positive_float, default=None, metavar="MAX_NORM",
                   help="(default: none, or the task's)")
    p.add_argument("--early-stopping", type=positive_int, default=None, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without a better validation metric (accuracy for classifiers)")
    p.add_argument("--label-smoothing", type=_fraction, default=0.0, help="classification only")
    p.add_argument("--augment", default=None, metavar="SPEC",
                   help="training augmentation, e.g. 'crop,rotate' or 'default' (`cnnkit augment --list`)")
    p.add_argument("--image-size", type=positive_int, default=None, help="resize images to SIZE x SIZE")
    p.add_argument("--in-chans", type=int, choices=[1, 3], default=None,
                   help="image channels (default: the model's, e.g. 1 for lenet5)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, data order and augmentation")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/val/test split (default 0)")
    p.add_argument("--workers", type=int, default=0, help="data-loading processes (default 0)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", type=device, default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory layout")
    p.add_argument("--strict", action="store_true", help="stop at an unreadable image or an empty class folder "
                                                          "(default: skip it with a warning)")
    p.add_argument("--checkpoint-every", type=positive_int, default=None, metavar="STEPS",
                   help="also checkpoint every STEPS optimizer steps, so a killed run resumes mid-epoch")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="start from these weights (transfer learning): a file, or a registered name such as imagenet "
                        "(`cnnkit weights list`)")
    freeze = p.add_mutually_exclusive_group()
    freeze.add_argument("--freeze", choices=["backbone"], default=None, help="train only the new head")
    freeze.add_argument("--finetune-last", type=positive_int, default=None, metavar="N",
                        help="train the head and the last N stages")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per epoch still)")
    p.set_defaults(func=run, on_interrupt="the last checkpoint is kept: run the same command with --resume to "
                                          "continue")


def run(args) -> int:
    import os
    from pathlib import Path

    import torch

    from cnnkit.errors import InputError
    from cnnkit.models import create_model
    from cnnkit.train import TrainConfig, fit
    from cnnkit.train import distributed as dist
    from cnnkit.train.callbacks import PrintEpochs
    from cnnkit.train.checkpointing import BEST_FILE, has_state
    from cnnkit.train.logging import write_json
    from cnnkit.train.runs import default_in_chans, one_line_warnings, run_meta

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    if not args.resume and has_state(out):
        raise InputError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    if args.workers < 0:
        raise InputError(f"--workers must be 0 or more, got {args.workers}")
    in_chans = args.in_chans or default_in_chans(args.model)
    task = _task_of(args.model)
    from cnnkit.data.builtin import recommended_settings

    recommended = recommended_settings(args.data) if task.name == "classification" else {}
    used = {k: v for k, v in recommended.items() if getattr(args, k, None) is None}
    for key, general in TRAIN_DEFAULTS.items():  # flags not given: the data's recommendation, the task's, cnnkit's
        if getattr(args, key) is None:
            setattr(args, key, used.get(key, task.train_defaults.get(key, general)))
    if used.get("augment") is not None and args.augment is None:
        args.augment = used["augment"]
    if used and int(os.environ.get("RANK", "0")) == 0:
        told = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in used.items())
        print(f"cnnkit train: recommended settings for {args.data}: {told} (any flag you give overrides them)")
    lr = args.lr if args.lr is not None else (0.05 if args.optimizer == "sgd" else 1e-3)
    if args.warmup_epochs and args.warmup_epochs >= args.epochs:
        raise InputError(f"--warmup-epochs {args.warmup_epochs:g} is not shorter than the run ({args.epochs} epochs): "
                         "the learning rate would never reach its peak; use fewer warm-up epochs or more --epochs")
    if (args.freeze or args.finetune_last) and not args.weights:
        flag = "--freeze backbone" if args.freeze else f"--finetune-last {args.finetune_last}"
        raise InputError(f"{flag} keeps layers fixed, but without --weights they are random: give pretrained weights "
                         "(--weights FILE or a registered name such as imagenet), or drop the flag")
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=lr, momentum=args.momentum,
        weight_decay=args.weight_decay, schedule=args.schedule, step_size=args.step_size, gamma=args.gamma,
        warmup_epochs=args.warmup_epochs, grad_clip=args.grad_clip, early_stopping_patience=args.early_stopping,
        channels_last=args.channels_last, bf16=args.bf16, seed=args.seed, num_workers=args.workers,
        label_smoothing=args.label_smoothing, device=args.device, checkpoint_every=args.checkpoint_every,
    )
    main = int(os.environ.get("RANK", "0")) == 0  # torchrun's rank (the process group starts inside fit)
    with one_line_warnings("cnnkit train", show=main):  # other ranks would only repeat rank 0's warnings
        splits = task.load_data(args.data, image_size=args.image_size, in_chans=in_chans,
                                split_seed=args.split_seed, strict=args.strict, augment=args.augment, seed=args.seed)
    train_ds = splits["train"]
    val_ds, test_ds = splits.get("val") or [], splits.get("test") or []
    if main and not args.resume:  # the files of each split, so evaluate tests on this run's own test images
        from cnnkit.train.split_record import write_split_record

        write_split_record(out, splits, args.data)
    if len(train_ds) == 0:
        raise InputError(f"{args.data}: the training split is empty")

    classes = getattr(train_ds, "classes", None)
    num_classes = len(classes) if classes is not None else None
    task.check_data(train_ds, args.data)
    model_kwargs = _accepted(args.model, {"num_classes": num_classes, "in_chans": in_chans})
    # what the model needs from the data (YOLO: k-means anchors); other ranks find the same, without printing
    model_kwargs.update(_accepted(args.model, task.model_kwargs(train_ds, verbose=main)))
    torch.manual_seed(args.seed)  # the initial weights follow the seed too
    from cnnkit.models.pretrained import is_pretrained_tag

    registered = is_pretrained_tag(args.model, args.weights)  # weights a package ships: loaded by the builder
    model = create_model(args.model, **model_kwargs, **({"weights": args.weights} if registered else {}))
    weights_file = None if registered else args.weights  # registered ones are loaded: transfer only freezes
    if weights_file or args.freeze or args.finetune_last:
        from cnnkit.train.transfer import apply_transfer

        apply_transfer(model, weights=weights_file, freeze=args.freeze, finetune_last=args.finetune_last,
                       num_classes=num_classes)
    task.check_model(model, train_ds, args.model)
    meta = run_meta(args.model, model_kwargs, train_ds, source=args.data, split_seed=args.split_seed,
                    strict=args.strict, task=task.name)
    if main:
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        what = f", {num_classes} classes" if num_classes is not None else ""
        n_text = train_ds.size_text() if hasattr(train_ds, "size_text") else str(len(train_ds))
        print(f"{args.model}: {n_train:,} trainable parameters; {args.data}: {n_text} train, "
              f"{len(val_ds)} val, {len(test_ds)} test images{what}"
              + (f"; {dist.world_size()} processes" if dist.world_size() > 1 else ""))
    result = fit(model, train_ds, val_ds if len(val_ds) else None, config, out_dir=out, resume=args.resume,
                 progress=not args.no_progress, meta=meta, callbacks=[PrintEpochs()] if args.no_progress else (),
                 task=task)

    if dist.is_main():
        final = dict(result.final_metrics)
        if len(test_ds):
            best = out / BEST_FILE
            if best.is_file():  # the test set judges the weights validation chose
                from cnnkit.checkpoint import load_model_file

                test_model, _ = load_model_file(best)
                which = "best"
            else:
                test_model, which = result.model, "last"
            final["test"] = task.evaluate(test_model, test_ds, batch_size=config.eval_batch_size)
            final["test_weights"] = which
        write_json(out / "metrics.json", {**final, "config": config.to_dict(), "model": meta})
        line = f"done: {len(result.history)} epochs"
        metric = task.best_metric
        if result.best_value is not None:
            line += f", best val {metric} {result.best_value:.4f}"
        if isinstance((final.get("test") or {}).get(metric), (int, float)):
            line += f", test {metric} {final['test'][metric]:.4f} ({final['test_weights']} weights)"
        print(f"{line}; files in {out}")
    dist.cleanup()
    return 0


# cnnkit's defaults of the flags a task may override (Task.train_defaults); lr None: by optimizer
TRAIN_DEFAULTS = {"epochs": 10, "batch_size": 64, "lr": None, "optimizer": "adamw", "schedule": "cosine",
                  "momentum": 0.9, "weight_decay": 5e-4, "warmup_epochs": 0.0, "grad_clip": None}


def _task_of(model_name: str):
    """The task a registered model serves, read from a copy built on the meta device (no memory, no RNG)."""
    import torch

    from cnnkit.models import create_model, get_model_builder
    from cnnkit.tasks import get_task, task_name_of

    get_model_builder(model_name)  # an unknown name: the registry's one-line error with close matches
    probe = None
    for where in ("meta", "cpu"):  # cpu: a builder that cannot run on the meta device (cli reseeds after)
        try:
            with torch.device(where):
                probe = create_model(model_name)
            break
        except Exception:  # noqa: S112  (any failure here is the real build's to report, with its own message)
            continue
    return get_task(task_name_of(probe) if probe is not None else "classification")


def _accepted(model_name: str, kwargs: dict) -> dict:
    """The entries of `kwargs` (those not None) that the model's builder takes."""
    import inspect

    from cnnkit.models import get_model_builder

    params = inspect.signature(get_model_builder(model_name)).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return {k: v for k, v in kwargs.items() if v is not None and (takes_any or k in params)}
