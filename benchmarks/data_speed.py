"""How fast the synthetic shapes data is drawn, single process (issue goal: >= 800 images/s at 96x96).

Run: ``.venv/bin/python benchmarks/data_speed.py``. Prints images per second for a few sizes
and for a batch through a DataLoader with ``collate``; the figures depend on the machine and
its load, so quote them with both.
"""

from __future__ import annotations

import time

from torch.utils.data import DataLoader

from yolo_lessons.data.shapes import ShapesDataset, collate, make_image


def images_per_second(size: int, count: int) -> float:
    make_image(0, seed=0, size=size)  # warm up numpy
    start = time.perf_counter()
    for index in range(count):
        make_image(index, seed=0, size=size)
    return count / (time.perf_counter() - start)


def loader_images_per_second(size: int, count: int, batch_size: int = 64) -> float:
    loader = DataLoader(ShapesDataset(count, size=size), batch_size=batch_size, collate_fn=collate)
    start = time.perf_counter()
    for _ in loader:
        pass
    return count / (time.perf_counter() - start)


def main() -> None:
    for size, count in ((96, 2000), (160, 1000), (416, 200)):
        print(f"make_image {size}x{size}: {images_per_second(size, count):7.0f} images/s")
    print(f"DataLoader + collate 96x96, batch 64: {loader_images_per_second(96, 2048):7.0f} images/s")


if __name__ == "__main__":
    main()
