"""Tasks: what a model is trained to do (classification, detection, segmentation ...), as classes.

    from cnnkit.tasks import get_task, task_for_model
    task = task_for_model(model)            # from the model's `task` attribute; default classification
    result = fit(model, train, val, config)  # uses that task: its loss, collation, metrics, best metric

See `cnnkit.tasks.base` for how to add a task.
"""

from cnnkit.tasks.base import (
    DEFAULT_TASK,
    Meter,
    Task,
    get_task,
    list_tasks,
    move_to,
    register_task,
    task_for_model,
    task_name_of,
)
from cnnkit.tasks.classification import ClassificationTask

__all__ = ["DEFAULT_TASK", "ClassificationTask", "Meter", "Task", "get_task", "list_tasks", "move_to",
           "register_task", "task_for_model", "task_name_of"]
