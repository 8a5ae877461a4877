"""Each step of fast CPU inference, measured, and proved not to change the outputs.

    python benchmarks/inference_speed.py [--quick] [--repeats 7] [--models book,yolov3] [--no-spin]

For the book's small YOLOv2 at 96 x 96, Darknet-53 at 256 x 256 and YOLOv3 at 416 x 416, batch
1, each step of chapter 12 (``yolo_lessons.models.fast``), on top of those before it unless it says:

    eager           model.eval(), called as it is: autograd records every op, the parameters ask for gradients
    inference_mode  the same call under torch.inference_mode() (so is every step below)
    folded          BatchNorm folded into the convolutions, no gradients: fast(model, channels_last=False)
    channels_last   the same with weights and activations (N, H, W, C): fast(model, channels_last=True)
    compile         fast(model, compile=True): TorchInductor, frozen weights, C++ wrapper, fast()'s layout;
                    its first call, which compiles, is not timed but its seconds are reported
    onnxruntime     the folded model exported (yolo_lessons.export.write_onnx, dynamic shapes as the export
                    command writes them), run by ONNX Runtime with torch's thread count; export seconds reported
    1 thread        folded, with torch.set_num_threads(1) (every other step uses all the cores: 2 here)

Beside each step: milliseconds per image, the median of its timed calls, and the fastest call;
and the max relative difference of its output from eager's, max |out - eager| / max |eager|.
The calls are made in ``--repeats`` rounds, and in each round every step in turn gets a block
of one untimed call and ``CALLS_PER_BLOCK`` timed ones, so that a change in the machine's
load hits every step alike. The untimed call absorbs what the step before leaves behind: the
threads of one engine still spinning while the next one starts, and the slow first calls
after a change of torch's thread count.

Spinning. Both engines run with their defaults unless ``--no-spin``: torch's OpenMP threads
(GNU libgomp) spin a while after each parallel region before they sleep, and ONNX Runtime's
pool spins between its tasks. On the book's 2-core virtual machine that matters: waking a
sleeping thread costs tens of microseconds, and YOLOv3 runs about 150 parallel regions a
call. ``--no-spin`` measures both engines with spinning off instead (torch: the process is
re-started with ``OMP_WAIT_POLICY=PASSIVE``, which libgomp reads once, at start-up; ONNX
Runtime: ``session.intra_op.allow_spinning = 0``), which is what a machine shared with other
work wants (``make test`` runs its workers that way) and writes ``inference_speed_no_spin.json``.
Then the issue's two ratios, each within one run:

* Darknet-53 @256: the multiply-adds per second of its fastest PyTorch step over those of a
  ``torch.matmul`` with as many multiply-adds (``benchmarks/throughput.py``'s reference), goal >= 0.9;
* YOLOv3 @416: ONNX Runtime's milliseconds over the fastest PyTorch step's, goal >= 1.0 (PyTorch
  at least as fast as the runtime a user would pick instead), and the same ratio for each step.

Writes a JSON (default ``benchmarks/results/inference_speed.json``; ``_quick`` and ``_no_spin``
added to the name with those options) with the machine, the versions and the load average before and after. The
figures depend on the machine and on what else it runs: on a shared machine quote them with
that load. ``--quick`` times 3 rounds instead of 7 (the compiles and exports still take
minutes). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from throughput import matmul_seconds  # benchmarks/throughput.py, beside this file
from torch import nn

from yolo_lessons.darknet.book_weights import load_book_model
from yolo_lessons.export import as_outputs, max_relative_difference, write_onnx
from yolo_lessons.models import count_multiply_adds, darknet53, fold_batchnorm, yolov3
from yolo_lessons.models.fast import CHANNELS_LAST_DEFAULT, fast

RESULTS = Path(__file__).resolve().parent / "results"
GOAL_MATMUL_RATIO = 0.9  # Darknet-53 @256: fastest PyTorch path's multiply-add rate / matmul's
GOAL_ONNXRUNTIME_RATIO = 1.0  # YOLOv3 @416: ONNX Runtime's ms / fastest PyTorch path's ms
CALLS_PER_BLOCK = 3  # timed calls of a step in a row, after one untimed call
# name -> (builder, input side, stride multiple of the input, what it is)
MODELS: dict[str, tuple[Callable[[], nn.Module], int, int, str]] = {
    "book": (load_book_model, 96, 16, "the book's small YOLOv2 (trained weights)"),
    "darknet53": (darknet53, 256, 32, "Darknet-53, 1000 classes (random weights)"),
    "yolov3": (yolov3, 416, 32, "YOLOv3, 80 classes (random weights)"),
}


@contextlib.contextmanager
def threads(count: int):
    before = torch.get_num_threads()
    if count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if count != before:
            torch.set_num_threads(before)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass
class Step:
    name: str
    run: Callable[[], object]
    threads: int
    inference_mode: bool = True
    extra: dict = field(default_factory=dict)

    def __call__(self) -> tuple[object, float]:
        """One call: its output and its seconds."""
        with threads(self.threads), torch.inference_mode() if self.inference_mode else contextlib.nullcontext():
            start = time.perf_counter()
            output = self.run()
            return output, time.perf_counter() - start


def measure(name: str, build: Callable[[], nn.Module], side: int, multiple: int, repeats: int,
            spin: bool = True) -> dict:
    """Every step on one model: built, warmed up, then timed in rounds (one call of each step a round)."""
    torch.manual_seed(0)
    model = build().eval()
    x = torch.rand(1, 3, side, side)
    macs = count_multiply_adds(model, (3, side, side))
    cores = torch.get_num_threads()
    print(f"{name} @{side}, batch 1: {macs / 1e9:.2f} G multiply-adds, {cores} threads", flush=True)
    folded, nhwc = fast(model, channels_last=False), fast(model, channels_last=True)
    compiled = fast(model, compile=True)
    with torch.inference_mode():
        start = time.perf_counter()
        compiled(x)  # the first call compiles
        compile_s = time.perf_counter() - start
    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="inference_speed-") as folder:
        path = Path(folder) / f"{name}.onnx"
        start = time.perf_counter()
        names = [f"output{i}" for i in range(len(as_outputs(folded(x))))]
        write_onnx(fold_batchnorm(model), path, torch.zeros(2, 3, side, side), multiple, names)
        export_s = time.perf_counter() - start
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = cores
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"images": x.numpy()}
    steps = [
        Step("eager", lambda: model(x), cores, inference_mode=False),
        Step("inference_mode", lambda: model(x), cores),
        Step("folded", lambda: folded(x), cores),
        Step("channels_last", lambda: nhwc(x), cores),
        Step("compile", lambda: compiled(x), cores,
             extra={"first_call_s": round(compile_s, 1), "channels_last": CHANNELS_LAST_DEFAULT}),
        Step("onnxruntime", lambda: tuple(torch.from_numpy(a) for a in session.run(None, feed)), cores,
             extra={"export_s": round(export_s, 1), "onnxruntime": onnxruntime.__version__}),
        Step("1 thread", lambda: folded(x), 1),
    ]  # fmt: skip
    reference = tuple(o.detach() for o in as_outputs(steps[0]()[0]))
    differences = {step.name: max_relative_difference(step()[0], reference) for step in steps}  # (also warms up)
    seconds: dict[str, list[float]] = {step.name: [] for step in steps}
    for _ in range(repeats):
        for step in steps:
            step()  # untimed: the other engine's threads may still spin, the thread count may have changed
            seconds[step.name].extend(step()[1] for _ in range(CALLS_PER_BLOCK))
    rows = []
    for step in steps:
        median, fastest_call = statistics.median(seconds[step.name]), min(seconds[step.name])
        rows.append({"step": step.name, "ms": round(median * 1e3, 2), "min_ms": round(fastest_call * 1e3, 2),
                     "threads": step.threads, "max_relative_difference": differences[step.name],
                     **step.extra})  # fmt: skip
        print(f"  {step.name:<15} {median * 1e3:9.1f} ms   {macs / median / 1e9:6.1f} GMAC/s   "
              f"max rel. diff {differences[step.name]:.1e}", flush=True)
    fastest = min((r for r in rows if r["step"] != "onnxruntime"), key=lambda r: r["ms"])
    return {"model": name, "description": MODELS[name][3], "input": side, "batch": 1, "multiply_adds": macs,
            "steps": rows, "fastest_pytorch_step": fastest["step"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 timed rounds instead of 7")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7, quick 3)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"which, comma-separated ({', '.join(MODELS)})")
    parser.add_argument("--no-spin", action="store_true", help="both engines' threads sleep between tasks "
                        "(re-starts with OMP_WAIT_POLICY=PASSIVE; ONNX Runtime allow_spinning 0)")
    parser.add_argument("--out", default=None, help="the JSON to write (default benchmarks/results/inference_speed"
                        "[_quick].json)")  # fmt: skip
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 7)
    names = args.models.split(",")
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; expected some of {', '.join(MODELS)}")
    if args.no_spin and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        # libgomp reads the policy once, when it starts: only a new process can change it
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    spin = not args.no_spin
    suffix = ("_quick" if args.quick else "") + ("" if spin else "_no_spin")
    out = Path(args.out) if args.out else RESULTS / f"inference_speed{suffix}.json"
    load_before = os.getloadavg()[0]
    print(f"load average before: {load_before:.2f} on {os.cpu_count()} CPUs ({cpu_name()})")
    started = time.perf_counter()
    import onnxruntime

    record = {"command": " ".join(["python", *sys.argv]), "options": {"quick": args.quick, "repeats": repeats,
              "no_spin": args.no_spin}, "torch": torch.__version__,
              "onnxruntime": onnxruntime.__version__, "python": platform.python_version(),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "cpu": cpu_name(),
              "threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
              "spinning": spin, "calls_per_block": CALLS_PER_BLOCK,
              "load_average_at_start": load_before,
              "note": "ms per image, median of the timed calls; the figures depend on the machine and its load "
                      "(see the load averages); the ratios compare steps timed in the same rounds of one "
                      "process", "models": []}  # fmt: skip
    for name in names:
        build, side, multiple, _ = MODELS[name]
        record["models"].append(measure(name, build, side, multiple, repeats, spin))
    by_name = {m["model"]: m for m in record["models"]}
    if "darknet53" in by_name:
        d53 = by_name["darknet53"]
        fastest = min((s for s in d53["steps"] if s["step"] != "onnxruntime"), key=lambda s: s["ms"])
        side, matmul_s = matmul_seconds(d53["multiply_adds"], repeats)
        model_rate, matmul_rate = d53["multiply_adds"] / (fastest["ms"] / 1e3), side**3 / matmul_s
        record["darknet53_vs_matmul"] = {
            "fastest_step": fastest["step"], "gmac_per_s": round(model_rate / 1e9, 2), "matmul_side": side,
            "matmul_gmac_per_s": round(matmul_rate / 1e9, 2), "ratio": round(model_rate / matmul_rate, 3),
            "goal": GOAL_MATMUL_RATIO,
        }  # fmt: skip
        print(f"darknet53 @256, {fastest['step']}: {model_rate / 1e9:.1f} GMAC/s; matmul {side}^3: "
              f"{matmul_rate / 1e9:.1f} GMAC/s; ratio {model_rate / matmul_rate:.2f} (goal >= {GOAL_MATMUL_RATIO})")
    if "yolov3" in by_name:
        v3 = {s["step"]: s for s in by_name["yolov3"]["steps"]}
        fastest = v3[by_name["yolov3"]["fastest_pytorch_step"]]
        ratio = v3["onnxruntime"]["ms"] / fastest["ms"]
        record["yolov3_vs_onnxruntime"] = {
            "fastest_step": fastest["step"], "pytorch_ms": fastest["ms"], "onnxruntime_ms": v3["onnxruntime"]["ms"],
            "ratio": round(ratio, 3), "goal": GOAL_ONNXRUNTIME_RATIO,
            "each_step": {s: round(v3["onnxruntime"]["ms"] / v["ms"], 3) for s, v in v3.items() if s != "onnxruntime"},
        }  # fmt: skip
        print(f"yolov3 @416: onnxruntime {v3['onnxruntime']['ms']:.0f} ms / {fastest['step']} {fastest['ms']:.0f} ms"
              f" = {ratio:.2f} (goal >= {GOAL_ONNXRUNTIME_RATIO})")
    record["load_average_at_end"] = os.getloadavg()[0]
    record["wall_seconds"] = round(time.perf_counter() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"load average after: {record['load_average_at_end']:.2f}; wrote {out}")


if __name__ == "__main__":
    main()
