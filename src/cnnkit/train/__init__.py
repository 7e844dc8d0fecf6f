"""Training: `fit` a classifier, `evaluate` it, with callbacks, checkpoints that resume exactly, and DDP.

    from cnnkit.train import TrainConfig, fit, evaluate
    result = fit(model, train_ds, val_ds, TrainConfig(epochs=10, lr=1e-3), out_dir="runs/lenet")
    print(result.best_val_acc, evaluate(result.model, test_ds)["accuracy"])
"""

from cnnkit.train.callbacks import Callback, EarlyStopping, PrintEpochs
from cnnkit.train.config import TrainConfig
from cnnkit.train.evaluation import evaluate
from cnnkit.train.loop import NonFiniteLossError, Trainer, TrainResult, fit

__all__ = ["Callback", "EarlyStopping", "NonFiniteLossError", "PrintEpochs", "TrainConfig", "TrainResult", "Trainer",
           "evaluate", "fit"]
