"""The YOLOv1 chapter's checkpoints: the reference answers pass, each known mistake is named."""

import pytest
import torch

from yolo_lessons.checkpoints.common import CheckpointError
from yolo_lessons.checkpoints.yolov1 import (
    check_darknet_to_cell_major,
    check_freeze_backbone,
    check_output_length,
)
from yolo_lessons.detection.decode import darknet_to_cell_major
from yolo_lessons.models.yolov1 import yolov1_output_length


def fails_with(check, answer, *words):
    with pytest.raises(CheckpointError) as info:
        check(answer)
    for word in words:
        assert word in str(info.value), str(info.value)


# --- output length ---------------------------------------------------------------------


def test_reference_output_length_passes(capsys):
    check_output_length(yolov1_output_length)
    assert "ok" in capsys.readouterr().out


def test_classes_per_box_when_shared_is_named():
    fails_with(
        check_output_length, lambda s, b, c, per_box: s * s * b * (5 + c), "one class distribution per cell"
    )


def test_classes_per_cell_when_per_box_is_named():
    fails_with(check_output_length, lambda s, b, c, per_box: s * s * (b * 5 + c), "its own C classes")


def test_grid_counted_once_is_named():
    fails_with(
        check_output_length, lambda s, b, c, per_box: s * (b * (5 + c) if per_box else b * 5 + c), "S*S cells"
    )


def test_missing_confidence_is_named():
    fails_with(
        check_output_length,
        lambda s, b, c, per_box: s * s * (b * (4 + c) if per_box else b * 4 + c),
        "confidence is missing",
    )


def test_unknown_length_mistake_says_expected_and_got():
    fails_with(check_output_length, lambda s, b, c, per_box: 1, "expected 1470, got 1")


def test_unfinished_output_length_says_not_implemented():
    def stub(s, b, c, per_box):
        raise NotImplementedError("S*S cells")

    fails_with(check_output_length, stub, "not implemented yet")


# --- Darknet layout -> cell-major --------------------------------------------------------


def _split(x, s, b, c):
    cells = s * s
    probs = x[:, : cells * c].reshape(-1, cells, c)
    conf = x[:, cells * c : cells * (c + b)].reshape(-1, cells, b, 1)
    boxes = x[:, cells * (c + b) :].reshape(-1, cells, b, 4)
    return probs, conf, boxes


def test_reference_conversion_passes(capsys):
    check_darknet_to_cell_major(darknet_to_cell_major)
    assert "ok" in capsys.readouterr().out


def test_boxes_read_before_confidences_is_named():
    def wrong(x, s, b, c):
        cells = s * s
        probs = x[:, : cells * c].reshape(-1, cells, c)
        boxes = x[:, cells * c : cells * c + cells * b * 4].reshape(-1, cells, b, 4)
        conf = x[:, cells * c + cells * b * 4 :].reshape(-1, cells, b, 1)
        return torch.cat([torch.cat([boxes, conf], -1).flatten(2), probs], -1).flatten(1)

    fails_with(check_darknet_to_cell_major, wrong, "boxes read before the confidences")


def test_classes_first_in_a_cell_is_named():
    def wrong(x, s, b, c):
        probs, conf, boxes = _split(x, s, b, c)
        return torch.cat([probs, torch.cat([boxes, conf], -1).flatten(2)], -1).flatten(1)

    fails_with(check_darknet_to_cell_major, wrong, "classes come first")


def test_confidence_before_coordinates_is_named():
    def wrong(x, s, b, c):
        probs, conf, boxes = _split(x, s, b, c)
        return torch.cat([torch.cat([conf, boxes], -1).flatten(2), probs], -1).flatten(1)

    fails_with(check_darknet_to_cell_major, wrong, "confidence comes before x, y, w, h")


def test_rows_and_columns_swapped_is_named():
    def wrong(x, s, b, c):
        return darknet_to_cell_major(x, s, b, c).view(x.shape[0], s, s, -1).transpose(1, 2).flatten(1)

    fails_with(check_darknet_to_cell_major, wrong, "rows and columns swapped")


def test_grid_shaped_result_is_asked_to_be_flat():
    def wrong(x, s, b, c):
        return darknet_to_cell_major(x, s, b, c).view(x.shape[0], s, s, -1)

    fails_with(check_darknet_to_cell_major, wrong, "right order", "(2, 126)")


def test_unknown_conversion_mistake_shows_first_difference():
    fails_with(check_darknet_to_cell_major, lambda x, s, b, c: x.clone(), "first difference")


# --- freezing the backbone ---------------------------------------------------------------


def freeze_by_wrapping_train(model):
    """The chapter's reference answer: the package's YOLOv1ResNet50.train(), on one model."""
    model.backbone.requires_grad_(False)
    train_all = model.train

    def train(mode=True):
        train_all(mode)
        model.backbone.eval()
        return model

    model.train = train


def test_reference_freeze_passes(capsys):
    check_freeze_backbone(freeze_by_wrapping_train)
    out = capsys.readouterr().out
    assert "trainable: 2,369,536 (the head) ok" in out  # 2048*1024 + 2*1024 + 1024*256 + 2*256 + 256*30
    assert "frozen: 23,508,032 (the ResNet-50 backbone) ok" in out  # ResNet-50's 25,557,032 less fc's 2,049,000
    assert "unchanged ok" in out


def test_the_packages_own_freezing_passes():
    check_freeze_backbone(lambda model: model.freeze_backbone())


def test_freezing_with_a_forward_pre_hook_passes():
    def freeze(model):
        for p in model.backbone.parameters():
            p.requires_grad = False
        def keep_backbone_in_eval(module, inputs):
            module.backbone.eval()  # returns None: the inputs go on unchanged

        model.register_forward_pre_hook(keep_backbone_in_eval)

    check_freeze_backbone(freeze)


def test_freezing_by_making_the_backbones_train_a_no_op_passes():
    def freeze(model):
        model.backbone.requires_grad_(False).eval()
        model.backbone.train = lambda mode=True: model.backbone  # model.train() calls it per child

    check_freeze_backbone(freeze)


def test_eval_called_once_is_undone_by_model_train():
    def wrong(model):
        model.backbone.requires_grad_(False)
        model.backbone.eval()  # model.train() later puts it back in training mode

    # ResNet-50 has 53 BatchNorm layers (1 stem + 16 blocks x 3 + 4 downsample); all of them move
    fails_with(
        check_freeze_backbone,
        wrong,
        "after model.train() 53 of the backbone's 53 BatchNorm layers are back in training mode",
        "running statistics of 53 of them",
        "A single eval() does not last",
    )


def test_gradients_stopped_without_eval_is_undone_by_model_train():
    fails_with(check_freeze_backbone, lambda model: model.backbone.requires_grad_(False), "back in training mode")


def test_zero_momentum_keeps_statistics_but_still_normalises_with_the_batch():
    def wrong(model):
        model.backbone.requires_grad_(False)
        for m in model.backbone.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 0.0  # running statistics stay, but training mode uses the batch's own

    fails_with(check_freeze_backbone, wrong, "did not move", "each batch's own statistics")


def test_keeping_the_whole_model_in_eval_is_named():
    def wrong(model):
        model.backbone.requires_grad_(False)
        # every mode call becomes eval: the head's dropout and BatchNorm never train
        model.train = lambda mode=True: torch.nn.Module.train(model, False)

    fails_with(check_freeze_backbone, wrong, "the head is not in training mode")


def test_eval_instead_of_requires_grad_is_named():
    fails_with(check_freeze_backbone, lambda model: model.backbone.eval(), "nothing was frozen")


def test_requires_grad_attribute_on_the_module_is_named():
    def wrong(model):
        model.backbone.requires_grad = False  # sets a plain attribute; no parameter changes

    fails_with(check_freeze_backbone, wrong, "nothing was frozen")


def test_freezing_only_conv_weights_is_named():
    def wrong(model):
        for m in model.backbone.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.requires_grad_(False)

    fails_with(check_freeze_backbone, wrong, "BatchNorm weights and biases still train")


def test_freezing_the_whole_model_is_named():
    fails_with(check_freeze_backbone, lambda model: model.requires_grad_(False), "head was frozen too")


def test_output_length_check_wants_an_int_not_an_equal_float():
    with pytest.raises(CheckpointError, match="1470.0 is a float"):
        check_output_length(lambda S, B, C, class_per_box: float(yolov1_output_length(S, B, C, class_per_box)))
