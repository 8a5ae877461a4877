"""Checks behind chapter 14's checkpoint cells (YOLO9000's WordTree).

* ``check_absolute_probability(fn)``: ``absolute_probability(conditional, tree, node)``, the
  product of the conditional probabilities along the node's path from its root (the paper's
  Pr(Norfolk terrier) = Pr(Norfolk terrier | terrier) * Pr(terrier | hunting dog) * ...).
* ``check_trained_groups(fn)``: ``trained_groups(tree, label)``, the groups whose softmax a
  label trains: the group of every node on its path, as ``delta_region_class`` walks it.
* ``check_darknet_descent(fn)``: ``darknet_descent(probs, tree, thresh)``, the node Darknet's
  ``hierarchy_top_prediction`` (``src/tree.c``) names a box after, from absolute probabilities.

Each check runs the learner's code on several trees and inputs and compares with the
reference (``models.wordtree``, ``detection.hierarchy``); only when an answer differs does it
try the known wrong answers, and it names one only when that mistake explains every answer.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable

import torch
from torch import Tensor

from ..data.shape_tree import SHAPE_TREE
from ..detection.hierarchy import hierarchy_predictions
from ..models.wordtree import WordTree, tree_softmax
from .common import CheckpointError, call, checkpoint, expect, integer_problem, passed

# A deeper tree than the shapes': four levels under one root, a second root, groups of 1 to 3.
ANIMALS = WordTree.from_mapping({
    "animal": None, "plant": None,
    "dog": "animal", "cat": "animal", "bird": "animal",
    "oak": "plant",
    "terrier": "dog", "hound": "dog",
    "norfolk": "terrier", "yorkshire": "terrier", "beagle": "hound",
    "tabby": "cat", "siamese": "cat",
})
FLAT = WordTree.from_mapping({"circle": None, "square": None, "triangle": None})  # one group: a plain softmax
TREES = {"the shape tree": SHAPE_TREE, "a four-level animal tree": ANIMALS, "a tree of roots only": FLAT}


def _conditional(tree: WordTree, seed: int, scale: float = 1.5) -> Tensor:
    """(C,) float32 P(node | parent) from seeded logits, one softmax per group."""
    gen = torch.Generator().manual_seed(seed)
    return tree_softmax(scale * torch.randn(len(tree), generator=gen), tree, dim=0)


def _product(values: Tensor, nodes) -> float:
    out = 1.0
    for k in nodes:
        out *= float(values[k])
    return out


# --- Exercise 1: the absolute probability of a node -----------------------------------------


def _absolute(conditional: Tensor, tree: WordTree, node: int) -> float:
    return _product(conditional.double(), tree.path(node))


ABSOLUTE_MISTAKES: tuple[tuple[Callable[[Tensor, WordTree, int], float], str], ...] = (
    (lambda p, t, n: float(p[n]),
     "that is the node's conditional probability P(node | parent) alone: multiply it by those of "
     "its parent, grandparent, ... up to the root"),
    (lambda p, t, n: _product(p, t.path(n)[:-1]),
     "that is the product over the node's ancestors only: the node's own P(node | parent) belongs "
     "in the product too"),
    (lambda p, t, n: _product(p, t.path(n)[1:]),
     "the root's own probability is missing: the roots share a softmax too (group 0), so the path "
     "product starts at the root"),
    (lambda p, t, n: sum(float(p[k]) for k in t.path(n)),
     "that is the sum of the conditional probabilities along the path: the absolute probability is "
     "their product"),
    (lambda p, t, n: _product(p, t.path(n)[-2:]),
     "that multiplies only the node and its parent: keep going up, parent after parent, to the root"),
    (lambda p, t, n: _product(hierarchy_predictions(p, t, dim=0), t.path(n)),
     "that multiplies absolute probabilities again: the inputs are conditional ones, P(node | parent), "
     "and each appears once in the product"),
)


@functools.cache  # built once; a check clones every tensor it hands out
def _absolute_cases() -> list[tuple[str, WordTree, Tensor, int]]:
    cases = []
    for (name, tree), seed in zip(TREES.items(), (0, 1, 2), strict=True):
        conditional = _conditional(tree, seed)
        nodes = range(len(tree)) if len(tree) < 20 else (0, 2, 3, 4, 8, 9, 12, 15, 20, 26)
        cases += [(name, tree, conditional, node) for node in nodes]
    sharp = _conditional(SHAPE_TREE, 3, scale=4.0)  # confident softmaxes: products near 0 and near 1
    cases += [("the shape tree", SHAPE_TREE, sharp, node) for node in (1, 5, 10, 14, 19, 23)]
    return cases


def _as_number(got, what: str) -> float:
    if isinstance(got, Tensor):
        expect(got.numel() == 1, f"{what}: expected one number, got a tensor of shape {tuple(got.shape)}")
        return float(got.detach().reshape(()))
    expect(isinstance(got, numbers.Real) and not isinstance(got, bool),
           f"{what}: expected a number (a float), got {got!r}")  # fmt: skip
    return float(got)


@checkpoint
def check_absolute_probability(absolute_probability: Callable) -> None:
    """Check ``absolute_probability(conditional, tree, node) -> float``."""
    cases = _absolute_cases()
    answers = []
    for name, tree, conditional, node in cases:
        given = conditional.clone()
        got = call(absolute_probability, given, tree, node)
        expect(torch.equal(given, conditional),
               "the conditional probabilities were modified in place: compute the product without "
               "writing into them")  # fmt: skip
        answers.append(_as_number(got, f"node {node} ({tree.names[node]}) of {name}"))
    wrong = [k for k, ((_, tree, p, node), got) in enumerate(zip(cases, answers, strict=True))
             if abs(got - _absolute(p, tree, node)) > 1e-5 * (1 + abs(_absolute(p, tree, node)))]  # fmt: skip
    if not wrong:
        print(f"absolute probabilities of {len(cases)} nodes in 3 trees (roots, leaves, 4 levels) ... ok")
        return
    name, tree, p, node = cases[wrong[0]]
    shown = (f"node {node} ({tree.names[node]}, path {' -> '.join(tree.names[k] for k in tree.path(node))}) "
             f"of {name}: expected {_absolute(p, tree, node):.6f}, got {answers[wrong[0]]:.6f}")
    for mistake, why in ABSOLUTE_MISTAKES:
        if all(abs(got - mistake(p.double(), t, n)) <= 1e-5 * (1 + abs(got))
               for (_, t, p, n), got in zip(cases, answers, strict=True)):  # fmt: skip
            raise CheckpointError(f"{shown}: {why}")
    raise CheckpointError(shown)


# --- Exercise 2: the groups a label trains ---------------------------------------------------


def _trained(tree: WordTree, label: int) -> frozenset[int]:
    return frozenset(tree.group[k] for k in tree.path(label))


def _below(tree: WordTree, node: int) -> set[int]:
    """The groups of every node under ``node``."""
    groups, stack = set(), [node]
    while stack:
        for child in tree.children(stack.pop()):
            groups.add(tree.group[child])
            stack.append(child)
    return groups


GROUP_MISTAKES: tuple[tuple[Callable[[WordTree, int], set], str], ...] = (
    (lambda t, n: {t.group[n]},
     "that is the label's own group only: delta_region_class walks up from the label, and the group "
     "of every node on the way to the root is trained too"),
    (lambda t, n: set(t.path(n)),
     "those are the nodes on the label's path, not their groups: the group of node k is tree.group[k]"),
    (lambda t, n: {t.group[k] for k in t.path(n)[:-1]},
     "the label's own group is missing: its softmax is trained toward the label (target 1) and its "
     "siblings (target 0)"),
    (lambda t, n: {t.group[k] for k in t.path(n)[1:]},
     "group 0, the roots' softmax, is missing: the walk up the path ends at the root, whose group is "
     "trained as well"),
    (lambda t, n: _trained(t, n) | ({t.child[n]} if t.child[n] >= 0 else set()),
     "that adds the group of the label's children: a label trains nothing below its own level (a "
     "'dog' label never trains the breeds)"),
    (lambda t, n: _trained(t, n) | _below(t, n),
     "that adds the groups below the label: a label trains nothing below its own level (a 'dog' "
     "label never trains the breeds)"),
    (lambda t, n: set(range(t.num_groups)),
     "that is every group of the tree: only the groups on the label's path get a target"),
    (lambda t, n: {t.child[k] for k in t.path(n) if t.child[k] >= 0},
     "those are the groups of the children of the nodes on the path (one level too low): node k "
     "itself sits in group tree.group[k]"),
)


def _as_groups(got, what: str) -> frozenset[int]:
    expect(isinstance(got, (set, frozenset, list, tuple)),
           f"{what}: expected a set (or list) of group numbers, got {got!r}")  # fmt: skip
    for value in got:
        problem = integer_problem(value)
        expect(not problem, f"{what}: each group number must be a Python int: {problem}")
    return frozenset(got)


@checkpoint
def check_trained_groups(trained_groups: Callable) -> None:
    """Check ``trained_groups(tree, label) -> set of int``."""
    cases = [(name, tree, label) for name, tree in TREES.items() for label in range(len(tree))]
    answers = [_as_groups(call(trained_groups, tree, label), f"label {label} ({tree.names[label]}) of {name}")
               for name, tree, label in cases]  # fmt: skip
    wrong = [k for k, ((_, tree, label), got) in enumerate(zip(cases, answers, strict=True))
             if got != _trained(tree, label)]  # fmt: skip
    if not wrong:
        print(f"the groups trained by each of the {len(cases)} nodes of 3 trees, as labels ... ok")
        return
    name, tree, label = cases[wrong[0]]
    shown = (f"label {label} ({tree.names[label]}) of {name}: expected groups "
             f"{sorted(_trained(tree, label))}, got {sorted(answers[wrong[0]])}")
    for mistake, why in GROUP_MISTAKES:
        if all(got == frozenset(mistake(t, n)) for (_, t, n), got in zip(cases, answers, strict=True)):
            raise CheckpointError(f"{shown}: {why}")
    raise CheckpointError(shown)


# --- Exercise 3: Darknet's descent -----------------------------------------------------------


def _descent(probs: Tensor, tree: WordTree, thresh: float, *, paper: bool = False, strict: bool = True,
             stop_at_best: bool = False, root_fail=None) -> int | None:
    """hierarchy_top_prediction of src/tree.c in doubles, with switches for the known mistakes."""
    p, group = 1.0, 0
    values = probs.double().tolist()
    while True:
        best, best_i = 0.0, 0
        for i in tree.members(group):
            if values[i] > best:
                best, best_i = values[i], i
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


def _top_leaf(probs: Tensor, tree: WordTree, thresh: float) -> int:
    leaves = [i for i in range(len(tree)) if tree.leaf[i]]
    return max(leaves, key=lambda i: (float(probs[i]), -i))


DESCENT_MISTAKES: tuple[tuple[Callable[[Tensor, WordTree, float], int | None], str], ...] = (
    (lambda p, t, h: _descent(p, t, h, paper=True),
     "that is the paper's rule (the node's own absolute probability against the threshold); Darknet "
     "compares the running product p * max, and p already holds the absolute probabilities it "
     "passed on the way down"),
    (lambda p, t, h: _descent(p, t, h, strict=False),
     "a running product exactly at the threshold must stop: Darknet goes down only when p * max > thresh"),
    (lambda p, t, h: _descent(p, t, h, stop_at_best=True),
     "when the test fails below the roots, Darknet returns the node it came from (the parent of the "
     "group), not the best node of the group that failed"),
    (lambda p, t, h: _descent(p, t, h, root_fail=-1),
     "when the roots' group already fails the test, Darknet still returns that group's best node, not -1"),
    (lambda p, t, h: _descent(p, t, 0.0),
     "the threshold is never applied: the descent stops as soon as p * max is not above thresh"),
    (_top_leaf,
     "that is the leaf of largest absolute probability (the classifier's top-1): the descent goes "
     "down group by group and stops at the threshold"),
)


def _descent_inputs(tree: WordTree, seed: int, scale: float) -> Tensor:
    """(C,) float32 absolute probabilities from seeded logits."""
    return hierarchy_predictions(_conditional(tree, seed, scale), tree)


def _safe(probs: Tensor, tree: WordTree, thresh: float) -> bool:
    """No comparison of either rule within 1e-4 of the threshold (float32 and doubles agree)."""
    values = probs.double().tolist()
    for group in range(tree.num_groups):
        best = max(values[i] for i in tree.members(group))
        if abs(best - thresh) < 1e-4:
            return False
    p, group = 1.0, 0
    while group >= 0:  # the products Darknet's descent forms
        best_i = max(tree.members(group), key=lambda i: (values[i], -i))
        if abs(p * values[best_i] - thresh) < 1e-4:
            return False
        p *= values[best_i]
        group = tree.child[best_i]
    return True


@functools.cache  # built once; a check clones every tensor it hands out
def _descent_cases() -> list[tuple[str, WordTree, Tensor, float]]:
    cases = []
    # Exact cases in binary fractions: a product that lands on the threshold itself.
    exact = torch.zeros(len(SHAPE_TREE))
    circle, warm, red = SHAPE_TREE.index("circle"), SHAPE_TREE.index("warm_circle"), SHAPE_TREE.index("red_circle")
    exact[circle], exact[warm], exact[red] = 1.0, 0.5, 0.25
    cases += [("the shape tree", SHAPE_TREE, exact, h) for h in (0.5, 0.25, 0.125)]
    ties = torch.zeros(len(ANIMALS))
    for name, value in (("animal", 0.75), ("plant", 0.25), ("dog", 0.375), ("cat", 0.375)):
        ties[ANIMALS.index(name)] = value  # dog and cat tie: the first one wins
    cases += [("a four-level animal tree", ANIMALS, ties, h) for h in (0.25, 0.5, 0.8)]
    nothing = torch.zeros(len(ANIMALS))  # no node above 0: Darknet's max_i = 0
    cases.append(("a four-level animal tree", ANIMALS, nothing, 0.5))
    seed = 10
    for name, tree in TREES.items():
        for thresh in (0.5, 0.3, 0.7, 0.15, 0.05):
            found = 0
            while found < 3:
                seed += 1
                probs = _descent_inputs(tree, seed, scale=(1.5, 3.0, 6.0)[seed % 3])
                if _safe(probs, tree, thresh):
                    cases.append((name, tree, probs, thresh))
                    found += 1
    return cases


@checkpoint
def check_darknet_descent(darknet_descent: Callable) -> None:
    """Check ``darknet_descent(probs, tree, thresh) -> int`` (probs: absolute probabilities, (C,))."""
    cases = _descent_cases()
    answers = []
    for name, tree, probs, thresh in cases:
        given = probs.clone()
        got = call(darknet_descent, given, tree, thresh)
        expect(torch.equal(given, probs),
               "the probabilities were modified in place: keep the running product in a variable of your own")
        problem = integer_problem(got)
        expect(not problem, f"darknet_descent on {name}, thresh {thresh}: {problem}")
        answers.append(got)
    wanted = [_descent(p, t, h) for _, t, p, h in cases]
    wrong = [k for k, (got, want) in enumerate(zip(answers, wanted, strict=True)) if got != want]
    if not wrong:
        print(f"Darknet's descent on {len(cases)} boxes of 3 trees, thresholds 0.05 to 0.8 ... ok")
        passed("ties, a product exactly at the threshold and a box with no probability\n"
               "  included ... ok")
        return
    name, tree, probs, thresh = cases[wrong[0]]

    def node(k):
        return f"{k} ({tree.names[k]})" if isinstance(k, int) and 0 <= k < len(tree) else repr(k)

    shown = (f"on {name} with thresh {thresh}: expected node {node(wanted[wrong[0]])}, "
             f"got {node(answers[wrong[0]])}")
    for mistake, why in DESCENT_MISTAKES:
        if all(got == mistake(p, t, h) for (_, t, p, h), got in zip(cases, answers, strict=True)):
            raise CheckpointError(f"{shown}: {why}")
    raise CheckpointError(shown)
