"""Bad input gets a ValueError that says what was expected and what came."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yolo_lessons import darknet19, darknet53, yolov2, yolov3

BUILDERS = {"darknet19": darknet19, "darknet53": darknet53, "yolov2": yolov2, "yolov3": yolov3}


@pytest.fixture(scope="module", params=list(BUILDERS), ids=list(BUILDERS))
def model(request):
    return BUILDERS[request.param]().eval()


def test_a_side_that_is_not_a_multiple_of_32_is_refused(model):
    with pytest.raises(ValueError, match=r"multiples of 32 \(e\.g\. 320, 416, 608\), got 400x416"):
        model(torch.zeros(1, 3, 400, 416))


def test_a_wrong_channel_count_is_refused(model):
    with pytest.raises(ValueError, match=r"expected 3 input channels, got 1 \(shape \(1, 1, 64, 64\)\)"):
        model(torch.zeros(1, 1, 64, 64))


def test_a_3d_image_without_batch_dimension_is_refused_with_a_hint(model):
    with pytest.raises(ValueError, match=r"got 3-D shape \(3, 64, 64\); add a batch dimension"):
        model(torch.zeros(3, 64, 64))


def test_a_non_tensor_is_refused(model):
    with pytest.raises(ValueError, match="expected a torch.Tensor"):
        model([[0.0]])


def test_a_headless_backbone_says_to_use_feature_maps():
    with pytest.raises(RuntimeError, match="num_classes=0; call feature_maps"):
        darknet19(num_classes=0)(torch.zeros(1, 3, 32, 32))


# --- images from the world: the message says what to do ------------------------------------------


def test_a_pil_image_gets_told_how_to_become_a_batch():
    from PIL import Image

    with pytest.raises(ValueError, match=r"got a PIL image .*image_batch\(image\).*permute\(2, 0, 1\)"):
        darknet19()(Image.new("RGB", (64, 64)))


def test_a_numpy_hwc_array_gets_told_to_permute_scale_and_unsqueeze():
    array = np.zeros((480, 640, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"ndarray of shape \(480, 640, 3\).*permute\(2, 0, 1\)\.float\(\) / 255"):
        darknet19()(array)


def test_a_uint8_tensor_gets_told_to_convert_to_float_over_255():
    with pytest.raises(ValueError, match=r"got dtype torch.uint8: use x.float\(\) / 255"):
        darknet19()(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


def test_channels_last_tensors_get_told_to_permute():
    # (480, 640, 3) is an image read as rows, columns, channels: not "expected 3 channels, got 480"
    hint = r"looks like \(H, W, C\).*x.permute\(2, 0, 1\).float\(\) / 255.unsqueeze\(0\)"
    with pytest.raises(ValueError, match=hint):
        darknet19()(torch.zeros(480, 640, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"looks like \(N, H, W, C\).*x.permute\(0, 3, 1, 2\)"):
        darknet19()(torch.zeros(1, 64, 64, 3))
