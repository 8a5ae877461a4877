"""Chapter 14's checkpoints: right answers written differently pass, each known mistake is named."""

from __future__ import annotations

import math

import pytest
import torch

from yolo_lessons.checkpoints.common import WIDTH, CheckpointError
from yolo_lessons.checkpoints.wordtree import (
    check_absolute_probability,
    check_darknet_descent,
    check_trained_groups,
)
from yolo_lessons.detection.hierarchy import hierarchy_predictions, hierarchy_top_prediction


def fails_with(check, answer, named: str) -> None:
    with pytest.raises(CheckpointError) as error:
        check(answer)
    assert named in str(error.value)


# --- Exercise 1: the absolute probability of a node -------------------------------------------


def absolute_loop(conditional, tree, node):  # right: the chapter's solution
    p = 1.0
    while node >= 0:
        p *= float(conditional[node])
        node = tree.parent[node]
    return p


def absolute_recursive(conditional, tree, node):  # right: P(node) = P(node | parent) * P(parent)
    parent = tree.parent[node]
    own = conditional[node].item()
    return own if parent < 0 else own * absolute_recursive(conditional, tree, parent)


def absolute_prod(conditional, tree, node):  # right: a 0-d tensor from torch.prod over the path
    return conditional[list(tree.path(node))].prod()


def absolute_package(conditional, tree, node):  # right: every node at once, then one of them
    return hierarchy_predictions(conditional, tree, dim=0)[node]


def absolute_logs(conditional, tree, node):  # right: the sum of logs, exponentiated
    return math.exp(sum(math.log(float(conditional[k])) for k in tree.path(node)))


@pytest.mark.parametrize("answer", [absolute_loop, absolute_recursive, absolute_prod, absolute_package, absolute_logs])
def test_right_absolute_probabilities_pass(answer, capsys):
    check_absolute_probability(answer)
    out = capsys.readouterr().out
    assert "... ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH


def absolute_in_place(conditional, tree, node):  # hierarchy_predictions written into its input
    for j in range(len(tree)):
        if tree.parent[j] >= 0:
            conditional[j] *= conditional[tree.parent[j]]
    return float(conditional[node])


@pytest.mark.parametrize(
    "answer, named",
    [
        (lambda p, t, n: float(p[n]), "conditional probability P(node | parent) alone"),
        (lambda p, t, n: math.prod(float(p[k]) for k in t.path(n)[:-1]), "over the node's ancestors only"),
        (lambda p, t, n: math.prod(float(p[k]) for k in t.path(n)[1:]), "the root's own probability is missing"),
        (lambda p, t, n: sum(float(p[k]) for k in t.path(n)), "the sum of the conditional probabilities"),
        (lambda p, t, n: math.prod(float(p[k]) for k in t.path(n)[-2:]), "only the node and its parent"),
        (lambda p, t, n: math.prod(float(hierarchy_predictions(p, t, dim=0)[k]) for k in t.path(n)),
         "multiplies absolute probabilities again"),
        (absolute_in_place, "modified in place"),
        (lambda p, t, n: hierarchy_predictions(p, t, dim=0), "expected one number, got a tensor of shape (27,)"),
        (lambda p, t, n: [absolute_loop(p, t, n)], "expected a number (a float), got ["),
        (lambda p, t, n: sum(math.log(float(p[k])) for k in t.path(n)), "node 0 (circle"),  # logs, no exp: shown
        (lambda p, t, n: 0.99 * absolute_loop(p, t, n), "expected 0.176121, got 0.174360"),  # 0.99 x P(circle)
    ],
)
def test_wrong_absolute_probabilities_are_named_or_shown(answer, named):
    fails_with(check_absolute_probability, answer, named)


def test_an_unexplained_absolute_probability_names_no_mistake():
    with pytest.raises(CheckpointError) as error:
        check_absolute_probability(lambda p, t, n: 0.99 * absolute_loop(p, t, n))
    message = str(error.value)
    # the first case: node 0 of the shape tree (circle, a root), P(circle) of seed 0's logits
    assert message == "node 0 (circle, path circle) of the shape tree: expected 0.176121, got 0.174360"
    assert ": that" not in message and "missing" not in message


def test_a_stub_says_not_implemented():
    def stub(conditional, tree, node):
        raise NotImplementedError("multiply P(node | parent) up to the root")

    fails_with(check_absolute_probability, stub, "not implemented yet")


# --- Exercise 2: the groups a label trains ----------------------------------------------------


def groups_loop(tree, label):  # right: the chapter's solution
    groups = set()
    while label >= 0:
        groups.add(tree.group[label])
        label = tree.parent[label]
    return groups


def groups_sorted_list(tree, label):  # right: a sorted list
    return sorted({tree.group[k] for k in tree.path(label)})


def groups_tuple_with_repeats(tree, label):  # right: a tuple (no group appears twice on a path anyway)
    return tuple(tree.group[k] for k in reversed(tree.path(label)))


def groups_from_offsets(tree, label):  # right: find each node's group from the offsets
    found = frozenset()
    for k in tree.path(label):
        found |= {g for g in range(tree.num_groups) if k in tree.members(g)}
    return found


@pytest.mark.parametrize("answer", [groups_loop, groups_sorted_list, groups_tuple_with_repeats, groups_from_offsets])
def test_right_trained_groups_pass(answer, capsys):
    check_trained_groups(answer)
    out = capsys.readouterr().out
    assert "... ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH


def groups_below(tree, label):
    found, stack = groups_loop(tree, label), [label]
    while stack:
        for child in tree.children(stack.pop()):
            found.add(tree.group[child])
            stack.append(child)
    return found


@pytest.mark.parametrize(
    "answer, named",
    [
        (lambda t, n: {t.group[n]}, "the label's own group only"),
        (lambda t, n: set(t.path(n)), "those are the nodes on the label's path, not their groups"),
        (lambda t, n: {t.group[k] for k in t.path(n)[:-1]}, "the label's own group is missing"),
        (lambda t, n: {t.group[k] for k in t.path(n)[1:]}, "group 0, the roots' softmax, is missing"),
        (lambda t, n: groups_loop(t, n) | ({t.child[n]} if t.child[n] >= 0 else set()),
         "that adds the group of the label's children"),
        (groups_below, "that adds the groups below the label"),
        (lambda t, n: set(range(t.num_groups)), "every group of the tree"),
        (lambda t, n: {t.child[k] for k in t.path(n) if t.child[k] >= 0}, "one level too low"),
        (lambda t, n: t.group[n], "expected a set (or list) of group numbers, got 0"),
        (lambda t, n: {torch.tensor(g) for g in groups_loop(t, n)}, "must be a Python int"),
        (lambda t, n: {0}, "label 3 (warm_circle) of the shape tree: expected groups [0, 1], got [0]"),
    ],
)
def test_wrong_trained_groups_are_named_or_shown(answer, named):
    fails_with(check_trained_groups, answer, named)


# --- Exercise 3: Darknet's descent ------------------------------------------------------------


def descent_loop(probs, tree, thresh):  # right: the chapter's solution, tree.c's loop
    p, group = 1.0, 0
    while True:
        best, best_i = 0.0, 0
        for i in tree.members(group):
            if probs[i] > best:
                best, best_i = float(probs[i]), i
        if p * best > thresh:
            p *= best
            group = tree.child[best_i]
            if group < 0:
                return best_i
        elif group == 0:
            return best_i
        else:
            return tree.parent[tree.group_offset[group]]


def descent_package(probs, tree, thresh):  # right: the package's function
    return int(hierarchy_top_prediction(probs, tree, thresh=thresh))


def descent_recursive(probs, tree, thresh, group=0, p=1.0):  # right: recursion, argmax by torch
    members = list(tree.members(group))
    values = probs[members]
    best_i = members[int(values.argmax())] if float(values.max()) > 0 else 0  # argmax: first of ties
    best = float(probs[best_i]) if float(values.max()) > 0 else 0.0
    if p * best > thresh:
        if tree.leaf[best_i]:
            return best_i
        return descent_recursive(probs, tree, thresh, tree.child[best_i], p * best)
    return best_i if group == 0 else tree.parent[members[0]]


@pytest.mark.parametrize("answer", [descent_loop, descent_package, descent_recursive])
def test_right_descents_pass(answer, capsys):
    check_darknet_descent(answer)
    out = capsys.readouterr().out
    assert "... ok" in out
    assert max(map(len, out.splitlines())) <= WIDTH


def switched(*, paper=False, strict=True, stop_at_best=False, root_fail=None, no_thresh=False):
    """descent_loop with one known mistake switched on."""

    def descent(probs, tree, thresh):
        if no_thresh:
            thresh = 0.0
        p, group = 1.0, 0
        while True:
            best, best_i = 0.0, 0
            for i in tree.members(group):
                if probs[i] > best:
                    best, best_i = float(probs[i]), i
            score = best if paper else p * best
            if score > thresh or (not strict and score == thresh):
                p *= best
                group = tree.child[best_i]
                if group < 0:
                    return best_i
            elif group == 0:
                return best_i if root_fail is None else root_fail
            else:
                return best_i if stop_at_best else tree.parent[tree.group_offset[group]]

    return descent


def descent_top_leaf(probs, tree, thresh):
    leaves = torch.tensor(tree.leaf)
    return int(torch.where(leaves, probs, torch.full_like(probs, -1.0)).argmax())


def descent_in_place(probs, tree, thresh):
    answer = descent_loop(probs, tree, thresh)
    probs[0] = probs[0] * 0.5  # writes into the caller's tensor
    return answer


@pytest.mark.parametrize(
    "answer, named",
    [
        (switched(paper=True), "that is the paper's rule"),
        (switched(strict=False), "exactly at the threshold must stop"),
        (switched(stop_at_best=True), "returns the node it came from"),
        (switched(root_fail=-1), "not -1"),
        (switched(no_thresh=True), "the threshold is never applied"),
        (descent_top_leaf, "the leaf of largest absolute probability"),
        (lambda p, t, h: hierarchy_top_prediction(p, t, thresh=h), "is a tensor: return a Python int"),
        (lambda p, t, h: t.names[descent_loop(p, t, h)], "is a str, not an int"),
        (descent_in_place, "modified in place"),
        (lambda p, t, h: 0, "on the shape tree with thresh 0.25: expected node 3 (warm_circle), got 0 (circle)"),
    ],
)
def test_wrong_descents_are_named_or_shown(answer, named):
    fails_with(check_darknet_descent, answer, named)


def test_the_descent_cases_tell_the_two_rules_and_every_depth_apart():
    from yolo_lessons.checkpoints.wordtree import _descent, _descent_cases

    cases = _descent_cases()
    darknet = [_descent(p, t, h) for _, t, p, h in cases]
    paper = [_descent(p, t, h, paper=True) for _, t, p, h in cases]
    assert sum(d != q for d, q in zip(darknet, paper, strict=True)) >= 5  # the double product matters
    depths = {t.depth[d] for (_, t, _, _), d in zip(cases, darknet, strict=True)}
    assert depths == {0, 1, 2, 3}  # answers at every level, the animal tree's leaves included
