"""The model zoo. Every module in this package registers its families on import.

Adding a family is adding a file here with `@register_model` builders: nothing else to edit.
"""

import importlib
import pkgutil

from cnnkit.models.inference import InferenceModel, prepare_for_inference
from cnnkit.models.registry import create_model, get_model_builder, list_models, register_model
from cnnkit.models.weights import LoadReport, load_weights, read_weights

__all__ = ["InferenceModel", "LoadReport", "create_model", "get_model_builder", "list_models", "load_weights",
           "prepare_for_inference", "read_weights", "register_model"]

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "registry" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
