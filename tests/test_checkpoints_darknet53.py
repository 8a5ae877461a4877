"""The chapter 5 checkpoints accept the reference answers and name each known mistake."""

from __future__ import annotations

import pytest
from torch import nn

from yolo_lessons import ConvBlock, ResidualBlock, count_parameters, count_weighted_layers, darknet53
from yolo_lessons.checkpoints.common import WIDTH, CheckpointError
from yolo_lessons.checkpoints.darknet53 import (
    check_darknet_counts,
    check_residual_block,
    check_stage,
    reference_darknet,
)

# --- Exercise 1: the residual block, from plain layers ------------------------------------------


class RawResidualBlock(nn.Module):
    """The reference answer: conv/BN/leaky twice, then add the input back."""

    def __init__(self, channels: int, slope: float = 0.1, bias: bool = False, kernels=(1, 3)):
        super().__init__()
        half = channels // 2
        self.conv1 = nn.Conv2d(channels, half, kernels[0], padding=kernels[0] // 2, bias=bias)
        self.bn1 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, channels, kernels[1], padding=kernels[1] // 2, bias=bias)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act = nn.LeakyReLU(slope)

    def branch(self, x):
        return self.act(self.bn2(self.conv2(self.act(self.bn1(self.conv1(x))))))

    def forward(self, x):
        return x + self.branch(x)


class NoSkip(RawResidualBlock):
    def forward(self, x):
        return self.branch(x)


class ActivationAfterAdd(RawResidualBlock):
    def forward(self, x):
        return self.act(x + self.branch(x))


class UnusedBatchNorm(RawResidualBlock):
    def forward(self, x):
        y = self.act(self.bn1(self.conv1(x)))
        return x + self.act(self.conv2(y))  # bn2 is built but skipped


class SwappedKernels(RawResidualBlock):
    def __init__(self, channels: int):
        super().__init__(channels, kernels=(3, 1))


class NotDoneYet(nn.Module):
    def __init__(self, channels: int):
        raise NotImplementedError("1x1 conv to half the channels, 3x3 back, add the input")


def test_residual_block_check_accepts_plain_layers_and_the_package_block(capsys):
    check_residual_block(RawResidualBlock)
    check_residual_block(ResidualBlock)
    report = capsys.readouterr().out
    assert "20,672 parameters" in report  # 64*32 + 2*32 (1x1 + BN) + 32*64*9 + 2*64 (3x3 + BN)
    assert report.count("same output as yolo_lessons.ResidualBlock with the same weights") == 2


@pytest.mark.parametrize(
    ("wrong", "named"),
    [
        (NoSkip, "missing residual addition"),
        (ActivationAfterAdd, "activation after the addition"),
        (UnusedBatchNorm, "BatchNorm is built but never used"),
        (lambda c: RawResidualBlock(c, bias=True), "conv bias before BatchNorm"),
        (lambda c: RawResidualBlock(c, slope=0.01), "LeakyReLU slope is 0.01"),
        (SwappedKernels, "kernel sizes are swapped"),
        (NotDoneYet, "not implemented yet"),
    ],
)
def test_residual_block_check_names_each_known_mistake(wrong, named):
    with pytest.raises(CheckpointError, match=named):
        check_residual_block(wrong)


def test_residual_block_check_reports_wrong_widths_with_parameter_counts():
    class FullWidth(RawResidualBlock):  # the 1x1 conv keeps all channels instead of halving them
        def __init__(self, channels):
            super().__init__(channels)
            self.conv1 = nn.Conv2d(channels, channels, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    with pytest.raises(CheckpointError, match="expected 20,672 parameters .*, got 41,216"):
        check_residual_block(FullWidth)


# --- Exercise 2: counting layers and parameters -------------------------------------------------


def count_darknet(blocks, num_classes=1000):
    """The reference answer, by formula: no network is built."""
    layers, params, channels = 1, 3 * 32 * 9 + 2 * 32, 32  # stem conv + its BN
    for n in blocks:
        params += channels * 2 * channels * 9 + 2 * 2 * channels  # stride-2 conv + BN
        channels *= 2
        half = channels // 2
        params += n * (channels * half + 2 * half + half * channels * 9 + 2 * channels)
        layers += 1 + 2 * n
    return layers + 1, params + channels * num_classes + num_classes


def test_reference_darknet_is_darknet53_for_its_stage_depths():
    # YOLOv3 paper, Table 1: 52 convs + "Connected 1000"; the package's docstring pins 41,609,928.
    net = reference_darknet((1, 2, 8, 8, 4), 1000)
    assert count_weighted_layers(net) == 53
    assert count_parameters(net) == count_parameters(darknet53()) == 41_609_928


def test_counts_check_accepts_the_formula(capsys):
    check_darknet_counts(count_darknet)
    out = capsys.readouterr().out
    assert "blocks=(1, 2, 8, 8, 4), classes=1000: 53 layers, 41,609,928 parameters: ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH


def _off_by(layers=lambda b, k: 0, params=lambda b, k: 0):
    """A wrong answer: the reference counts shifted by what one known mistake shifts them by."""

    def wrong(blocks, num_classes=1000):
        right_layers, right_params = count_darknet(blocks, num_classes)
        return right_layers + layers(blocks, num_classes), right_params + params(blocks, num_classes)

    return wrong


def _bn_channels(blocks):
    channels, total = 32, 32
    for n in blocks:
        channels *= 2
        total += channels + n * (channels // 2 + channels)
    return total


@pytest.mark.parametrize(
    ("wrong", "named"),
    [
        (_off_by(layers=lambda b, k: -1), "the classifier is missing"),
        (_off_by(layers=lambda b, k: -sum(b)), "two convs"),  # a residual block counted as one layer
        (_off_by(layers=lambda b, k: sum(b)), r"\[shortcut\] is an addition"),
        (_off_by(layers=lambda b, k: -len(b)), "downsampling conv"),
        (_off_by(params=lambda b, k: -k), "classifier's bias is missing"),
        (_off_by(params=lambda b, k: -(32 * 2 ** len(b) + 1) * k), "classifier's parameters"),
        (_off_by(params=lambda b, k: -2 * _bn_channels(b)), "gamma and beta"),
        (_off_by(params=lambda b, k: 2 * _bn_channels(b)), "buffers, not parameters"),
        (_off_by(params=lambda b, k: _bn_channels(b)), "no bias"),
    ],
)
def test_counts_check_names_each_known_mistake(wrong, named):
    with pytest.raises(CheckpointError, match=named):
        check_darknet_counts(wrong)


def test_counts_check_reports_unknown_wrong_numbers_and_stubs():
    with pytest.raises(CheckpointError, match="expected params = 41,609,928, got 41,609,929"):
        check_darknet_counts(_off_by(params=lambda b, k: 1))
    with pytest.raises(CheckpointError, match="tuple of two integers"):
        check_darknet_counts(lambda blocks, num_classes: 53)

    def stub(blocks, num_classes=1000):
        raise NotImplementedError("count per stage")

    with pytest.raises(CheckpointError, match="not implemented yet"):
        check_darknet_counts(stub)


# --- Exercise 3: one stage ----------------------------------------------------------------------


def make_stage(in_channels, channels, blocks):
    return nn.Sequential(
        ConvBlock(in_channels, channels, 3, stride=2), *[ResidualBlock(channels) for _ in range(blocks)]
    )


def test_stage_check_accepts_the_package_layout(capsys):
    check_stage(make_stage)
    out = capsys.readouterr().out
    assert "(2, 64, 16, 16) -> (2, 128, 8, 8), 15x15 -> 8x8: ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH
    # Darknet-53's second stage is exactly this layout.
    model = darknet53()
    assert [k for k in model.stages[1].state_dict()] == [k for k in make_stage(64, 128, 2).state_dict()]


def test_stage_check_names_a_max_pool_downsample():
    def pooled(in_channels, channels, blocks):  # Darknet-19's way of halving the size
        return nn.Sequential(
            nn.MaxPool2d(2, 2), ConvBlock(in_channels, channels, 3), *[ResidualBlock(channels)] * blocks
        )

    with pytest.raises(CheckpointError, match="max-pool"):
        check_stage(pooled)


def test_stage_check_names_a_missing_stride():
    def no_stride(in_channels, channels, blocks):
        return nn.Sequential(ConvBlock(in_channels, channels, 3), *[ResidualBlock(channels) for _ in range(blocks)])

    with pytest.raises(CheckpointError, match="does not downsample.*stride=2"):
        check_stage(no_stride)


def test_stage_check_reports_a_wrong_number_of_blocks():
    with pytest.raises(CheckpointError, match=r"expected 5 convs .*, found 3"):
        check_stage(lambda i, c, b: make_stage(i, c, b - 1))


def test_stage_check_compares_outputs_after_loading_the_package_weights():
    class SkipsLastBlock(nn.Sequential):  # right layers and keys, but the last block never runs
        def forward(self, x):
            for layer in list(self)[:-1]:
                x = layer(x)
            return x

    with pytest.raises(CheckpointError, match="differs from the reference's with the same weights"):
        check_stage(lambda i, c, b: SkipsLastBlock(*make_stage(i, c, b)))


# --- behaviour, not creation order: right answers written differently, more wrong ones ----------


class BackwardsCreatedBlock(nn.Module):
    """Right answer: the 3x3 conv and its BatchNorm created first, a leftover module, a print."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn_b = nn.BatchNorm2d(channels)
        self.conv_b = nn.Conv2d(channels // 2, channels, 3, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(channels // 2)
        self.conv_a = nn.Conv2d(channels, channels // 2, 1, bias=False)
        self.first_try = nn.Conv2d(channels, channels, 1)  # an earlier attempt, never called
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x):
        print("input", tuple(x.shape))
        y = self.act(self.bn_a(self.conv_a(x)))
        return x + self.act(self.bn_b(self.conv_b(y)))


class NoSecondActivation(RawResidualBlock):
    def forward(self, x):
        y = self.act(self.bn1(self.conv1(x)))
        return x + self.bn2(self.conv2(y))


def test_residual_block_check_copies_weights_by_role_not_creation_order(capsys):
    check_residual_block(BackwardsCreatedBlock)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "residual block (64 channels): 20,672 parameters, a 1x1 then a 3x3 conv: ok"
    assert "|   input (2, 64, 8, 8)" in lines  # shown on a note line, not compared


def test_residual_block_check_names_a_missing_second_activation():
    with pytest.raises(CheckpointError, match="the 3x3 conv's LeakyReLU is missing"):
        check_residual_block(NoSecondActivation)


class StageModule(nn.Module):
    """Right answer that is not an nn.Sequential: blocks created before the downsampling conv."""

    def __init__(self, in_channels, channels, blocks):
        super().__init__()
        self.blocks = nn.ModuleList(ResidualBlock(channels) for _ in range(blocks))
        self.down = ConvBlock(in_channels, channels, 3, stride=2)

    def forward(self, x):
        x = self.down(x)
        for block in self.blocks:
            x = block(x)
        return x


def test_stage_check_accepts_another_module_with_the_same_behaviour(capsys):
    check_stage(StageModule)
    out = capsys.readouterr().out
    assert "238,592 parameters, the same output as the package's stage" in out
    assert "| the exercise asks for an nn.Sequential" in out


def test_stage_check_fails_padding_zero_on_odd_sides():
    def unpadded(in_channels, channels, blocks):  # 16 -> 7 and 15 -> 7 instead of 8 and 8
        stage = make_stage(in_channels, channels, blocks)
        stage[0].conv.padding = (0, 0)
        return stage

    with pytest.raises(CheckpointError, match=r"expected an output of shape \(2, 128, 8, 8\), got \(2, 128, 7, 7\)"):
        check_stage(unpadded)


@pytest.mark.parametrize(
    ("wrong", "named"),
    [
        (lambda blocks, num_classes=1000: tuple(float(v) for v in count_darknet(blocks, num_classes)), "is a float"),
        (lambda blocks, num_classes=1000: [True, 1], "is a bool"),
    ],
)
def test_counts_check_wants_plain_ints(wrong, named):
    with pytest.raises(CheckpointError, match=named):
        check_darknet_counts(wrong)


def test_reference_darknet_has_the_packages_conv_classifier_and_counts():
    # darknet53.cfg's classifier is a 1x1 conv on the pooled map: 1024 * 1000 + 1000 parameters, like a Linear
    net = reference_darknet((1, 2, 8, 8, 4))
    assert isinstance(net[-2], nn.Conv2d) and net[-2].kernel_size == (1, 1)
    assert count_weighted_layers(net) == 53
