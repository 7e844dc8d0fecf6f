"""Small building blocks reused across the model zoo, one concept per module.

Import from the module that defines a layer (`from cnnkit.layers.conv_bn_act import ConvBnAct`); the names
below are re-exported for convenience.
"""

from cnnkit.layers.activations import create_act, get_act_layer, get_norm_layer
from cnnkit.layers.conv_bn_act import ConvBnAct
from cnnkit.layers.residual import ConvolutionalBlock, IdentityBlock, PlainBlock

__all__ = [
    "ConvBnAct",
    "ConvolutionalBlock",
    "IdentityBlock",
    "PlainBlock",
    "create_act",
    "get_act_layer",
    "get_norm_layer",
]
