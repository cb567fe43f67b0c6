"""`facehub prepare` on a folder mixing good photos, a renamed text file, a truncated JPEG and a photo with no face."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest

from facehub.trainers.data.prepare import PrepareConfig, prepare, read_celeba_attributes

PHOTOS = Path(__file__).parent / "data" / "photos"


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    (root / "barack_obama").mkdir()
    (root / "joe_biden").mkdir()
    shutil.copy(PHOTOS / "obama.jpg", root / "barack_obama" / "obama.jpg")
    shutil.copy(PHOTOS / "obama2.jpg", root / "barack_obama" / "obama2.jpg")
    shutil.copy(PHOTOS / "biden.jpg", root / "joe_biden" / "biden.jpg")
    shutil.copy(PHOTOS / "astronaut.png", root / "astronaut.png")
    shutil.copy(PHOTOS / "chelsea.jpg", root / "cat.jpg")  # no face
    (root / "notes.jpg").write_text("this is a text file with a .jpg name\n")
    data = (PHOTOS / "obama3.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "list_attr_celeba.txt").write_text(
        "3\nMale Smiling Eyeglasses\nobama.jpg 1 1 -1\nbiden.jpg 1 -1 -1\nastronaut.png -1 1 -1\n"
    )
    return root


def test_celeba_attribute_reader(photo_folder):
    names, table = read_celeba_attributes(photo_folder / "list_attr_celeba.txt")
    assert names == ["Male", "Smiling", "Eyeglasses"]
    assert table["obama.jpg"] == [1, 1, 0] and table["astronaut.png"] == [0, 1, 0]
    bad = photo_folder.parent / "bad_attrs.txt"
    bad.write_text("1\nMale Smiling\nx.jpg 1\n")
    with pytest.raises(ValueError, match="line 3: expected a file name and 2 values"):
        read_celeba_attributes(bad)


@pytest.fixture(scope="module")
def prepared(photo_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    # MediaPipe already running in this process must not break the worker processes (they are spawned, not forked)
    from facehub.modeling.faces import FaceAnalyzer

    assert FaceAnalyzer(compute_embedding=False)(PHOTOS / "astronaut.png")
    config = PrepareConfig(images=photo_folder, out=out, attributes=photo_folder / "list_attr_celeba.txt", size=96,
                           uv_size=64, num_proc=2, shard_size=3)
    return config, prepare(config)


def test_prepare_keeps_faces_and_reports_every_skipped_file(prepared):
    config, report = prepared
    assert report.total == 7 and report.kept == 4
    assert report.counts == {"ok": 4, "unreadable": 2, "no_face": 1}
    skipped = {Path(s["source"]).name: s["status"] for s in report.skipped}
    assert skipped == {"notes.jpg": "unreadable", "truncated.jpg": "unreadable", "cat.jpg": "no_face"}
    saved = json.loads((config.out / "report.json").read_text())
    assert saved["kept"] == 4 and len(saved["skipped"]) == 3
    assert Path(report.plot).is_file() and Path(report.plot).stat().st_size > 10_000


def test_prepared_rows_carry_labels_and_geometry(prepared):
    config, _ = prepared
    data = datasets.load_from_disk(str(config.out / "dataset"))
    rows = {Path(r["source"]).name: r for r in data.with_format("numpy")}
    assert set(rows) == {"obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.png"}
    assert rows["obama.jpg"]["identity"] == rows["obama2.jpg"]["identity"] != rows["biden.jpg"]["identity"]
    assert rows["astronaut.png"]["identity"] == -1
    assert list(rows["obama.jpg"]["attributes"]) == [1, 1, 0] and list(rows["obama2.jpg"]["attributes"]) == []
    meta = json.loads(data.info.description)
    assert meta["attribute_names"] == ["Male", "Smiling", "Eyeglasses"]
    assert meta["identity_names"] == ["barack_obama", "joe_biden"]
    for name, row in rows.items():
        assert row["image"].shape == (96, 96, 3)
        lms = row["landmarks68"]
        # an aligned crop puts the eyes level and the face in the middle
        eye_r, eye_l = lms[36:42].mean(0), lms[42:48].mean(0)
        assert abs(eye_r[1] - eye_l[1]) < 3, name
        assert 20 < lms[:, 0].mean() < 76 and 20 < lms[:, 1].mean() < 76, name
        assert abs(row["pose"][0]) < 30, name  # frontal-ish portraits
        uv = row["uv_position_map"].astype(np.float32)
        assert uv.shape == (64, 64, 3) and (np.abs(uv).sum(-1) > 0).mean() > 0.3
        # the UV map holds crop coordinates: its x, y range matches the dense landmarks'
        dense = row["dense_landmarks"]
        covered = np.abs(uv).sum(-1) > 0
        assert abs(uv[covered][:, 0].min() - dense[:468, 0].min()) < 4
    from facehub.modeling.faces import face_distance

    same = face_distance(rows["obama.jpg"]["embedding"], rows["obama2.jpg"]["embedding"])
    other = face_distance(rows["obama.jpg"]["embedding"], rows["biden.jpg"]["embedding"])
    assert same < 0.6 < other


def test_prepare_resumes_after_a_kill(photo_folder, prepared, tmp_path):
    config, report = prepared
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "facehub.apps.cli", "prepare", "--images", str(photo_folder), "--out", str(out),
               "--size", "96", "--uv-size", "64", "--shard-size", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while not (out / "shards" / "shard-00000").is_dir() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = sorted(p.name for p in (out / "shards").glob("shard-?????"))
    assert finished and len(finished) < 4, "the run ended before it could be killed"
    first_shard_time = (out / "shards" / "shard-00000" / "dataset_info.json").stat().st_mtime

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "4 of 7 photos kept" in resumed.stdout
    assert (out / "shards" / "shard-00000" / "dataset_info.json").stat().st_mtime == first_shard_time  # not redone
    assert len(datasets.load_from_disk(str(out / "dataset"))) == report.kept


def test_prepare_rejects_a_missing_folder_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder of photos"):
        PrepareConfig(images=tmp_path / "nope", out=tmp_path / "out")
