"""Fast inference on the CPU: `prepare_for_inference(model)` returns a module that computes the same outputs,
faster.

What it does, each step chosen by measurement on a 2-core AVX2 machine (AMD EPYC, Zen 3;
benchmarks/bench_inference.py, resnet50 at batch 8, best batches of a quiet moment):

1. A copy of the model in eval mode, so the caller's model is never changed.
2. Batch norm folded into the convolution before it (`cnnkit.ops.fold_bn`): one pass over the activations
   less per conv-bn pair.
3. Channels-last memory format for weights and inputs: oneDNN's fastest layout for convolutions on this CPU,
   and no NCHW <-> blocked reorders around every convolution. Steps 2-3 alone: 1.25x the plain model.
4. A compiled graph (the `backend`):
   - "compile": torch.compile with Inductor and freezing: weights pre-packed for oneDNN, convolution + bias +
     activation fused, the remaining element-wise work fused into generated C++ loops. Fastest: 1.4-1.45x
     the plain model, 86-91% of the fp32 matrix-multiply peak. The first call of each input shape compiles
     (10 s to 2 minutes, less when Inductor's cache in /tmp already holds it).
   - "jit": torch.jit.trace + freeze + optimize_for_inference (oneDNN layouts, conv-add-relu fusion): 1.2-1.3x,
     prepared in seconds.
   - "eager": steps 1-3 only.
   - "auto" (default): "compile" when a C++ compiler is on PATH, else "jit". Whatever fails falls back to the
     next simpler backend with a logged warning, so a prepared model always runs.
5. `torch.inference_mode()` around every call (no autograd bookkeeping at all).

The plain model already reaches about 60% of the matrix-multiply peak on resnet50 here, so no fp32 method that
does the same arithmetic can be much more than 1.6x faster; ONNX Runtime's own convolution kernels (MLAS) run
at about 97% and stay some 10% ahead of oneDNN's.

Precision "bf16" runs the model under bfloat16 autocast. On CPUs without native bf16 instructions (AVX2 only:
no AVX-512 BF16, no AMX) oneDNN emulates it, and it is about 10x *slower* than fp32 here; it is offered for
machines that have them. Outputs are returned in float32 either way.

Accuracy: fp32 outputs equal the plain model's to a relative error below 1e-4 (max |a - b| / max |b|; folding
and re-ordered sums change only rounding; measured ~1e-6). bf16 keeps 8 bits of mantissa: relative error
around 1e-2 (`BF16_RTOL` is the bound tested), so near-tied classes can swap.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn

from cnnkit.errors import InputError

__all__ = ["BACKENDS", "BF16_RTOL", "FP32_RTOL", "BenchResult", "InferenceModel", "PRECISIONS", "VARIANTS",
           "benchmark", "measure_peak_flops", "prepare_for_inference"]

log = logging.getLogger("cnnkit.inference")

PRECISIONS = ("fp32", "bf16")
BACKENDS = ("auto", "compile", "jit", "eager")
FP32_RTOL = 1e-4  # max |prepared - plain| / max |plain| promised for fp32
BF16_RTOL = 5e-2  # the same for bf16: 8 mantissa bits, errors add up over ~50 layers


class InferenceModel(nn.Module):
    """A model prepared for fast evaluation. Call it like the original: `logits = prepared(images)`.

    Attributes:
        module: the folded, channels-last copy of the original model (plain PyTorch, for inspection).
        precision: "fp32" or "bf16".
        backend: the backend in use ("compile", "jit" or "eager"); it can change to a simpler one on the first
            call if the chosen one fails.
        folded: how many batch norms were folded into convolutions.
    """

    def __init__(self, module: nn.Module, precision: str, backend: str, folded: int):
        super().__init__()
        self.module = module
        self.precision = precision
        self.backend = backend
        self.folded = folded
        self._compiled: Callable | None = None
        self._traced: dict[tuple, Callable] = {}

    def extra_repr(self) -> str:
        return f"precision={self.precision}, backend={self.backend}, folded_batchnorms={self.folded}"

    def forward(self, x: torch.Tensor) -> Any:
        if not isinstance(x, torch.Tensor):
            raise InputError(f"a prepared model takes one tensor, got {type(x).__name__}")
        with torch.inference_mode(), self._autocast():
            if x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            y = self._run(x)
        return _to_float32(y) if self.precision == "bf16" else y

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _run(self, x: torch.Tensor) -> Any:
        if self.backend == "compile":
            import torch._inductor.config as inductor_config

            try:
                if self._compiled is None:
                    self._compiled = torch.compile(self.module, dynamic=False)
                # Freezing (weights as constants: oneDNN pre-packing, conv + activation fusion) is read from the
                # global config when a shape is compiled; torch.compile(options={"freezing": True}) does not
                # reach that check (measured: plain mkldnn convolutions, 1.3x slower), so patch it per call.
                with inductor_config.patch(freezing=True):
                    return self._compiled(x)
            except Exception as e:  # no compiler, an op Inductor cannot lower ...: still give an answer
                y = self.module(x)  # raises here if the input itself is wrong: then nothing is switched
                log.warning("torch.compile failed (%s: %s); using torch.jit instead", type(e).__name__,
                            _first_line(e))
                self.backend, self._compiled = "jit", None
                return y
        if self.backend == "jit":
            key = (tuple(x.shape), x.dtype, x.stride())
            if key not in self._traced:
                self._traced[key] = self._trace(x)
            if self._traced[key] is not None:
                return self._traced[key](x)
        return self.module(x)

    def _trace(self, x: torch.Tensor) -> Callable | None:
        """The fastest traced graph that runs on `x`; None (run eagerly) when the model cannot be traced."""
        # optimize_for_inference swaps in oneDNN ops, a few of which reject some shapes (an adaptive pool to a
        # size that does not divide the input): then the plain frozen graph is used.
        error: Exception | None = None
        for optimize in dict.fromkeys((self.precision == "fp32", False)):
            try:
                traced = _trace(self.module, x, optimize)
                traced(x)
                return traced
            except Exception as e:  # data-dependent control flow, an op with no traced form ...
                error = e
        self.module(x)  # raises here if the input itself is wrong: then nothing is cached
        log.warning("torch.jit.trace failed (%s: %s); running eagerly", type(error).__name__, _first_line(error))
        return None


def prepare_for_inference(model: nn.Module, precision: str = "fp32", *, backend: str = "auto",
                          fold_bn: bool = True) -> InferenceModel:
    """Return a copy of `model` ready for fast evaluation on the CPU (see the module docstring for the steps).

    Args:
        model: any model; it is copied, never modified.
        precision: "fp32" (outputs equal the model's within a relative 1e-4) or "bf16" (bfloat16 autocast).
        backend: "auto", "compile", "jit" or "eager" (see the module docstring). "compile" spends 10 s to two
            minutes on the first call of each input shape; "jit" a few seconds.
        fold_bn: fold batch norms into the preceding convolutions.

    Returns:
        An InferenceModel: call it on a batch; outputs are float32 tensors.

    Raises:
        InputError: an unknown precision or backend.
    """
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = "compile" if compile_available() else "jit"
    if precision == "bf16" and backend == "jit":
        # A trace records autocast's casts only partly; eager autocast is exact and bf16 is slow here anyway.
        backend = "eager"
    module = copy.deepcopy(model).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    folded = 0
    if fold_bn:
        from cnnkit.ops.fold_bn import fold_batchnorms

        module, folded = fold_batchnorms(module)
    module = module.to(memory_format=torch.channels_last)
    return InferenceModel(module, precision, backend, folded)


def compile_available() -> bool:
    """True when torch.compile can build CPU kernels here (Inductor needs a C++ compiler)."""
    return any(shutil.which(c) for c in ("g++", "c++", "clang++"))


def _trace(module: nn.Module, x: torch.Tensor, optimize: bool) -> Callable:
    with torch.no_grad(), warnings.catch_warnings():
        # Shape checks in forward become constants of the trace: right here, as every input shape is traced anew.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(module, x, check_trace=False, strict=False)
        frozen = torch.jit.freeze(traced.eval())
        if optimize:
            # oneDNN layouts for conv weights and activations, conv-add-relu fused; fp32 only.
            frozen = torch.jit.optimize_for_inference(frozen)
    return frozen


def _to_float32(y: Any) -> Any:
    if isinstance(y, torch.Tensor):
        return y.float() if y.is_floating_point() else y
    if isinstance(y, tuple) and hasattr(y, "_fields"):  # a namedtuple takes its fields as arguments
        return type(y)(*(_to_float32(v) for v in y))
    if isinstance(y, (list, tuple)):
        return type(y)(_to_float32(v) for v in y)
    if isinstance(y, dict):
        return {k: _to_float32(v) for k, v in y.items()}
    return y


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else ""


# ---------------------------------------------------------------------------------------------- benchmarking

VARIANTS = ("eager", "fp32", "bf16", "onnx", "jit", "folded")
_VARIANT_LABELS = {
    "eager": "plain eager (NCHW, no_grad)",
    "fp32": "prepared fp32",
    "bf16": "prepared bf16",
    "onnx": "ONNX Runtime",
    "jit": "prepared fp32, jit backend",
    "folded": "folded BN + channels-last only",
}


@dataclass
class VariantResult:
    """Speed of one way of running the model.

    Attributes:
        name: one of VARIANTS.
        label: what it is, for a table.
        images_per_s: from the fastest timed batch (the least disturbed by other processes).
        median_images_per_s: from the median batch.
        setup_s: preparing it plus the first call (tracing, compiling, exporting).
        rel_error: max |output - eager output| / max |eager output| on the benchmark batch.
        top1_agreement: share of images whose arg-max class equals the eager model's.
        timings_s: every timed batch, in seconds.
        backend: the backend actually used (prepared variants).
        note: why it was skipped, when it was.
    """

    name: str
    label: str
    images_per_s: float = 0.0
    median_images_per_s: float = 0.0
    setup_s: float = 0.0
    rel_error: float = 0.0
    top1_agreement: float = 1.0
    timings_s: list[float] = field(default_factory=list)
    backend: str = ""
    note: str = ""


@dataclass
class BenchResult:
    """`benchmark` output: one VariantResult per variant and what is needed to read them.

    Attributes:
        model: model name.
        batch: images per batch.
        input_shape: (C, H, W).
        threads: torch (and ONNX Runtime) intra-op threads.
        macs_per_image: multiply-adds of one image (cnnkit.summary).
        peak_flops: best fp32 matmul FLOP/s measured in the same run (2 n^3 per n x n product).
        variants: results by variant name, in the order measured.
    """

    model: str
    batch: int
    input_shape: tuple[int, int, int]
    threads: int
    macs_per_image: int
    peak_flops: float
    variants: dict[str, VariantResult] = field(default_factory=dict)

    def flops(self, name: str) -> float:
        """Achieved FLOP/s of a variant: 2 x MACs x images/s."""
        return 2.0 * self.macs_per_image * self.variants[name].images_per_s

    def ratio(self, a: str, b: str) -> float | None:
        """Speed of variant `a` over variant `b` (best batches), None when either was not measured."""
        va, vb = self.variants.get(a), self.variants.get(b)
        if not va or not vb or not va.images_per_s or not vb.images_per_s:
            return None
        return va.images_per_s / vb.images_per_s

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        for name, v in d["variants"].items():
            v["gflops"] = self.flops(name) / 1e9 if v["images_per_s"] else None
            v["fraction_of_peak"] = self.flops(name) / self.peak_flops if v["images_per_s"] else None
        d["ratios"] = {"fp32_over_eager": self.ratio("fp32", "eager"), "fp32_over_onnx": self.ratio("fp32", "onnx"),
                       "bf16_over_fp32": self.ratio("bf16", "fp32"), "onnx_over_eager": self.ratio("onnx", "eager")}
        return d

    def to_text(self) -> str:
        c, h, w = self.input_shape
        lines = [
            f"{self.model}: batch {self.batch} of {c}x{h}x{w}, {self.threads} threads, "
            f"{self.macs_per_image / 1e9:.3g} GMACs per image",
            f"peak: {self.peak_flops / 1e9:.1f} GFLOP/s, measured (best of {PEAK_REPEATS} fp32 {PEAK_N}x{PEAK_N} "
            f"matrix products on the same {self.threads} threads)",
            "",
            f"{'variant':<30} {'img/s':>8} {'median':>8} {'ms/batch':>9} {'GFLOP/s':>8} {'% peak':>7} "
            f"{'vs eager':>8} {'rel.err':>8} {'top-1':>6} {'setup s':>8}",
        ]
        for name, v in self.variants.items():
            if not v.images_per_s:
                lines.append(f"{v.label:<30} skipped: {v.note}")
                continue
            vs = self.ratio(name, "eager")
            label = v.label + (f" [{v.backend}]" if name in ("fp32", "bf16") and v.backend else "")
            lines.append(
                f"{label:<30} {v.images_per_s:8.2f} {v.median_images_per_s:8.2f} "
                f"{1000 * self.batch / v.images_per_s:9.1f} {self.flops(name) / 1e9:8.1f} "
                f"{_percent(self.flops(name), self.peak_flops):>7} {vs if vs else 0:7.2f}x "
                f"{v.rel_error:8.1e} {100 * v.top1_agreement:5.0f}% {v.setup_s:8.1f}"
            )
        if any(v.images_per_s and self.flops(n) > self.peak_flops for n, v in self.variants.items()):
            lines.append("* above the measured matmul peak: the GFLOP/s count the direct convolution's multiply-adds, "
                         "and fast kernels (Winograd, FFT) do fewer; or other processes slowed the peak measurement")
        lines.append("")
        for a, b in (("fp32", "eager"), ("fp32", "onnx"), ("onnx", "eager"), ("bf16", "fp32")):
            r = self.ratio(a, b)
            if r is not None:
                lines.append(f"{_VARIANT_LABELS[a]} / {_VARIANT_LABELS[b]}: {r:.2f}x")
        return "\n".join(lines)


def _percent(achieved: float, peak: float) -> str:
    """Achieved over peak as a percentage; above 100 it is marked with * (explained under the table)."""
    pct = 100.0 * achieved / peak
    return f"{pct:.1f}%" if pct <= 100.0 else f"{pct:.0f}%*"


PEAK_N, PEAK_REPEATS = 3072, 5


def measure_peak_flops(n: int = PEAK_N, repeats: int = PEAK_REPEATS) -> float:
    """FLOP/s of the best of `repeats` n x n fp32 matrix products (2 n^3 FLOP each) on torch's current threads.

    Large enough that BLAS runs at full speed on every thread, best of several so a burst of load from other
    processes does not lower it: this CPU's practical fp32 peak, what a convolution can hope to reach.
    """
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    a @ b  # warm-up: thread pool, page faults
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def benchmark(model: nn.Module, *, name: str = "model", batch: int = 8, input_shape: tuple[int, int, int] | None = None,
              variants: tuple[str, ...] = ("eager", "fp32", "bf16", "onnx"), rounds: int = 5,
              max_seconds: float = 60.0, progress: bool = True) -> BenchResult:
    """Measure images/s of the model run several ways on the same random batch, in the same run.

    Variants are timed in interleaved rounds (eager, fp32, ..., eager, fp32, ...), so that a burst of load
    from other processes hits them all alike; the best batch of each is reported (the least disturbed) and
    the median beside it. A variant whose timed batches add up past `max_seconds` stops early (bf16 on a CPU
    without bf16 instructions).

    "eager" is the model as built: eval mode, contiguous NCHW input, torch.no_grad. "fp32"/"bf16" are
    `prepare_for_inference` (backend "auto"); "jit" and "folded" are its "jit" and "eager" backends (what
    tracing, and what folding plus channels-last alone, buy); "onnx" is ONNX Runtime on the model exported with
    `cnnkit.models.export` (skipped with a note when onnx/onnxruntime are not installed).

    Args:
        model: the model (copied where a variant needs it; left unchanged).
        name: shown in the report.
        batch: images per batch.
        input_shape: (C, H, W); default: the model's `default_input_size`.
        variants: which of VARIANTS to run.
        rounds: timed batches per variant (after one untimed warm-up call).
        max_seconds: time budget per variant for its timed batches.
        progress: show a progress bar.

    Returns:
        A BenchResult (`.to_text()` for the table, `.to_dict()` for JSON).
    """
    from tqdm.auto import tqdm

    from cnnkit.models.export import example_input
    from cnnkit.summary import summary

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise InputError(f"unknown benchmark variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    model = model.eval()
    x = example_input(model, input_shape, batch=batch)  # (B, C, H, W), contiguous NCHW
    shape = tuple(int(d) for d in x.shape[1:])
    macs = summary(copy.deepcopy(model).to("meta"), shape).total_macs  # meta: counted without computing
    result = BenchResult(model=name, batch=batch, input_shape=shape, threads=torch.get_num_threads(),
                         macs_per_image=macs, peak_flops=0.0)
    with torch.no_grad():
        reference = model(x)

    runners: dict[str, Callable[[], Any]] = {}
    bar = tqdm(total=len(variants) + rounds, desc=f"bench {name}", unit="step", disable=not progress)
    for v in variants:
        res = VariantResult(name=v, label=_VARIANT_LABELS[v])
        result.variants[v] = res
        bar.set_postfix_str(f"preparing {v}")
        start = time.perf_counter()
        try:
            runner, backend = _make_runner(v, model, x)
            out = runner()  # first call: compiles / traces; untimed
        except _Skip as e:
            res.note = str(e)
            bar.update()
            continue
        res.setup_s = time.perf_counter() - start
        res.backend = backend() if callable(backend) else backend
        out = torch.as_tensor(out).float()
        res.rel_error = float((out - reference).abs().max() / reference.abs().max().clamp_min(1e-12))
        if reference.dim() == 2:
            res.top1_agreement = float((out.argmax(1) == reference.argmax(1)).float().mean())
        runners[v] = runner
        bar.update()

    peak = []
    for _ in range(rounds):
        bar.set_postfix_str("timing")
        for v, runner in runners.items():
            res = result.variants[v]
            if sum(res.timings_s) > max_seconds:
                continue
            start = time.perf_counter()
            runner()
            res.timings_s.append(time.perf_counter() - start)
        peak.append(measure_peak_flops(repeats=1))
        bar.update()
    bar.close()
    result.peak_flops = max(peak) if peak else measure_peak_flops()
    for v in runners:
        res = result.variants[v]
        ts = sorted(res.timings_s)
        res.images_per_s = batch / ts[0]
        res.median_images_per_s = batch / ts[len(ts) // 2]
    return result


class _Skip(Exception):
    """A variant that cannot run here (an optional package missing)."""


def _make_runner(variant: str, model: nn.Module, x: torch.Tensor) -> tuple[Callable[[], Any], Any]:
    if variant == "eager":
        def run_eager():
            with torch.no_grad():
                return model(x)
        return run_eager, ""
    if variant in ("fp32", "bf16", "jit", "folded"):
        precision = "bf16" if variant == "bf16" else "fp32"
        backend = {"jit": "jit", "folded": "eager"}.get(variant, "auto")
        prepared = prepare_for_inference(model, precision, backend=backend)
        # The input is converted to channels-last inside the timed call: the caller hands in NCHW, as to eager.
        return (lambda: prepared(x)), (lambda: prepared.backend)
    if variant == "onnx":
        from cnnkit.models.export import INPUT_NAME, OnnxMissingError, _onnx_bytes, onnx_session

        try:
            session = onnx_session(_onnx_bytes(model, x[:1], None, 17))
        except OnnxMissingError as e:
            raise _Skip(str(e)) from None
        feed = {INPUT_NAME: x.numpy()}
        return (lambda: torch.from_numpy(session.run(None, feed)[0])), "onnxruntime"
    raise InputError(f"unknown variant {variant!r}")
