"""small_yolov3: a scaled-down YOLOv3, heads at strides 32, 16 and 8.

Numbers are counted by hand from SMALL_YOLOV3_STAGES and NECK_MULTIPLES at width 8,
3 classes, 3 anchors per head (3 * (5 + 3) = 24 output channels), a 128 x 128 input.
"""

from __future__ import annotations

import pytest
import torch

from yolo_lessons import count_multiply_adds, count_parameters, count_weighted_layers
from yolo_lessons.data.anchors import kmeans_anchors
from yolo_lessons.detection.decode import decode_yolov3
from yolo_lessons.losses.yolo_loss import assign_yolo_targets, yolo_loss
from yolo_lessons.models.small_yolov3 import DEFAULT_ANCHORS, MASKS, SmallYOLOv3, small_yolov3


def test_three_anchor_major_outputs_at_strides_32_16_8_for_128_pixels():
    model = small_yolov3(num_classes=3).eval()
    with torch.no_grad():
        outputs = model(torch.rand(2, 3, 128, 128))
    # 3 anchors * (5 + 3) = 24 channels; 128 / 32, 128 / 16, 128 / 8 cells
    assert [tuple(o.shape) for o in outputs] == [(2, 24, 4, 4), (2, 24, 8, 8), (2, 24, 16, 16)]
    assert model.strides == (32, 16, 8)
    detections = decode_yolov3(outputs, model.anchors, model.masks, 128)
    assert detections.boxes.shape == (2, 3 * (16 + 64 + 256), 4)  # 1,008 boxes per image
    assert detections.class_probs.shape == (2, 1008, 3)


def test_non_square_and_other_sizes_give_grids_of_side_over_each_stride():
    model = small_yolov3().eval()
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, 64, 96))
    assert [tuple(o.shape[2:]) for o in outputs] == [(2, 3), (4, 6), (8, 12)]


def test_trainable_parameters_at_width_8_counted_by_hand():
    # ConvBlock = conv weights + BN gamma and beta; a residual unit is a 1x1 to half, a 3x3 back.
    # stem 3->8 3x3: 216 + 16 = 232
    # stage 1: down 8->16: 1,152 + 32; unit 128 + 16 + 1,152 + 32: 2,512
    # stage 2: down 16->32: 4,608 + 64; unit 512 + 32 + 4,608 + 64: 9,888
    # stage 3: down 32->64: 18,432 + 128; unit 2,048 + 64 + 18,432 + 128: 39,232
    # stage 4: down 64->128: 73,728 + 256; unit 8,192 + 128 + 73,728 + 256: 156,288
    # stage 5: down 128->256: 294,912 + 512; unit 32,768 + 256 + 294,912 + 512: 623,872
    # backbone: 832,024
    # neck32 conv_set(256, 64): 16,512 + 73,984 + 8,320 + 73,984 + 8,320 = 181,120
    # detect32: 3x3 64->128 73,984 + 1x1 128->24 with bias 3,096 = 77,080; lateral16 64->32: 2,112
    # neck16 conv_set(32 + 128, 32): 5,184 + 18,560 + 2,112 + 18,560 + 2,112 = 46,528
    # detect16: 18,560 + 1,560 = 20,120; lateral8 32->16: 544
    # neck8 conv_set(16 + 64, 16): 1,312 + 4,672 + 544 + 4,672 + 544 = 11,744
    # detect8: 4,672 + 792 = 5,464
    # heads: 344,712; total 832,024 + 344,712 = 1,176,736
    assert count_parameters(small_yolov3()) == 1_176_736


def test_multiply_adds_and_weighted_layers_at_128_pixels():
    # output pixels x out channels x in channels x k*k per conv. Every backbone stage costs the
    # same 9,961,472 (a quarter of the pixels, twice the channels in and out): 4,718,592 for
    # the stride-2 conv, 5,242,880 for the residual unit; stem 16,384 * 216 = 3,538,944.
    # Heads: neck32 180,224 * 16 + detect32 76,800 * 16 + lateral16 2,048 * 16
    # + neck16 46,080 * 64 + detect16 19,968 * 64 + lateral8 512 * 64
    # + neck8 11,520 * 256 + detect8 5,376 * 256 = 12,730,368.
    # 3,538,944 + 5 * 9,961,472 + 12,730,368 = 66,076,672
    model = small_yolov3()
    assert count_multiply_adds(model, (3, 128, 128)) == 66_076_672
    # stem + 5 stages of 3 convs = 16; three heads: 3 * (5 + 2) + 2 laterals = 23
    assert count_weighted_layers(model) == 39


def test_upsampled_map_comes_first_in_each_concatenation():
    model = small_yolov3().eval()
    seen = {}
    model.neck16[0].conv.register_forward_hook(lambda m, i, o: seen.__setitem__("neck16", i[0]))
    model.neck8[0].conv.register_forward_hook(lambda m, i, o: seen.__setitem__("neck8", i[0]))
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        stride8, stride16, stride32 = model.feature_maps(x)
        model(x)
    # neck16 reads 32 upsampled channels, then the 128 of the stride-16 backbone map (yolov3.cfg
    # [route] -1, 61: the upsampled layer first); neck8: 16 upsampled, then 64 of stride 8.
    assert seen["neck16"].shape == (1, 32 + 128, 8, 8)
    assert torch.equal(seen["neck16"][:, 32:], stride16)
    assert seen["neck8"].shape == (1, 16 + 64, 16, 16)
    assert torch.equal(seen["neck8"][:, 16:], stride8)
    # the first channels are the lateral 1x1's output repeated 2 x 2 (nearest upsampling)
    up = seen["neck16"][:, :32]
    assert torch.equal(up[:, :, 0::2, 0::2], up[:, :, 1::2, 1::2])


def test_masks_give_the_three_smallest_anchors_to_the_finest_grid():
    assert MASKS == ((6, 7, 8), (3, 4, 5), (0, 1, 2))  # head order stride 32, 16, 8 (yolov3.cfg)
    model = small_yolov3(anchors=DEFAULT_ANCHORS)
    areas = [w * h for w, h in model.anchors.tolist()]
    per_head = [[areas[i] for i in mask] for mask in model.masks]
    assert max(per_head[2]) <= min(per_head[1]) and max(per_head[1]) <= min(per_head[0])


def test_kmeans_anchors_in_pixels_split_by_area_send_a_tiny_box_to_stride_8_and_a_big_one_to_32():
    shapes = torch.tensor([[4.0, 5], [6, 6], [8, 7], [12, 14], [16, 12], [20, 22], [40, 36], [50, 60], [70, 64]])
    anchors = kmeans_anchors(shapes.numpy(), 9, seed=0)  # nine shapes, nine clusters: the shapes themselves
    model = small_yolov3(anchors=anchors.tolist())
    # two boxes on a 128-pixel image, 4 x 5 and 70 x 64 pixels (as fractions): each equals an anchor
    truths = torch.tensor([[[0, 0.5, 0.5, 4 / 128, 5 / 128], [1, 0.3, 0.7, 70 / 128, 64 / 128]]])
    grids = [tuple(o.shape[2:]) for o in model(torch.rand(1, 3, 128, 128))]
    assignment = assign_yolo_targets(truths, [2], model.anchors, model.masks, 128, grids)
    assert assignment.anchor.tolist() == [0, 8]  # the smallest and the largest anchor
    assert assignment.scale.tolist() == [2, 0]  # head 2 is stride 8, head 0 is stride 32
    assert assignment.row.tolist() == [8, 2] and assignment.col.tolist() == [8, 1]  # 0.5 * 16; 0.7 * 4, 0.3 * 4


def test_yolo_loss_trains_it_end_to_end():
    torch.manual_seed(0)
    model = small_yolov3()
    truths = torch.tensor([[[2, 0.4, 0.6, 0.05, 0.06], [0, 0.5, 0.5, 0.4, 0.3]]])
    result = yolo_loss(list(model(torch.rand(1, 3, 128, 128))), truths, [2], model.anchors, model.masks, 3, 128)
    result.loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"anchors": [[1.0, 1.0]] * 5}, r"\(9, 2\) widths and heights in input pixels"),
        ({"anchors": list(reversed(DEFAULT_ANCHORS))}, "sorted by area"),
        ({"anchors": [[0.0, 1.0]] * 9}, "positive anchor"),
        ({"num_classes": 0}, "num_classes"),
        ({"width": 0}, "width"),
        ({"heads": 2}, "heads 3"),
    ],
)
def test_bad_arguments_raise_value_errors_that_say_what_was_expected(kwargs, message):
    options = {"num_classes": 3, "anchors": DEFAULT_ANCHORS, "width": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        SmallYOLOv3(**options)


def test_input_not_a_multiple_of_32_is_refused():
    with pytest.raises(ValueError, match="multiples of 32"):
        small_yolov3()(torch.rand(1, 3, 100, 100))


def test_the_training_command_trains_small_yolov3_with_nine_pixel_anchors_and_reloads_it(tmp_path):
    from yolo_lessons.train import model_from_checkpoint, parse_args, train

    options = parse_args(["--model", "small_yolov3", "--min-side", "0.1", "--max-side", "0.5"])
    assert options == {"model": "small_yolov3", "min_side": 0.1, "max_side": 0.5}
    history = train(steps=3, batch_size=2, image_size=32, width=4, threads=1, train_images=4, eval_images=4,
                    eval_every=3, progress=False, verbose=False, out=str(tmp_path), **options)
    assert len(history.losses) == 3 and set(history.parts) == {"coord", "obj", "noobj", "class"}  # yolo_loss
    assert len(history.anchors) == 9  # k-means, in input pixels: every side within the 32-pixel image
    assert all(0 < w <= 32 and 0 < h <= 32 for w, h in history.anchors)
    model = model_from_checkpoint(str(tmp_path / "checkpoint.pt"))
    assert isinstance(model, SmallYOLOv3) and model.anchors.tolist() == history.anchors


def test_the_training_command_refuses_other_than_nine_anchors_for_small_yolov3():
    from yolo_lessons.train import train

    with pytest.raises(ValueError, match="expected 9"):
        train(model="small_yolov3", num_anchors=5, out=None)


def test_one_head_predicts_with_all_nine_anchors_at_stride_16_on_the_same_backbone_and_neck():
    three, one = small_yolov3(heads=3), small_yolov3(heads=1)
    (output,) = one(torch.zeros(2, 3, 128, 128))
    assert output.shape == (2, 9 * (5 + 3), 8, 8)  # 128 / 16 = 8 cells, nine anchors of 5 + 3 channels
    assert one.masks == (tuple(range(9)),) and one.strides == (16,)
    # The backbone, the stride-32 conv set, the lateral and the stride-16 conv set are the same modules:
    shared = {name: p.shape for name, p in three.named_parameters() if not name.startswith(("detect", "lateral8",
                                                                                               "neck8"))}
    assert {name: p.shape for name, p in one.named_parameters() if not name.startswith("detect")} == shared
    # Removed: detect32 and detect8 (3x3 ConvBlock + 1x1 conv each), lateral8, neck8; detect16 grows 24 -> 72.
    assert count_parameters(three) - count_parameters(one) == 1_176_736 - 1_085_024


def test_the_training_command_trains_and_reloads_the_one_head_model(tmp_path):
    from yolo_lessons.train import model_from_checkpoint, parse_args, train

    options = parse_args(["--model", "small_yolov3", "--heads", "1"])
    assert options == {"model": "small_yolov3", "heads": 1}
    history = train(steps=2, batch_size=2, image_size=32, width=4, threads=1, train_images=4, eval_images=4,
                    eval_every=2, progress=False, verbose=False, out=str(tmp_path), **options)
    assert len(history.losses) == 2 and len(history.eval_map) == 1
    model = model_from_checkpoint(str(tmp_path / "checkpoint.pt"))
    assert model.heads == 1 and model.strides == (16,)


def test_heads_is_refused_for_small_yolov2():
    from yolo_lessons.train import train

    with pytest.raises(ValueError, match="expected heads 3 with small_yolov2"):
        train(heads=1, out=None)
