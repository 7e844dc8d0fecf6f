"""What `cnnkit train`, `evaluate` and `predict` share: loading data the way a checkpoint expects it, the
model-file metadata of a run, and data warnings shown as one line each."""

from __future__ import annotations

import contextlib
import inspect
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from cnnkit.errors import InputError

VAL_FRACTION = 0.15  # of each class, for validation (sources without their own val split)
TEST_FRACTION = 0.15  # of each class, for the final test (sources without their own test split)


@contextlib.contextmanager
def one_line_warnings(prefix: str, show: bool = True) -> Iterator[None]:
    """Print the warnings raised inside (a skipped unreadable image, an empty class folder) as one line each;
    `show=False` swallows them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    if not show:
        return
    seen = set()
    for w in caught:
        text = " ".join(str(w.message).split())
        if text not in seen:
            seen.add(text)
            print(f"{prefix}: warning: {text}", file=sys.stderr)


def default_in_chans(model_name: str) -> int:
    """The `in_chans` default of a registered builder (3 for a builder without the argument)."""
    from cnnkit.models import get_model_builder

    param = inspect.signature(get_model_builder(model_name)).parameters.get("in_chans")
    if param is None or param.default is inspect.Parameter.empty:
        return 3
    return int(param.default)


def load_split(source: str, split: str, *, image_size: int | None, in_chans: int, split_seed: int,
               strict: bool = False, mean=None, std=None, transform=None):
    """One split of `source` with cnnkit's fractions (15% val, 15% test per class unless the source has them)."""
    from cnnkit.data import load_dataset

    return load_dataset(source, split=split, image_size=image_size, in_chans=in_chans, seed=split_seed,
                        val_fraction=VAL_FRACTION, test_fraction=TEST_FRACTION, strict=strict, transform=transform,
                        mean=mean, std=std)


def run_meta(model_name: str, model_kwargs: dict[str, Any], train_ds, *, source: str, split_seed: int,
             strict: bool = False, task: str = "classification") -> dict[str, Any]:
    """Model-file metadata: how to rebuild the model and feed it (task, size, channels, normalisation, classes).

    Reads the data set's `classes`, `mean`, `std`, `image_size`, `in_chans` where it has them (a task's data
    set may lack some: they are then left out) and the size of its first image.
    """
    image = train_ds[0][0] if len(train_ds) else None
    image_size = getattr(train_ds, "image_size", None)
    if getattr(train_ds, "input_size", None) is not None:  # a data set whose items are not single images
        size = list(train_ds.input_size)
    elif image is not None and hasattr(image, "shape"):
        size = list(image.shape)
    else:
        size = [getattr(train_ds, "in_chans", 3), image_size, image_size]
    meta: dict[str, Any] = {"model": model_name, "model_kwargs": model_kwargs, "task": task}
    if getattr(train_ds, "classes", None) is not None:
        meta["classes"] = list(train_ds.classes)
    meta.update({"input_size": size, "in_chans": int(size[0])})
    for key in ("mean", "std"):
        if getattr(train_ds, key, None) is not None:
            meta[key] = [float(v) for v in getattr(train_ds, key)]
    meta["data"] = {"source": source, "split_seed": split_seed, "image_size": image_size,
                    "val_fraction": VAL_FRACTION, "test_fraction": TEST_FRACTION, "strict": strict}
    return meta


def data_for_checkpoint(meta: dict[str, Any], source: str, split: str, *, split_seed: int | None = None,
                        strict: bool = False, checkpoint: str = "the checkpoint"):
    """Load `split` of `source` preprocessed as the checkpoint's model expects (size, channels, mean/std).

    The split seed defaults to the one the run was trained with, so `--split test` is the run's own test set.

    Raises:
        InputError: the data has another number of classes than the checkpoint predicts (both are named).
    """
    size = meta.get("input_size") or [3, None, None]
    in_chans = int(meta.get("in_chans", size[0]))
    data_meta = meta.get("data") or {}
    seed = split_seed if split_seed is not None else int(data_meta.get("split_seed", 0))
    ds = load_split(source, split, image_size=size[1], in_chans=in_chans, split_seed=seed, strict=strict,
                    mean=meta.get("mean"), std=meta.get("std"))
    classes = meta.get("classes")
    if classes is not None and len(classes) != len(ds.classes):
        raise InputError(f"{checkpoint} predicts {len(classes)} classes but {source} has {len(ds.classes)}; "
                         "evaluate on the data the model was trained on (or retrain it on this data)")
    if classes is not None and list(classes) != list(ds.classes):
        print(f"cnnkit: warning: class names differ between {checkpoint} ({', '.join(classes[:5])}...) and "
              f"{source} ({', '.join(ds.classes[:5])}...); labels are matched by position", file=sys.stderr)
    if len(ds) == 0:
        raise InputError(f"{source} has no images in the {split!r} split; choose another --split")
    return ds
