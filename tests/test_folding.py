"""BatchNorm folded into the convolutions: the same outputs on every builder, the original untouched."""

from __future__ import annotations

import pytest
import torch
from cfg_texts import yolov2_tiny_cfg

from yolo_lessons.darknet.book_weights import load_book_model
from yolo_lessons.darknet.cfg import build_network
from yolo_lessons.models import (
    darknet19,
    darknet53,
    resnet50,
    small_yolov2,
    small_yolov3,
    yolov1,
    yolov1_resnet50,
    yolov2,
    yolov2_tiny,
    yolov2_tiny_voc,
    yolov3,
    yolov3_tiny,
)
from yolo_lessons.models.folding import count_batchnorms, fold_batchnorm, folded_conv

BUILDERS = {
    "darknet19": (darknet19, 64),
    "darknet53": (darknet53, 64),
    "yolov1 with BatchNorm": (lambda: yolov1(batch_norm=True), 448),
    "yolov1_resnet50": (yolov1_resnet50, 288),
    "resnet50": (resnet50, 64),
    "yolov2": (yolov2, 96),
    "yolov3": (yolov3, 64),
    "small_yolov2": (small_yolov2, 96),
    "small_yolov3": (small_yolov3, 96),
    "yolov2_tiny_voc": (yolov2_tiny_voc, 96),
    "yolov2_tiny": (yolov2_tiny, 96),
    "yolov3_tiny": (yolov3_tiny, 96),
    "the book's trained model": (load_book_model, 96),
    "a cfg network": (lambda: build_network(yolov2_tiny_cfg()), 96),
}


def randomize_statistics(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)


def _owner(model: torch.nn.Module, key: str) -> torch.nn.Module:
    return model.get_submodule(key.rsplit(".", 1)[0]) if "." in key else model


def outputs(model, x):
    with torch.no_grad():
        out = model(x)
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_folding_keeps_the_outputs_and_removes_every_batchnorm(name):
    builder, side = BUILDERS[name]
    torch.manual_seed(0)
    model = builder()
    if name != "the book's trained model":
        randomize_statistics(model)
    model.eval()
    folds = (torch.nn.Conv2d, torch.nn.BatchNorm2d)  # what folding touches (not YOLOv1's 205 M-weight Linear)
    before = {k: v.clone() for k, v in model.state_dict().items() if isinstance(_owner(model, k), folds)}
    folded = fold_batchnorm(model)
    assert count_batchnorms(model) > 0 and count_batchnorms(folded) == 0
    x = torch.rand(1 if side > 300 else 2, 3, side, side)
    for a, b in zip(outputs(folded, x), outputs(model, x), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the original untouched
    assert [n for n, _ in folded.named_modules()] == [n for n, _ in model.named_modules()]  # same tree


def test_the_folded_convolution_by_hand():
    # one channel: conv weight 2, BatchNorm gamma 3, beta 1, mean 4, var 15 (eps 1): s = 3 / 4
    conv = torch.nn.Conv2d(1, 1, 1, bias=False)
    bn = torch.nn.BatchNorm2d(1, eps=1.0)
    with torch.no_grad():
        conv.weight.fill_(2.0)
        bn.weight.fill_(3.0), bn.bias.fill_(1.0), bn.running_mean.fill_(4.0), bn.running_var.fill_(15.0)
    fused = folded_conv(conv, bn)
    assert float(fused.weight.detach()) == 1.5  # 2 * 3/4
    assert float(fused.bias.detach()) == -2.0  # 1 + (0 - 4) * 3/4
