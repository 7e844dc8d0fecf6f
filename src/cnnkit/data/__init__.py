"""Labelled image data: built-in sets, image folders, CSV listings, MNIST IDX and CIFAR batches.

    from cnnkit.data import load_dataset, make_loader
    train = load_dataset("shapes", split="train", image_size=64, seed=0)
    loader = make_loader(train, batch_size=64, shuffle=True, seed=0, num_workers=2)

Every data set yields `(float tensor (C, H, W), int label)`, normalised by `ds.mean`/`ds.std`, with
`ds.classes`, `ds.targets` and `ds.raw(i)` for pictures.
"""

from cnnkit.data.builtin import SHAPE_CLASSES, list_builtins, make_shapes, register_builtin
from cnnkit.data.cifar import read_cifar_batch, read_cifar_folder
from cnnkit.data.dataset import ImageDataset
from cnnkit.data.idx import read_idx, read_idx_pair
from cnnkit.data.load import load_dataset
from cnnkit.data.loader import make_loader, seed_worker
from cnnkit.data.sources import DataWarning
from cnnkit.data.splits import SPLITS, stratified_split

__all__ = [
    "SHAPE_CLASSES",
    "SPLITS",
    "DataWarning",
    "ImageDataset",
    "list_builtins",
    "load_dataset",
    "make_loader",
    "make_shapes",
    "read_cifar_batch",
    "read_cifar_folder",
    "read_idx",
    "read_idx_pair",
    "register_builtin",
    "seed_worker",
    "stratified_split",
]
