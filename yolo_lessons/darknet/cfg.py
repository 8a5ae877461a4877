"""Darknet's ``.cfg`` files: read one as Darknet does, and build the network it describes.

Reading (``read_cfg`` in ``src/parser.c``): every space, tab and newline is removed from a line
(``strip`` in ``src/utils.c``: ``anchors = 10,14,  23,27`` is ``anchors=10,14,23,27``); empty
lines and lines starting with ``#`` or ``;`` are skipped; ``[name]`` opens a section; anything
else is ``key=value`` of the open section. Where a key appears twice, Darknet's
``option_find`` takes the first; so do we. Darknet prints and skips a line it cannot read and
crashes on an option before the first section; we stop with the line number instead.

Building: each section after ``[net]`` is one layer, numbered from 0 as Darknet numbers them
(``route`` and ``shortcut`` indices count the same way, negative ones back from the layer
itself). An option left out gets the default of the ``parse_*`` function named beside it, the
same function that reads it in Darknet. The layer types are those of the book's networks and
of the tiny models:

    [net]  [convolutional]  [maxpool]  [route]  [shortcut]  [upsample]  [reorg]  [avgpool]
    [softmax]  [connected]  [dropout]  [region]  [yolo]  [detection]  [cost]

A section of any other type, or an option of these types that changes what the layer computes
and that we do not implement (``groups``, ``binary``, ``reverse``, ...), is a ``CfgError``
naming the section's line; nothing is built.

``CfgNetwork.forward`` returns what the book's decoders and losses take: the raw input of each
head layer (``[region]``, ``[yolo]``, ``[detection]``; the logits before ``[softmax]``), one
tensor for one head, a tuple in cfg order for several (YOLOv3: strides 32, 16, 8). Its
``weighted_layers()`` lists the ``[convolutional]`` and ``[connected]`` layers in cfg order, so
``load_darknet_weights(net, file, layers=net.weighted_layers())`` reads a ``.weights`` file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.blocks import LEAKY_SLOPE, DarknetMaxPool, darknet_reorg
from .weights import WeightedLayer

# string_to_layer_type: the names Darknet accepts for each type we build
ALIASES = {
    "net": "net", "network": "net", "convolutional": "convolutional", "conv": "convolutional",
    "maxpool": "maxpool", "max": "maxpool", "route": "route", "shortcut": "shortcut", "upsample": "upsample",
    "reorg": "reorg", "avgpool": "avgpool", "avg": "avgpool", "softmax": "softmax", "soft": "softmax",
    "connected": "connected", "conn": "connected", "dropout": "dropout", "region": "region", "yolo": "yolo",
    "detection": "detection", "cost": "cost",
}  # fmt: skip
HEADS = ("region", "yolo", "detection", "softmax")
ACTIVATIONS = ("leaky", "linear", "logistic", "relu")
# Options that change the computation and that the book does not implement, with Darknet's default.
UNSUPPORTED = {
    "convolutional": {"groups": "1", "binary": "0", "xnor": "0", "flipped": "0", "dot": "0"},
    "reorg": {"reverse": "0", "flatten": "0", "extra": "0"},
    "softmax": {"groups": "1", "temperature": "1", "tree": None, "spatial": "0"},
    "shortcut": {"alpha": "1", "beta": "1"},
}


class CfgError(ValueError):
    """A cfg that cannot be read or built; the message names the line (and the section)."""


@dataclass
class Section:
    """One ``[section]`` of a cfg: its type (aliases resolved), its options as text, its line."""

    kind: str
    options: dict[str, str] = field(default_factory=dict)
    line: int = 0
    name: str = ""  # as written, e.g. "conv"

    def where(self) -> str:
        return f"line {self.line}, [{self.name or self.kind}]"

    def text(self, key: str, default: str | None = None) -> str | None:
        return self.options.get(key, default)

    def integer(self, key: str, default: int | None = None) -> int:
        value = self.options.get(key)
        if value is None:
            if default is None:
                raise CfgError(f"{self.where()}: needs {key}=")
            return default
        try:
            return int(value)
        except ValueError:
            raise CfgError(f"{self.where()}: expected an integer {key}, got {value!r}") from None

    def number(self, key: str, default: float) -> float:
        value = self.options.get(key)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise CfgError(f"{self.where()}: expected a number {key}, got {value!r}") from None

    def numbers(self, key: str) -> list[float]:
        value = self.options.get(key)
        if not value:
            return []
        try:
            return [float(v) for v in value.split(",") if v]
        except ValueError:
            raise CfgError(f"{self.where()}: expected numbers separated by commas for {key}, got {value!r}") from None


def parse_cfg(text: str) -> list[Section]:
    """The sections of a cfg's text, as ``read_cfg`` reads them (see the module docstring)."""
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.replace(" ", "").replace("\t", "")
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]"):
                raise CfgError(f"line {number}: a section header must end with ], got {raw.strip()!r}")
            name = line[1:-1]
            sections.append(Section(ALIASES.get(name, name), line=number, name=name))
            continue
        if not sections:
            raise CfgError(f"line {number}: an option before any [section]: {raw.strip()!r}")
        if "=" not in line or line.endswith("="):
            raise CfgError(f"line {number}: expected key=value, got {raw.strip()!r}")
        key, value = line.split("=", 1)
        sections[-1].options.setdefault(key, value)  # option_find: the first one wins
    if not sections or sections[0].kind != "net":
        raise CfgError("a cfg starts with its [net] section (width, height, channels)")
    return sections


def read_cfg(path: str | os.PathLike) -> list[Section]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CfgError(f"cannot read the cfg file {path}: {error}") from None
    return parse_cfg(text)


def _activation(section: Section, default: str) -> nn.Module:
    name = section.text("activation", default)
    if name not in ACTIVATIONS:
        raise CfgError(f"{section.where()}: activation {name!r} is not one of {', '.join(ACTIVATIONS)}")
    return {"leaky": nn.LeakyReLU(LEAKY_SLOPE), "linear": nn.Identity(), "logistic": nn.Sigmoid(),
            "relu": nn.ReLU()}[name]  # fmt: skip


class CfgConv(nn.Module):
    """``[convolutional]``: a conv (a bias only without BatchNorm), BatchNorm, the activation."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None, act: nn.Module):
        super().__init__()
        self.conv, self.bn, self.act = conv, bn, act

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        return self.act(self.bn(x) if self.bn is not None else x)


class CfgConnected(nn.Module):
    """``[connected]``: the input flattened in Darknet's (C, H, W) order, a linear layer, the activation."""

    def __init__(self, linear: nn.Linear, act: nn.Module):
        super().__init__()
        self.linear, self.act = linear, act

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.linear(x.flatten(1)))


class Upsample(nn.Module):
    def __init__(self, stride: int, scale: float):
        super().__init__()
        self.stride, self.scale = stride, scale

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=self.stride, mode="nearest")  # upsample_cpu: nearest neighbour
        return x * self.scale if self.scale != 1 else x


class Reorg(nn.Module):
    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return darknet_reorg(x, self.stride)


class GlobalAvgPool(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3), keepdim=True)  # forward_avgpool_layer: the mean of each channel


@dataclass
class LayerInfo:
    """What a built layer is: its cfg section, its output shape (C, H, W), what it reads."""

    section: Section
    shape: tuple[int, int, int]
    sources: tuple[int, ...] = ()


class CfgNetwork(nn.Module):
    """The network of a cfg (``build_network``); ``forward`` returns the heads' raw inputs."""

    def __init__(self, sections: list[Section]):
        super().__init__()
        net, layers = sections[0], sections[1:]
        self.width, self.height = net.integer("width", 0), net.integer("height", 0)  # parse_net_options
        self.channels = net.integer("channels", 0)
        if not (self.width and self.height and self.channels):
            raise CfgError(f"{net.where()}: needs width, height and channels (Darknet's defaults are 0)")
        self.infos: list[LayerInfo] = []
        self.heads: list[int] = []  # indices of the head layers
        modules = []
        shape = (self.channels, self.height, self.width)
        for index, section in enumerate(layers):
            module, shape, sources = self._build(index, section, shape)
            modules.append(module)
            self.infos.append(LayerInfo(section, shape, sources))
            if section.kind in HEADS:
                self.heads.append(index)
        self.layers = nn.ModuleList(modules)
        # which outputs later layers read again (routes and shortcuts), so forward keeps only those
        self._kept = {s for info in self.infos for s in info.sources}

    def _shape_of(self, index: int, at: int, section: Section) -> tuple[int, int, int]:
        if not 0 <= index < at:
            raise CfgError(f"{section.where()}: layer {at} reads layer {index}, which is not before it")
        return self.infos[index].shape

    def _build(self, index: int, s: Section, shape: tuple[int, int, int]):
        c, h, w = shape
        kind = s.kind
        if kind not in ALIASES.values() or kind == "net":
            raise CfgError(f"{s.where()}: the layer type [{s.name}] is not one the book builds "
                           f"({', '.join(sorted(set(ALIASES.values()) - {'net'}))})")  # fmt: skip
        for option, default in UNSUPPORTED.get(kind, {}).items():
            if s.text(option, default) != default:
                raise CfgError(f"{s.where()}: {option}={s.text(option)} is not implemented here")
        if kind == "convolutional":  # parse_convolutional
            if "filters" not in s.options:  # Darknet warns "Using default '1'"; a one-filter conv is a slip
                raise CfgError(f"{s.where()}: needs filters= (Darknet would use 1 and print a warning)")
            filters, size = s.integer("filters", 1), s.integer("size", 1)
            stride = s.integer("stride", 1)
            padding = size // 2 if s.integer("pad", 0) else s.integer("padding", 0)  # if(pad) padding = size/2
            bn = bool(s.integer("batch_normalize", 0))
            if min(filters, size, stride) < 1:
                raise CfgError(f"{s.where()}: filters, size and stride must be positive")
            conv = nn.Conv2d(c, filters, size, stride, padding, bias=not bn)
            module = CfgConv(conv, nn.BatchNorm2d(filters) if bn else None, _activation(s, "logistic"))
            side = lambda n: (n + 2 * padding - size) // stride + 1  # noqa: E731  (convolutional_out_width)
            return module, (filters, side(h), side(w)), ()
        if kind == "maxpool":  # parse_maxpool
            stride = s.integer("stride", 1)
            size = s.integer("size", stride)
            module = DarknetMaxPool(size, stride, s.integer("padding", size - 1))
            return module, (c, module.output_size(h), module.output_size(w)), ()
        if kind == "route":  # parse_route
            text = s.text("layers")
            if not text:
                raise CfgError(f"{s.where()}: needs layers= (one or more layer numbers)")
            try:
                sources = tuple(index + int(v) if int(v) < 0 else int(v) for v in text.split(",") if v)
            except ValueError:
                raise CfgError(f"{s.where()}: expected layer numbers in layers=, got {text!r}") from None
            shapes = [self._shape_of(i, index, s) for i in sources]
            if any(sh[1:] != shapes[0][1:] for sh in shapes):
                raise CfgError(f"{s.where()}: routes layers of different sizes {[sh[1:] for sh in shapes]}")
            return nn.Identity(), (sum(sh[0] for sh in shapes), *shapes[0][1:]), sources
        if kind == "shortcut":  # parse_shortcut
            source = s.integer("from")
            source = index + source if source < 0 else source
            if self._shape_of(source, index, s) != shape:
                raise CfgError(f"{s.where()}: adds layer {source} of shape {self.infos[source].shape} to {shape}")
            return _activation(s, "linear"), shape, (source, index - 1)
        if kind == "upsample":  # parse_upsample
            stride = s.integer("stride", 2)
            return Upsample(stride, s.number("scale", 1.0)), (c, h * stride, w * stride), ()
        if kind == "reorg":  # parse_reorg
            stride = s.integer("stride", 1)
            if h % stride or w % stride or c % (stride * stride):
                raise CfgError(f"{s.where()}: cannot reorg {shape} by stride {stride}")
            return Reorg(stride), (c * stride * stride, h // stride, w // stride), ()
        if kind == "avgpool":  # parse_avgpool
            return GlobalAvgPool(), (c, 1, 1), ()
        if kind == "connected":  # parse_connected
            output = s.integer("output", 1)
            if s.integer("batch_normalize", 0):
                raise CfgError(f"{s.where()}: batch_normalize=1 in [connected] is not implemented here")
            return CfgConnected(nn.Linear(c * h * w, output), _activation(s, "logistic")), (output, 1, 1), ()
        if kind == "dropout":  # parse_dropout
            probability = s.number("probability", 0.5)
            if not 0 <= probability < 1:
                raise CfgError(f"{s.where()}: probability must be in [0, 1), got {probability}")
            return nn.Dropout(probability), shape, ()
        if kind == "region":  # parse_region
            num, classes, coords = s.integer("num", 1), s.integer("classes", 20), s.integer("coords", 4)
            if c != num * (coords + 1 + classes):
                raise CfgError(f"{s.where()}: num={num}, classes={classes} need {num * (coords + 1 + classes)} "
                               f"channels, the layer before gives {c}")  # fmt: skip
            anchors = s.numbers("anchors")
            if len(anchors) != 2 * num:
                raise CfgError(f"{s.where()}: expected {2 * num} anchor numbers (num={num}), got {len(anchors)}")
            return nn.Identity(), shape, ()
        if kind == "yolo":  # parse_yolo
            classes, total = s.integer("classes", 20), s.integer("num", 1)
            mask = [int(v) for v in s.numbers("mask")] or list(range(total))
            if c != len(mask) * (4 + 1 + classes):
                raise CfgError(f"{s.where()}: mask of {len(mask)} anchors and classes={classes} need "
                               f"{len(mask) * (5 + classes)} channels, the layer before gives {c}")  # fmt: skip
            anchors = s.numbers("anchors")
            if len(anchors) != 2 * total or any(not 0 <= m < total for m in mask):
                raise CfgError(f"{s.where()}: expected {2 * total} anchor numbers (num={total}) and mask indices "
                               f"below num, got {len(anchors)} numbers and mask {mask}")  # fmt: skip
            return nn.Identity(), shape, ()
        if kind == "detection":  # parse_detection
            side, num = s.integer("side", 7), s.integer("num", 1)
            classes, coords = s.integer("classes", 1), s.integer("coords", 1)
            need = side * side * ((1 + coords) * num + classes)
            if c * h * w != need:
                raise CfgError(f"{s.where()}: side={side}, num={num}, classes={classes}, coords={coords} need "
                               f"{need} inputs, the layer before gives {c * h * w}")  # fmt: skip
            return nn.Identity(), shape, ()
        # softmax (a classifier's head) and cost (training only) compute nothing we return
        return nn.Identity(), shape, ()

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        kept: dict[int, Tensor] = {}
        heads = []
        for index, (module, info) in enumerate(zip(self.layers, self.infos, strict=True)):
            kind = info.section.kind
            if kind == "route":
                x = torch.cat([kept[i] for i in info.sources], dim=1)
            elif kind == "shortcut":
                x = module(kept[info.sources[0]] + x)
            elif kind in HEADS:
                heads.append(x.flatten(1) if kind in ("detection", "softmax") else x)  # the raw head input
            else:
                x = module(x)
            if index in self._kept:
                kept[index] = x
        return heads[0] if len(heads) == 1 else tuple(heads)

    def weighted_layers(self) -> list[WeightedLayer]:
        """The layers with weights, in cfg order, for ``load_darknet_weights(..., layers=...)``."""
        found = []
        for index, module in enumerate(self.layers):
            if isinstance(module, CfgConv):
                found.append(WeightedLayer(index, module.conv, module.bn))
            elif isinstance(module, CfgConnected):
                found.append(WeightedLayer(index, module.linear))
        return found

    def head_options(self, kind: str) -> list[Section]:
        """The sections of the heads of one kind (``"yolo"``, ``"region"``, ...), in cfg order."""
        return [self.infos[i].section for i in self.heads if self.infos[i].section.kind == kind]

    def summary(self) -> list[str]:
        """One line a layer, as Darknet prints its layer table: number, type, output shape."""
        return [f"{i:>3} {info.section.kind:<13} -> {info.shape[2]:>4} x{info.shape[1]:>4} x{info.shape[0]:>5}"
                for i, info in enumerate(self.infos)]  # fmt: skip


def build_network(cfg: str | os.PathLike | list[Section]) -> CfgNetwork:
    """The network of a cfg: a path, the text of one (it contains a newline), or parsed sections."""
    if isinstance(cfg, list):
        sections = cfg
    elif isinstance(cfg, str) and "\n" in cfg:
        sections = parse_cfg(cfg)
    else:
        sections = read_cfg(cfg)
    return CfgNetwork(sections)


def darknet_bflops(network: CfgNetwork) -> float:
    """Billions of floating-point operations as Darknet's layer table adds them up: 2 x the
    multiply-adds of each ``[convolutional]`` layer (``make_convolutional_layer``'s ``l.bflops``)."""
    total = 0
    for module, info in zip(network.layers, network.infos, strict=True):
        if isinstance(module, CfgConv):
            conv = module.conv
            total += 2 * conv.weight.numel() * math.prod(info.shape[1:])
    return total / 1e9
