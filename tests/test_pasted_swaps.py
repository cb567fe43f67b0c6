"""The face-swap repair's two domains, made from a folder of photos with bad files in it."""

import json
import shutil
from pathlib import Path

import numpy as np

from facehub.modeling.faces import load_image
from facehub.trainers.data.pasted_swaps import make_pasted_swaps

PHOTOS = Path(__file__).parent / "data" / "photos"


def test_pasted_swaps_and_real_crops_share_the_framing_and_skip_bad_photos(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("obama.jpg", "biden.jpg", "chelsea.jpg"):  # chelsea: a cat, no face
        shutil.copy(PHOTOS / name, photos / name)
    (photos / "notes.jpg").write_text("not an image")
    report = make_pasted_swaps(photos, tmp_path / "out", count=6, seed=1, size=64, progress=False)
    assert report.made + sum(report.skipped.values()) == 6 and report.made >= 1
    assert str(photos / "notes.jpg") in report.unusable and str(photos / "chelsea.jpg") in report.unusable
    swaps = sorted((tmp_path / "out" / "swaps").glob("*.png"))
    reals = sorted((tmp_path / "out" / "real").glob("*.png"))
    assert [p.name for p in swaps] == [p.name for p in reals] and len(swaps) == report.made
    swap, real = load_image(swaps[0]).astype(float), load_image(reals[0]).astype(float)
    assert swap.shape == real.shape == (64, 64, 3)
    # Same box: the paste changes the face in the middle, the border (hair, background) stays the target's.
    border = np.ones((64, 64), bool)
    border[8:-8, 8:-8] = False
    centre = ~border
    assert np.abs(swap - real)[border].mean() < 0.25 * np.abs(swap - real)[centre].mean()
    assert json.loads((tmp_path / "out" / "report.json").read_text())["made"] == report.made

    # A second run keeps what is there and makes nothing new.
    again = make_pasted_swaps(photos, tmp_path / "out", count=6, seed=1, size=64, progress=False)
    assert again.made == 0 and again.kept == report.made
