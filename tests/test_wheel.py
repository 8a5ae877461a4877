"""The package as a reader installs it: a wheel with every layer and the shipped weights.

``pip install git+...`` in Colab builds exactly this wheel, so what is not in it does not exist
for a Colab reader. The wheel is built from a copy of the package's files (a setuptools build
leaves ``build/`` and ``*.egg-info`` behind, and the checkout stays clean), then installed into
a new virtual environment outside the checkout. That environment borrows the pinned
dependencies (torch, numpy, ...) of the one running the tests through a ``.pth`` line, which
adds their folder to ``sys.path`` without running the editable install's hooks in it: the only
``yolo_lessons`` it can import is the wheel's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("models", "data", "losses", "detection", "darknet", "checkpoints", "exercises")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "yolo_lessons", source / "yolo_lessons", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    # setuptools is in the pinned environment: build with it rather than fetch another
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", str(source)]
    subprocess.run([*command, "--wheel-dir", str(out)], check=True, capture_output=True, text=True)
    (built,) = out.glob("yolo_lessons-*.whl")
    return built


def test_the_wheel_holds_every_module_and_the_shipped_weights(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for layer in LAYERS:
        assert f"yolo_lessons/{layer}/__init__.py" in names, layer
    assert "yolo_lessons/weights/small_yolov2_shapes.weights" in names
    modules = {str(p.relative_to(ROOT).as_posix()) for p in (ROOT / "yolo_lessons").rglob("*.py")}
    assert modules - names == set()


@pytest.fixture(scope="module")
def fresh_python(wheel, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("elsewhere")
    venv.create(home / "venv", with_pip=False)
    python = home / "venv" / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    Path(purelib, "pinned_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "--quiet",
         str(wheel)],
        check=True, capture_output=True, text=True,
    )
    return python


def run_outside(python: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, *args], cwd=python.parents[2], capture_output=True, text=True, timeout=300)


def test_a_fresh_environment_imports_the_wheel_and_builds_yolov3(fresh_python):
    code = (
        "import yolo_lessons; m = yolo_lessons.yolov3(); "
        "print(yolo_lessons.__file__); print(yolo_lessons.count_parameters(m)); "
        "from yolo_lessons.darknet import load_book_model; load_book_model(); print('book model loaded')"
    )
    result = run_outside(fresh_python, "-c", code)
    assert result.returncode == 0, result.stderr
    where, parameters, loaded = result.stdout.split("\n")[:3]
    assert Path(where).is_relative_to(fresh_python.parents[1]) and not Path(where).is_relative_to(ROOT)
    assert parameters == "61949149"  # yolov3.cfg at 80 classes (chapter 6)
    assert loaded == "book model loaded"  # the shipped .weights came with the wheel


def test_a_fresh_environment_runs_the_training_command_help(fresh_python):
    result = run_outside(fresh_python, "-m", "yolo_lessons.train", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:") and "--resume" in result.stdout
