"""WordTree, YOLO9000's class hierarchy, and the grouped softmax that turns logits into it.

YOLO9000 (Redmon & Farhadi, 2016, section 4) does not predict 9418 mutually exclusive classes:
it predicts, at every node of a tree of concepts, the probability of each child given its
parent, Pr(Norfolk terrier | terrier). The children of one parent form a *group*, and one
softmax runs over each group. The absolute probability of a node is the product of the
conditional ones along its path from the root (``detection.hierarchy``).

Darknet stores the tree as a text file (``data/9k.tree``), one line per node, ``name
parent_index``, the parent being the 0-based line number of another node and -1 for a root.
``read_tree`` in ``src/tree.c`` reads it in one pass and starts a new group whenever the parent
changes from one line to the next, so the file must list the children of each parent on
consecutive lines, and a parent before its children (then one forward pass over the nodes
computes every absolute probability). ``WordTree`` holds what ``read_tree`` builds, with
Darknet's names for the arrays:

    parent[i]        the parent of node i, -1 for a root
    group[i]         the group node i belongs to; group 0 holds the roots
    child[i]         the group of node i's children, -1 for a leaf
    group_offset[g]  the first node of group g; its members are group_offset[g] + 0 .. size - 1
    group_size[g]    how many nodes group g holds
    leaf[i]          True unless node i is somebody's parent
    depth[i]         edges from node i up to its root (0 for a root); ours, not Darknet's

A tree that ``read_tree`` would read into nonsense (a parent listed after its child, the
children of one parent split over two runs of lines, a cycle, two nodes of one name, a
malformed line) raises ``TreeError`` here, naming the problem and the line.

The grouped softmax is ``tree_softmax``. Darknet has two of them for a ``[region]`` layer:
``softmax_tree`` in ``src/blas_kernels.cu`` (the GPU build), which softmaxes exactly the class
entries of each group, and the CPU build's loop in ``forward_region_layer``
(``src/region_layer.c``, lines 174-181 at pjreddie/darknet f6afaabc), which starts at the wrong
offset with the wrong stride (pjreddie/darknet issue #143) and so softmaxes sets of entries that
are not groups at all. ``tree_softmax`` is the GPU's; ``region_tree_activations(...,
darknet_cpu=True)`` reproduces the CPU build's, so the difference can be shown.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import Tensor

TREE_ERROR_REASONS = (
    "empty",
    "bad line",
    "bad name",
    "duplicate name",
    "unknown parent",
    "parent out of range",
    "cycle",
    "parent after child",
    "non-contiguous group",
)


class TreeError(ValueError):
    """A tree Darknet's ``read_tree`` cannot read correctly; ``reason`` is one of
    ``TREE_ERROR_REASONS`` and the message starts with it."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class WordTree:
    """A class hierarchy as Darknet's ``read_tree`` (``src/tree.c``) builds it.

    ``WordTree(names, parents)``: node i is called ``names[i]`` and its parent is node
    ``parents[i]`` (-1 for a root), in Darknet's file order. Use ``read_tree`` for a Darknet
    ``.tree`` file and ``WordTree.from_mapping`` to build one from ``{child: parent}``.
    """

    def __init__(self, names: Sequence[str], parents: Sequence[int], *, _where: Sequence[str] | None = None):
        names = tuple(names)
        parents = tuple(int(p) if isinstance(p, numbers.Integral) and not isinstance(p, bool) else p for p in parents)
        if len(names) != len(parents):
            raise ValueError(f"expected one parent per name, got {len(names)} names and {len(parents)} parents")
        where = tuple(_where) if _where is not None else tuple(f"node {i} {n!r}" for i, n in enumerate(names))
        _validate(names, parents, where)
        self.names: tuple[str, ...] = names
        self.parent: tuple[int, ...] = parents
        # read_tree's single pass: a new group whenever the parent differs from the line above.
        group, offsets, sizes = [], [], []
        for i, p in enumerate(parents):
            if i == 0 or p != parents[i - 1]:
                offsets.append(i)
                sizes.append(0)
            sizes[-1] += 1
            group.append(len(offsets) - 1)
        child = [-1] * len(names)
        for i, p in enumerate(parents):
            if p >= 0:
                child[p] = group[i]  # t.child[parent] = groups
        depth: list[int] = []
        for p in parents:  # parents come first, so their depth is known
            depth.append(0 if p < 0 else depth[p] + 1)
        self.group: tuple[int, ...] = tuple(group)
        self.group_offset: tuple[int, ...] = tuple(offsets)
        self.group_size: tuple[int, ...] = tuple(sizes)
        self.child: tuple[int, ...] = tuple(child)
        self.leaf: tuple[bool, ...] = tuple(c < 0 for c in child)
        self.depth: tuple[int, ...] = tuple(depth)
        self._path_table: Tensor | None = None

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str | None]) -> WordTree:
        """Build a tree from ``{child_name: parent_name}`` (``None`` for a root).

        Nodes are numbered breadth first: the roots in the mapping's order (group 0), then the
        children of node 0, of node 1, ... each in the mapping's order, so every parent comes
        before its children and every group is contiguous, as ``read_tree`` needs.
        """
        if not isinstance(mapping, Mapping):
            raise TypeError(f"expected a mapping {{child: parent or None}}, got {type(mapping).__name__}")
        if not mapping:
            raise TreeError("empty", "the mapping holds no node")
        for name, parent in mapping.items():
            _check_name(name, f"node {name!r}")
            if parent is not None and parent not in mapping:
                raise TreeError("unknown parent", f"node {name!r} has parent {parent!r}, which is not a node")
        for name in mapping:  # every chain of parents must end at a root
            seen = [name]
            while (up := mapping[seen[-1]]) is not None:
                if up in seen:
                    loop = seen[seen.index(up):] + [up]
                    raise TreeError("cycle", " -> ".join(repr(n) for n in loop))
                seen.append(up)
        children: dict[str | None, list[str]] = {}
        for name, parent in mapping.items():
            children.setdefault(parent, []).append(name)
        order = list(children.get(None, []))
        for name in order:  # order grows while we walk it: breadth first
            order.extend(children.get(name, []))
        index = {name: i for i, name in enumerate(order)}
        parents = [-1 if mapping[name] is None else index[mapping[name]] for name in order]
        return cls(order, parents)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"WordTree({len(self)} nodes, {self.num_groups} groups, {sum(self.leaf)} leaves)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordTree) and (self.names, self.parent) == (other.names, other.parent)

    def __hash__(self) -> int:
        return hash((self.names, self.parent))

    @property
    def num_groups(self) -> int:
        """Darknet's ``groups``: how many softmaxes the tree needs."""
        return len(self.group_offset)

    @property
    def max_depth(self) -> int:
        return max(self.depth)

    def index(self, name: str) -> int:
        """The node called ``name``."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no node called {name!r} in {self!r}") from None

    def members(self, group: int) -> range:
        """The nodes of group ``group``, a contiguous range."""
        return range(self.group_offset[group], self.group_offset[group] + self.group_size[group])

    def children(self, node: int) -> range:
        """The children of ``node`` (empty for a leaf)."""
        return range(0) if self.child[node] < 0 else self.members(self.child[node])

    def path(self, node: int) -> tuple[int, ...]:
        """The nodes from ``node``'s root down to ``node`` itself."""
        nodes = [node]
        while self.parent[nodes[-1]] >= 0:
            nodes.append(self.parent[nodes[-1]])
        return tuple(reversed(nodes))

    def lines(self) -> list[str]:
        """The tree in Darknet's format, one ``name parent_index`` line per node."""
        return [f"{name} {parent}" for name, parent in zip(self.names, self.parent, strict=True)]

    def path_table(self, device: torch.device | str | None = None) -> Tensor:
        """(len(tree), max_depth + 1) long: row i lists node i, its parent, ... its root (the order
        ``delta_region_class`` walks), padded with -1."""
        if self._path_table is None:  # built once: a tree never changes
            table = torch.full((len(self), self.max_depth + 1), -1, dtype=torch.long)
            for node in range(len(self)):
                up = self.path(node)[::-1]
                table[node, : len(up)] = torch.tensor(up)
            self._path_table = table
        return self._path_table.to(device)


def read_tree(source: str | os.PathLike | Iterable[str]) -> WordTree:
    """Read a tree in Darknet's format: a file path, or the lines themselves (any iterable of str).

    Each line is ``name parent_index``, the parent a 0-based line index or -1 for a root.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    elif isinstance(source, bytes):
        raise TypeError("expected a path or an iterable of str lines, got bytes")
    else:
        lines = [line.rstrip("\r\n") for line in source]
    if not lines:
        raise TreeError("empty", "the tree has no line")
    names, parents = [], []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if len(fields) != 2 or not _is_int(fields[1]):
            raise TreeError("bad line", f"line {number}: expected 'name parent_index', got {line!r}")
        names.append(fields[0])
        parents.append(int(fields[1]))
    return WordTree(names, parents, _where=[f"line {i + 1} {n!r}" for i, n in enumerate(names)])


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _check_name(name: object, where: str) -> None:
    if not isinstance(name, str) or not name or any(ch.isspace() for ch in name):
        raise TreeError("bad name", f"{where}: a name must be a non-empty string without spaces, got {name!r}")


def _validate(names: tuple[str, ...], parents: tuple[int, ...], where: tuple[str, ...]) -> None:
    """Raise TreeError unless ``read_tree`` would read these nodes into a correct tree."""
    n = len(names)
    if n == 0:
        raise TreeError("empty", "the tree has no node")
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        _check_name(name, where[i])
        if name in first:
            raise TreeError("duplicate name", f"{where[i]}: the name is already used by {where[first[name]]}")
        first[name] = i
    for i, p in enumerate(parents):
        if isinstance(p, bool) or not isinstance(p, int) or not -1 <= p < n:
            raise TreeError("parent out of range", f"{where[i]}: parent {p!r} is not -1 or a node index 0..{n - 1}")
    for i in range(n):  # follow the parents: a chain must reach a root
        chain = [i]
        while parents[chain[-1]] >= 0:
            up = parents[chain[-1]]
            if up in chain:
                loop = chain[chain.index(up):] + [up]
                raise TreeError("cycle", " -> ".join(where[k] for k in loop))
            chain.append(up)
    for i, p in enumerate(parents):
        if p > i:
            raise TreeError(
                "parent after child", f"{where[i]}: its parent {where[p]} comes later; a parent must come first"
            )
    run_start: dict[int, int] = {}
    for i, p in enumerate(parents):
        if i > 0 and p == parents[i - 1]:
            continue
        if p in run_start:
            parent = "the roots" if p < 0 else f"the children of {where[p]}"
            raise TreeError(
                "non-contiguous group",
                f"{where[i]}: {parent} start at {where[run_start[p]]} and again here; "
                "siblings must be on consecutive lines",
            )
        run_start[p] = i


def _group_index(tree: WordTree, x: Tensor) -> Tensor:
    """The group of each class, broadcast to ``x`` (..., C)."""
    return torch.tensor(tree.group, device=x.device).expand(x.shape)


def _check_logits(logits: Tensor, tree: WordTree, dim: int) -> Tensor:
    if not isinstance(tree, WordTree):
        raise TypeError(f"expected a WordTree, got {type(tree).__name__}")
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise ValueError(f"expected a floating tensor of logits, got {type(logits).__name__}")
    x = logits.movedim(dim, -1)
    if x.shape[-1] != len(tree):
        raise ValueError(f"a tree of {len(tree)} nodes needs {len(tree)} logits along dim {dim}, got {x.shape[-1]}")
    return x


def tree_log_softmax(logits: Tensor, tree: WordTree, dim: int) -> Tensor:
    """log P(node | its parent): a log-softmax over each group of ``tree``, along ``dim``."""
    x = _check_logits(logits, tree, dim)  # (..., C)
    idx = _group_index(tree, x)
    shape = (*x.shape[:-1], tree.num_groups)
    with torch.no_grad():  # each group's largest logit, subtracted for stability (no gradient needed)
        largest = x.new_full(shape, -torch.inf).scatter_reduce(-1, idx, x, reduce="amax")
    shifted = x - largest.gather(-1, idx)
    sums = x.new_zeros(shape).scatter_add(-1, idx, shifted.exp())  # (..., G) one sum per group
    return (shifted - sums.log().gather(-1, idx)).movedim(-1, dim)


def tree_softmax(logits: Tensor, tree: WordTree, dim: int) -> Tensor:
    """P(node | its parent): one softmax per group of ``tree`` along ``dim``, as Darknet's GPU
    ``softmax_tree`` computes it. Each group's entries sum to 1."""
    return tree_log_softmax(logits, tree, dim).exp()


def region_tree_activations(
    output: Tensor,
    tree: WordTree,
    num_anchors: int,
    *,
    darknet_cpu: bool = False,
    temperature: float = 1.0,
) -> Tensor:
    """A ``[region]`` layer's ``l.output`` for a head with ``tree=``: (N, A*(5+C), H, W).

    Logistic on x, y and objectness; the class logits of each (anchor, cell) through
    ``tree_softmax``, as ``forward_region_layer_gpu`` does; tw, th stay raw.

    ``darknet_cpu=True`` gives instead what the released CPU build computes
    (``forward_region_layer``, ``#ifndef GPU``): for each group, in order, a call
    ``softmax_cpu(net.input + count, group_size, batch, inputs, A*H*W, 1, A*H*W, temperature,
    l.output + count)`` with ``count`` starting at 5 and growing by each group's size. It reads
    the raw input at entries ``count + k + i*A*H*W`` (k < A*H*W, i < group size) of each
    image -- not class entries -- and writes its softmaxes over whatever is there, a later
    group over an earlier; every class entry it misses keeps its raw logit (issue #143).
    ``temperature`` is the ``l.temperature`` it divides by: a ``[region]`` layer never sets
    it, so the released build divides by 0 and every entry it writes is NaN; 1.0 (the
    default here) shows the indexing alone.
    """
    if not isinstance(output, Tensor) or output.dim() != 4 or not output.is_floating_point():
        raise ValueError(f"expected a floating (N, A*(5+C), H, W) head output, got {getattr(output, 'shape', output)}")
    n, channels, h, w = output.shape
    c = len(tree)
    if isinstance(num_anchors, bool) or not isinstance(num_anchors, int) or num_anchors < 1:
        raise ValueError(f"expected a positive int num_anchors, got {num_anchors!r}")
    a = num_anchors
    if channels != a * (5 + c):
        raise ValueError(
            f"a head with {a} anchors and a {c}-node tree has {a} * (5 + {c}) = {a * (5 + c)} channels, got {channels}"
        )
    p = output.reshape(n, a, 5 + c, h, w)
    logistic = torch.sigmoid(p[:, :, [0, 1, 4]])
    if not darknet_cpu:
        classes = tree_softmax(p[:, :, 5:], tree, dim=2)
        return torch.cat([logistic[:, :, :2], p[:, :, 2:4], logistic[:, :, 2:], classes], dim=2).reshape(output.shape)
    out = torch.cat([logistic[:, :, :2], p[:, :, 2:4], logistic[:, :, 2:], p[:, :, 5:]], dim=2).reshape(n, -1)
    raw = output.reshape(n, -1)  # net.input, image by image (batch_offset = l.inputs)
    spread = a * h * w  # the call's groups, group_offset = 1 and stride, all l.n*l.w*l.h
    count = 5  # l.coords + 1
    for size in tree.group_size:
        steps = torch.arange(spread, device=output.device)[:, None], torch.arange(size, device=output.device)[None, :]
        at = count + steps[0] + steps[1] * spread  # (A*H*W, size) entries of each image
        x = raw[:, at]  # (N, A*H*W, size)
        largest = x.amax(dim=-1, keepdim=True)
        e = torch.exp(x / temperature - largest / temperature)  # blas.c softmax(), as written
        out[:, at] = e / e.sum(dim=-1, keepdim=True)
        count += size
    return out.reshape(output.shape)
