"""WordTree (models.wordtree), the descent (detection.hierarchy) and YOLO9000's loss
(losses.tree_region_loss) against loop-by-loop ports of Darknet's tree.c and region_layer.c."""

from __future__ import annotations

import io
import math
import random
import re

import darknet_tree_port as port
import pytest
import torch
from darknet_tree_port import darknet_tree_region_delta, read_tree_port, region_tree_forward

from yolo_lessons.detection.hierarchy import decode_yolo9000, hierarchy_predictions, hierarchy_top_prediction
from yolo_lessons.losses.tree_region_loss import tree_region_loss
from yolo_lessons.models.wordtree import (
    TREE_ERROR_REASONS,
    TreeError,
    WordTree,
    read_tree,
    region_tree_activations,
    tree_log_softmax,
    tree_softmax,
)

# A 13-node tree in Darknet's format (our own example): two roots, a dog group, two breeds of
# terrier below the terriers -- so labels can sit at every depth, 0 to 3.
SMALL_TREE_LINES = [
    "animal -1",  # 0   group 0 (the roots)
    "plant -1",  # 1
    "dog 0",  # 2      group 1 (children of animal)
    "cat 0",  # 3
    "bird 0",  # 4
    "terrier 2",  # 5  group 2 (children of dog)
    "hound 2",  # 6
    "tabby 3",  # 7    group 3 (children of cat)
    "siamese 3",  # 8
    "oak 1",  # 9      group 4 (children of plant)
    "fern 1",  # 10
    "norfolk 5",  # 11 group 5 (children of terrier)
    "yorkshire 5",  # 12
]
SMALL_TREE = read_tree(SMALL_TREE_LINES)
PORT_TREE = read_tree_port(SMALL_TREE_LINES)


# --- the tree -------------------------------------------------------------------------------


def test_read_tree_forms_groups_parents_children_leaves_and_depths_as_listed():
    tree = SMALL_TREE
    assert tree.names[5] == "terrier" and len(tree) == 13
    assert tree.parent == (-1, -1, 0, 0, 0, 2, 2, 3, 3, 1, 1, 5, 5)  # the second column
    # A new group wherever the parent changes from one line to the next: 6 runs.
    assert tree.num_groups == 6
    assert tree.group_offset == (0, 2, 5, 7, 9, 11)
    assert tree.group_size == (2, 3, 2, 2, 2, 2)
    assert tree.group == (0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5)
    # child[i]: the group of i's children (animal's are group 1, plant's group 4, ...).
    assert tree.child == (1, 4, 2, 3, -1, 5, -1, -1, -1, -1, -1, -1, -1)
    assert [tree.names[i] for i in range(13) if tree.leaf[i]] == [
        "bird", "hound", "tabby", "siamese", "oak", "fern", "norfolk", "yorkshire"
    ]
    assert tree.depth == (0, 0, 1, 1, 1, 2, 2, 2, 2, 1, 1, 3, 3)
    assert tree.path(11) == (0, 2, 5, 11)  # animal -> dog -> terrier -> norfolk
    assert list(tree.children(2)) == [5, 6] and list(tree.children(4)) == []
    assert tree.index("fern") == 10


def test_read_tree_equals_a_port_of_darknet_read_tree():
    assert list(SMALL_TREE.parent) == PORT_TREE.parent
    assert list(SMALL_TREE.group) == PORT_TREE.group
    assert list(SMALL_TREE.child) == PORT_TREE.child
    assert list(SMALL_TREE.group_offset) == PORT_TREE.group_offset
    assert list(SMALL_TREE.group_size) == PORT_TREE.group_size
    assert [int(v) for v in SMALL_TREE.leaf] == PORT_TREE.leaf
    assert SMALL_TREE.num_groups == PORT_TREE.groups


def test_read_tree_reads_a_path_a_list_or_an_open_file_and_lines_round_trip(tmp_path):
    path = tmp_path / "small.tree"
    path.write_text("\n".join(SMALL_TREE_LINES) + "\n")
    assert read_tree(path) == SMALL_TREE
    assert read_tree(str(path)) == SMALL_TREE
    assert read_tree(io.StringIO(path.read_text())) == SMALL_TREE
    assert read_tree(SMALL_TREE.lines()) == SMALL_TREE
    assert SMALL_TREE.lines()[11] == "norfolk 5"


def test_from_mapping_numbers_the_nodes_breadth_first_with_the_same_structure():
    names, parents = SMALL_TREE.names, SMALL_TREE.parent
    mapping = {name: (None if p < 0 else names[p]) for name, p in zip(names, parents, strict=True)}
    tree = WordTree.from_mapping(mapping)
    # The roots, then animal's children, plant's, dog's, cat's, terrier's.
    assert tree.names == ("animal", "plant", "dog", "cat", "bird", "oak", "fern", "terrier", "hound", "tabby",
                          "siamese", "norfolk", "yorkshire")
    for i, name in enumerate(tree.names):
        expected = mapping[name]
        assert (tree.parent[i] == -1) if expected is None else (tree.names[tree.parent[i]] == expected)
    assert tree.group_size == (2, 3, 2, 2, 2, 2) and tree.num_groups == 6
    assert read_tree(tree.lines()) == tree


BAD_TREES = [
    ([], "empty", "no line"),
    (["animal -1", "dog"], "bad line", "line 2"),
    (["animal -1", "dog zero"], "bad line", "line 2"),
    (["animal -1", "dog 0 extra"], "bad line", "line 2"),
    (["animal -1", "", "dog 0"], "bad line", "line 2"),
    (["animal -1", "animal 0"], "duplicate name", "line 2 'animal'"),
    (["animal -1", "dog 7"], "parent out of range", "parent 7"),
    (["animal -2"], "parent out of range", "parent -2"),
    (["animal -1", "dog 1"], "cycle", "line 2 'dog' -> line 2 'dog'"),
    (["animal -1", "dog 2", "cat 1"], "cycle", "line 2 'dog' -> line 3 'cat' -> line 2 'dog'"),
    (["animal -1", "dog 2", "cat 0"], "parent after child", "line 2 'dog'"),
    (["animal -1", "plant -1", "dog 0", "oak 1", "cat 0"], "non-contiguous group", "children of line 1 'animal'"),
    (["animal -1", "dog 0", "plant -1"], "non-contiguous group", "the roots"),
]


@pytest.mark.parametrize(("lines", "reason", "where"), BAD_TREES)
def test_a_bad_tree_raises_a_tree_error_naming_the_problem_and_the_line(lines, reason, where):
    with pytest.raises(TreeError) as caught:
        read_tree(lines)
    assert caught.value.reason == reason and reason in TREE_ERROR_REASONS
    assert str(caught.value).startswith(reason + ":")
    assert where in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("mapping", "reason", "where"),
    [
        ({}, "empty", "no node"),
        ({"animal": None, "dog": "wolf"}, "unknown parent", "'wolf'"),
        ({"animal": None, "dog": "cat", "cat": "dog"}, "cycle", "'dog' -> 'cat' -> 'dog'"),
        ({"animal": None, "hunting dog": "animal"}, "bad name", "'hunting dog'"),
    ],
)
def test_a_bad_mapping_raises_a_tree_error_naming_the_problem(mapping, reason, where):
    with pytest.raises(TreeError) as caught:
        WordTree.from_mapping(mapping)
    assert caught.value.reason == reason and where in str(caught.value)


# --- the grouped softmax --------------------------------------------------------------------


def head_output(seed: int, n: int = 2, a: int = 2, h: int = 3, w: int = 4, scale: float = 3.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, a * (5 + len(SMALL_TREE)), h, w, generator=gen, dtype=torch.float64)


def port_forward(output: torch.Tensor, **options) -> torch.Tensor:
    flat = region_tree_forward(output, PORT_TREE, 2, **options)
    return torch.tensor(flat, dtype=torch.float64).reshape(output.shape)


@pytest.mark.parametrize("seed", range(3))
def test_region_activations_equal_a_port_of_the_gpu_softmax_tree_kernel(seed):
    output = head_output(seed)
    expected = port_forward(output, gpu=True)
    torch.testing.assert_close(region_tree_activations(output, SMALL_TREE, 2), expected, rtol=0, atol=1e-12)


def test_every_group_of_the_tree_softmax_sums_to_one_and_only_within_itself():
    logits = head_output(0).reshape(2, 2, 18, 3, 4)[:, :, 5:]  # (N, A, C, H, W)
    probs = tree_softmax(logits, SMALL_TREE, dim=2)
    for g in range(SMALL_TREE.num_groups):
        members = list(SMALL_TREE.members(g))
        torch.testing.assert_close(probs[:, :, members].sum(dim=2), torch.ones(2, 2, 3, 4, dtype=torch.float64))
        # a group's softmax is an ordinary softmax over its own logits
        torch.testing.assert_close(probs[:, :, members], torch.softmax(logits[:, :, members], dim=2))
    torch.testing.assert_close(tree_log_softmax(logits, SMALL_TREE, dim=2).exp(), probs)


def test_a_two_node_group_worked_by_hand():
    logits = torch.zeros(13, dtype=torch.float64)
    logits[1] = math.log(3.0)  # animal 0, plant ln 3: e^0 / (1 + 3) = 1/4 and 3/4
    probs = tree_softmax(logits, SMALL_TREE, dim=0)
    assert probs[0].item() == pytest.approx(0.25) and probs[1].item() == pytest.approx(0.75)
    assert probs[2].item() == pytest.approx(1 / 3)  # dog, cat, bird at 0: a third each


def test_released_cpu_softmax_equals_its_port_and_differs_from_the_gpu_as_issue_143_says():
    output = head_output(1)
    cpu = region_tree_activations(output, SMALL_TREE, 2, darknet_cpu=True)
    port = port_forward(output, gpu=False)
    torch.testing.assert_close(cpu, port, rtol=0, atol=1e-12)
    gpu = region_tree_activations(output, SMALL_TREE, 2)
    classes = cpu.reshape(2, 2, 18, 3, 4)[:, :, 5:]
    # Not one group of the CPU's class entries sums to 1 ...
    for g in range(SMALL_TREE.num_groups):
        sums = classes[:, :, list(SMALL_TREE.members(g))].sum(dim=2)
        assert not torch.isclose(sums, torch.ones_like(sums)).any()
    # ... most class entries keep their raw logit, and box entries are overwritten by softmaxes.
    raw = output.reshape(2, 2, 18, 3, 4)
    assert (classes == raw[:, :, 5:]).double().mean() > 0.5
    tw = cpu.reshape(2, 2, 18, 3, 4)[:, :, 2]
    assert (tw != raw[:, :, 2]).any()
    assert not torch.equal(cpu, gpu)


def test_the_cpu_softmax_touches_no_real_group_for_two_anchors_on_a_2x2_grid():
    # The case wave3-facts section 2.2 simulated: 2 anchors, a 2x2 grid, a tree of two groups.
    tree = read_tree(["a -1", "b -1", "c 0", "d 0"])
    spread, cells, entries = 2 * 2 * 2, 2 * 2, 5 + len(tree)
    cpu_calls, gpu_calls = [], []
    count = 5
    for size in tree.group_size:  # softmax_cpu(net.input + count, size, ..., A*H*W, 1, A*H*W, ...)
        cpu_calls += [tuple(count + k + i * spread for i in range(size)) for k in range(spread)]
        count += size
    for b in range(2):  # the kernel: 5*H*W + b*inputs/n + group_offset*H*W + s, stride H*W
        for g, size in enumerate(tree.group_size):
            for s in range(cells):
                start = 5 * cells + b * entries * cells + tree.group_offset[g] * cells + s
                gpu_calls.append(tuple(start + i * cells for i in range(size)))
    real = {  # entry_index(0, anchor * H*W + cell, 5 + node) for the members of each group
        tuple(a * entries * cells + (5 + tree.group_offset[g] + i) * cells + s for i in range(size))
        for a in range(2) for s in range(cells) for g, size in enumerate(tree.group_size)
    }
    assert len(cpu_calls) == len(gpu_calls) == len(real) == 16
    assert set(gpu_calls) == real
    assert not set(cpu_calls) & real  # none of the 16 CPU softmaxes is a group
    # The first CPU softmax is over entries 5 and 13: ty and th of anchor 0, cell 1 -- no class at all.
    assert cpu_calls[:3] == [(5, 13), (6, 14), (7, 15)]


def test_the_released_cpu_build_divides_by_a_zero_temperature_and_writes_nan():
    output = head_output(2)
    cpu = region_tree_activations(output, SMALL_TREE, 2, darknet_cpu=True, temperature=0.0)
    port = port_forward(output, gpu=False, temperature=0.0)
    assert torch.equal(cpu.isnan(), port.isnan())
    written = cpu.isnan()
    assert written.sum() > 0
    torch.testing.assert_close(cpu[~written], port[~written], rtol=0, atol=1e-12)


# --- absolute probabilities and the descent -------------------------------------------------


def conditional(seed: int, boxes: int = 64, scale: float = 2.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return tree_softmax(scale * torch.randn(boxes, 13, generator=gen, dtype=torch.float64), SMALL_TREE, dim=-1)


def test_hierarchy_predictions_equal_the_port_and_multiply_along_the_path():
    probs = conditional(0)
    absolute = hierarchy_predictions(probs, SMALL_TREE)
    for row in range(len(probs)):
        flat = probs[row].tolist()
        port.hierarchy_predictions(flat, 0, 13, PORT_TREE, False, 1)
        assert absolute[row].tolist() == flat  # bit for bit: the same products in the same order
    # P(norfolk) = P(norfolk | terrier) P(terrier | dog) P(dog | animal) P(animal)
    torch.testing.assert_close(absolute[:, 11], probs[:, 11] * probs[:, 5] * probs[:, 2] * probs[:, 0])
    # A parent's probability is shared out among its children.
    torch.testing.assert_close(absolute[:, [5, 6]].sum(dim=1), absolute[:, 2])


def test_only_leaves_zeroes_every_internal_node():
    absolute = hierarchy_predictions(conditional(1), SMALL_TREE, only_leaves=True)
    internal = [i for i in range(13) if not SMALL_TREE.leaf[i]]
    assert torch.all(absolute[:, internal] == 0)
    assert torch.all(absolute[:, [i for i in range(13) if SMALL_TREE.leaf[i]]] > 0)


@pytest.mark.parametrize("thresh", [0.0, 0.05, 0.2, 0.35, 0.5, 0.7, 0.9, 1.0])
def test_hierarchy_top_prediction_equals_the_port_of_darknet_descent(thresh):
    probs = conditional(2, boxes=200, scale=3.0)
    absolute = hierarchy_predictions(probs, SMALL_TREE)
    ours = hierarchy_top_prediction(absolute, SMALL_TREE, thresh=thresh)
    expected = [port.hierarchy_top_prediction(row, 0, PORT_TREE, thresh, 1) for row in absolute.tolist()]
    assert ours.tolist() == expected
    # The paper's single product is Darknet's code fed the conditional probabilities.
    paper = hierarchy_top_prediction(absolute, SMALL_TREE, thresh=thresh, paper_rule=True)
    assert paper.tolist() == [port.hierarchy_top_prediction(row, 0, PORT_TREE, thresh, 1) for row in probs.tolist()]


def test_descent_keeps_the_batch_shape_and_takes_any_dim():
    absolute = hierarchy_predictions(conditional(3, boxes=24), SMALL_TREE).reshape(2, 3, 4, 13)
    names = hierarchy_top_prediction(absolute, SMALL_TREE)
    assert names.shape == (2, 3, 4) and names.dtype == torch.long
    assert torch.equal(hierarchy_top_prediction(absolute.movedim(-1, 1), SMALL_TREE, dim=1), names)


# The dog path of data/9k.tree (wave3-facts section 2.4), each node with one sibling.
DOG_PATH = ("object", "whole", "living_thing", "organism", "animal", "chordate", "vertebrate", "mammal",
            "placental", "carnivore", "canine", "dog")


def dog_chain(c: float) -> tuple[WordTree, torch.Tensor]:
    mapping: dict[str, str | None] = {}
    for depth, name in enumerate(DOG_PATH):
        parent = DOG_PATH[depth - 1] if depth else None
        mapping[name] = parent
        mapping[f"not_{name}"] = parent
    tree = WordTree.from_mapping(mapping)
    probs = torch.tensor([c if not name.startswith("not_") else 1 - c for name in tree.names], dtype=torch.float64)
    return tree, probs


@pytest.mark.parametrize(
    ("c", "darknet", "paper"),
    [(0.9, "living_thing", "chordate"), (0.97, "chordate", "dog"), (0.99, "canine", "dog")],  # wave3-facts 2.4
)
def test_darknet_descent_multiplies_absolute_probabilities_twice_and_stops_higher(c, darknet, paper):
    tree, probs = dog_chain(c)
    absolute = hierarchy_predictions(probs, tree)
    assert absolute[tree.index("dog")].item() == pytest.approx(c**12)
    assert tree.names[hierarchy_top_prediction(absolute, tree, thresh=0.5).item()] == darknet
    assert tree.names[hierarchy_top_prediction(absolute, tree, thresh=0.5, paper_rule=True).item()] == paper


def test_decode_yolo9000_gives_absolute_node_probabilities_per_box():
    output = head_output(4, n=1)
    found = decode_yolo9000(output, [(1.0, 1.0), (2.0, 3.0)], SMALL_TREE)
    assert found.class_probs.shape == (1, 2 * 3 * 4, 13) and found.boxes.shape == (1, 24, 4)
    probs = region_tree_activations(output, SMALL_TREE, 2).reshape(1, 2, 18, 3, 4)[:, :, 5:]
    expected = hierarchy_predictions(probs, SMALL_TREE, dim=2).permute(0, 1, 3, 4, 2).reshape(1, 24, 13)
    torch.testing.assert_close(found.class_probs, expected)
    torch.testing.assert_close(found.class_probs[..., :2].sum(-1), torch.ones(1, 24, dtype=torch.float64))


# --- the loss -------------------------------------------------------------------------------

ANCHORS = [(1.0, 1.5), (2.5, 2.0)]
CLASS_MAP = [2, 3, 9, 11]  # detection class k -> node: dog, cat, oak (mid-tree), norfolk (a leaf)
TREE_SEEN = (0, 12800)


def tree_case(seed: int) -> dict:
    """A random batch: image 0 holds two truths on one (cell, anchor) with different paths and one
    on the right edge; a share of the images are classification-only; padding rows hold garbage."""
    rng = random.Random(seed)
    n = rng.randint(3, 4)
    h, w = (4, 4) if seed % 2 else (3, 4)
    m = 4
    use_map = seed % 3 != 0
    classes = len(CLASS_MAP) if use_map else len(SMALL_TREE)
    counts = [3] + [rng.randint(0, m) for _ in range(n - 1)]
    class_only = [False] + [rng.random() < 0.5 for _ in range(n - 1)]
    class_only[1] = seed % 4 != 3  # most cases hold a classification image
    truths = torch.tensor([99.0, 0.5, 0.5, 1.0, 1.0], dtype=torch.float64).repeat(n, m, 1)
    truths[:, -1] = float("nan")
    for b in range(n):
        if class_only[b]:
            counts[b] = max(counts[b], 1)
            truths[b, 0] = torch.tensor([rng.randrange(len(SMALL_TREE)), 0.0, 0.0, 0.0, 0.0])
            continue
        for t in range(counts[b]):
            truths[b, t] = torch.tensor(
                [rng.randrange(classes), rng.random(), rng.random(), rng.uniform(0.05, 0.9), rng.uniform(0.05, 0.9)]
            )
    # Rows 0 and 1 of image 0 on the same cell and anchor, labelled on different branches.
    col, row = min(int(truths[0, 0, 1] * w), w - 1), min(int(truths[0, 0, 2] * h), h - 1)
    truths[0, 1] = truths[0, 0]
    truths[0, 0, 0] = 3 if use_map else 11  # norfolk: groups 0, 1, 2, 5
    truths[0, 1, 0] = 1 if use_map else 3  # cat: groups 0, 1 -- so groups 2 and 5 keep norfolk's
    truths[0, 1, 1] = (col + rng.random()) / w
    truths[0, 1, 2] = (row + rng.random()) / h
    truths[0, 2, 1] = 1.0
    gen = torch.Generator().manual_seed(seed)
    output = 1.5 * torch.randn(n, len(ANCHORS) * (5 + len(SMALL_TREE)), h, w, generator=gen, dtype=torch.float64)
    if seed % 3 == 1:  # image 1's objectness low, so that its best box is below the paper's .3
        output.view(n, len(ANCHORS), 5 + len(SMALL_TREE), h, w)[1, :, 4] -= 5.0
    return {
        "output": output, "truths": truths, "counts": counts, "class_only": class_only,
        "class_map": CLASS_MAP if use_map else None,
        "seen": TREE_SEEN[seed % 2],
        "rescore": (seed // 2) % 2 == 0,
        "bias_match": (seed // 4) % 2 == 0,
        "paper_objectness": seed % 3 == 1,
        "class_only_noobject": seed % 5 != 4,
        "thresh": rng.uniform(0.3, 0.7),
        "object_scale": rng.choice([5.0, 2.5]),
        "noobject_scale": rng.choice([1.0, 0.5]),
        "class_scale": rng.choice([1.0, 2.0]),
        "coord_scale": rng.choice([1.0, 3.0]),
    }


def call(case: dict, **changes):
    kwargs = {**case, **changes}
    return tree_region_loss(kwargs.pop("output"), kwargs.pop("truths"), kwargs.pop("counts"), ANCHORS, SMALL_TREE,
                            **kwargs)


def port_delta(case: dict) -> torch.Tensor:
    truths = case["truths"].clone()
    for b, only in enumerate(case["class_only"]):
        if only:  # Darknet's mark: correct_boxes turns "class 0 0 0 0" into a box at 999999
            truths[b, 0, 1:] = 999999.0
    options = {k: v for k, v in case.items() if k not in ("output", "truths", "counts", "class_only")}
    return darknet_tree_region_delta(case["output"], truths, case["counts"], ANCHORS, PORT_TREE, **options)


TREE_PORT_SEEDS = range(12)


@pytest.mark.parametrize("seed", TREE_PORT_SEEDS)
def test_delta_equals_an_index_by_index_port_of_forward_region_layer_with_a_tree(seed):
    case = tree_case(seed)
    delta = call(case).delta
    assert delta.shape == case["output"].shape
    torch.testing.assert_close(delta, port_delta(case), rtol=0, atol=1e-12)


def test_port_cases_cover_maps_classification_images_and_both_objectness_rules():
    cases = [tree_case(s) for s in TREE_PORT_SEEDS]
    assert {c["class_map"] is None for c in cases} == {True, False}
    assert {c["paper_objectness"] for c in cases} == {True, False}
    assert {c["class_only_noobject"] for c in cases} == {True, False}
    assert {c["seen"] for c in cases} == set(TREE_SEEN)
    assert all(any(c["class_only"]) for c in cases[:3]) and not all(c["class_only"][1] for c in cases)
    # the paper's .3 target is hit in some case: a best box below .3 objectness
    hits = 0
    for c in cases:
        if c["paper_objectness"] and any(c["class_only"]):
            paper = call(c).delta
            darknet = call(c, paper_objectness=False).delta
            hits += int(not torch.equal(paper, darknet))
    assert hits > 0


@pytest.mark.parametrize("seed", range(4))
def test_autograd_gradient_of_the_tree_loss_is_minus_delta_and_parts_sum_to_it(seed):
    case = tree_case(seed)
    output = case["output"].clone().requires_grad_(True)
    result = call(case, output=output)
    result.loss.backward()
    torch.testing.assert_close(output.grad, -result.delta, rtol=0, atol=1e-12)
    assert sum(result.parts.values()).item() == pytest.approx(result.loss.item(), rel=1e-12)


def test_inputs_are_not_modified_and_float32_gives_float32_close_to_float64():
    case = tree_case(1)
    output, truths = case["output"].clone(), case["truths"].clone()
    wide = call(case)
    assert torch.equal(case["output"], output)
    torch.testing.assert_close(case["truths"], truths, rtol=0, atol=0, equal_nan=True)  # padding holds NaN
    narrow = call(case, output=case["output"].float())
    assert narrow.loss.dtype == narrow.delta.dtype == torch.float32
    torch.testing.assert_close(narrow.delta.double(), wide.delta, rtol=0, atol=1e-5)


def zero_case(truths, counts, class_only=None, **options):
    output = torch.zeros(1, len(ANCHORS) * 18, 4, 4, dtype=torch.float64)
    return output, tree_region_loss(output, torch.tensor([truths], dtype=torch.float64), counts, ANCHORS,
                                    SMALL_TREE, seen=20000, class_only=class_only, **options)


def class_delta(delta: torch.Tensor) -> torch.Tensor:
    return delta.reshape(1, 2, 18, 4, 4)[:, :, 5:]  # (1, A, C, H, W)


def test_a_dog_label_trains_the_groups_above_it_and_never_the_breeds():
    _, result = zero_case([[2, 0.3, 0.3, 0.2, 0.3]], [1])  # dog, one truth: cell (1, 1), anchor 0
    d = class_delta(result.delta)[0, 0, :, 1, 1]  # the responsible prediction
    # zero logits: p = 1/2 in group 0, 1/3 in group 1; targets animal = 1, dog = 1
    expected = torch.zeros(13, dtype=torch.float64)
    expected[[0, 1]] = torch.tensor([0.5, -0.5], dtype=torch.float64)
    expected[[2, 3, 4]] = torch.tensor([2 / 3, -1 / 3, -1 / 3], dtype=torch.float64)
    torch.testing.assert_close(d, expected)  # terrier, hound, norfolk, yorkshire, cats, plants: 0
    assert torch.count_nonzero(class_delta(result.delta)) == 5
    # the class loss is -log P(dog) = -log(1/2 * 1/3)
    assert result.parts["class"].item() == pytest.approx(math.log(6.0))


def test_the_class_map_sends_a_detection_class_to_its_node():
    _, mapped = zero_case([[3, 0.3, 0.3, 0.2, 0.3]], [1], class_map=CLASS_MAP)  # class 3 -> norfolk (11)
    _, direct = zero_case([[11, 0.3, 0.3, 0.2, 0.3]], [1])
    assert torch.equal(mapped.delta, direct.delta)
    assert torch.count_nonzero(class_delta(mapped.delta)) == 2 + 3 + 2 + 2  # groups 0, 1, 2, 5


def test_a_later_label_on_the_same_prediction_overwrites_only_the_groups_on_its_path():
    norfolk_then_cat = [[11, 0.3, 0.3, 0.2, 0.3], [3, 0.32, 0.3, 0.2, 0.3]]
    _, both = zero_case(norfolk_then_cat, [2])
    d = class_delta(both.delta)[0, 0, :, 1, 1]
    assert d[3].item() == pytest.approx(2 / 3) and d[2].item() == pytest.approx(-1 / 3)  # group 1: cat's
    assert d[5].item() == pytest.approx(0.5) and d[11].item() == pytest.approx(0.5)  # groups 2, 5: norfolk's


def test_a_classification_image_trains_only_its_best_box_classes_and_pushes_every_objectness_down():
    output = torch.zeros(1, 2 * 18, 4, 4, dtype=torch.float64)
    output.view(1, 2, 18, 4, 4)[0, 1, 4, 2, 3] = 1.0  # the most confident box: anchor 1, row 2, column 3
    truths = torch.tensor([[[7, 0.0, 0.0, 0.0, 0.0]]], dtype=torch.float64)  # tabby, Darknet's "7 0 0 0 0"
    result = tree_region_loss(output, truths, [1], ANCHORS, SMALL_TREE, seen=0, class_only=[True])
    d = result.delta.reshape(1, 2, 18, 4, 4)
    assert torch.count_nonzero(d[:, :, :4]) == 0  # no box loss, no prior term even though seen = 0
    sigma = 0.5  # every other objectness: noobject * (0 - sigma) * sigma * (1 - sigma)
    others = torch.full((2, 4, 4), -sigma * sigma * (1 - sigma), dtype=torch.float64)
    others[1, 2, 3] = 0.0  # line 224: the best box's .3 target is zeroed
    torch.testing.assert_close(d[0, :, 4], others)
    classes = d[0, :, 5:]
    assert torch.count_nonzero(classes[1, :, 2, 3]) == 2 + 3 + 2  # groups 0, 1, 3 of tabby's path
    assert torch.count_nonzero(classes) == 7


def test_paper_objectness_pushes_the_best_box_toward_point_three_while_below_it():
    output = torch.full((1, 2 * 18, 4, 4), 0.0, dtype=torch.float64)
    output.view(1, 2, 18, 4, 4)[0, :, 4] = -3.0
    output.view(1, 2, 18, 4, 4)[0, 0, 4, 0, 0] = -2.0  # the best box, sigma(-2) = 0.1192 < .3
    truths = torch.tensor([[[12, 0.0, 0.0, 0.0, 0.0]]], dtype=torch.float64)
    options = dict(seen=20000, class_only=[True])
    darknet = tree_region_loss(output, truths, [1], ANCHORS, SMALL_TREE, **options)
    paper = tree_region_loss(output, truths, [1], ANCHORS, SMALL_TREE, paper_objectness=True, **options)
    s = 1 / (1 + math.exp(2.0))
    assert darknet.delta.view(1, 2, 18, 4, 4)[0, 0, 4, 0, 0].item() == 0.0
    assert paper.delta.view(1, 2, 18, 4, 4)[0, 0, 4, 0, 0].item() == pytest.approx(5.0 * (0.3 - s) * s * (1 - s))
    assert paper.parts["obj"].item() == pytest.approx(5.0 / 2 * (0.3 - s) ** 2)
    assert darknet.parts["obj"].item() == 0.0
    # above .3 the paper's rule gives nothing either (line 223)
    output.view(1, 2, 18, 4, 4)[0, 0, 4, 0, 0] = 0.0
    above = tree_region_loss(output, truths, [1], ANCHORS, SMALL_TREE, paper_objectness=True, **options)
    assert above.delta.view(1, 2, 18, 4, 4)[0, 0, 4, 0, 0].item() == 0.0


def test_class_only_noobject_off_leaves_the_other_boxes_of_a_classification_image_alone():
    truths = torch.tensor([[[4, 0.0, 0.0, 0.0, 0.0]]], dtype=torch.float64)
    output = torch.zeros(1, 2 * 18, 4, 4, dtype=torch.float64)
    result = tree_region_loss(output, truths, [1], ANCHORS, SMALL_TREE, seen=0, class_only=[True],
                              class_only_noobject=False)
    assert torch.count_nonzero(result.delta.view(1, 2, 18, 4, 4)[:, :, :5]) == 0
    assert result.parts["noobj"].item() == 0.0 and result.parts["class"].item() > 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tree": "9k.tree"}, "tree must be a WordTree"),
        ({"class_only": [1]}, "class_only must be (1,) bools"),
        ({"class_only": [True], "counts": [0]}, "needs its label in row 0"),
        ({"class_map": [2, 13]}, "class_map entries must be nodes"),
        ({"class_map": [2, 3], "truths": [[[2, 0.5, 0.5, 0.2, 0.2]]]}, "rows of class_map"),
        ({"truths": [[[13, 0.5, 0.5, 0.2, 0.2]]]}, "tree nodes in [0, 12]"),
        ({"truths": [[[13, 0.0, 0.0, 0.0, 0.0]]], "class_only": [True]}, "classification-only label"),
        ({"output": torch.zeros(1, 2 * 17, 4, 4)}, "13-node tree has 2 * (5 + 13) = 36 channels"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_what_came(changes, message):
    kwargs = {"output": torch.zeros(1, 36, 4, 4), "truths": [[[2, 0.5, 0.5, 0.2, 0.2]]], "counts": [1],
              "tree": SMALL_TREE, **changes}
    with pytest.raises(ValueError, match=re.escape(message)):
        tree_region_loss(kwargs.pop("output"), kwargs.pop("truths"), kwargs.pop("counts"), ANCHORS,
                         kwargs.pop("tree"), seen=0, **kwargs)
