"""The training command fails safe: bad input before any work, no run overwritten, NaN and SIGTERM.

As ``test_train.py``, every run is tiny (32 x 32 images, width 4, a few steps of 4 images).
"""

from __future__ import annotations

import csv
import math
import os
import signal
from pathlib import Path

import pytest
import torch

from yolo_lessons import train as train_module
from yolo_lessons.darknet.book_weights import BOOK_WEIGHTS
from yolo_lessons.train import (
    BEST_NAME,
    CHECKPOINT_NAME,
    EXIT_DIVERGED,
    EXIT_TERMINATED,
    RESULTS_NAME,
    load_checkpoint,
    main,
    train,
)

TINY = dict(
    steps=6, batch_size=4, image_size=32, width=4, threads=1, train_images=8, eval_images=8,
    eval_every=0, progress=False, verbose=False,
)
TINY_ARGS = [
    "--steps", "6", "--batch-size", "4", "--image-size", "32", "--width", "4", "--threads", "1",
    "--train-images", "8", "--eval-images", "8", "--eval-every", "0", "--no-progress",
]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes, to prove nothing changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def earlier_run(tmp_path, monkeypatch) -> Path:
    """A finished tiny run in tmp_path/done, and tmp_path as the working folder."""
    monkeypatch.chdir(tmp_path)
    assert main([*TINY_ARGS, "--out", "done"]) == 0
    return tmp_path / "done"


def bad_files(folder: Path) -> dict[str, Path]:
    state = (folder / "done" / CHECKPOINT_NAME).read_bytes()
    files = {"truncated": state[: len(state) // 2], "garbage": bytes(range(256)) * 4, "empty": b""}
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.pt"
        paths[name].write_bytes(data)
    (folder / "emptydir").mkdir()
    (folder / "afile").write_text("not a folder")
    return paths


@pytest.mark.parametrize(
    "args, message",
    [
        (["--resume", "nothere.pt", "--out", "new"], "nothere.pt: no such file"),
        (["--resume", "--out", "emptydir"], "emptydir/checkpoint.pt: no such file"),
        (["--resume", "truncated.pt", "--out", "new"], "truncated.pt: torch.load cannot read it"),
        (["--resume", "garbage.pt", "--out", "new"], "garbage.pt: torch.load cannot read it"),
        (["--resume", "empty.pt", "--out", "new"], "empty.pt: the file is empty"),
        (["--resume", "BOOK", "--out", "new"], "a Darknet .weights file holds weights, not a run"),
        (["--resume", "done", "--out", "new"], "got the folder done"),
        (["--out", "afile"], "expected out to be a folder, afile is a file"),
        (["--out", "done"], "done already holds a run (checkpoint.pt, results.csv): continue it with --resume"),
        (["--lr", "inf", "--out", "new"], "expected a finite lr > 0"),
        (["--lr", "-0.1", "--out", "new"], "expected a finite lr > 0"),
        (["--lr", "nan", "--out", "new"], "expected a finite lr > 0"),
        (["--weight-decay", "inf", "--out", "new"], "finite weight_decay >= 0"),
        (["--save-every", "-1", "--out", "new"], "non-negative integer save_every"),
        (["--resume", "--out", "done", "--threads", "2"], "threads was 1 there, got 2"),
        (["--device", "cuda", "--out", "new"] if not torch.cuda.is_available() else ["--steps", "0", "--out", "new"],
         "torch sees none" if not torch.cuda.is_available() else "positive integer steps"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(earlier_run, capsys, args, message):
    folder = earlier_run.parent
    bad_files(folder)
    before = tree(folder)
    args = [str(BOOK_WEIGHTS) if a == "BOOK" else a for a in args]
    capsys.readouterr()
    assert main([*TINY_ARGS, *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert message in err
    assert tree(folder) == before  # the earlier run byte for byte, and no new folder
    assert not (folder / "new").exists()


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    def read_only(*args, **kwargs):  # a read-only mount: root's permission bits would not show it
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(train_module.tempfile, "TemporaryFile", read_only)
    assert main([*TINY_ARGS, "--out", "somewhere/new"]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("cannot write in " + str(tmp_path) + ": Read-only file system")
    assert os.listdir(tmp_path) == []


def test_without_out_each_run_gets_a_new_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(TINY_ARGS) == 0
    first = tree(tmp_path / "runs" / "train")
    assert main(TINY_ARGS) == 0
    assert main(TINY_ARGS) == 0
    assert sorted(os.listdir(tmp_path / "runs")) == ["train", "train-2", "train-3"]
    assert tree(tmp_path / "runs" / "train") == first


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    real_loss = train_module.region_loss
    calls = []

    def nan_at_step_5(*args, **kwargs):
        calls.append(1)
        result = real_loss(*args, **kwargs)
        if len(calls) == 5:
            return result._replace(loss=result.loss * math.nan)
        return result

    monkeypatch.setattr(train_module, "region_loss", nan_at_step_5)
    code = main([*TINY_ARGS, "--save-every", "2", "--out", str(tmp_path)])
    assert code == EXIT_DIVERGED == 1
    err = capsys.readouterr().err
    assert "stopped: the loss became nan at step 5 of 6" in err
    assert f"the last good checkpoint is kept in {tmp_path / CHECKPOINT_NAME}" in err
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["step"] == 4  # saved at step 4 (--save-every 2), nothing after the NaN
    assert all(math.isfinite(v) for v in state["history"]["losses"])
    assert "finished" not in capsys.readouterr().out


def test_a_nan_before_any_checkpoint_says_so(tmp_path, monkeypatch, capsys):
    real_loss = train_module.region_loss
    monkeypatch.setattr(
        train_module, "region_loss", lambda *a, **k: (r := real_loss(*a, **k))._replace(loss=r.loss * math.inf)
    )
    assert main([*TINY_ARGS, "--out", str(tmp_path)]) == EXIT_DIVERGED
    err = capsys.readouterr().err
    assert "the loss became inf at step 1" in err and "no checkpoint was written before it" in err
    assert not (tmp_path / CHECKPOINT_NAME).exists()


def test_sigterm_saves_a_resumable_checkpoint_and_the_resume_is_exact(tmp_path, monkeypatch):
    real_loss = train_module.region_loss
    calls = []

    def loss_then_sigterm(*args, **kwargs):  # SIGTERM arrives during step 3
        calls.append(1)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGTERM)
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(train_module, "region_loss", loss_then_sigterm)
    assert main([*TINY_ARGS, "--out", str(tmp_path)]) == EXIT_TERMINATED == 143
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["step"] == 3
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is put back
    assert main([*TINY_ARGS, "--out", str(tmp_path), "--resume"]) == 0
    resumed = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    straight = train(out=None, **TINY)
    assert resumed["history"]["losses"] == straight.losses
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed["model"][name]), name


def test_a_planned_stop_exits_0_and_resume_restores_the_threads(tmp_path):
    assert main([*TINY_ARGS, "--out", str(tmp_path), "--stop-after", "2"]) == 0
    no_threads = [a for a in TINY_ARGS if a not in ("--threads", "1")]
    torch.set_num_threads(2)
    assert main([*no_threads, "--out", str(tmp_path), "--resume"]) == 0
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["config"]["threads"] == 1 and torch.get_num_threads() == 1
    assert state["history"]["losses"] == train(out=None, **TINY).losses


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_results_csv_has_a_row_a_step_and_a_row_an_evaluation(tmp_path):
    history = train(out=str(tmp_path), **{**TINY, "eval_every": 3})
    rows = read_rows(tmp_path / RESULTS_NAME)
    assert list(rows[0]) == ["step", "kind", "loss", "coord", "obj", "noobj", "class", "prior", "lr",
                             "images_per_s", "map50", "map50_11"]
    assert [(r["step"], r["kind"]) for r in rows] == [
        ("1", "train"), ("2", "train"), ("3", "train"), ("3", "eval"),
        ("4", "train"), ("5", "train"), ("6", "train"), ("6", "eval"),
    ]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [float(r["loss"]) for r in train_rows] == pytest.approx(history.losses, rel=1e-5)
    assert float(train_rows[0]["lr"]) == pytest.approx(train_module.learning_rate(0, 6, 8e-3, 50))
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [float(r["map50"]) for r in evals] == pytest.approx(history.eval_map, abs=1e-6)
    # best.pt is the state of the best held-out mAP
    best = load_checkpoint(tmp_path / BEST_NAME)
    assert best["step"] == history.eval_steps[max(range(2), key=lambda i: history.eval_map[i])]


def test_a_resumed_run_keeps_each_steps_row_once(tmp_path):
    train(out=str(tmp_path), stop_after=4, save_every=2, **{k: v for k, v in TINY.items()})
    # the checkpoint was written at step 4 (save-every and the stop); pretend it was killed after
    # step 5's row was written but before a save, as a hard kill would leave it
    rows = read_rows(tmp_path / RESULTS_NAME)
    with open(tmp_path / RESULTS_NAME, "a", newline="") as file:
        csv.DictWriter(file, list(rows[0])).writerow({**rows[-1], "step": "5"})
    train(out=str(tmp_path), resume="auto", **TINY)
    steps = [int(r["step"]) for r in read_rows(tmp_path / RESULTS_NAME) if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_a_real_sigterm_to_the_command_saves_and_exits_143(tmp_path):
    """``kill`` on a running command (with its image worker): a checkpoint, exit 143, no traceback."""
    import subprocess
    import sys
    import time

    repository = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repository)}
    args = [a if a != "6" else "100000" for a in TINY_ARGS]  # a run that would not end by itself
    process = subprocess.Popen([sys.executable, "-m", "yolo_lessons.train", *args, "--workers", "1", "--out", "run"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = tmp_path / "run" / RESULTS_NAME
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not results.exists() or len(results.read_text().splitlines()) < 4):
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == EXIT_TERMINATED, out + err
    assert "Traceback" not in err
    state = load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    assert 3 <= state["step"] < 100000
    assert "terminated (SIGTERM) after" in out and "resume with the same command and --resume" in out
