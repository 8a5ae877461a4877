"""How long does loading a full YOLOv3 .weights file take, and how much extra memory does it need?

    python benchmarks/weights_load.py [--repeats 3] [--threads 2]

Writes a yolov3() (80 classes, 62,001,757 floats, 248,007,048 bytes) to a temporary .weights
file with ``save_darknet_weights``, then loads it back into a second yolov3() whose memory is
already in use, and prints the load time (median of several runs; the file is in the page cache
after the first) and the peak extra memory of one load: numpy's allocations as tracemalloc sees
them and the growth of the process's peak resident memory, each also as a multiple of the
file's size. The goal (issue 13): at most 2 s on 2 cores, and at most one extra copy of the
weights. A benchmark, not a test: the figures depend on the machine and on what else it is doing.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import torch
from torch import nn

from yolo_lessons.darknet.weights import darknet_float_count, load_darknet_weights, save_darknet_weights
from yolo_lessons.models.yolov3 import yolov3

MB = 2**20


def filled_yolov3() -> nn.Module:
    """A yolov3() with every tensor allocated and written (built on meta: default init is slow)."""
    with torch.device("meta"):
        model = yolov3()
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.zero_() if not tensor.is_floating_point() else tensor.uniform_(-1, 1)
    return model


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    source, target = filled_yolov3(), filled_yolov3()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "yolov3.weights"
        save_darknet_weights(source, path)
        size = path.stat().st_size
        print(f"yolov3(): {darknet_float_count(target):,} floats, file {size:,} bytes ({size / MB:.1f} MiB)")

        rss_before = peak_rss_bytes()
        tracemalloc.start()
        start = time.perf_counter()
        load_darknet_weights(target, path)
        first = time.perf_counter() - start
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_growth = peak_rss_bytes() - rss_before

        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            load_darknet_weights(target, path)
            times.append(time.perf_counter() - start)

    pairs = zip(source.state_dict().values(), target.state_dict().values(), strict=True)
    same = all(torch.equal(a, b) for a, b in pairs)
    print(f"load time, first run (tracemalloc on): {first:.2f} s")
    print(f"load time, median of {args.repeats} runs, {args.threads} threads: {statistics.median(times):.2f} s "
          "(goal: <= 2 s on 2 cores)")
    print(f"peak extra memory seen by tracemalloc (numpy): {traced_peak / MB:.1f} MiB "
          f"= {traced_peak / size:.2f} x the file (goal: <= 1 copy)")
    print(f"growth of the peak resident memory during one load: {rss_growth / MB:.1f} MiB "
          f"= {rss_growth / size:.2f} x the file")
    print(f"loaded weights equal the saved ones: {same}")


if __name__ == "__main__":
    main()
