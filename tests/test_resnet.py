"""ResNet-50 (He et al. 2016, Table 1) with torchvision's key names, and its checked loader."""

import pytest
import torch

from yolo_lessons import count_parameters
from yolo_lessons.models.resnet import load_torchvision_state_dict, resnet50


def test_resnet50_parameter_counts_match_torchvision():
    # torchvision's resnet50() has 25,557,032 parameters; its fc (2048*1000 + 1000 = 2,049,000)
    # removed leaves the 23,508,032 of the backbone.
    assert count_parameters(resnet50()) == 25_557_032
    assert count_parameters(resnet50(num_classes=0)) == 23_508_032


def test_resnet50_has_3_4_6_3_bottlenecks_and_50_weighted_layers():
    model = resnet50()
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    # 1 stem conv + 16 blocks * 3 convs + fc = 50; the 4 downsample convs are not counted by the name
    main_path = [
        n
        for n, m in model.named_modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and "downsample" not in n
    ]
    assert len(main_path) == 50


def test_state_dict_uses_torchvision_key_names():
    keys = resnet50().state_dict().keys()
    for key in (
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv1.weight",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.num_batches_tracked",
        "layer4.2.bn3.bias",
        "fc.weight",
        "fc.bias",
    ):
        assert key in keys
    assert "layer1.1.downsample.0.weight" not in keys  # only a block's first unit changes shape


def test_features_are_stride_32_with_2048_channels():
    with torch.inference_mode():
        out = resnet50(num_classes=0).eval().features(torch.zeros(1, 3, 64, 96))
    assert out.shape == (1, 2048, 2, 3)


def test_loading_a_generated_state_dict_copies_every_tensor_and_skips_fc_for_a_backbone():
    torch.manual_seed(0)
    source = resnet50()  # stands in for a torchvision checkpoint: same keys, same shapes
    with torch.no_grad():
        for tensor in source.state_dict().values():
            if tensor.is_floating_point():
                tensor.uniform_(0.5, 1.5)
    backbone = resnet50(num_classes=0)
    load_torchvision_state_dict(backbone, source.state_dict())
    for key, tensor in backbone.state_dict().items():
        assert torch.equal(tensor, source.state_dict()[key]), key


def test_loading_reports_missing_unexpected_and_mismatched_keys_and_changes_nothing():
    model = resnet50(num_classes=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = {k: torch.ones_like(v) for k, v in model.state_dict().items()}
    del bad["layer2.0.conv2.weight"]
    bad["layer5.0.conv1.weight"] = torch.ones(1)
    bad["conv1.weight"] = torch.ones(64, 3, 3, 3)
    with pytest.raises(ValueError) as info:
        load_torchvision_state_dict(model, bad)
    message = str(info.value)
    assert "missing key(s): layer2.0.conv2.weight" in message
    assert "unexpected key(s): layer5.0.conv1.weight" in message
    assert "conv1.weight: expected (64, 3, 7, 7), got (64, 3, 3, 3)" in message
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[key]), f"{key} changed although loading failed"


def test_a_classifier_needs_the_fc_keys():
    model = resnet50()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    with pytest.raises(ValueError, match="missing key"):
        load_torchvision_state_dict(model, state)
