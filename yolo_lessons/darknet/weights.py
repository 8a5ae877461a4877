"""Darknet's ``.weights`` files: read them into the book's networks, and write them back.

A ``.weights`` file is a short header followed by nothing but float32 numbers, layer after
layer in the order of the network's cfg file (Darknet's ``src/parser.c``: ``load_weights_upto``
reads it, ``save_weights_upto`` writes it). It holds no names and no shapes: the cfg supplies
both, so a loader has to know, for each network, which PyTorch module is which cfg layer. The
functions ``darknet19_layers`` ... ``yolov1_layers`` below spell that out, with the cfg's layer
numbers.

Header (little-endian, as Darknet writes it on x86 and ARM):

* int32 ``major``, int32 ``minor``, int32 ``revision``;
* ``seen`` (images trained on): 8 bytes when ``major * 10 + minor >= 2`` and both are below
  1000, else 4 bytes (the condition in ``load_weights_upto``). Today's files are (0, 2, 0) plus
  8 bytes: 20 bytes in all.
* Files written in 2015 (the YOLOv1 release) began with three floats -- learning rate, momentum,
  decay -- and an int32 ``seen``. Read as int32 those floats are huge numbers, so Darknet's test
  ``major > 1000 or minor > 1000`` recognises them; it then reads a 4-byte ``seen`` and transposes
  every ``[connected]`` layer's weights, which that Darknet stored (inputs, outputs) instead of
  today's (outputs, inputs).

Body, per layer with weights (``load_convolutional_weights``, ``load_connected_weights``):

* ``[convolutional]`` with ``batch_normalize=1``: beta (``bn.bias``), gamma (``bn.weight``),
  running mean, running variance (``out`` floats each), then the kernel, (out, in, kh, kw)
  row-major -- the layout of ``nn.Conv2d.weight``. Note beta comes before gamma.
* ``[convolutional]`` without BatchNorm: bias (``out``), then the kernel.
* ``[connected]``: bias (``outputs``), then the weights (outputs, inputs) row-major -- the layout
  of ``nn.Linear.weight`` -- or (inputs, outputs) in a 2015 file.

Layers without weights (max-pool, route, reorg, shortcut, upsample, region/yolo/detection,
dropout, crop) contribute nothing. Darknet itself reads blindly and stops where the file or the
network ends; ``load_darknet_weights`` checks the header and the sizes first and copies nothing
unless the file fits the network exactly (or up to an explicit ``upto``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import torch
from torch import Tensor, nn

from ..models.blocks import ConvBlock, DarknetMaxPool, ResidualBlock
from ..models.darknet19 import Darknet19
from ..models.darknet53 import Darknet53
from ..models.tiny import YOLOv2Tiny, YOLOv3Tiny
from ..models.yolov1 import ConvLeaky, YOLOv1
from ..models.yolov2 import YOLOv2
from ..models.yolov3 import YOLOv3

WRITE_VERSION = (0, 2, 0)  # (major, minor, revision) that pjreddie's save_weights_upto writes
FLOAT = np.dtype("<f4")  # every number after the header: little-endian float32
INT32, UINT64 = np.dtype("<i4"), np.dtype("<u8")
LEGACY_LIMIT = 1000  # load_weights_upto: major or minor above this marks a 2015 file

# Darknet's cutoff ("upto") that keeps only the backbone: the layers before it are the ones
# its pretrained partial files hold -- darknet19_448.conv.23 (18 convs) for Darknet-19 and
# YOLOv2, darknet53.conv.74 (52 convs) for Darknet-53 and YOLOv3 -- and, for YOLOv1, the first
# 20 convs the paper pretrained on ImageNet (section 2.2; layer 24 of the 2015 yolo.cfg).
BACKBONE_CUTOFF: dict[type[nn.Module], int] = {
    Darknet19: 23, YOLOv2: 23, Darknet53: 74, YOLOv3: 74, YOLOv1: 25,
}

PathOrFile = str | os.PathLike | BinaryIO


# ----------------------------------------------------------------------------------------
# Which module is which cfg layer


@dataclass(frozen=True)
class WeightedLayer:
    """One cfg layer that has weights: its number in the cfg and the modules that hold them.

    ``index`` counts every ``[section]`` after ``[net]`` from 0, as Darknet numbers layers
    (``parse_network_cfg``) and as ``upto`` counts them. ``module`` is an ``nn.Conv2d``
    (a ``[convolutional]`` layer, with ``bn`` when it has ``batch_normalize=1``) or an
    ``nn.Linear`` (a ``[connected]`` layer).
    """

    index: int
    module: nn.Conv2d | nn.Linear
    bn: nn.BatchNorm2d | None = None

    def tensors(self) -> list[Tensor]:
        """The layer's tensors in file order (``load_convolutional_weights``, ``load_connected_weights``)."""
        if self.bn is not None:
            return [self.bn.bias, self.bn.weight, self.bn.running_mean, self.bn.running_var, self.module.weight]
        if self.module.bias is None:
            raise ValueError(f"layer {self.index}: a conv without BatchNorm must have a bias to match Darknet")
        return [self.module.bias, self.module.weight]

    def float_count(self) -> int:
        return sum(t.numel() for t in self.tensors())

    def describe(self) -> str:
        """E.g. ``layer 30 (conv 1024->125 1x1/1, bias)``, as Darknet's layer table names it."""
        m = self.module
        if isinstance(m, nn.Linear):
            return f"layer {self.index} (connected {m.in_features}->{m.out_features})"
        kh, _ = m.kernel_size
        extra = "BN" if self.bn is not None else "bias"
        return f"layer {self.index} (conv {m.in_channels}->{m.out_channels} {kh}x{kh}/{m.stride[0]}, {extra})"


def weighted_layer(index: int, block: nn.Module) -> WeightedLayer:
    """The WeightedLayer for one of our conv modules (ConvBlock, ConvLeaky or a plain Conv2d)."""
    if isinstance(block, ConvBlock):
        return WeightedLayer(index, block.conv, block.bn)
    if isinstance(block, ConvLeaky):
        return WeightedLayer(index, block.conv)
    if isinstance(block, (nn.Conv2d, nn.Linear)):
        return WeightedLayer(index, block)
    raise ValueError(f"layer {index}: no Darknet weights for {type(block).__name__}")


def _walk(modules: nn.Module, index: int, layers: list[WeightedLayer]) -> int:
    """Append the weighted layers of a Sequential-like run of cfg layers; return the next index.

    Each max-pool is one cfg layer without weights; a ResidualBlock is three cfg layers
    (1x1 conv, 3x3 conv, ``[shortcut]``); a ConvBlock / ConvLeaky / Conv2d is one.
    """
    for block in modules:
        if isinstance(block, (nn.MaxPool2d, DarknetMaxPool)):
            index += 1
        elif isinstance(block, ResidualBlock):
            layers += [weighted_layer(index, block.reduce), weighted_layer(index + 1, block.expand)]
            index += 3  # the [shortcut] from=-3 is the third
        else:
            layers.append(weighted_layer(index, block))
            index += 1
    return index


def darknet19_layers(model: Darknet19) -> list[WeightedLayer]:
    """``darknet19.cfg``: convs at layers 0, 2, 4-6, 8-10, 12-16, 18-22 (max-pools at 1, 3, 7,
    11, 17), then the 1000-way 1x1 conv with bias at layer 23 (global avgpool 24, softmax 25)."""
    layers: list[WeightedLayer] = []
    index = 0
    for stage in model.stages:  # each stage but the first opens with its max-pool
        index = _walk(stage, index, layers)
    if model.classifier is not None:
        layers.append(weighted_layer(index, model.classifier))  # layer 23
    return layers


def darknet53_layers(model: Darknet53) -> list[WeightedLayer]:
    """``darknet53.cfg``: stem conv 0; stage k opens with a 3x3/2 conv, then its residual blocks
    (conv, conv, shortcut); the last shortcut is layer 74, global avgpool 75, then the 1000-way
    1x1 conv with bias at layer 76 (softmax 77)."""
    layers = [weighted_layer(0, model.stem)]
    index = 1
    for stage in model.stages:
        index = _walk(stage, index, layers)  # 1-4, 5-11, 12-36, 37-61, 62-74
    if model.classifier is not None:
        layers.append(weighted_layer(index + 1, model.classifier))  # 76: after the avgpool at 75
    return layers


def yolov2_layers(model: YOLOv2) -> list[WeightedLayer]:
    """``yolov2-voc.cfg`` / ``yolov2.cfg`` (and the paper-era ``yolo-voc.2.0.cfg``).

    Layers 0-22: Darknet-19 without its classifier; 23, 24: the two extra 3x3 convs;
    25: ``[route] -9`` (back to layer 16). Today's cfg: 26 the 1x1x64 passthrough conv,
    27 ``[reorg]``, 28 ``[route] -1,-4``, 29 the fusing 3x3 conv, 30 the 1x1 detector (bias),
    31 ``[region]``. Paper era (no passthrough conv): 26 reorg, 27 route, 28 fuse, 29 detector.
    Note the cfg order: the passthrough conv comes *after* the two extra convs.
    """
    layers = darknet19_layers(model.backbone)  # 0-22
    index = _walk(model.extra, 23, layers)  # 23, 24
    index += 1  # 25: [route] -9
    if not isinstance(model.passthrough, nn.Identity):
        layers.append(weighted_layer(index, model.passthrough))  # 26
        index += 1
    index += 2  # [reorg], [route]
    layers += [weighted_layer(index, model.fuse), weighted_layer(index + 1, model.detect)]
    return layers


def yolov3_layers(model: YOLOv3) -> list[WeightedLayer]:
    """``yolov3.cfg`` / ``yolov3-voc.cfg``: the cfg interleaves each scale's neck and head.

    0-74 Darknet-53 without its classifier; 75-79 neck32; 80, 81 detect32 (81: 1x1 with bias);
    82 ``[yolo]``; 83 ``[route] -4``; 84 lateral16; 85 ``[upsample]``; 86 ``[route] -1,61``;
    87-91 neck16; 92, 93 detect16; 94 ``[yolo]``; 95 ``[route] -4``; 96 lateral8; 97 upsample;
    98 ``[route] -1,36``; 99-103 neck8; 104, 105 detect8; 106 ``[yolo]``.
    """
    layers = darknet53_layers(model.backbone)  # 0-73 (layer 74 is a shortcut)
    index = _walk(model.neck32, 75, layers)  # 75-79
    index = _walk(model.detect32, index, layers) + 2  # 80, 81; skip [yolo] 82, [route] 83
    index = _walk([model.lateral16], index, layers) + 2  # 84; skip [upsample] 85, [route] 86
    index = _walk(model.neck16, index, layers)  # 87-91
    index = _walk(model.detect16, index, layers) + 2  # 92, 93; skip 94, 95
    index = _walk([model.lateral8], index, layers) + 2  # 96; skip 97, 98
    index = _walk(model.neck8, index, layers)  # 99-103
    _walk(model.detect8, index, layers)  # 104, 105 ([yolo] 106)
    return layers


def yolov1_layers(model: YOLOv1) -> list[WeightedLayer]:
    """The 2015 ``yolo.cfg``: layer 0 is ``[crop]``; convs and max-pools 1-28 (pools at 2, 4,
    9, 20); 29 ``[connected]`` 50176->4096; 30 ``[dropout]``; 31 ``[connected]`` 4096->1470;
    32 ``[detection]``.

    Darknet's connected layer reads its input buffer as it lies in memory, (C, H, W)
    row-major per image; ``YOLOv1.forward`` flattens the (N, C, H, W) feature map with
    ``flatten(1)``, the same order, so the weights need no permutation.
    """
    layers: list[WeightedLayer] = []
    index = 1  # after the [crop]
    for stage in model.stages:  # each of the first four stages ends with its max-pool
        index = _walk(stage, index, layers)
    layers.append(weighted_layer(index, model.fc1))  # 29
    layers.append(weighted_layer(index + 2, model.fc2))  # 31, after the [dropout] at 30
    return layers


def yolov2_tiny_layers(model: YOLOv2Tiny) -> list[WeightedLayer]:
    """``yolov2-tiny-voc.cfg`` / ``yolov2-tiny.cfg``: convs at 0, 2, 4, 6, 8, 10 (max-pools at the
    odd layers 1-11), then 12, 13 and the 1x1 detector with bias at 14 (``[region]`` 15)."""
    layers: list[WeightedLayer] = []
    _walk([*model.trunk, model.extra, model.head, model.detect], 0, layers)
    return layers


def yolov3_tiny_layers(model: YOLOv3Tiny) -> list[WeightedLayer]:
    """``yolov3-tiny.cfg``: trunk 0-11, 12, 13, 14, 15 (1x1 with bias), ``[yolo]`` 16, ``[route] -4`` 17,
    18, ``[upsample]`` 19, ``[route] -1, 8`` 20, 21, 22 (1x1 with bias), ``[yolo]`` 23."""
    layers: list[WeightedLayer] = []
    index = _walk([*model.trunk, model.extra, model.neck32, *model.detect32], 0, layers) + 2  # skip 16, 17
    index = _walk([model.lateral16], index, layers) + 2  # 18; skip 19, 20
    _walk(model.detect16, index, layers)  # 21, 22
    return layers


LAYER_LISTS = {
    YOLOv2Tiny: yolov2_tiny_layers,
    YOLOv3Tiny: yolov3_tiny_layers,
    Darknet19: darknet19_layers,
    Darknet53: darknet53_layers,
    YOLOv2: yolov2_layers,
    YOLOv3: yolov3_layers,
    YOLOv1: yolov1_layers,
}


def darknet_layers(model: nn.Module) -> list[WeightedLayer]:
    """The weighted layers of one of the book's networks, in the order of its Darknet cfg."""
    for cls, layer_list in LAYER_LISTS.items():
        if isinstance(model, cls):
            return layer_list(model)
    names = ", ".join(cls.__name__ for cls in LAYER_LISTS)
    raise ValueError(
        f"no Darknet layer order known for {type(model).__name__}; expected one of {names}, "
        "or pass layers=[WeightedLayer(...), ...] in cfg order"
    )


def select_layers(
    model: nn.Module,
    layers: Sequence[WeightedLayer] | None = None,
    upto: int | None = None,
    backbone_only: bool = False,
) -> list[WeightedLayer]:
    """The layers a file holds: all of them, those before cfg layer ``upto`` (Darknet's
    ``cutoff``, as in ``darknet partial cfg weights out upto``), or the backbone's."""
    if upto is not None and backbone_only:
        raise ValueError("give either upto= or backbone_only=True, not both")
    all_layers = list(layers) if layers is not None else darknet_layers(model)
    if backbone_only:
        upto = next((cut for cls, cut in BACKBONE_CUTOFF.items() if isinstance(model, cls)), None)
        if upto is None or layers is not None:
            raise ValueError(f"backbone_only=True is known for {', '.join(c.__name__ for c in BACKBONE_CUTOFF)} "
                             f"with their own layer order; got {type(model).__name__}; use upto= instead")
    if upto is None:
        return all_layers
    if isinstance(upto, bool) or not isinstance(upto, int) or upto < 1:
        raise ValueError(f"upto must be a positive int (Darknet's cutoff: the number of cfg layers), got {upto!r}")
    return [layer for layer in all_layers if layer.index < upto]


def darknet_float_count(model: nn.Module, upto: int | None = None, backbone_only: bool = False) -> int:
    """How many float32 numbers a ``.weights`` file for ``model`` holds after its header."""
    return sum(layer.float_count() for layer in select_layers(model, None, upto, backbone_only))


# ----------------------------------------------------------------------------------------
# The header


@dataclass(frozen=True)
class DarknetHeader:
    """The first 16 or 20 bytes of a ``.weights`` file (``load_weights_upto``)."""

    major: int
    minor: int
    revision: int
    seen: int  # images the network was trained on

    @property
    def legacy(self) -> bool:
        """A 2015 file: the "version" is really learning rate and momentum read as int32."""
        return self.major > LEGACY_LIMIT or self.minor > LEGACY_LIMIT

    @property
    def seen_bytes(self) -> int:
        """8 (a size_t) when major*10 + minor >= 2 and both are below 1000, else 4 (an int).

        ``load_weights_upto`` tests ``major < 1000 && minor < 1000`` here but ``> 1000`` for
        ``transpose``: a major or minor of exactly 1000 reads a 4-byte ``seen``, untransposed."""
        small = self.major < LEGACY_LIMIT and self.minor < LEGACY_LIMIT
        return 8 if self.major * 10 + self.minor >= 2 and small else 4

    @property
    def size(self) -> int:
        """Header length in bytes: 20 for today's files, 16 for 2015 and version 0.1 files."""
        return 12 + self.seen_bytes

    @property
    def transposed(self) -> bool:
        """Connected weights stored (inputs, outputs): Darknet's ``transpose`` flag."""
        return self.legacy


_SIGNATURES = (  # what a file that is not a .weights file often is
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG", "a PNG image"),
    (b"PK\x03\x04", "a zip archive (a PyTorch .pt checkpoint is one)"),
    (b"<", "an HTML or XML page (a failed download?)"),
    (b"\x80", "a Python pickle"),
)


def _not_weights(name: str, raw: np.ndarray, why: str) -> ValueError:
    start = bytes(raw[:8])
    guess = next((what for sig, what in _SIGNATURES if start.startswith(sig)), None)
    looks = f"; it starts like {guess}" if guess else ""
    return ValueError(
        f"{name} is not a Darknet .weights file: {why} (first bytes {start.hex(' ')}{looks}). "
        "Expected int32 major, minor, revision (e.g. 0, 2, 0) and then 'seen'"
    )


def _parse_header(raw: np.ndarray, name: str) -> DarknetHeader:
    if raw.size < 16:
        raise _not_weights(name, raw, f"only {raw.size} bytes, fewer than the shortest header (16 bytes)")
    major, minor, revision = (int(v) for v in raw[:12].view(INT32))
    probe = DarknetHeader(major, minor, revision, 0)
    if probe.legacy:
        # 2015: learning rate, momentum, decay as float32 -- small non-negative numbers
        rates = raw[:12].view(FLOAT)
        if not (np.all(np.isfinite(rates)) and np.all((rates >= 0) & (rates < 10))):
            raise _not_weights(name, raw, f"header ({major}, {minor}, {revision}) is neither a version number "
                               "nor a 2015 header (learning rate, momentum, decay)")
    elif not all(0 <= v <= LEGACY_LIMIT for v in (major, minor, revision)):
        raise _not_weights(name, raw, f"implausible version ({major}, {minor}, {revision})")
    if raw.size < probe.size:
        raise _not_weights(name, raw, f"only {raw.size} bytes, fewer than its {probe.size}-byte header")
    seen_dtype = UINT64 if probe.seen_bytes == 8 else INT32
    seen = int(raw[12:probe.size].view(seen_dtype)[0])
    return DarknetHeader(major, minor, revision, seen)


def _read_bytes(file: PathOrFile, count: int = -1) -> tuple[np.ndarray, str]:
    """The file (or its first ``count`` bytes) as one uint8 array: the only copy of the weights we make."""
    if isinstance(file, (str, os.PathLike)):
        return np.fromfile(file, dtype=np.uint8, count=count), os.fspath(file)
    # a file object: bytearray keeps the array writable, so torch.from_numpy can share it
    return np.frombuffer(bytearray(file.read(count)), dtype=np.uint8), getattr(file, "name", "the file")


def read_darknet_header(file: PathOrFile) -> DarknetHeader:
    """Read and check the header of a ``.weights`` file (its first 16 or 20 bytes)."""
    raw, name = _read_bytes(file, count=20)
    return _parse_header(raw, name)


# ----------------------------------------------------------------------------------------
# Loading and saving


def _plan(layers: Sequence[WeightedLayer], available: int, name: str) -> None:
    """Raise unless the layers need exactly ``available`` floats; name the layer that runs out."""
    needed = sum(layer.float_count() for layer in layers)
    if needed == available:
        return
    if needed > available:
        offset = 0
        for layer in layers:
            count = layer.float_count()
            if offset + count > available:
                raise ValueError(
                    f"{name} ran out in {layer.describe()}: it needs {count:,} floats starting at float "
                    f"{offset:,}, but only {available - offset:,} are left. The model needs {needed:,} floats "
                    f"after the header, the file holds {available:,}: a truncated download, or a file for "
                    "another network (pass upto= if the file stops early on purpose)"
                )
            offset += count
    left = available - needed
    last = layers[-1].describe() if layers else "the header"
    raise ValueError(
        f"{name} has {left:,} floats ({4 * left:,} bytes) left over after {last}: the model needs "
        f"{needed:,} floats after the header, the file holds {available:,}. A file for another (bigger) "
        "network? Loading only part of a file is not supported; cut it with Darknet's partial first"
    )


def load_darknet_weights(
    model: nn.Module,
    file: PathOrFile,
    *,
    upto: int | None = None,
    backbone_only: bool = False,
    layers: Sequence[WeightedLayer] | None = None,
) -> DarknetHeader:
    """Copy a Darknet ``.weights`` file into ``model``; return the file's header.

    ``model`` is one of the book's networks (``darknet19()``, ``darknet53()``, ``yolov2()``,
    ``yolov3()``, ``yolov1()``) or any model whose weighted layers you list in cfg order with
    ``layers=``. The file must hold exactly the layers loaded: all of them, those before cfg
    layer ``upto`` (e.g. ``upto=74`` for ``darknet53.conv.74`` into ``yolov3()``), or with
    ``backbone_only=True`` the backbone's (see ``BACKBONE_CUTOFF``). The header and the sizes
    are checked before anything is copied, so after a ``ValueError`` the model is unchanged.
    Layers that are not loaded keep their values.
    """
    selected = select_layers(model, layers, upto, backbone_only)
    raw, name = _read_bytes(file)
    header = _parse_header(raw, name)
    body = raw[header.size:]
    if body.size % FLOAT.itemsize:
        raise ValueError(
            f"{name}: {body.size:,} bytes after the {header.size}-byte header is not a whole number of "
            f"float32 values ({body.size % FLOAT.itemsize} bytes too many): a truncated or damaged file"
        )
    floats = body.view(FLOAT)
    _plan(selected, floats.size, name)
    offset = 0
    with torch.no_grad():
        for layer in selected:
            for target in layer.tensors():
                source = torch.from_numpy(floats[offset:offset + target.numel()])
                offset += target.numel()
                if header.transposed and isinstance(layer.module, nn.Linear) and target is layer.module.weight:
                    out_features, in_features = target.shape
                    source = source.view(in_features, out_features).t()  # 2015: stored (inputs, outputs)
                target.copy_(source.view(target.shape))
    return header


def save_darknet_weights(
    model: nn.Module,
    file: PathOrFile,
    *,
    seen: int = 0,
    upto: int | None = None,
    backbone_only: bool = False,
    layers: Sequence[WeightedLayer] | None = None,
) -> int:
    """Write ``model`` as a Darknet ``.weights`` file, as ``save_weights_upto`` does; return its size in bytes.

    The header is today's: major 0, minor 2, revision 0 (what pjreddie's Darknet writes),
    then ``seen`` as an 8-byte unsigned integer. ``upto`` / ``backbone_only`` write only the
    first layers, like ``darknet partial``; ``layers=`` as in ``load_darknet_weights``.
    """
    if isinstance(seen, bool) or not isinstance(seen, int) or not 0 <= seen < 2**64:
        raise ValueError(f"seen must be an int in [0, 2**64), got {seen!r}")
    selected = select_layers(model, layers, upto, backbone_only)
    chunks = [np.array(WRITE_VERSION, dtype=INT32), np.array([seen], dtype=UINT64)]
    if isinstance(file, (str, os.PathLike)):
        with open(file, "wb") as handle:
            return _write(handle, chunks, selected)
    return _write(file, chunks, selected)


def _write(handle: BinaryIO, header: list[np.ndarray], layers: Sequence[WeightedLayer]) -> int:
    written = 0
    for chunk in header:
        written += handle.write(chunk.tobytes())
    for layer in layers:
        for tensor in layer.tensors():
            values = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
            written += handle.write(np.ascontiguousarray(values, dtype=FLOAT).data)
    return written
