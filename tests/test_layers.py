"""The package's layers import one way only (README, "The package in layers").

Every module's imports are read with ``ast`` -- at the top of the file and inside functions
alike, relative ones resolved -- and checked against the order

    models  <-  data, losses  <-  detection, darknet  <-  commands, checkpoints  <-  exercises

where a layer may import its own modules and those of the layers to its left, but not its
siblings (data and losses are independent of each other, so are detection and darknet, so are
the commands and the checkpoints). The package's ``__init__`` gathers the five lower layers and
nothing else. No model, data, loss or detection module imports plotting or progress bars.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import yolo_lessons

PACKAGE = Path(yolo_lessons.__file__).resolve().parent
LOWER = ("models", "data", "losses", "detection", "darknet")
# What each layer may import of ours (its own modules always).
ALLOWED: dict[str, set[str]] = {
    "models": set(),
    "data": {"models"},
    "losses": {"models"},
    "detection": {"models", "data", "losses"},
    "darknet": {"models", "data", "losses"},
    "commands": {*LOWER},
    "checkpoints": {*LOWER},
    "exercises": {*LOWER, "checkpoints", "commands"},
    "package": {*LOWER},
}
# Libraries that draw or show progress: a training command or a chapter may use them, a model may not.
PRESENTATION = ("matplotlib", "tqdm")
COMMANDS = {"train.py", "detect.py", "evaluate.py", "export.py"}  # what a reader runs with python -m
NO_PRESENTATION = ("models", "data", "losses", "detection")


def layer_of(module: str) -> str:
    """'yolo_lessons.models.blocks' -> 'models'; a top-level module ('yolo_lessons.train') is a command."""
    parts = module.split(".")
    if parts == ["yolo_lessons"]:
        return "package"
    if parts[1] in (*LOWER, "checkpoints", "exercises"):
        return parts[1]
    return "commands"


def module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(root: Path, dotted: str) -> bool:
    path = root.parent / dotted.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path, root: Path) -> list[tuple[str, int]]:
    """Every module that ``path`` imports (resolved to absolute names), with its line."""
    name = module_name(path, root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from .x import y / from .. import z
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            # `from . import blocks` imports the submodule blocks; `from .blocks import ConvBlock`
            # (or `from yolo_lessons import ConvBlock`) imports a name of the module it names.
            submodules = [f"{target}.{alias.name}" for alias in node.names]
            submodules = [s for s in submodules if is_module(root, s)]
            if len(submodules) < len(node.names):
                found.append((target, node.lineno))
            found += [(s, node.lineno) for s in submodules]
    return found


def order_violations(root: Path) -> list[str]:
    """One line per import against the layer order or the no-plotting rule, naming both modules."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        importer = module_name(path, root)
        layer = layer_of(importer)
        for imported, line in imports_of(path, root):
            top = imported.split(".")[0]
            if top == root.name:
                target = layer_of(imported)
                if target != layer and target not in ALLOWED[layer]:
                    problems.append(
                        f"{importer} (line {line}) imports {imported}: the {layer} layer may import "
                        f"{', '.join(sorted(ALLOWED[layer])) or 'nothing of ours outside it'}, not {target}"
                    )
            elif top in PRESENTATION and layer in NO_PRESENTATION:
                rule = f"no {layer} module draws or shows progress"
                problems.append(f"{importer} (line {line}) imports {imported}: {rule}")
    return problems


def test_every_import_follows_the_layer_order():
    assert order_violations(PACKAGE) == []


def test_the_five_layers_and_the_tools_are_where_the_readme_says():
    # the folders of the layout, and one module each that the book names by its place
    for module in (
        "models/blocks.py",
        "models/yolov3.py",
        "models/counting.py",
        "data/shapes.py",
        "data/letterbox.py",
        "data/anchors.py",
        "losses/region_loss.py",
        "losses/yolo_loss.py",
        "losses/boxes.py",
        "detection/decode.py",
        "detection/nms.py",
        "detection/metrics.py",
        "darknet/weights.py",
        "darknet/book_weights.py",
        "train.py",
        "checkpoints/common.py",
        "exercises/grading.py",
    ):
        assert (PACKAGE / module).is_file(), module
    # nothing left flat beside the layers but the commands and the package itself
    flat = {p.name for p in PACKAGE.glob("*.py")}
    assert {"__init__.py", "train.py", "detect.py"} <= flat <= COMMANDS | {"__init__.py"}, flat


@pytest.mark.parametrize("layer", LOWER)
def test_each_layer_says_what_it_is_for_and_what_it_exports(layer):
    package = __import__(f"yolo_lessons.{layer}", fromlist=["__all__"])
    assert package.__doc__ and len(package.__doc__.split()) > 20, f"{layer}/__init__.py needs its docstring"
    for name in package.__all__:
        assert hasattr(package, name), f"yolo_lessons.{layer} lists {name} but does not export it"


def test_what_the_package_exported_before_the_layers_is_still_there():
    # yolo_lessons.__all__ before the move into layers (the builder names are promised to readers)
    before = """ANCHOR_MASKS COCO_ANCHORS COCO_ANCHORS_V2 DARKNET19_STAGES DARKNET53_STAGES RESNET50_STAGES
    SHAPE_CLASSES STRIDES VOC_ANCHORS YOLOV1_STAGES Bottleneck ConvBlock Darknet19 Darknet53 DarknetHeader
    Detections GroundTruth ImageDetections Letterbox RegionLoss ResNet ResidualBlock ShapesDataset SmallYOLOv2
    SmallYOLOv3 WeightedLayer YOLOv1 YOLOv1ResNet50 YOLOv2 YOLOv3 YoloAssignment YoloLoss assign_yolo_targets
    box_corners box_iou box_shape_iou boxes_to_image boxes_to_network check_image_batch collate conv_set
    count_bn_statistics count_multiply_adds count_parameters count_weighted_layers darknet19 darknet53
    darknet_float_count darknet_layers darknet_reorg darknet_scores darknet_to_cell_major decode_yolov1
    decode_yolov2 decode_yolov3 detector image_batch image_tensor kmeans_anchors letterbox_image
    load_darknet_weights load_torchvision_state_dict make_image mean_average_precision mean_best_iou
    model_summary network_input nms nms_reference postprocess read_darknet_header region_loss resnet50
    save_darknet_weights small_yolov2 small_yolov3 space_to_depth to_grid_cells yolo_loss yolov1
    yolov1_output_length yolov1_resnet50 yolov2 yolov3""".split()
    assert len(before) == 84
    missing = [name for name in before if not hasattr(yolo_lessons, name)]
    assert missing == []
    assert sorted(yolo_lessons.__all__) == sorted(before)


def test_importing_a_model_pulls_in_no_command_checkpoint_or_plotting():
    import subprocess
    import sys

    code = (
        "import sys, yolo_lessons; yolo_lessons.yolov3(); "
        "bad = [m for m in sys.modules if m.startswith(('yolo_lessons.train', 'yolo_lessons.checkpoints', "
        "'yolo_lessons.exercises', 'matplotlib'))]; print(bad)"
    )  # (not tqdm: torch itself imports it)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- the checker itself must fail on a wrong import ----------------------------------------------


def plant(tmp_path: Path, files: dict[str, str]) -> Path:
    """A miniature package named like ours, with the given module texts."""
    root = tmp_path / "yolo_lessons"
    for relative, text in {"__init__.py": "", **files}.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(text)
    return root


def test_the_checker_names_both_modules_of_an_upward_import(tmp_path):
    root = plant(
        tmp_path,
        {
            "models/blocks.py": "from ..detection.nms import box_iou\n",
            "detection/nms.py": "def box_iou(): ...\n",
        },
    )
    (problem,) = order_violations(root)
    assert problem.startswith("yolo_lessons.models.blocks (line 1) imports yolo_lessons.detection.nms")
    assert "models layer may import nothing of ours outside it, not detection" in problem


@pytest.mark.parametrize(
    "importer, text, target",
    [
        ("losses/region_loss.py", "import yolo_lessons.darknet.weights\n", "darknet"),  # absolute
        ("losses/region_loss.py", "from ..data import shapes\n", "data"),  # a sibling layer
        ("detection/nms.py", "def f():\n    from ..darknet import coco\n", "darknet"),  # lazy, sibling
        ("darknet/weights.py", "from .. import train\n", "commands"),  # `from .. import module`
        ("detection/metrics.py", "from ..checkpoints.common import call\n", "checkpoints"),
        ("models/yolov2.py", "from yolo_lessons import ConvBlock\n", "package"),  # the whole package
        ("train.py", "from .checkpoints import common\n", "checkpoints"),
    ],
)
def test_the_checker_catches_each_kind_of_wrong_import(tmp_path, importer, text, target):
    files = {importer: text, "darknet/weights.py": "", "darknet/coco.py": "", "data/shapes.py": ""}
    files.update({"train.py": "", "checkpoints/common.py": "call = 1\n", importer: text})
    root = plant(tmp_path, files)
    problems = order_violations(root)
    assert len(problems) == 1 and problems[0].endswith(f"not {target}"), problems


def test_the_checker_catches_plotting_in_a_loss(tmp_path):
    root = plant(tmp_path, {"losses/yolo_loss.py": "def plot():\n    import matplotlib.pyplot as plt\n"})
    assert order_violations(root) == [
        "yolo_lessons.losses.yolo_loss (line 2) imports matplotlib.pyplot: no losses module draws or shows progress"
    ]


def test_the_checker_allows_what_the_order_allows(tmp_path):
    root = plant(
        tmp_path,
        {
            "models/blocks.py": "import torch\n",
            "models/yolov2.py": "from .blocks import ConvBlock\n",
            "losses/boxes.py": "",
            "losses/region_loss.py": "from .boxes import x\nfrom ..models.blocks import ConvBlock\n",
            "detection/nms.py": "from ..losses import boxes\nfrom ..data import letterbox\n",
            "data/letterbox.py": "",
            "darknet/weights.py": "from ..models import yolov2\n",
            "train.py": "import tqdm\nfrom .darknet.weights import x\nfrom .detection import nms\n",
            "checkpoints/common.py": "import matplotlib\nfrom ..detection.nms import x\n",
            "exercises/grading.py": "from ..checkpoints.common import x\nfrom .. import train\n",
        },
    )
    assert order_violations(root) == []
