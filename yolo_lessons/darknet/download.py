"""Large files fetched once: cached, with a progress bar, checked by size and MD5 before use.

The book runs everywhere without the internet; only one chapter can do more with it: the
original YOLOv3 weights (``yolov3.weights``, 248,007,048 bytes, from the author's site). The
site publishes no checksum; the MD5 we check is the one NVIDIA's TensorRT ``yolov3_onnx`` sample
checks the same download against (``samples/python/yolov3_onnx/download.yml`` in
NVIDIA/TensorRT). ``find_yolov3_weights`` decides where they
come from, in this order:

1. ``YOLO_WEIGHTS=/path/to/yolov3.weights`` in the environment: that file, checked;
2. a copy downloaded earlier into the cache folder (``YOLO_CACHE``, else
   ``~/.cache/yolo_lessons``), checked;
3. a download into the cache, only where downloading is allowed -- in Colab, or where
   ``YOLO_DOWNLOAD=1`` is set -- and the server answers within a few seconds.

Anywhere else (a CI runner, an offline laptop, the test suite) it downloads nothing and
returns one deterministic sentence saying how to get the file. Downloading is opt-in outside
Colab so that running the tests on a connected machine never fetches 248 MB.

A download goes to ``<name>.part`` and is renamed only after its size and MD5 match, so a
cut connection never leaves a file that looks complete.

Small files the book commits, the results of experiments too long to run in a chapter, are
read with ``stored_json``: from the checkout when the package runs from one, else (Colab) from
the repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CHUNK_BYTES = 1 << 20  # read and hash 1 MiB at a time
CONNECT_TIMEOUT = 3.0  # seconds to wait for the server before calling the internet unreachable
WEIGHTS_VARIABLE = "YOLO_WEIGHTS"  # a path to yolov3.weights the reader already has
DOWNLOAD_VARIABLE = "YOLO_DOWNLOAD"  # "1": allow the download outside Colab
CACHE_VARIABLE = "YOLO_CACHE"  # where downloads are kept (default ~/.cache/yolo_lessons)
REPOSITORY = "https://github.com/yolo-from-scratch/yolo-from-scratch"  # as _config.yml's repository url
CHECKOUT = Path(__file__).resolve().parents[2]  # the repository's root, when the package runs from one


@dataclass(frozen=True)
class RemoteFile:
    """A file on the web with the size (bytes) and MD5 (hex) it must have (None: no MD5 is published)."""

    url: str
    name: str
    size: int
    md5: str | None

    def checked(self) -> str:
        return "MD5 checked" if self.md5 else "size checked (no MD5 is published for it)"


# pjreddie.com/darknet/yolo: "wget https://pjreddie.com/media/files/yolov3.weights". The size is
# the header (20 bytes) + 4 x 62,001,757 floats of yolov3.cfg (tests pin it with darknet_float_count);
# the MD5 is the checksum of NVIDIA/TensorRT's samples/python/yolov3_onnx/download.yml (the site gives none).
YOLOV3_WEIGHTS = RemoteFile(
    url="https://pjreddie.com/media/files/yolov3.weights",
    name="yolov3.weights",
    size=248_007_048,
    md5="c84e5b99d0e52cd466ae710cadf6d84c",
)


# pjreddie.com/darknet/yolov2: "wget https://pjreddie.com/media/files/yolov2.weights", YOLOv2 trained on
# COCO (cfg/yolov2.cfg, 80 classes). An old file: version 0.1.0, so ``seen`` takes 4 bytes and the header
# 16; the size is that header + 4 x 50,983,561 floats of yolov2(80) (tests pin it with darknet_float_count),
# the Length wget reports when it downloads the file. No checksum is published for it.
YOLOV2_WEIGHTS = RemoteFile(
    url="https://pjreddie.com/media/files/yolov2.weights",
    name="yolov2.weights",
    size=203_934_260,
    md5=None,
)


# pjreddie.com/darknet/yolo, "Tiny YOLOv3": the header + 4 x 8,858,734 floats of yolov3-tiny.cfg
# (tests pin it with darknet_float_count). The site publishes no checksum for this file.
YOLOV3_TINY_WEIGHTS = RemoteFile(
    url="https://pjreddie.com/media/files/yolov3-tiny.weights",
    name="yolov3-tiny.weights",
    size=35_434_956,
    md5=None,
)


def cache_folder() -> Path:
    """Where downloads are kept: ``$YOLO_CACHE``, else ``~/.cache/yolo_lessons``."""
    return Path(os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "yolo_lessons")


def file_md5(path: str | os.PathLike) -> str:
    """The MD5 of a file as 32 hex digits, read 1 MiB at a time."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(path: str | os.PathLike, remote: RemoteFile) -> None:
    """Raise ``ValueError`` unless ``path`` has the size and then the MD5 of ``remote``.

    The size is checked first: it is free, and catches the usual failure (a download cut
    short, or an HTML error page saved under the file's name).
    """
    size = os.path.getsize(path)
    if size != remote.size:
        raise ValueError(
            f"{Path(path).name} has {size:,} bytes, expected {remote.size:,} for {remote.name}: "
            "an incomplete download or another file"
        )
    if remote.md5 is None:
        return
    md5 = file_md5(path)
    if md5 != remote.md5:
        raise ValueError(f"{Path(path).name} has MD5 {md5}, expected {remote.md5} for {remote.name}: a damaged file")


def internet_reachable(url: str, timeout: float = CONNECT_TIMEOUT) -> bool:
    """True when a TCP connection to ``url``'s host opens within ``timeout`` seconds.

    ``file:`` URLs are always reachable. No data is sent; DNS failures and refused or
    timed-out connections all count as unreachable.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return True
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def download(remote: RemoteFile, folder: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """``remote`` in ``folder`` (default ``cache_folder()``), downloaded unless a checked copy is there.

    Streams into ``<name>.part`` with a tqdm progress bar, checks size and MD5, then renames
    it; on any failure the partial file is removed and the error raised.
    """
    folder = Path(folder) if folder is not None else cache_folder()
    target = folder / remote.name
    if target.exists():
        check_file(target, remote)
        return target
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(remote.url, timeout=60) as response, open(partial, "wb") as handle:
            bar = _progress_bar(remote, progress)
            while chunk := response.read(CHUNK_BYTES):
                handle.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            if bar is not None:
                bar.close()
        check_file(partial, remote)
        os.replace(partial, target)
    finally:
        if partial.exists():
            partial.unlink()
    return target


def _progress_bar(remote: RemoteFile, progress: bool):
    if not progress:
        return None
    from tqdm.auto import tqdm  # a widget in Jupyter and Colab, text in a terminal

    return tqdm(total=remote.size, unit="B", unit_scale=True, unit_divisor=1024, desc=remote.name)


def download_allowed() -> bool:
    """In Colab, or where ``YOLO_DOWNLOAD=1`` is set."""
    return "google.colab" in sys.modules or os.environ.get(DOWNLOAD_VARIABLE) == "1"


def how_to_get(remote: RemoteFile = YOLOV3_WEIGHTS, variable: str | None = WEIGHTS_VARIABLE) -> str:
    """The one line printed where the file is missing and cannot be downloaded."""
    if variable is None:
        return f"{remote.name} ({remote.size:,} B) downloads in Colab, or where {DOWNLOAD_VARIABLE}=1"
    return (
        f"{remote.name} is not here and will not be downloaded: set {variable}=/path/to/{remote.name} "
        f"(or {DOWNLOAD_VARIABLE}=1 to download {remote.size:,} bytes) or run this chapter in Colab"
    )


def find_yolov3_weights(remote: RemoteFile = YOLOV3_WEIGHTS, progress: bool = True) -> tuple[Path | None, str]:
    """``(path, message)``: a checked ``yolov3.weights`` and how it was found, or ``(None, how_to_get())``.

    See the module docstring for the order. A file named by ``YOLO_WEIGHTS`` that fails its
    check raises ``ValueError`` (the reader asked for that file); so does a failed download.
    """
    return find_weights(remote, WEIGHTS_VARIABLE, progress)


def find_weights(
    remote: RemoteFile, variable: str | None = None, progress: bool = True
) -> tuple[Path | None, str]:
    """``(path, message)`` for any ``remote``: the file ``$variable`` names (when given), a copy in the
    cache, or a download where allowed; else ``(None, how_to_get(remote, variable))``."""
    named = os.environ.get(variable) if variable else None
    if named:
        check_file(named, remote)
        return Path(named), f"{remote.name} from {variable}: {remote.size:,} bytes, {remote.checked()}"
    cached = cache_folder() / remote.name
    if cached.exists():
        check_file(cached, remote)
        return cached, f"{remote.name} from the cache: {remote.size:,} bytes, {remote.checked()}"
    if download_allowed() and internet_reachable(remote.url):
        path = download(remote, progress=progress)
        return path, f"{remote.name} downloaded: {remote.size:,} bytes, {remote.checked()}"
    return None, how_to_get(remote, variable)


def stored_json(relative: str, repository: str = REPOSITORY):
    """The JSON file ``relative`` (e.g. ``"benchmarks/results/train_map.json"``) as committed.

    Read from a checkout when there is one: the package's own (an editable install, the tests)
    or the working folder or one above it (a notebook in a clone, with the package installed
    from it). Otherwise, as in Colab where only the package is installed, fetched from the main
    branch of ``repository`` (``<repository>/raw/main/<relative>``).
    """
    for root in (CHECKOUT, Path.cwd(), *Path.cwd().parents):
        local = root / relative
        if local.is_file():
            return json.loads(local.read_text())
    with urllib.request.urlopen(f"{repository}/raw/main/{relative}", timeout=30) as response:
        return json.loads(response.read())
