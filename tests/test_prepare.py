"""`facehub prepare` on a folder mixing good photos, a renamed text file, a truncated JPEG and a photo with no face;
resuming re-plans from the folder as it is (photos added, changed or removed since are handled exactly once)."""

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

from facehub.trainers.data import prepare as prepare_module
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
    while not finished_shards(out) and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = finished_shards(out)
    assert finished and len(finished) < 4, "the run ended before it could be killed"
    times = {folder.name: (folder / "dataset_info.json").stat().st_mtime for folder in finished}

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # 7 photos and list_attr_celeba.txt, which is not a photo (no --attributes here)
    assert "4 of 8 files kept" in resumed.stdout
    for name, mtime in times.items():  # not redone
        assert (out / "shards" / name / "dataset_info.json").stat().st_mtime == mtime
    assert len(datasets.load_from_disk(str(out / "dataset"))) == report.kept


def finished_shards(out: Path) -> list[Path]:
    return sorted(p for p in (out / "shards").glob("shard-*") if (p / "manifest.json").is_file())


def fake_analysis(calls: list[str]):
    """A stand-in for the face front-end: every photo has a face whose yaw is its file size mod 90 (so a changed
    file gives a changed row), except names starting with "noface"; a photo named "crash*" raises, like a kill."""

    def analyze(path, config):
        calls.append(Path(path).name)
        if Path(path).name.startswith("crash"):
            raise KeyboardInterrupt("killed")
        row = prepare_module._empty_row(config)
        if Path(path).name.startswith("noface"):
            return "no_face", "no face found", row
        row["image"] = np.full((config.size, config.size, 3), 128, np.uint8)
        row["pose"] = [float(Path(path).stat().st_size % 90), 0.0, 0.0]
        return "ok", "", row

    return analyze


def test_resume_replans_when_the_folder_changed(tmp_path, monkeypatch):
    root = tmp_path / "photos"
    for name in ("ann/1.jpg", "ann/2.jpg", "bob/3.jpg", "crash.jpg", "noface.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x" * (10 + len(name)))
    (root / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (root / "notes.txt").write_text("not a photo")
    out = root / "prepared"  # inside the photo folder: its own files must not be read as input
    config = PrepareConfig(images=root, out=out, size=8, uv_size=4, num_proc=1, shard_size=2)
    calls: list[str] = []
    monkeypatch.setattr(prepare_module, "analyze_photo", fake_analysis(calls))

    # Sorted photos: ann/1, ann/2 | bob/3, crash | noface. The first shard is saved, then the run dies.
    with pytest.raises(KeyboardInterrupt):
        prepare(config)
    assert calls == ["1.jpg", "2.jpg", "3.jpg", "crash.jpg"]
    assert len(finished_shards(out)) == 1
    first = finished_shards(out)[0]

    # While it was down: a photo is added (sorting before every other), the crashing one is fixed (renamed).
    (root / "aaa.jpg").write_bytes(b"y" * 40)
    (root / "crash.jpg").rename(root / "zed.jpg")
    calls.clear()
    report = prepare(config)
    assert sorted(calls) == ["3.jpg", "aaa.jpg", "noface.jpg", "zed.jpg"]  # each new or unfinished photo once
    assert first.is_dir() and first in finished_shards(out)  # the finished shard was kept, not redone
    rows = datasets.load_from_disk(str(out / "dataset"))
    assert sorted(Path(s).name for s in rows["source"]) == ["1.jpg", "2.jpg", "3.jpg", "aaa.jpg", "zed.jpg"]
    assert report.total == 8 and report.kept == 5
    assert report.counts == {"ok": 5, "no_face": 1, "unsupported": 1, "not_an_image": 1}
    saved = json.loads((out / "report.json").read_text())
    reasons = {Path(s["source"]).name: (s["status"], s["reason"]) for s in saved["skipped"]}
    assert set(reasons) == {"noface.jpg", "logo.svg", "notes.txt"}
    assert reasons["logo.svg"][0] == "unsupported" and "SVG" in reasons["logo.svg"][1]
    assert reasons["notes.txt"][0] == "not_an_image" and ".txt" in reasons["notes.txt"][1]
    names = dict(zip((Path(s).name for s in rows["source"]), rows["identity_name"], strict=True))
    identities = dict(zip((Path(s).name for s in rows["source"]), rows["identity"], strict=True))
    assert names["3.jpg"] == "bob" and identities["1.jpg"] == identities["2.jpg"] == 0 and identities["3.jpg"] == 1

    # A photo changes (same name, new content) and another is removed: their shards ([1, 2] and [noface, zed]) are
    # redone without them; the shard [3, aaa] is kept.
    (root / "ann" / "2.jpg").write_bytes(b"z" * 77)
    (root / "zed.jpg").unlink()
    calls.clear()
    report = prepare(config)
    assert sorted(calls) == ["1.jpg", "2.jpg", "noface.jpg"]
    assert not first.exists()  # the stale shard is gone
    rows = datasets.load_from_disk(str(out / "dataset"))
    assert sorted(Path(s).name for s in rows["source"]) == ["1.jpg", "2.jpg", "3.jpg", "aaa.jpg"]
    poses = dict(zip((Path(s).name for s in rows["source"]), (p[0] for p in rows["pose"]), strict=True))
    assert poses["2.jpg"] == 77 % 90
    assert report.kept == 4 and report.total == 7

    # Other settings (crop size) make every shard stale.
    calls.clear()
    prepare(PrepareConfig(images=root, out=out, size=16, uv_size=4, num_proc=1, shard_size=2))
    assert sorted(calls) == ["1.jpg", "2.jpg", "3.jpg", "aaa.jpg", "noface.jpg"]
    assert datasets.load_from_disk(str(out / "dataset"))[0]["image"].size == (16, 16)


def test_prepare_rejects_a_missing_folder_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder of photos"):
        PrepareConfig(images=tmp_path / "nope", out=tmp_path / "out")
