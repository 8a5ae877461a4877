"""The training command: deterministic data per step, exact resume, checkpoints, Ctrl-C, torchrun.

Every run here is tiny (32 x 32 images, width 4, a few steps of 4 images), so the whole file
takes seconds; how well the recipe learns is measured by benchmarks/train_map.py instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from yolo_lessons import train as train_module
from yolo_lessons.data.anchors import kmeans_anchors, to_grid_cells
from yolo_lessons.data.shapes import make_image
from yolo_lessons.losses.region_loss import PART_NAMES
from yolo_lessons.train import (
    BEST_NAME,
    CHECKPOINT_NAME,
    EXIT_INTERRUPTED,
    RESULTS_NAME,
    ImageCache,
    anchors_from_images,
    build_parser,
    darknet_learning_rate,
    image_indices,
    learning_rate,
    load_checkpoint,
    main,
    make_optimizer,
    model_from_checkpoint,
    parse_args,
    save_checkpoint,
    train,
)

REPOSITORY = Path(__file__).resolve().parents[1]
TINY = dict(
    steps=6, batch_size=4, image_size=32, width=4, threads=1, train_images=8, eval_images=8,
    eval_every=0, progress=False, verbose=False,
)
TINY_ARGS = [
    "--steps", "6", "--batch-size", "4", "--image-size", "32", "--width", "4", "--threads", "1",
    "--train-images", "8", "--eval-images", "8", "--eval-every", "0", "--no-progress",
]


def test_image_indices_follow_the_global_sample_position():
    # step s, rank r of W, batch B: positions (s * W + r) * B + 0 .. B - 1; with no pool they are the indices
    assert image_indices(0, 0, 1, 4, seed=0, train_images=0) == [0, 1, 2, 3]
    assert image_indices(2, 1, 2, 4, seed=0, train_images=0) == [20, 21, 22, 23]  # (2 * 2 + 1) * 4 = 20
    assert image_indices(2, 0, 2, 4, seed=0, train_images=0) == [16, 17, 18, 19]  # rank 0 of the same step


def test_a_pool_is_visited_once_per_epoch_in_a_seeded_order():
    # 12 images, batch 3, 2 ranks: one epoch = 2 steps; both ranks together draw each image once
    epoch = [i for step in (0, 1) for rank in (0, 1) for i in image_indices(step, rank, 2, 3, 7, 12)]
    assert sorted(epoch) == list(range(12))
    assert epoch == np.random.default_rng([7, 0]).permutation(12).tolist()
    second = [i for step in (2, 3) for rank in (0, 1) for i in image_indices(step, rank, 2, 3, 7, 12)]
    assert sorted(second) == list(range(12)) and second != epoch  # a new order each epoch
    assert image_indices(5, 1, 2, 3, 7, 12) == image_indices(5, 1, 2, 3, 7, 12)  # no hidden state


def test_learning_rate_is_a_cosine_from_lr_to_zero():
    assert learning_rate(0, 480, 4e-3) == pytest.approx(4e-3)
    assert learning_rate(240, 480, 4e-3) == pytest.approx(2e-3)  # cos(pi / 2) = 0: half way
    assert learning_rate(480, 480, 4e-3) == pytest.approx(0.0, abs=1e-18)


def test_darknet_learning_rate_burns_in_with_power_4_then_steps_down_at_yolov2_voc_cfgs_fractions():
    # get_current_rate, policy=steps: lr * (batch / burn_in) ** 4, batch counted from 1.
    assert [darknet_learning_rate(s, 960, 1e-2, burn_in=4) for s in range(5)] == pytest.approx(
        [1e-2 / 256, 1e-2 / 16, 1e-2 * 81 / 256, 1e-2, 1e-2])
    # steps=40000,60000 of max_batches=80200, scales .1,.1: at 960 steps, steps 479 (478.8) and 718 (718.2).
    assert darknet_learning_rate(478, 960, 1e-2) == pytest.approx(1e-2)
    assert darknet_learning_rate(479, 960, 1e-2) == pytest.approx(1e-3)
    assert darknet_learning_rate(717, 960, 1e-2) == pytest.approx(1e-3)
    assert darknet_learning_rate(718, 960, 1e-2) == pytest.approx(1e-4)
    assert darknet_learning_rate(959, 960, 1e-2) == pytest.approx(1e-4)


def test_darknet_sgd_decays_the_convolution_weights_only_with_momentum_09():
    from yolo_lessons.train import TrainConfig, build_model

    model = build_model("small_yolov2", 3, [[1.0, 1.0]] * 5, 4, "darknet_reorg")
    optimizer = make_optimizer(model, TrainConfig(optimizer="darknet_sgd", weight_decay=5e-4))
    assert isinstance(optimizer, torch.optim.SGD)
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 5e-4 and plain["weight_decay"] == 0.0 and decayed["momentum"] == 0.9
    convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [id(p) for p in decayed["params"]] == [id(p) for p in convs]  # update_convolutional_layer's decay
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))  # biases, BN scales


def test_learning_rate_warms_up_linearly_then_follows_the_cosine():
    assert [learning_rate(s, 100, 8e-3, warmup=4) for s in range(4)] == pytest.approx([2e-3, 4e-3, 6e-3, 8e-3])
    assert learning_rate(4, 100, 8e-3, warmup=4) == pytest.approx(8e-3)  # the cosine starts at the top
    assert learning_rate(52, 100, 8e-3, warmup=4) == pytest.approx(4e-3)  # half way through the 96 cosine steps
    assert learning_rate(100, 100, 8e-3, warmup=4) == pytest.approx(0.0, abs=1e-18)


def test_a_worker_process_draws_the_same_batches():
    assert train(out=None, **{**TINY, "workers": 0}).losses == train(out=None, **{**TINY, "workers": 1}).losses
    assert train(out=None, **{**TINY, "workers": 2, "train_images": 0}).losses == train(
        out=None, **{**TINY, "workers": 0, "train_images": 0}).losses


def test_anchors_are_kmeans_of_the_training_boxes_in_grid_cells():
    cache = ImageCache(seed=3, size=96, keep=True)
    anchors = anchors_from_images(cache, count=20, num_anchors=5, grid_size=6, seed=3)
    wh = np.concatenate([make_image(i, 3, 96)[1][:, 3:5] for i in range(20)])  # fractions of the image
    expected = kmeans_anchors(wh * 6, 5, seed=3)  # x 6 cells of a 96 / 16 grid
    np.testing.assert_allclose(anchors, expected, rtol=1e-6)
    np.testing.assert_allclose(to_grid_cells(wh, 6), wh * 6)


def test_same_seed_and_threads_give_bit_identical_losses():
    first = train(out=None, **TINY).losses
    second = train(out=None, **TINY).losses
    assert len(first) == 6
    assert first == second  # exact float equality, not approx
    assert train(out=None, **{**TINY, "seed": 1}).losses != first


def test_history_holds_the_loss_and_its_parts_per_step(tmp_path):
    history = train(out=None, **TINY)
    assert sorted(history.parts) == sorted(PART_NAMES)
    for step in range(6):  # the parts of region_loss sum to the loss
        total = sum(history.parts[name][step] for name in PART_NAMES)
        assert total == pytest.approx(history.losses[step], rel=1e-5)
    assert history.images_seen == 24  # 6 steps x 4 images
    assert not history.interrupted and history.checkpoint is None
    assert not history.model.training  # returned ready for inference


def test_evaluation_every_n_steps_and_at_the_end():
    history = train(out=None, **{**TINY, "steps": 5, "eval_every": 2})
    assert history.eval_steps == [2, 4, 5]
    assert all(0.0 <= value <= 1.0 for value in history.eval_map + history.eval_map11)
    assert len(history.eval_seconds) == 3 and history.eval_seconds == sorted(history.eval_seconds)


def test_resume_continues_the_same_loss_sequence(tmp_path):
    straight = train(out=str(tmp_path / "straight"), **TINY)
    first = train(out=str(tmp_path / "split"), stop_after=3, **TINY)
    assert first.interrupted and len(first.losses) == 3
    assert load_checkpoint(tmp_path / "split" / CHECKPOINT_NAME)["step"] == 3
    resumed = train(out=str(tmp_path / "split"), resume="auto", **TINY)
    assert not resumed.interrupted
    assert resumed.losses == straight.losses  # steps 1-3 from the checkpoint, 4-6 computed again: bit-identical
    after = load_checkpoint(tmp_path / "split" / CHECKPOINT_NAME)
    before = load_checkpoint(tmp_path / "straight" / CHECKPOINT_NAME)
    for name, tensor in before["model"].items():
        assert torch.equal(tensor, after["model"][name]), name


def test_a_checkpoint_from_before_the_warm_up_resumes_without_one(tmp_path):
    train(out=str(tmp_path), stop_after=2, **{**TINY, "warmup": 0})
    path = tmp_path / CHECKPOINT_NAME
    state = load_checkpoint(path)
    del state["config"]["warmup"]  # as written before the option existed
    torch.save(state, path)
    resumed = train(out=str(tmp_path), resume="auto", **TINY)
    assert resumed.losses == train(out=None, **{**TINY, "warmup": 0}).losses


def test_resume_refuses_to_change_the_recipe(tmp_path):
    train(out=str(tmp_path), stop_after=2, **TINY)
    with pytest.raises(ValueError, match="batch_size was 4 there, got 8"):
        train(out=str(tmp_path), resume="auto", **{**TINY, "batch_size": 8})


def test_checkpoint_loads_with_weights_only_and_rebuilds_the_model(tmp_path):
    history = train(out=str(tmp_path), **TINY)
    assert sorted(os.listdir(tmp_path)) == [CHECKPOINT_NAME, RESULTS_NAME]  # no temporary file left behind
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)  # tensors and plain data only
    assert state["step"] == 6 and state["seen"] == 24
    assert state["config"]["batch_size"] == 4 and state["classes"] == ["circle", "square", "triangle"]
    assert len(state["anchors"]) == 5 and all(len(a) == 2 for a in state["anchors"])  # grid cells
    assert state["history"]["losses"] == history.losses
    model = model_from_checkpoint(tmp_path / CHECKPOINT_NAME)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), history.model(x))


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, {"step": 1})

    def broken_save(state, file):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(train_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert os.listdir(tmp_path) == [CHECKPOINT_NAME]


def test_ctrl_c_saves_a_resumable_checkpoint_and_exits_130(tmp_path, monkeypatch):
    calls = []
    real_loss = train_module.region_loss

    def loss_then_ctrl_c(*args, **kwargs):  # SIGINT arrives during step 3
        calls.append(1)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGINT)
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(train_module, "region_loss", loss_then_ctrl_c)
    assert main([*TINY_ARGS, "--out", str(tmp_path)]) == EXIT_INTERRUPTED == 130
    monkeypatch.undo()
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["step"] == 3  # the step under way finished, then the loop stopped
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    assert main([*TINY_ARGS, "--out", str(tmp_path), "--resume"]) == 0
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["history"]["losses"] == train(out=None, **TINY).losses


def test_help_explains_every_option():
    parser = build_parser()
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help"
    text = parser.format_help()
    for option in ("--steps", "--batch-size", "--image-size", "--width", "--lr", "--seed", "--threads", "--out",
                   "--resume", "--eval-every", "--eval-images", "--passthrough", "--train-images"):
        assert option in text


def test_parse_args_returns_only_the_options_given():
    assert parse_args(["--steps", "10", "--passthrough", "none"]) == {"steps": 10, "passthrough": None}
    assert parse_args(["--resume"]) == {"resume": "auto"}
    assert parse_args([]) == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(eval_seed=0), "another seed"),
        (dict(image_size=100), "multiple of 32"),
        (dict(steps=0), "positive integer steps"),
        (dict(workers=-1), "number of workers"),
        (dict(warmup=-1), "non-negative integer warmup"),
        (dict(passthrough="reorg"), "expected passthrough in"),
        (dict(optimizer="sgd"), "expected optimizer in"),
        (dict(resume="auto"), "needs out"),  # out=None: no folder to find checkpoint.pt in
    ],
)
def test_bad_options_raise_value_error(options, message):
    with pytest.raises(ValueError, match=message):
        train(out=None, **{**TINY, **options})


def test_the_command_reports_a_bad_option_and_exits_2(capsys):
    assert main(["--image-size", "100", "--out", "unused"]) == 2
    assert "multiple of 32" in capsys.readouterr().err


def test_torchrun_two_gloo_processes_train_and_write_one_checkpoint(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(REPOSITORY)}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "yolo_lessons.train", "--steps", "3", "--batch-size", "4", "--image-size", "32", "--width", "4",
        "--threads", "1", "--train-images", "8", "--eval-images", "8", "--eval-every", "3", "--no-progress",
        "--out", str(tmp_path),
    ]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(os.listdir(tmp_path)) == [BEST_NAME, CHECKPOINT_NAME, RESULTS_NAME]  # rank 0 alone writes
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["step"] == 3 and state["seen"] == 24  # 3 steps x 2 processes x 4 images
    assert state["history"]["eval_steps"] == [3]
    assert done.stdout.count("finished after 3 of 3 steps") == 1  # rank 0 alone prints the report
