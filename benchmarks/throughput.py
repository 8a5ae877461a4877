"""How close does Darknet-53 get to the CPU's matmul speed?

    python benchmarks/throughput.py [--batch 1] [--repeats 5]

Runs Darknet-53 at 256x256 under ``torch.inference_mode()`` and a plain ``torch.matmul`` of a
similar number of multiply-adds in the same process, and prints both rates (multiply-adds per
second, median of several runs) and their ratio. A benchmark, not a test: the figures depend on
the machine and on what else it is doing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from yolo_lessons import count_multiply_adds, darknet53


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: lets oneDNN pick its kernels and the allocator settle
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_seconds(macs: float, repeats: int) -> tuple[int, float]:
    """The side of a square ``torch.matmul`` with about ``macs`` multiply-adds, and its median seconds."""
    side = round(macs ** (1 / 3))
    a, b = torch.randn(side, side), torch.randn(side, side)
    with torch.inference_mode():
        return side, median_seconds(lambda: torch.matmul(a, b), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)

    model = darknet53().eval()
    macs = count_multiply_adds(model, (3, 256, 256)) * args.batch  # 9,285,115,904 per image
    x = torch.randn(args.batch, 3, 256, 256)
    with torch.inference_mode():
        model_s = median_seconds(lambda: model(x), args.repeats)

    side, matmul_s = matmul_seconds(macs, args.repeats)

    model_rate, matmul_rate = macs / model_s, side**3 / matmul_s
    print(f"threads: {torch.get_num_threads()}, batch: {args.batch}")
    print(f"darknet53 @256: {macs / 1e9:.2f} G multiply-adds in {model_s * 1e3:.0f} ms = {model_rate / 1e9:.1f} GMAC/s")
    print(
        f"matmul {side}^3:  {side**3 / 1e9:.2f} G multiply-adds in {matmul_s * 1e3:.0f} ms"
        f" = {matmul_rate / 1e9:.1f} GMAC/s"
    )
    print(f"ratio: {model_rate / matmul_rate:.0%} of matmul throughput")


if __name__ == "__main__":
    main()
