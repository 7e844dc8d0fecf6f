"""The course's convolution building blocks in NumPy: a reference a learner can check their own work against.

Same conventions as the course: NHWC activations ``(m, n_H, n_W, n_C)``, filters ``W (f, f, n_C_prev, n_C)``,
biases ``b (1, 1, 1, n_C)``, hyper-parameters as a dict, every forward returning ``(output, cache)`` and every
backward taking ``(gradient, cache)``. Everything is vectorised (loops only over the f x f kernel offsets), equals
PyTorch to float64 rounding, and keeps float32 in float32.

Example:
    >>> import numpy as np
    >>> from cnnkit.scratch import conv_forward, conv_backward
    >>> A_prev, W, b = np.random.randn(2, 5, 7, 4), np.random.randn(3, 3, 4, 8), np.random.randn(1, 1, 1, 8)
    >>> Z, cache = conv_forward(A_prev, W, b, {"stride": 2, "pad": 1})
    >>> Z.shape
    (2, 3, 4, 8)
    >>> dA_prev, dW, db = conv_backward(np.ones_like(Z), cache)
"""

from cnnkit.scratch.conv import conv_backward, conv_forward, conv_single_step, zero_pad
from cnnkit.scratch.gradcheck import gradient_difference, numerical_gradient
from cnnkit.scratch.pool import (
    create_mask_from_window,
    distribute_value,
    global_avg_pool_backward,
    global_avg_pool_forward,
    pool_backward,
    pool_forward,
)
from cnnkit.scratch.transposed import conv_transpose_backward, conv_transpose_forward

__all__ = [
    "conv_backward",
    "conv_forward",
    "conv_single_step",
    "conv_transpose_backward",
    "conv_transpose_forward",
    "create_mask_from_window",
    "distribute_value",
    "global_avg_pool_backward",
    "global_avg_pool_forward",
    "gradient_difference",
    "numerical_gradient",
    "pool_backward",
    "pool_forward",
    "zero_pad",
]
