"""Tour: every registered model with its parameters, multiply-adds and measured speed; LeNet-5 layer by layer."""

from __future__ import annotations

import re
import time

TITLE = "The architecture zoo"
ORDER = 40

TIME_BUDGET_S = 40.0  # for the speed column in normal mode; the cheapest models are timed first


def _family(name: str) -> str:
    """'resnet50' -> 'resnet', 'vgg16_bn' -> 'vgg', 'efficientnet_b0' -> 'efficientnet'."""
    return re.split(r"[0-9_]", name, maxsplit=1)[0] or name


def _costs() -> list[dict]:
    """Parameters and multiply-adds of every registered model at its default input size (meta device: instant)."""
    import torch

    from cnnkit.models import create_model, list_models
    from cnnkit.summary import summary

    rows = []
    for name in list_models():
        with torch.device("meta"):  # shapes only: no memory, no arithmetic
            model = create_model(name)
        if getattr(model, "task", "classification") != "classification":
            continue  # detectors, U-Nets, face networks: their own sections show them
        shape = tuple(getattr(model, "default_input_size", (3, 224, 224)))
        s = summary(model, shape)
        rows.append({"name": name, "family": _family(name), "shape": shape, "params": s.total_params,
                     "macs": s.total_macs, "ips": None})
    return rows


def _time_models(rows: list[dict], budget_s: float) -> float:
    """Images/s of each prepared model at batch 1, cheapest first, until the budget is spent. Returns seconds."""
    import torch

    from cnnkit.models import create_model
    from cnnkit.models.inference import prepare_for_inference
    from cnnkit.timing import time_call

    start = time.perf_counter()
    gen = torch.Generator().manual_seed(0)
    for row in sorted(rows, key=lambda r: r["macs"]):
        if time.perf_counter() - start > budget_s:
            break
        # eager backend: folding and channels-last, no compile step (minutes for the whole zoo)
        prepared = prepare_for_inference(create_model(row["name"]), backend="eager")
        x = torch.randn((1, *row["shape"]), generator=gen)
        t = time_call(lambda p=prepared, x=x: p(x), min_repeats=5, min_seconds=0.1)  # warm-up: oneDNN set-up
        row["ips"] = 1.0 / t.best
        row["spread"] = t.spread
    return time.perf_counter() - start


def _bar_chart(rows: list[dict]):
    import matplotlib.pyplot as plt
    import numpy as np

    rows = sorted(rows, key=lambda r: r["macs"])
    families = sorted({r["family"] for r in rows})
    cmap = plt.get_cmap("tab10")
    colors = [cmap(families.index(r["family"]) % 10) for r in rows]
    y = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.25 * len(rows) + 1.5), sharey=True)
    for ax, key, label in ((axes[0], "params", "parameters"), (axes[1], "macs", "multiply-adds per image")):
        ax.barh(y, [max(r[key], 1) for r in rows], color=colors)
        ax.set_xscale("log")
        ax.set_xlabel(f"{label} (log scale)")
        ax.grid(axis="x", which="major", alpha=0.3)
    axes[0].set_yticks(y, [f"{r['name']}  {r['shape'][1]}x{r['shape'][2]}" for r in rows], fontsize=8)
    axes[0].invert_xaxis()  # the two bars of a model meet at its name
    axes[0].yaxis.tick_right()
    axes[0].tick_params(axis="y", pad=2)
    axes[1].tick_params(axis="y", left=False)
    height = fig.get_figheight()
    fig.suptitle("Size and cost of every model at its own input size (sorted by cost)", y=1 - 0.15 / height)
    fig.subplots_adjust(wspace=0.55, top=1 - 0.55 / height, bottom=0.6 / height)
    return fig


_LABELLED = ("lenet5", "course_convnet", "resnet20_cifar", "alexnet", "vgg16", "googlenet",
             "resnet18", "resnet50", "resnet152", "plain50", "mobilenet_v1", "mobilenet_v2", "efficientnet_b0")


def _speed_chart(rows: list[dict], peak_flops: float):
    import matplotlib.pyplot as plt

    timed = [r for r in rows if r["ips"]]
    families = sorted({r["family"] for r in rows})
    cmap = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for fam in families:
        pts = [r for r in timed if r["family"] == fam]
        if pts:
            ax.scatter([2 * r["macs"] for r in pts], [2 * r["macs"] * r["ips"] / 1e9 for r in pts], label=fam,
                       color=cmap(families.index(fam) % 10), s=28)
    for r in timed:
        if r["name"] in _LABELLED:
            ax.annotate(r["name"], (2 * r["macs"], 2 * r["macs"] * r["ips"] / 1e9), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
    ax.axhline(peak_flops / 1e9, ls="--", color="gray", lw=1)
    ax.annotate(f"fp32 matrix-multiply peak, {peak_flops / 1e9:.0f} GFLOP/s", (0.01, peak_flops / 1e9),
                xycoords=("axes fraction", "data"), xytext=(0, 4), textcoords="offset points", fontsize=8,
                color="gray")
    ax.set_xscale("log")
    ax.set_ylim(0, peak_flops / 1e9 * 1.15)
    ax.set_xlabel("FLOPs per image (2 x multiply-adds, log scale)")
    ax.set_ylabel("achieved GFLOP/s (batch 1)")
    ax.set_title("How much of the CPU each model uses: big dense convolutions keep it busy")
    ax.legend(fontsize=7, ncol=3, loc="lower right")
    ax.grid(alpha=0.3, which="major")
    return fig


def build(section, ctx) -> None:
    from cnnkit.models import create_model, list_models
    from cnnkit.summary import summary

    rows = _costs()
    section.text(
        f"{len(rows)} classification architectures are registered (`cnnkit models` lists them with the detectors, "
        "U-Nets and face networks of the later sections; `create_model(name)` builds one). "
        "Parameters and multiply-adds (MACs) are counted at each model's own input size by `cnnkit.summary`, on "
        "PyTorch's meta device, so no memory is used for the weights. Weight names follow torchvision's, so "
        "`cnnkit.models.load_weights(model, 'resnet50-0676ba61.pth')` loads a torchvision checkpoint unchanged; "
        "`cnnkit weights inspect FILE` shows what a file holds and guesses its architecture."
    )
    from cnnkit.timing import UNRELIABLE_SPREAD

    if ctx.quick:
        timing_note = "Speed not measured in quick mode."
    else:
        spent = _time_models(rows, TIME_BUDGET_S)
        timed = sum(r["ips"] is not None for r in rows)
        shaky = [r["name"] for r in rows if r.get("spread", 0.0) > UNRELIABLE_SPREAD]
        busy = (f" unreliable (the machine was busy: quartiles more than {UNRELIABLE_SPREAD:.0%} apart), marked "
                f"with *: {', '.join(shaky)}." if shaky else " every timing was steady (quartiles within "
                f"{UNRELIABLE_SPREAD:.0%} of the median).")
        timing_note = (
            f"Speed: images per second at batch 1 of `prepare_for_inference(model, backend='eager')` "
            f"(batch norm folded into the convolutions, channels-last memory, inference mode), the best of at "
            f"least 5 runs after a warm-up, on this machine's {_threads()} threads;{busy} {timed} of {len(rows)} "
            f"models timed in "
            f"{spent:.0f} s, cheapest first (the others: '-'). `cnnkit bench MODEL` compares the plain model, "
            "the compiled prepared model (fp32 and bf16) and ONNX Runtime at a larger batch."
        )
    table = [
        [r["name"], f"{r['shape'][0]}x{r['shape'][1]}x{r['shape'][2]}", r["params"], f"{r['macs'] / 1e9:.3f}",
         (f"{r['ips']:.1f}" + ("*" if r.get("spread", 0.0) > UNRELIABLE_SPREAD else "")) if r["ips"] else "-",
         f"{2 * r['macs'] * r['ips'] / 1e9:.1f}" if r["ips"] else "-"]
        for r in rows
    ]
    section.table(table, ["model", "input (CxHxW)", "parameters", "GMACs / image", "images/s", "GFLOP/s"],
                  caption=timing_note)
    section.figure(_bar_chart(rows), "size-and-cost",
                   "Parameters (left) and multiply-adds per image (right), log scale, coloured by family. "
                   + _lessons({r["name"]: r for r in rows}))
    if sum(r["ips"] is not None for r in rows) >= 3:
        from cnnkit.models.inference import measure_peak_flops

        section.figure(_speed_chart(rows, measure_peak_flops()), "speed-vs-flops",
                       "Arithmetic rate each model reaches at batch 1 (2 x MACs x images/s) against its size. Tiny "
                       "networks are dominated by per-layer overheads; large plain convolutions (VGG, ResNet) come "
                       "closest to the matrix-multiply peak; depthwise-separable networks (MobileNet, "
                       "EfficientNet) stay far below it for their size: a depthwise convolution does little "
                       "arithmetic per byte it reads, so memory traffic, not the multipliers, sets their pace.")
    if "lenet5" in list_models():
        section.text("LeNet-5, layer by layer (`cnnkit summary lenet5`): the course's table of activation shapes, "
                     "sizes and parameters.")
        section.code(summary(create_model("lenet5"), (1, 32, 32)).to_text())


def _lessons(by_name: dict[str, dict]) -> str:
    """A few sentences read off the table (only about models that are registered)."""
    out = []
    vgg = by_name.get("vgg16")
    if vgg:
        import torch

        from cnnkit.models import create_model

        with torch.device("meta"):
            model = create_model("vgg16")
        fc = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) for p in m.parameters())
        out.append(f"VGG-16 holds {fc / vgg['params']:.0%} of its {vgg['params'] / 1e6:.0f}M parameters in its "
                   "fully connected layers.")
    res = by_name.get("resnet50")
    if vgg and res:
        out.append(f"ResNet-50 does {res['macs'] / 1e9:.1f} GMACs, {vgg['macs'] / res['macs']:.1f}x fewer than "
                   f"VGG-16's {vgg['macs'] / 1e9:.1f}, with {vgg['params'] / res['params']:.1f}x fewer parameters: "
                   "1x1 bottlenecks and global average pooling instead of huge dense layers.")
    mob = by_name.get("mobilenet_v2")
    if mob and res:
        out.append(f"MobileNet-v2 needs {res['macs'] / mob['macs']:.0f}x fewer multiply-adds than ResNet-50: "
                   "depthwise-separable convolutions.")
    return " ".join(out)


def _threads() -> int:
    import torch

    return torch.get_num_threads()
