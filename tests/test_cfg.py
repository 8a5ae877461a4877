"""Reading Darknet cfgs and building their networks: equal to the book's hand-written builders."""

from __future__ import annotations

import pytest
import torch
from cfg_texts import darknet19_cfg, darknet53_cfg, yolov1_cfg, yolov2_cfg, yolov3_cfg

from yolo_lessons.darknet.cfg import CfgError, CfgNetwork, build_network, parse_cfg
from yolo_lessons.darknet.weights import darknet_layers, load_darknet_weights, save_darknet_weights
from yolo_lessons.models.blocks import DarknetMaxPool
from yolo_lessons.models.counting import count_parameters
from yolo_lessons.models.darknet19 import darknet19
from yolo_lessons.models.darknet53 import darknet53
from yolo_lessons.models.yolov1 import yolov1
from yolo_lessons.models.yolov2 import yolov2
from yolo_lessons.models.yolov3 import yolov3


def randomize_statistics(model: torch.nn.Module, seed: int = 0) -> None:
    """BatchNorm running statistics away from 0 and 1, so a swapped mean or variance shows."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def assert_same_network(book: torch.nn.Module, text: str, tmp_path, side: int):
    """Same parameter count; the book's .weights file loads into the cfg's network; same outputs."""
    torch.manual_seed(0)
    randomize_statistics(book)
    built = build_network(text)
    assert count_parameters(built) == count_parameters(book)
    save_darknet_weights(book, tmp_path / "book.weights")
    load_darknet_weights(built, tmp_path / "book.weights", layers=built.weighted_layers())
    x = torch.rand(2, 3, side, side)
    with torch.no_grad():
        want, got = book.eval()(x), built.eval()(x)
    want = want if isinstance(want, tuple) else (want,)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))


def test_darknet19_from_its_cfg(tmp_path):
    assert_same_network(darknet19(), darknet19_cfg(), tmp_path, 64)


@pytest.mark.parametrize("num_classes", [20, 80])
def test_yolov2_from_its_cfg(tmp_path, num_classes):
    net = build_network(yolov2_cfg(num_classes))
    assert [w.index for w in net.weighted_layers()][-1] == 30  # the detector is layer 30, as in the cfg
    assert_same_network(yolov2(num_classes=num_classes), yolov2_cfg(num_classes), tmp_path, 96)


def test_darknet53_from_its_cfg(tmp_path):
    assert_same_network(darknet53(), darknet53_cfg(), tmp_path, 64)


def test_yolov3_from_its_cfg(tmp_path):
    net = build_network(yolov3_cfg())
    assert [i for i in net.heads] == [82, 94, 106]  # the three [yolo] layers of yolov3.cfg
    assert net.infos[86].sources == (85, 61) and net.infos[98].sources == (97, 36)
    assert_same_network(yolov3(), yolov3_cfg(), tmp_path, 64)


def test_yolov1_from_its_cfg():
    # 271 M parameters: weights copied in memory, layer by layer in cfg order, not through a 1 GB file
    torch.manual_seed(0)
    book, built = yolov1(), build_network(yolov1_cfg())
    assert count_parameters(built) == count_parameters(book)
    for mine, theirs in zip(built.weighted_layers(), darknet_layers(book), strict=True):
        for a, b in zip(mine.tensors(), theirs.tensors(), strict=True):
            a.data.copy_(b.data)
    x = torch.rand(1, 3, 448, 448)
    with torch.no_grad():
        torch.testing.assert_close(built.eval()(x), book.eval()(x), rtol=1e-5, atol=1e-6)


# --- reading ------------------------------------------------------------------------------------


def test_spaces_comments_aliases_and_the_first_of_two_options():
    sections = parse_cfg("[net]\nwidth = 64\n height=64\nchannels=3\n; a comment\n[conv]\nfilters = 8\n"
                         "filters=16\nsize=3\n# another\n\n[max]\n")
    assert [s.kind for s in sections] == ["net", "convolutional", "maxpool"]
    assert sections[1].options == {"filters": "8", "size": "3"}  # option_find: the first wins
    assert sections[1].line == 6 and sections[1].name == "conv"


def test_darknets_defaults_fill_what_a_section_leaves_out():
    net = build_network("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=1\n[maxpool]\nstride=2\n")
    conv = net.layers[0]
    # parse_convolutional: size=1, stride=1, pad=0, activation=logistic, no BatchNorm
    assert conv.conv.out_channels == 1 and conv.conv.kernel_size == (1, 1) and conv.conv.padding == (0, 0)
    assert conv.bn is None and isinstance(conv.act, torch.nn.Sigmoid)
    pool = net.layers[1]  # parse_maxpool: size = stride, padding = size - 1
    assert (pool.size, pool.stride, pool.padding) == (2, 2, 1)
    assert net.infos[1].shape == (1, 16, 16)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[net]\nwidth=32\nheight=32\nchannels=3\n[local]\nfilters=3\n", "line 5, [local]: the layer type [local]"),
        ("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=x\n", "expected an integer filters"),
        ("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nsize=3\n",
         "line 5, [convolutional]: needs filters="),
        ("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=2\n[route]\nlayers=-3\n",
         "line 7, [route]: layer 1 reads layer -2, which is not before it"),
        ("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=2\n[route]\nlayers=5\n", "reads layer 5"),
        ("[net]\nwidth=32\nheight=32\nchannels=3\n[route]\n", "needs layers="),
        ("[net]\nwidth=32\nheight=32\nchannels=3\n[shortcut]\nactivation=linear\n", "needs from="),
        ("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=2\ngroups=2\n",
         "groups=2 is not implemented"),
        ("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=2\nactivation=mish\n", "activation 'mish'"),
        ("[net]\nwidth=32\nheight=32\n[convolutional]\n", "needs width, height and channels"),
        ("width=32\n[net]\n", "line 1: an option before any [section]"),
        ("[net]\nwidth\n", "line 2: expected key=value"),
        ("[convolutional]\n", "starts with its [net] section"),
        ("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=20\n[region]\nnum=5\nclasses=20\n",
         "num=5, classes=20 need 125 channels, the layer before gives 20"),
        ("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=18\n[yolo]\nmask=0,1,2\nnum=6\n"
         "classes=1\nanchors=1,2,3\n", "expected 12 anchor numbers"),
    ],
)
def test_a_malformed_cfg_is_a_named_error_and_builds_nothing(text, message):
    with pytest.raises(CfgError) as error:
        build_network(text)
    assert message in str(error.value)


def test_a_weights_file_of_another_cfg_is_refused(tmp_path):
    save_darknet_weights(darknet19(), tmp_path / "darknet19.weights")
    built = build_network(darknet53_cfg())
    before = [p.clone() for p in built.parameters()]
    with pytest.raises(ValueError, match="a file for another network"):
        load_darknet_weights(built, tmp_path / "darknet19.weights", layers=built.weighted_layers())
    assert all(torch.equal(a, b) for a, b in zip(before, built.parameters(), strict=True))  # nothing copied


# --- the stride-1 max-pool of the tiny models ---------------------------------------------------


def darknet_maxpool_loops(x: torch.Tensor, size: int, stride: int, padding: int) -> torch.Tensor:
    """forward_maxpool_layer of src/maxpool_layer.c, loop for loop (out-of-image cells: -FLT_MAX)."""
    n, c, h, w = x.shape
    out_h, out_w = (h + padding - size) // stride + 1, (w + padding - size) // stride + 1
    offset = -(padding // 2)
    out = torch.empty(n, c, out_h, out_w)
    for b in range(n):
        for k in range(c):
            for i in range(out_h):
                for j in range(out_w):
                    best = -3.4028234663852886e38
                    for dy in range(size):
                        for dx in range(size):
                            y, xx = offset + i * stride + dy, offset + j * stride + dx
                            if 0 <= y < h and 0 <= xx < w:
                                best = max(best, float(x[b, k, y, xx]))
                    out[b, k, i, j] = best
    return out


@pytest.mark.parametrize("size, stride, side", [(2, 1, 13), (2, 2, 26), (2, 2, 13), (3, 1, 7), (3, 2, 9)])
def test_the_maxpool_equals_darknets_loops(size, stride, side):
    x = torch.randn(1, 2, side, side, generator=torch.Generator().manual_seed(side))
    pool = DarknetMaxPool(size, stride)
    torch.testing.assert_close(pool(x), darknet_maxpool_loops(x, size, stride, size - 1), rtol=0, atol=0)


def test_zero_padding_changes_the_stride_1_pool_where_a_border_is_negative():
    # a leaky map (negatives kept at a tenth) on 13 x 13: zeros on the right and bottom win there
    x = torch.nn.functional.leaky_relu(torch.randn(1, 8, 13, 13, generator=torch.Generator().manual_seed(0)), 0.1)
    darknet = DarknetMaxPool(2, 1)(x)
    zeros = torch.nn.functional.max_pool2d(torch.nn.functional.pad(x, (0, 1, 0, 1), value=0.0), 2, 1)
    changed = (darknet != zeros).sum(dim=(2, 3))  # per channel: only last column and row can change
    assert darknet.shape == zeros.shape == (1, 8, 13, 13)
    assert int(changed.sum()) > 0 and int(changed.max()) <= 25  # 13 + 13 - 1 border cells at most
    replicate = torch.nn.functional.max_pool2d(torch.nn.functional.pad(x, (0, 1, 0, 1), mode="replicate"), 2, 1)
    assert torch.equal(replicate, darknet)  # replicating the edge is the same as -inf


def test_a_summary_lists_each_layer_with_its_output():
    net = build_network(yolov2_cfg())
    lines = net.summary()
    assert len(lines) == 32 and "reorg" in lines[27] and lines[27].endswith("13 x  13 x  256")
    assert isinstance(net, CfgNetwork) and net.head_options("region")[0].integer("num") == 5
