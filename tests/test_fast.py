"""``fast(model)``: a copy for CPU inference with the outputs of the original, which is left as it was."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from yolo_lessons.darknet.book_weights import load_book_model
from yolo_lessons.data.shapes import SHAPE_CLASSES, make_image
from yolo_lessons.detection.inference import detect
from yolo_lessons.models import ConvBlock, darknet53, fast, small_yolov2, yolov3
from yolo_lessons.models.folding import count_batchnorms

MODELS = {  # builder, input side (batch 1)
    "the book's trained small_yolov2": (load_book_model, 96),
    "small_yolov2": (small_yolov2, 96),
    "darknet53 at 256": (darknet53, 256),
    "yolov3 at 64": (yolov3, 64),
}


def randomize_statistics(model: torch.nn.Module) -> None:
    """BatchNorm numbers a trained network could have (fresh ones are 0, 1: folding them changes little)."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)


def as_tuple(output):
    return output if isinstance(output, tuple) else (output,)


@functools.cache
def eager(name: str):
    """The model (seeded; BatchNorm numbers randomized but for the trained one), an input, its eval-mode outputs."""
    builder, side = MODELS[name]
    torch.manual_seed(0)
    model = builder()
    if "trained" not in name:
        randomize_statistics(model)
    x = torch.rand(1, 3, side, side)
    with torch.inference_mode():
        return model, x, as_tuple(model.eval()(x))


# Both layouts on the book's model; the big ones in the default, channels-last (contiguous, fast() is
# fold_batchnorm plus no gradients, which tests/test_folding.py checks on every builder).
CASES = [(name, True) for name in MODELS] + [("the book's trained small_yolov2", False)]


@pytest.mark.parametrize("name, channels_last", CASES, ids=[f"{n}-{'nhwc' if c else 'nchw'}" for n, c in CASES])
def test_fast_gives_the_outputs_of_the_model_in_eval_mode(name, channels_last):
    model, x, want = eager(name)
    quick = fast(model, channels_last=channels_last)
    with torch.inference_mode():
        got = as_tuple(quick(x))
    for a, b in zip(got, want, strict=True):
        assert a.is_contiguous()  # back in (N, C, H, W): the decoders view() it
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))  # the 1e-5 relative


def test_fast_returns_a_new_model_of_the_same_class_and_leaves_the_original_alone():
    torch.manual_seed(0)
    model = small_yolov2().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    quick = fast(model, channels_last=True)
    assert type(quick) is type(model)  # so detect() and the decoders still know its head
    assert not quick.training and count_batchnorms(quick) == 0  # eval mode, every BatchNorm folded
    assert not any(p.requires_grad for p in quick.parameters())  # autograd records nothing
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in quick.parameters() if p.dim() == 4)
    assert model.training and count_batchnorms(model) == 15  # 15 ConvBlocks: 11 in stages, 2 extra, passthrough, fuse
    assert all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


class TwoBlocks(torch.nn.Module):
    """Two ConvBlocks and a residual add: the smallest network with YOLOv3's kinds of layer."""

    def __init__(self):
        super().__init__()
        self.a, self.b = ConvBlock(3, 8, 3), ConvBlock(8, 8, 1)

    def forward(self, x):
        y = self.a(x)
        return y + self.b(y)


def test_compile_really_freezes_the_weights_and_keeps_the_outputs(monkeypatch):
    # A real compile of a tiny network (seconds): Inductor's freeze() must run, which it does only when
    # freezing is on while Dynamo traces; torch.compile(options={"freezing": True}) alone does not do it.
    import torch._inductor.freezing as inductor_freezing

    frozen = []
    real_freeze = inductor_freezing.freeze
    monkeypatch.setattr(inductor_freezing, "freeze", lambda *a, **k: frozen.append(1) or real_freeze(*a, **k))
    torch.manual_seed(0)
    model = TwoBlocks()
    randomize_statistics(model)
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        want = model.eval()(x)
    quick = fast(model, compile=True)
    got = quick(x)  # outside inference_mode: fast()'s forward turns gradients off itself
    assert frozen, "Inductor did not freeze the weights"
    assert type(quick) is type(model) and quick is not model and not torch._inductor.config.freezing
    assert got.is_contiguous() and not got.requires_grad
    assert ((got - want).abs().max() / want.abs().max()).item() < 1e-5


def test_the_fast_book_model_finds_the_same_boxes():
    model = load_book_model()
    image, _ = make_image(250, seed=1000, size=128)  # a held-out shapes picture, letterboxed into 96
    picture = (image.transpose(1, 2, 0) * 255).round().astype(np.uint8)
    want = detect(model, picture, input_size=96, thresh=0.3, class_names=SHAPE_CLASSES)
    got = detect(fast(model, channels_last=True), picture, input_size=96, thresh=0.3, class_names=SHAPE_CLASSES)
    assert len(want) >= 1 and got.names == want.names
    torch.testing.assert_close(got.boxes, want.boxes, rtol=1e-4, atol=1e-3)  # pixels
    torch.testing.assert_close(got.scores, want.scores, rtol=1e-4, atol=1e-5)
