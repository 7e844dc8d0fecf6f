"""Training: `fit` a model for its task (classification, detection ...; see `cnnkit.tasks`), `evaluate` it, with
callbacks, checkpoints that resume exactly, and DDP.

    from cnnkit.train import TrainConfig, fit, evaluate, evaluate_task
    result = fit(model, train_ds, val_ds, TrainConfig(epochs=10, lr=1e-3), out_dir="runs/lenet")
    print(result.best_val_acc, evaluate(result.model, test_ds)["accuracy"])   # a classifier
    print(result.best_metric, result.best_value)                               # any task
"""

from cnnkit.train.callbacks import Callback, EarlyStopping, PrintEpochs
from cnnkit.train.config import TrainConfig
from cnnkit.train.evaluation import evaluate, evaluate_task
from cnnkit.train.loop import NonFiniteLossError, Trainer, TrainResult, fit

__all__ = ["Callback", "EarlyStopping", "NonFiniteLossError", "PrintEpochs", "TrainConfig", "TrainResult", "Trainer",
           "evaluate", "evaluate_task", "fit"]
