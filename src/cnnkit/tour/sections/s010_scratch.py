"""Tour: the NumPy scratch ops checked against PyTorch, padding and stride in a picture, the course's shape tables."""

from __future__ import annotations

import numpy as np

TITLE = "Convolution from scratch, checked against PyTorch"
ORDER = 10


def _nchw(x):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).requires_grad_()  # (B, C, H, W)


def _nhwc(t) -> np.ndarray:
    return t.detach().numpy().transpose(0, 2, 3, 1)


def _maxdiff(pairs) -> float:
    return max(float(np.max(np.abs(a - b))) for a, b in pairs)


def _comparisons(rng: np.random.Generator, quick: bool) -> list[list]:
    """One row per op: max |scratch - torch| forward and backward (float64), and the finite-difference check."""
    import torch
    import torch.nn.functional as F

    from cnnkit import scratch

    m, n, c_in, c_out = (2, 7, 3, 4) if quick else (4, 16, 8, 16)
    A = rng.standard_normal((m, n, n, c_in))
    rows = []

    def grads(out_t, inputs, dZ):
        return torch.autograd.grad(out_t, inputs, torch.from_numpy(np.ascontiguousarray(dZ.transpose(0, 3, 1, 2))))

    def fd(forward, backward, x):
        """Relative difference of backward vs finite differences, on a small slice of the input."""
        x = x[:1, :5, :5]
        out = forward(x)
        G = rng.standard_normal(out.shape)
        approx = scratch.numerical_gradient(lambda v: float(np.sum(forward(v) * G)), x)
        return scratch.gradient_difference(backward(G, x), approx)

    # Convolutions: 3x3 stride 2 pad 1, and the 1x1 case.
    for f, s, p, label in [(3, 2, 1, "conv_forward / conv_backward (3x3, stride 2, pad 1)"),
                           (1, 1, 0, "1x1 convolution (f = 1)")]:
        W, b = rng.standard_normal((f, f, c_in, c_out)), rng.standard_normal((1, 1, 1, c_out))
        hp = {"stride": s, "pad": p}
        Z, cache = scratch.conv_forward(A, W, b, hp)
        At, Wt = _nchw(A), torch.from_numpy(np.ascontiguousarray(W.transpose(3, 2, 0, 1))).requires_grad_()
        bt = torch.from_numpy(b.reshape(-1).copy()).requires_grad_()
        Zt = F.conv2d(At, Wt, bt, stride=s, padding=p)
        dZ = rng.standard_normal(Z.shape)
        gA, gW, gb = grads(Zt, (At, Wt, bt), dZ)
        dA, dW, db = scratch.conv_backward(dZ, cache)
        back = _maxdiff([(dA, _nhwc(gA)), (dW, gW.numpy().transpose(2, 3, 1, 0)), (db.ravel(), gb.numpy())])
        check = fd(lambda x, W=W, b=b, hp=hp: scratch.conv_forward(x, W, b, hp)[0],
                   lambda G, x, W=W, b=b, hp=hp: scratch.conv_backward(G, scratch.conv_forward(x, W, b, hp)[1])[0], A)
        rows.append([label, f"F.conv2d(stride={s}, padding={p})", _maxdiff([(Z, _nhwc(Zt))]), back, check])

    # Transposed convolution: the 2x up-sampling of U-Net.
    W, b = rng.standard_normal((3, 3, c_in, c_out)), rng.standard_normal((1, 1, 1, c_out))
    hp = {"stride": 2, "pad": 1, "output_padding": 1}
    Z, cache = scratch.conv_transpose_forward(A, W, b, hp)
    At, Wt = _nchw(A), torch.from_numpy(np.ascontiguousarray(W.transpose(2, 3, 0, 1))).requires_grad_()
    bt = torch.from_numpy(b.reshape(-1).copy()).requires_grad_()
    Zt = F.conv_transpose2d(At, Wt, bt, stride=2, padding=1, output_padding=1)
    dZ = rng.standard_normal(Z.shape)
    gA, gW, gb = grads(Zt, (At, Wt, bt), dZ)
    dA, dW, db = scratch.conv_transpose_backward(dZ, cache)
    back = _maxdiff([(dA, _nhwc(gA)), (dW, gW.numpy().transpose(2, 3, 0, 1)), (db.ravel(), gb.numpy())])
    check = fd(lambda x: scratch.conv_transpose_forward(x, W, b, hp)[0],
               lambda G, x: scratch.conv_transpose_backward(G, scratch.conv_transpose_forward(x, W, b, hp)[1])[0], A)
    rows.append(["conv_transpose_forward / _backward (3x3, stride 2, pad 1, output_padding 1)",
                 "F.conv_transpose2d", _maxdiff([(Z, _nhwc(Zt))]), back, check])

    # Pooling.
    for mode, fn in [("max", F.max_pool2d), ("average", F.avg_pool2d)]:
        hp = {"f": 3, "stride": 2}
        P, cache = scratch.pool_forward(A, hp, mode)
        At = _nchw(A)
        Pt = fn(At, kernel_size=3, stride=2)
        dP = rng.standard_normal(P.shape)
        (g,) = grads(Pt, (At,), dP)
        check = fd(lambda x, hp=hp, mode=mode: scratch.pool_forward(x, hp, mode)[0],
                   lambda G, x, hp=hp, mode=mode: scratch.pool_backward(G, scratch.pool_forward(x, hp, mode)[1], mode),
                   A)
        rows.append([f"pool_forward / pool_backward, mode={mode!r} (f=3, stride 2)", f"F.{fn.__name__}(3, 2)",
                     _maxdiff([(P, _nhwc(Pt))]), _maxdiff([(scratch.pool_backward(dP, cache, mode), _nhwc(g))]), check])

    G, cache = scratch.global_avg_pool_forward(A)
    At = _nchw(A)
    Gt = F.adaptive_avg_pool2d(At, 1)
    dG = rng.standard_normal(G.shape)
    (g,) = torch.autograd.grad(Gt, At, torch.from_numpy(dG.reshape(*dG.shape, 1, 1)))
    check = fd(lambda x: scratch.global_avg_pool_forward(x, keepdims=True)[0],
               lambda Gr, x: scratch.global_avg_pool_backward(Gr, scratch.global_avg_pool_forward(x)[1]), A)
    rows.append(["global_avg_pool_forward / _backward", "F.adaptive_avg_pool2d(1)",
                 _maxdiff([(G, Gt.detach().numpy().reshape(G.shape))]),
                 _maxdiff([(scratch.global_avg_pool_backward(dG, cache), _nhwc(g))]), check])
    return rows


def _padding_stride_figure():
    """The course's 6x6 vertical-edge example under three (pad, stride) settings, values computed by conv_forward."""
    from matplotlib.figure import Figure  # not pyplot: no GUI backend, no global figure list
    from matplotlib.patches import FancyArrowPatch, Rectangle

    from cnnkit import scratch
    from cnnkit.shapes import conv_output_size

    image = np.zeros((6, 6))
    image[:, :3] = 10  # bright left half, dark right half
    kernel = np.array([[1, 0, -1]] * 3, dtype=float)  # the course's vertical edge detector
    settings = [(0, 1, "no padding"), (1, 1, '"same" padding'), (1, 2, "padding 1, stride 2")]
    fig = Figure(figsize=(16, 6.2))
    axes = fig.subplots(1, 3)
    for ax, (pad, stride, name) in zip(axes, settings, strict=True):
        Z, _ = scratch.conv_forward(image[None, :, :, None], kernel[:, :, None, None], np.zeros((1, 1, 1, 1)),
                                    {"stride": stride, "pad": pad})
        out = Z[0, :, :, 0]
        n_out = conv_output_size(6, 3, stride=stride, pad=pad)
        padded = np.pad(image, pad)
        size = padded.shape[0]
        gap = 1.6  # between the input and the output grids
        for r in range(size):
            for c in range(size):
                is_pad = not (pad <= r < pad + 6 and pad <= c < pad + 6)
                ax.add_patch(Rectangle((c, -r - 1), 1, 1, facecolor="#e6e6e6" if is_pad else
                                       ("#fff2cc" if padded[r, c] else "#ffffff"), edgecolor="#999", lw=0.8))
                ax.text(c + 0.5, -r - 0.5, f"{padded[r, c]:g}", ha="center", va="center", fontsize=9,
                        color="#999" if is_pad else "#000")
        x0 = size + gap
        for r in range(n_out):
            for c in range(n_out):
                ax.add_patch(Rectangle((x0 + c, -r - 1), 1, 1, facecolor="#ddebf7", edgecolor="#999", lw=0.8))
                ax.text(x0 + c + 0.5, -r - 0.5, f"{out[r, c]:g}", ha="center", va="center", fontsize=9)
        # The first window and its output, then the window one stride to the right and its output.
        for k, (color, style) in enumerate([("#d62728", "-"), ("#1f77b4", "--")]):
            if k * stride + 3 > size:
                break
            ax.add_patch(Rectangle((k * stride, -3), 3, 3, fill=False, edgecolor=color, lw=2.5, ls=style))
            ax.add_patch(Rectangle((x0 + k, -1), 1, 1, fill=False, edgecolor=color, lw=2.5, ls=style))
        ax.add_patch(FancyArrowPatch((size + 0.15, -size / 2), (x0 - 0.15, -size / 2), arrowstyle="-|>",
                                     mutation_scale=14, color="#444"))
        ax.set_xlim(-0.3, x0 + max(n_out, 1) + 0.3)
        ax.set_ylim(-size - 2.4, 0.9)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(f"{name}: p = {pad}, s = {stride}\n"
                     f"output = floor((6 + 2*{pad} - 3) / {stride}) + 1 = {n_out}", fontsize=12)
        ax.text(0, -size - 0.8, "input 6x6 (grey: padding), filter 3x3\n"
                f"[[1, 0, -1]] x 3 rows;  output {n_out}x{n_out}", fontsize=10, va="top")
    fig.suptitle("Padding and stride: the red window gives the red output; the blue window, one stride to the right, "
                 "gives the blue one", fontsize=12)
    fig.tight_layout()
    return fig


def _shape_rows(input_shape, specs):
    from cnnkit.shapes import trace

    def pair(v):
        return "whole input" if v is None else (f"{v[0]:g}" if v[0] == v[1] else f"{v[0]:g}x{v[1]:g}")

    return [[r.layer.spec if r.layer else "input", " x ".join(map(str, r.shape)), r.size, r.params,
             pair(r.receptive_field)] for r in trace(input_shape, specs)]


def _timing_rows(rng: np.random.Generator) -> list[list]:
    """Rough speed of the scratch conv vs PyTorch on the benchmark's layer (the benchmark script measures properly)."""
    import torch
    import torch.nn.functional as F

    from cnnkit import scratch

    A, W, b = rng.standard_normal((8, 32, 32, 16)), rng.standard_normal((3, 3, 16, 32)), rng.standard_normal(32)
    hp = {"stride": 1, "pad": 1}
    Z, cache = scratch.conv_forward(A, W, b, hp)
    dZ = rng.standard_normal(Z.shape)
    At, Wt = _nchw(A), torch.from_numpy(np.ascontiguousarray(W.transpose(3, 2, 0, 1))).requires_grad_()
    Zt = F.conv2d(At, Wt, torch.from_numpy(b), padding=1)
    dZt = torch.from_numpy(np.ascontiguousarray(dZ.transpose(0, 3, 1, 2)))

    def best(fn):
        from cnnkit.timing import time_call

        return time_call(fn, min_repeats=7, min_seconds=0.3)

    def torch_forward():
        with torch.no_grad():
            F.conv2d(At, Wt, padding=1)

    return [["forward", best(lambda: scratch.conv_forward(A, W, b, hp)), best(torch_forward)],
            ["backward", best(lambda: scratch.conv_backward(dZ, cache)),
             best(lambda: torch.autograd.grad(Zt, (At, Wt), dZt, retain_graph=True))]]


def build(section, ctx) -> None:
    rng = np.random.default_rng(ctx.seed)
    section.text(
        "cnnkit.scratch is the course's convolution assignment written once, carefully: NHWC activations "
        "(m, n_H, n_W, n_C), filters W (f, f, n_C_prev, n_C), biases b (1, 1, 1, n_C), hyper-parameters as a dict, "
        "forward functions returning (output, cache) and backward functions taking (gradient, cache). Everything is "
        "vectorised with im2col (loops only over the f x f kernel offsets), so a learner can check their own loops "
        "against it at full size."
    )
    section.table(
        _comparisons(rng, ctx.quick),
        ["scratch op", "PyTorch counterpart", "max |diff| forward", "max |diff| backward", "gradient check"],
        caption="Scratch ops vs PyTorch on random float64 inputs (backward: PyTorch autograd, every gradient), and "
                "the course's finite-difference check ||grad - approx|| / (||grad|| + ||approx||), which passes "
                "below 1e-7",
    )
    section.text(
        "Max pooling and ties: the course's mask (x == max(x)) sends the gradient to every element tied for the "
        "maximum, and pool_backward does the same by default; PyTorch sends it to the first maximum only "
        "(pool_backward(..., ties='first')). On random floats there are no ties and both agree, as above."
    )
    section.figure(_padding_stride_figure(), "padding-stride",
                   "The course's vertical edge detector on a 6x6 image. The output size is floor((n + 2p - f) / s) "
                   "+ 1; padding keeps the border pixels in play (and, being zeros, shows up as edges at the border: "
                   "the -20 and -30), a stride of 2 skips every other position. The output values were computed by "
                   "cnnkit.scratch.conv_forward.")
    section.table(
        _shape_rows((39, 39, 3), ["conv3s1p0c10", "conv5s2p0c20", "conv5s2p0c40", "fc10"]),
        ["layer", "output (n_H x n_W x n_C)", "activation size", "parameters", "receptive field"],
        caption="The course's example ConvNet: 39x39x3 -> 37x37x10 -> 17x17x20 -> 7x7x40 = 1960 features -> "
                "classifier",
    )
    lenet = ["conv5x5s1p0c8", "maxpool2", "conv5x5s1p0c16", "maxpool2", "fc120", "fc84", "fc10"]
    section.table(
        _shape_rows((32, 32, 3), lenet),
        ["layer", "activation shape", "activation size", "# parameters", "receptive field"],
        caption="The course's LeNet-5-like network: pooling has no parameters, and most parameters sit in the fully "
                "connected layers",
    )
    section.code("$ cnnkit shapes --input 32x32x3 " + " ".join(lenet))
    if not ctx.quick:
        rows = _timing_rows(rng)
        section.table(
            [[op, s.describe(), t.describe(), f"{s.best / t.best:.1f}x"] for op, s, t in rows],
            ["conv 8x32x32x16 -> 32 filters 3x3, float64", "scratch", "PyTorch", "scratch / PyTorch"],
            caption="Best of at least 7 runs, with the median and the spread between the quartiles; a spread above "
                    "25% is marked unreliable (another process was using the cores). "
                    "benchmarks/bench_scratch_conv.py measures longer, with the loop reference.",
        )
