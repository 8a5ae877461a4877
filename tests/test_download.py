"""The cached, checked download, exercised with file: URLs only (tests never use the network)."""

from __future__ import annotations

import hashlib
import json
import socket

import pytest
import torch

from yolo_lessons.darknet import download as dl
from yolo_lessons.darknet.coco import COCO_CLASSES
from yolo_lessons.darknet.weights import darknet_float_count
from yolo_lessons.models.yolov2 import yolov2
from yolo_lessons.models.yolov3 import yolov3

PAYLOAD = bytes(range(256)) * 10  # 2,560 bytes


@pytest.fixture
def remote(tmp_path):
    source = tmp_path / "server" / "model.weights"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    return dl.RemoteFile(source.as_uri(), "model.weights", len(PAYLOAD), hashlib.md5(PAYLOAD).hexdigest())


@pytest.fixture
def clean_environment(monkeypatch, tmp_path):
    for name in (dl.WEIGHTS_VARIABLE, dl.DOWNLOAD_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(dl.CACHE_VARIABLE, str(tmp_path / "cache"))


def test_yolov3_weights_size_is_the_header_plus_every_float_of_yolov3_cfg():
    # 20-byte header + 4 bytes x 62,001,757 floats (research notes, section 3: 248,007,048 bytes)
    with torch.device("meta"):  # shapes only, no memory
        model = yolov3()
    assert dl.YOLOV3_WEIGHTS.size == 20 + 4 * darknet_float_count(model) == 248_007_048


def test_yolov2_weights_size_is_a_16_byte_header_plus_every_float_of_yolov2_cfg():
    # version 0.1.0: seen in 4 bytes, so 16 header bytes; 203,934,260 is the Length wget reports for the file
    with torch.device("meta"):
        model = yolov2(80)
    assert dl.YOLOV2_WEIGHTS.size == 16 + 4 * darknet_float_count(model) == 203_934_260


def test_coco_has_80_distinct_names_in_coco_names_order():
    # data/coco.names: line 0 person, line 27 tie, line 79 toothbrush
    assert len(set(COCO_CLASSES)) == len(COCO_CLASSES) == 80
    assert (COCO_CLASSES[0], COCO_CLASSES[27], COCO_CLASSES[79]) == ("person", "tie", "toothbrush")


def test_download_writes_a_checked_copy_and_reuses_it(remote, tmp_path):
    path = dl.download(remote, tmp_path / "cache", progress=False)
    assert path.read_bytes() == PAYLOAD
    assert not path.with_name("model.weights.part").exists()
    (tmp_path / "server" / "model.weights").unlink()  # a second call must not fetch again
    assert dl.download(remote, tmp_path / "cache", progress=False) == path


def test_a_wrong_size_or_md5_raises_and_leaves_no_file(remote, tmp_path):
    short = dl.RemoteFile(remote.url, remote.name, remote.size + 1, remote.md5)
    with pytest.raises(ValueError, match="has 2,560 bytes, expected 2,561"):
        dl.download(short, tmp_path / "cache", progress=False)
    damaged = dl.RemoteFile(remote.url, remote.name, remote.size, "0" * 32)
    with pytest.raises(ValueError, match="expected 0000"):
        dl.download(damaged, tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def test_without_the_file_or_permission_nothing_is_downloaded(remote, clean_environment, monkeypatch):
    monkeypatch.setattr(dl, "download", lambda *a, **k: pytest.fail("downloaded without permission"))
    path, message = dl.find_yolov3_weights(remote)
    assert path is None and message == dl.how_to_get(remote)
    assert "YOLO_WEIGHTS=/path/to/model.weights" in message and "Colab" in message


def test_yolo_weights_names_a_file_that_is_checked(remote, clean_environment, monkeypatch, tmp_path):
    monkeypatch.setenv(dl.WEIGHTS_VARIABLE, str(tmp_path / "server" / "model.weights"))
    path, message = dl.find_yolov3_weights(remote)
    assert path.read_bytes() == PAYLOAD and message.endswith("2,560 bytes, MD5 checked")
    bad = tmp_path / "bad.weights"
    bad.write_bytes(b"<html>")
    monkeypatch.setenv(dl.WEIGHTS_VARIABLE, str(bad))
    with pytest.raises(ValueError, match="has 6 bytes"):
        dl.find_yolov3_weights(remote)


def test_yolo_download_allows_the_download_then_the_cache_is_used(remote, clean_environment, monkeypatch):
    monkeypatch.setenv(dl.DOWNLOAD_VARIABLE, "1")
    path, message = dl.find_yolov3_weights(remote, progress=False)
    assert message.startswith("model.weights downloaded") and path.read_bytes() == PAYLOAD
    monkeypatch.delenv(dl.DOWNLOAD_VARIABLE)
    assert dl.find_yolov3_weights(remote)[1].startswith("model.weights from the cache")


def test_a_closed_port_is_unreachable():
    with socket.socket() as server:  # bound but never listening: connections are refused at once
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        assert not dl.internet_reachable(f"http://127.0.0.1:{port}/x", timeout=1.0)


def test_stored_json_reads_the_checkout_first_then_the_repository(tmp_path):
    relative = "benchmarks/results/train_map.json"
    with open(dl.CHECKOUT / relative) as file:
        assert dl.stored_json(relative) == json.load(file)
    remote = tmp_path / "raw" / "main" / "results"
    remote.mkdir(parents=True)
    (remote / "only_there.json").write_text('{"seed": 3}')
    assert dl.stored_json("results/only_there.json", repository=tmp_path.as_uri()) == {"seed": 3}


def test_a_file_without_a_published_md5_is_checked_by_size(tmp_path, clean_environment, monkeypatch):
    weights = tmp_path / "tiny.weights"
    weights.write_bytes(b"x" * 10)
    remote = dl.RemoteFile(url=weights.as_uri(), name="tiny.weights", size=10, md5=None)
    dl.check_file(weights, remote)  # the size fits: accepted without an MD5
    with pytest.raises(ValueError, match="has 10 bytes, expected 11"):
        dl.check_file(weights, dl.RemoteFile(url=weights.as_uri(), name="tiny.weights", size=11, md5=None))
    path, message = dl.find_weights(remote)
    assert path is None and message == dl.how_to_get(remote, None) and "YOLO_WEIGHTS" not in message
    monkeypatch.setenv(dl.DOWNLOAD_VARIABLE, "1")
    path, message = dl.find_weights(remote, progress=False)
    assert path.read_bytes() == b"x" * 10 and message.endswith("size checked (no MD5 is published for it)")
    assert dl.YOLOV3_TINY_WEIGHTS.size == 35_434_956
