"""YOLO9000 in miniature: does a detector trained with boxes only at the top of a WordTree name the leaves?

    OMP_WAIT_POLICY=PASSIVE python benchmarks/yolo9000_experiment.py \
        [--seeds 0 1] [--arms darknet paper assigned] [--steps 960] [--jobs 2] \
        [--out benchmarks/results/yolo9000_experiment.json] [--weights benchmarks/results/yolo9000_small.pt]

Chapter 14 builds YOLO9000's pieces (``models.wordtree``, ``losses.tree_region_loss``,
``detection.hierarchy``) and its data in miniature (``data.shape_tree``): detection images whose
boxes say only the kind of each shape (circle, square, triangle), the COCO of the experiment,
and classification images of one shape labelled at its colour leaf (``red_circle``) without a
box, its ImageNet. No detection label ever names a colour. This script trains ``small_yolov2``
(width 8, 96 x 96 px, 5 k-means anchors, one output channel per tree node: 5 x (5 + 27)) on
both kinds, half and half, with the book's recipe (``yolo_lessons.train``: AdamW at lr 8e-3
after a 50-step warm-up, then a cosine to 0, batch 16, the loss divided by the batch) for
chapter 8's live budget of 960 steps, and measures on held-out detection images (seed 1000,
never trained on):

* **naming**: for each object, the predicted box of largest objectness among those
  overlapping it by IoU > 0.5 (none: the object is missed and wrong at every level), named by
  descending the tree with ``-hier`` 0.5 (``hierarchy_top_prediction``) two ways: Darknet's
  descent (the running product of already-absolute probabilities) and the paper's rule (the
  node's own absolute probability). A level (kind, warm/cool family, colour leaf) counts as
  right when the name reaches that level and its node there is the object's; it counts as
  named when the name reaches it at all. Also the leaf of largest absolute probability
  (Darknet's classifier's top-1, no threshold), the best a descent could do at the colour level;
* **AP@0.5 per level**: the classes of a level are its nodes, each box scored
  objectness * P(node) (Darknet's ``-map`` evaluation, no descent), VOC all-point AP
  (``detection.metrics``) over the objects' nodes at that level;
* the same AP and the mean objectness of the best box on held-out **classification** images
  (their one shape's box is known here, never trained on);
* during training, every 10 steps, the share of classification pictures whose box YOLO9000's
  rule trains (largest objectness * P(label)) overlaps the unseen shape by IoU > 0.5.

Arms (``ARMS``), differing only in what a classification picture trains:

* ``darknet``: the released code (the best box gets no objectness gradient: the .3 target is
  computed, then zeroed, ``forward_region_layer`` line 224; every other box is pushed to 0);
* ``paper``: ``paper_objectness=True``, that box is pushed toward .3 while below it;
* ``paper_only``: as ``paper`` and no no-object term on the other boxes (the paper's "only
  classification loss"), not in the default set;
* ``assigned``: an oracle that is not YOLO9000: the class loss goes to the prediction the
  picture's unseen box would be assigned to (cell of its centre, anchor of best shape IoU), with
  no objectness or box term. It shows what the classification labels can teach a detector when
  the right box is trained; the detection labels stay at the kind level as in every arm.

With one seed every arm starts from the same weights and sees the same images in the same
order: a paired comparison.

Each run uses ``--threads`` threads (1 by default) in its own process, at most ``--jobs`` at
once; results go to ``--out`` as JSON after every finished run. ``--weights`` stores the
state dicts of the first seed's ``--weights-arms`` runs in half precision (about 1.4 MB each).
Seconds depend on the machine and its load; every other number depends only on the seed, the
thread count and the torch build.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
DEFAULT_OUT = os.path.join(RESULTS, "yolo9000_experiment.json")
# arm -> tree_region_loss options for classification images
ARMS = {
    "darknet": {"paper_objectness": False, "class_only_noobject": True},  # the released code
    "paper": {"paper_objectness": True, "class_only_noobject": True},  # the .3 target kept
    "paper_only": {"paper_objectness": True, "class_only_noobject": False},  # ... and no other objectness term
    # An oracle, not YOLO9000: each classification picture's class loss goes to the prediction its
    # (unseen) box would be assigned to, as for a detection label, with no objectness or box term.
    "assigned": {"paper_objectness": False, "class_only_noobject": False},
}
RULES = {"darknet": False, "paper": True}  # naming rule -> paper_rule of hierarchy_top_prediction
HIER_THRESH = 0.5  # ./darknet detector test ... -hier .5, examples/detector.c's default
ANCHOR_IMAGES = 1000  # k-means over the boxes of the first detection images of the training seed
NUM_ANCHORS = 5
EVAL_BATCH = 100


def detection_set(count: int, seed: int, size: int):
    """Held-out detection images: images (N, 3, S, S), kind boxes (N, M, 5), counts (N,), true leaves (N, M)."""
    import torch

    from yolo_lessons.data.shape_tree import make_detection_image

    items = [make_detection_image(i, seed, size) for i in range(count)]
    most = max(len(b) for _, b, _ in items)
    images = torch.stack([torch.from_numpy(im) for im, _, _ in items])
    boxes = torch.zeros(count, most, 5)
    leaves = torch.full((count, most), -1, dtype=torch.long)
    for i, (_, b, leaf) in enumerate(items):
        boxes[i, : len(b)] = torch.from_numpy(b)
        leaves[i, : len(b)] = torch.from_numpy(leaf)
    counts = torch.tensor([len(b) for _, b, _ in items])
    return images, boxes, counts, leaves


def classification_set(count: int, seed: int, size: int):
    """Held-out classification images as detection sets of one object: the drawn box and its leaf."""
    import torch

    from yolo_lessons.data.shape_tree import make_classification_image

    items = [make_classification_image(i, seed, size) for i in range(count)]
    images = torch.stack([torch.from_numpy(im) for im, _, _ in items])
    boxes = torch.zeros(count, 1, 5)
    leaves = torch.zeros(count, 1, dtype=torch.long)
    for i, (_, label, box) in enumerate(items):
        boxes[i, 0, 1:] = torch.from_numpy(box)
        leaves[i, 0] = int(label[0, 0])
    return images, boxes, torch.ones(count, dtype=torch.long), leaves


def kmeans_grid_anchors(seed: int, size: int) -> list[list[float]]:
    """k-means (1 - IoU) anchors in grid cells from the boxes of the first training detection images."""
    import numpy as np

    from yolo_lessons.data.anchors import kmeans_anchors, to_grid_cells
    from yolo_lessons.data.shape_tree import make_detection_image
    from yolo_lessons.models.small_yolov2 import STRIDE

    sides = np.concatenate([make_detection_image(i, seed, size)[1][:, 3:5] for i in range(ANCHOR_IMAGES)])
    return [[float(w), float(h)] for w, h in kmeans_anchors(to_grid_cells(sides, size // STRIDE), NUM_ANCHORS,
                                                            seed=seed)]


def ancestor_at(tree, nodes, level: int):
    """(..,) the node at depth ``level`` on the path of each node, -1 where the node is shallower."""
    import torch

    table = torch.full((len(tree),), -1, dtype=torch.long)
    for node in range(len(tree)):
        path = tree.path(node)
        if len(path) > level:
            table[node] = path[level]
    return table[nodes.clamp(min=0)].masked_fill(nodes < 0, -1)


def decode_all(model, images, tree):
    """decode_yolo9000 of the model on every image, in batches: boxes (N, K, 4), objectness (N, K), probs (N, K, C)."""
    import torch

    from yolo_lessons.detection.hierarchy import decode_yolo9000

    parts = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(images), EVAL_BATCH):
            parts.append(decode_yolo9000(model(images[i : i + EVAL_BATCH]), model.anchors, tree))
    return (torch.cat([p.boxes for p in parts]), torch.cat([p.objectness for p in parts]),
            torch.cat([p.class_probs for p in parts]))  # fmt: skip


def level_aps(boxes, objectness, probs, truths, counts, leaves, tree) -> list[float]:
    """AP@0.5 at each depth: the level's nodes are its classes, scored objectness * P(node)."""
    import torch

    from yolo_lessons.detection.decode import Detections, box_corners
    from yolo_lessons.detection.metrics import GroundTruth, mean_average_precision
    from yolo_lessons.detection.nms import VALID_THRESHOLD, postprocess

    depth = torch.tensor(tree.depth)
    aps = []
    for level in range(tree.max_depth + 1):
        nodes = (depth == level).nonzero().squeeze(1)  # (L,) the level's classes, in tree order
        position = torch.full((len(tree),), -1, dtype=torch.long)
        position[nodes] = torch.arange(len(nodes))
        found = postprocess(Detections(boxes, objectness, probs[..., nodes]), thresh=VALID_THRESHOLD)
        ground = [GroundTruth(box_corners(truths[i, : counts[i], 1:]),
                              position[ancestor_at(tree, leaves[i, : counts[i]], level)])
                  for i in range(len(truths))]  # fmt: skip
        aps.append(mean_average_precision(found, ground).map)
    return aps


def naming(boxes, objectness, probs, truths, counts, leaves, tree, thresh: float = HIER_THRESH) -> dict:
    """Per rule and level: the share of objects named right, and named at all, at that level."""
    import torch

    from yolo_lessons.detection.decode import box_corners
    from yolo_lessons.detection.hierarchy import hierarchy_top_prediction
    from yolo_lessons.detection.nms import box_iou

    best_boxes, true_leaves = [], []
    for i in range(len(truths)):
        overlap = box_iou(box_corners(truths[i, : counts[i], 1:]), box_corners(boxes[i]))  # (G, K)
        ranked = torch.where(overlap > 0.5, objectness[i][None, :], torch.full_like(overlap, -1.0))
        best = ranked.max(dim=1)
        best_boxes += [(i, int(k)) if float(v) >= 0 else None for v, k in zip(best.values, best.indices, strict=True)]
        true_leaves += leaves[i, : counts[i]].tolist()
    found = [b is not None for b in best_boxes]
    picked = torch.stack([probs[b] if b is not None else torch.zeros(len(tree)) for b in best_boxes])  # (G, C)
    truth = torch.tensor(true_leaves)
    depth = torch.tensor(tree.depth)
    named = {rule: hierarchy_top_prediction(picked, tree, thresh=thresh, paper_rule=paper)
             for rule, paper in RULES.items()}  # fmt: skip
    leaf_mask = torch.tensor(tree.leaf)
    named["top_leaf"] = torch.where(leaf_mask, picked, torch.full_like(picked, -1.0)).argmax(dim=1)
    hit = torch.tensor(found)
    result = {"objects": len(true_leaves), "found": int(hit.sum())}
    for rule, nodes in named.items():
        right, reached = [], []
        for level in range(tree.max_depth + 1):
            at_level = hit & (depth[nodes] >= level)
            same = ancestor_at(tree, nodes, level) == ancestor_at(tree, truth, level)
            right.append(float((at_level & same).float().mean()))
            reached.append(float(at_level.float().mean()))
        result[rule] = {"right": right, "named": reached}
    return result


def mean_best_objectness(boxes, objectness, truths) -> float:
    """Mean over images of the largest objectness among the boxes overlapping the one object by IoU > 0.5."""
    import torch

    from yolo_lessons.detection.decode import box_corners
    from yolo_lessons.detection.nms import box_iou

    values = []
    for i in range(len(truths)):
        overlap = box_iou(box_corners(truths[i, :1, 1:]), box_corners(boxes[i]))[0]  # (K,)
        values.append(float(torch.where(overlap > 0.5, objectness[i], torch.zeros_like(objectness[i])).max()))
    return statistics.fmean(values)


def measure(model, options: dict) -> dict:
    from yolo_lessons.data.shape_tree import SHAPE_TREE

    tree, size = SHAPE_TREE, options["size"]
    images, truths, counts, leaves = detection_set(options["eval_images"], options["eval_seed"], size)
    decoded = decode_all(model, images, tree)
    detection = {"ap": level_aps(*decoded, truths, counts, leaves, tree),
                 **naming(*decoded, truths, counts, leaves, tree)}  # fmt: skip
    images, truths, counts, leaves = classification_set(options["eval_images"], options["eval_seed"], size)
    decoded = decode_all(model, images, tree)
    classification = {"ap": level_aps(*decoded, truths, counts, leaves, tree),
                      "mean_best_objectness": mean_best_objectness(decoded[0], decoded[1], truths),
                      **naming(*decoded, truths, counts, leaves, tree)}  # fmt: skip
    return {"detection_images": detection, "classification_images": classification}


def chosen_on_object(output, anchors, tree, labels, true_boxes) -> list[bool]:
    """For classification pictures: does the box YOLO9000's rule trains (largest objectness * P(label),
    ``get_hierarchy_probability``) overlap the picture's unseen shape by IoU > 0.5?"""
    import torch

    from yolo_lessons.detection.decode import box_corners
    from yolo_lessons.detection.hierarchy import decode_yolo9000
    from yolo_lessons.detection.nms import box_iou

    with torch.no_grad():
        decoded = decode_yolo9000(output, anchors, tree)
    on = []
    for i, (label, box) in enumerate(zip(labels, true_boxes, strict=True)):
        k = int((decoded.objectness[i] * decoded.class_probs[i, :, label]).argmax())
        on.append(float(box_iou(box_corners(decoded.boxes[i, k : k + 1]), box_corners(box[None]))[0, 0]) > 0.5)
    return on


def run_one(arm: str, seed: int, options: dict, keep_weights: bool) -> dict:
    """Train one (arm, seed) run in this process; return its losses and measurements (and, with
    ``keep_weights``, its state dict in half precision under "state")."""
    import torch

    from yolo_lessons.data.shape_tree import (
        DETECTION_MAP,
        SHAPE_TREE,
        ShapeTreeDataset,
        collate_tree,
        make_classification_image,
    )
    from yolo_lessons.losses.tree_region_loss import tree_region_loss
    from yolo_lessons.models.small_yolov2 import small_yolov2
    from yolo_lessons.train import learning_rate

    torch.set_num_threads(options["threads"])
    load_before = os.getloadavg()[0]
    steps, batch, size = options["steps"], options["batch_size"], options["size"]
    anchors = kmeans_grid_anchors(seed, size)
    torch.manual_seed(seed)  # the initial weights: the same for every arm of a seed
    model = small_yolov2(len(SHAPE_TREE), anchors, options["width"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=options["lr"], weight_decay=options["weight_decay"])
    data = ShapeTreeDataset(steps * batch, size, seed, classification_share=options["classification_share"])
    losses, parts, on_object = [], {}, []
    model.train()
    started = time.perf_counter()
    for step in range(steps):
        items = range(step * batch, (step + 1) * batch)
        images, boxes, counts, class_only = collate_tree([data[i] for i in items])
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, options["lr"], options["warmup"])
        output = model(images)  # (N, A*(5+C), H, W)
        seen = (step + 1) * batch
        # The shapes of the classification pictures: never a training label, except to place the
        # class loss in the "assigned" arm and to measure where YOLO9000's rule puts it.
        logged = step % 10 == 0
        true_boxes = {}
        if arm == "assigned" or logged:
            true_boxes = {i: torch.from_numpy(make_classification_image(k, seed, size)[2])
                          for i, k in enumerate(items) if class_only[i]}  # fmt: skip
        if arm == "assigned":
            det, only = ~class_only, class_only
            result = tree_region_loss(output[det], boxes[det], counts[det], model.anchors, SHAPE_TREE,
                                      seen=seen, class_map=DETECTION_MAP)  # fmt: skip
            rows = torch.stack([torch.cat([boxes[i, 0, :1], true_boxes[i]]) for i in range(batch) if class_only[i]])
            placed = tree_region_loss(output[only], rows[:, None], torch.ones(len(rows), dtype=torch.long),
                                      model.anchors, SHAPE_TREE, seen=seen)  # rows at leaf nodes: no map
            result.parts["class"] = result.parts["class"] + placed.parts["class"]  # only its class term
            total = sum(result.parts.values())
        else:
            result = tree_region_loss(output, boxes, counts, model.anchors, SHAPE_TREE, seen=seen,
                                      class_only=class_only, class_map=DETECTION_MAP, **ARMS[arm])  # fmt: skip
            total = result.loss
        loss = total / batch
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        for name, value in result.parts.items():
            parts.setdefault(name, []).append(value.item() / batch)
        if logged and true_boxes:
            which = sorted(true_boxes)
            labels = [int(boxes[i, 0, 0]) for i in which]
            on_object.append(statistics.fmean(chosen_on_object(
                output.detach()[which], model.anchors, SHAPE_TREE, labels, [true_boxes[i] for i in which])))
    train_seconds = time.perf_counter() - started
    last = losses[-20:]
    record = {
        "arm": arm,
        **ARMS[arm],
        "seed": seed,
        "anchors": anchors,
        "final_loss": sum(last) / len(last),  # loss per image, mean of the last 20 steps
        "losses_every_10": losses[::10],
        "parts_every_10": {name: values[::10] for name, values in parts.items()},
        "rule_box_on_object_every_10": on_object,
        **measure(model, options),
        "train_seconds": train_seconds,  # inflated by the machine's load
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }
    if keep_weights:
        record["state"] = {name: t.half() if t.is_floating_point() else t for name, t in model.state_dict().items()}
    return record


def summary(runs: list[dict], arms: list[str]) -> dict:
    """Per arm: the mean over seeds of every level's AP and naming shares on detection images."""
    out = {}
    for arm in arms:
        mine = [r for r in runs if r["arm"] == arm]
        if not mine:
            continue
        det = [r["detection_images"] for r in mine]
        levels = range(len(det[0]["ap"]))
        out[arm] = {
            "seeds": sorted(r["seed"] for r in mine),
            "ap": [statistics.fmean(d["ap"][k] for d in det) for k in levels],
            "classification_ap": [statistics.fmean(r["classification_images"]["ap"][k] for r in mine) for k in levels],
            **{rule: {key: [statistics.fmean(d[rule][key][k] for d in det) for k in levels]
                      for key in ("right", "named")} for rule in (*RULES, "top_leaf")},
        }  # fmt: skip
    return out


def write(path: str, header: dict, runs: list[dict], arms: list[str]) -> None:
    runs = sorted(runs, key=lambda r: (arms.index(r["arm"]), r["seed"]))
    data = {**header, "runs": runs, "summary": summary(runs, arms)}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = path + ".tmp"
    with open(temporary, "w") as file:
        json.dump(data, file, indent=1)
        file.write("\n")
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--arms", nargs="+", default=["darknet", "paper", "assigned"], choices=list(ARMS))
    parser.add_argument("--steps", type=int, default=960, help="the training budget of every run")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=8e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--classification-share", type=float, default=0.5)
    parser.add_argument("--eval-images", type=int, default=500)
    parser.add_argument("--eval-seed", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one process each")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--weights", default=None, help="store the first seed's model of each --weights-arms "
                        "arm here (torch.save, half precision)")
    parser.add_argument("--weights-arms", nargs="+", default=["darknet", "assigned"], choices=list(ARMS))
    args = parser.parse_args(argv)
    if args.eval_seed in args.seeds:
        parser.error(f"the held-out images need another seed than the training seeds, got {args.eval_seed}")
    if args.weights is not None and os.path.exists(args.weights):
        parser.error(f"{args.weights} exists already; remove it or name another file")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read by the workers' OpenMP when they load torch

    import torch

    options = {name: getattr(args, name) for name in (
        "steps", "batch_size", "lr", "warmup", "weight_decay", "width", "size", "classification_share",
        "eval_images", "eval_seed", "threads")}  # fmt: skip
    header = {
        "command": "OMP_WAIT_POLICY=PASSIVE python benchmarks/yolo9000_experiment.py " + " ".join(
            argv if argv is not None else sys.argv[1:]),
        "recipe": options,
        "seeds": args.seeds,
        "arms": args.arms,
        "levels": ["kind", "family", "colour"],
        "hier_thresh": HIER_THRESH,
        "jobs": args.jobs,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_at_start": os.getloadavg()[0],
        "note": "train_seconds are inflated by the machine's load; AP is VOC all-point AP@0.5 per tree level on "
                "eval_images held-out images of eval_seed; 'right' and 'named' are shares of all objects",
    }
    print(f"load average {header['load_average_at_start']:.2f} on {os.cpu_count()} CPUs; "
          f"{len(args.seeds)} seed(s) x {len(args.arms)} arm(s), {args.jobs} at once", flush=True)
    started = time.perf_counter()
    runs: list[dict] = []
    jobs = [(arm, seed) for seed in args.seeds for arm in args.arms]
    kept = {(arm, args.seeds[0]) for arm in args.weights_arms} if args.weights else set()
    states = {}
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_one, arm, seed, options, (arm, seed) in kept) for arm, seed in jobs]
        for future in as_completed(futures):
            run = future.result()
            if "state" in run:
                states[run["arm"]] = {"model": run.pop("state"), "anchors": run["anchors"], "seed": run["seed"]}
            runs.append(run)
            header["wall_seconds"] = time.perf_counter() - started
            write(args.out, header, runs, args.arms)
            det = run["detection_images"]
            print(f"{run['arm']:>10} seed {run['seed']}: AP kind/family/colour "
                  + "/".join(f"{v:.3f}" for v in det["ap"])
                  + "; right (darknet descent) " + "/".join(f"{v:.2f}" for v in det["darknet"]["right"])
                  + ", (paper rule) " + "/".join(f"{v:.2f}" for v in det["paper"]["right"])
                  + f"; {run['train_seconds']:.0f} s of training, load {run['load_average_after']:.1f}", flush=True)
    if args.weights:
        torch.save({"arms": states, "width": args.width, "image_size": args.size, "steps": args.steps,
                    "tree": shape_tree_lines(), "dtype": "float16"}, args.weights)  # fmt: skip
        print(f"weights of {sorted(states)} (seed {args.seeds[0]}) in {args.weights}, "
              f"{os.path.getsize(args.weights):,} bytes")
    print(f"wall time {time.perf_counter() - started:.0f} s; results in {args.out}")


def shape_tree_lines() -> list[str]:
    from yolo_lessons.data.shape_tree import SHAPE_TREE

    return SHAPE_TREE.lines()


if __name__ == "__main__":
    main()
