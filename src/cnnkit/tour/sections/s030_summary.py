"""Tour: the course's worked-example ConvNet layer by layer, and the lessons on what convolutions cost."""

from __future__ import annotations

TITLE = "Layer-by-layer summary of the course's ConvNet"
ORDER = 30


def build(section, ctx) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    from cnnkit.cost import bottleneck_cost, conv_vs_fully_connected, lessons_text, separable_cost
    from cnnkit.models import create_model
    from cnnkit.summary import format_shape_hwc, summary

    s = summary(create_model("course_convnet"), name="course_convnet")
    section.text(
        "The course's worked example (LeNet-5-like): CONV 5x5 with 6 filters, max-pool 2, CONV 5x5 with 16 filters, "
        "max-pool 2, then fully-connected layers of 120 and 84 units and a 10-way softmax. The table is what "
        "`cnnkit summary course_convnet --why` prints (shapes as height x width x channels); it is counted by hooks "
        "on a real forward pass, not typed in. The FC-equivalent column is what a fully-connected layer from the "
        "same input values to the same output values would need."
    )
    rows = [["input", "", format_shape_hwc(s.input_shape), s.input_size, 0, 0, ""]]
    labels = ["CONV1 (f=5, s=1)", "POOL1", "CONV2 (f=5, s=1)", "POOL2", "FC3", "FC4", "Softmax (FC 84 -> 10)"]
    for label, r in zip(labels, s.rows, strict=True):
        fc = r.fc_equivalent_params
        rows.append([f"{label}: {r.name}", r.layer_type, r.shape_hwc, r.activation_size, r.params, r.macs,
                     fc if fc is not None else ""])
    rows.append(["total", "", "", s.total_activations, s.total_params, s.total_macs, ""])
    section.table(rows, ["layer", "type", "activation shape", "activation size", "# parameters", "MACs",
                         "FC-equivalent params"], caption="course_convnet, 32x32x3 input")
    fc_params = sum(r.params for r in s.rows if r.layer_type == "Linear")
    section.text(
        f"{s.total_params:,} parameters and {s.total_macs:,} multiply-adds per image. Two patterns of "
        "classic ConvNets show: the activation size tends to shrink as the network goes deeper (4,704 -> 10), "
        f"and most parameters sit in the fully-connected layers ({fc_params:,} of "
        f"{s.total_params:,}), while the convolutions hold few parameters but do most of the multiplications."
    )

    names = [r.name.split(".")[-1] for r in s.rows]
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [1, 1.4]})
    bars = axes[0].bar(x, [r.activation_size for r in s.rows], color="#4c72b0")
    axes[0].bar_label(bars, labels=[f"{r.activation_size:,}" for r in s.rows], fontsize=8)
    axes[0].set_title("activation size per layer")
    series = (
        ("parameters", [r.params for r in s.rows], "#dd8452"),
        ("multiply-adds", [r.macs for r in s.rows], "#55a868"),
        ("params of an FC layer instead", [r.fc_equivalent_params or 0 for r in s.rows], "#999999"),
    )
    for i, (label, values, color) in enumerate(series):
        # zero-height bars would vanish on a log axis: below 1 means "none"
        axes[1].bar(x + (i - 1) * 0.27, [max(v, 0.5) for v in values], 0.27, label=label, color=color)
    axes[1].set_yscale("log")
    axes[1].set_ylim(bottom=1)
    axes[1].set_title("parameters and multiply-adds per layer (log scale)")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.set_xticks(x, names)
    fig.tight_layout()
    section.figure(fig, "layers", "Left: activations tend to shrink, from 4,704 to 10 values. Right: the "
                   "convolutions have few parameters but many multiply-adds (each weight is used at every "
                   "position), while a fully-connected layer between the same sizes (gray) would need 14 million "
                   "parameters for conv1; the fully-connected layers have as many multiply-adds as parameters. "
                   "Pooling layers have neither.")

    why = conv_vs_fully_connected()
    bott = bottleneck_cost()
    sep = separable_cost()
    section.text(
        "Three lessons on cost, each computed from its formula and measured by `summary()` on real nn.Conv2d "
        "layers (`cnnkit cost` prints them, with options for other sizes):"
    )
    section.code(lessons_text())
    section.table(
        [
            ["conv 5x5, 32x32x3 -> 28x28x6: parameters", why.conv_params, why.fc_params, why.ratio],
            ["28x28x192 -> 28x28x32, 5x5: multiplies", bott.direct_macs, bott.bottleneck_macs, bott.saving],
            ["6x6x3 -> 4x4x5, 3x3: multiplies", sep.standard_macs, sep.separable_macs, 1 / sep.ratio],
        ],
        ["lesson", "costly way", "cheap way", "times cheaper"],
        caption="Why convolutions (vs fully connected), the 1x1 bottleneck (16 channels) and depthwise-separable "
        f"convolutions (ratio {sep.ratio:.4f} = 1/5 + 1/9)",
    )
