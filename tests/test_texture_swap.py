"""Face swap by texture transfer: identity carried against the 2D baseline on the test photos, the target's glasses
replaced inside the face, the contract shared with DepthNet's swap, and the swap / rotation evaluations and the
comparison of every method."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

PHOTOS = Path(__file__).parent / "data" / "photos"


@pytest.fixture(scope="module")
def fitting_swap():
    from facehub import methods

    return methods.load("face_fitting", "swap")


def test_texture_swap_carries_the_source_identity_better_than_the_2d_baseline(fitting_swap):
    from facehub.modeling.faces import FaceAnalyzer
    from facehub.modeling.faces.compositing import similarity_swap
    from facehub.modeling.faces.image_io import load_image

    analyzer = FaceAnalyzer(compute_embedding=True)
    photos = {name: load_image(PHOTOS / name) for name in ("obama.jpg", "biden.jpg", "astronaut.png")}
    faces = {name: analyzer(image)[0] for name, image in photos.items()}

    def distances(result, source, target):
        found = min(analyzer(result), key=lambda f: np.linalg.norm(np.subtract(f.bbox, faces[target].bbox)))
        return (float(np.linalg.norm(found.embedding - faces[source].embedding)),
                float(np.linalg.norm(found.embedding - faces[target].embedding)))

    ours, baseline = [], []
    for source, target in (("obama.jpg", "biden.jpg"), ("biden.jpg", "astronaut.png"),
                           ("astronaut.png", "obama.jpg")):
        out = fitting_swap(photos[source], photos[target], measure=True, output_type="np")
        assert out.images[0].shape == photos[target].shape and out.repaired is False
        assert out.mask.max() <= 1.0 and out.mask.min() >= 0.0 and (out.mask > 0.5).sum() > 500
        mine = distances(out.images[0], source, target)
        assert mine[0] == pytest.approx(out.distance_to_source, abs=0.02)
        base = distances(similarity_swap(photos[source], faces[source].landmarks68, photos[target],
                                         faces[target].landmarks68), source, target)
        print(f"{source} -> {target}: texture swap {mine[0]:.3f} / {mine[1]:.3f}, 2D baseline {base[0]:.3f} / "
              f"{base[1]:.3f} (to source / to target)")
        assert mine[0] < mine[1]  # nearer the source person than the target person
        ours.append(mine[0])
        baseline.append(base[0])
    # Measured: 0.27-0.50 against 0.29-0.57 for the baseline.
    assert np.mean(ours) < np.mean(baseline)


def test_the_targets_glasses_leave_no_fragments_inside_the_swapped_face(fitting_swap):
    from facehub.trainers.data.synthetic_variation import SEGMENT_LABELS
    from facehub.trainers.data.synthetic_world import SyntheticFaceWorld, SyntheticWorldConfig

    world = SyntheticFaceWorld(SyntheticWorldConfig(image_size=256, face_width=0.45, glasses=1.0))
    plain = SyntheticFaceWorld(SyntheticWorldConfig(image_size=256, face_width=0.45, seed=3))
    target = world.render_face(0)
    source = np.asarray(plain.render_face(1)["image"])
    glasses = np.asarray(target["segmentation"]) == SEGMENT_LABELS.index("glasses")
    assert glasses.sum() > 200
    out = fitting_swap(source, np.asarray(target["image"]), output_type="np")
    replaced = out.mask > 0.5
    inside = glasses & replaced  # the rims across the face (the arms lie outside it)
    before = np.asarray(target["image"], float)[inside]
    after = out.images[0].astype(float)[inside]
    # Inside the replaced region the dark lenses are gone: those pixels now hold the source's face. Measured: 86% of
    # them changed by more than 20 levels; the others lie on the source's eyebrows, as dark as the lenses were.
    change = np.abs(after - before).mean(axis=1)
    print(f"glasses pixels inside the swapped face: {inside.sum()}, changed: {(change > 20).mean():.2f}, mean "
          f"change {change.mean():.0f}")
    assert inside.sum() > 100 and (change > 20).mean() > 0.8 and change.mean() > 40


def test_a_lock_of_hair_on_the_sources_cheek_is_not_drawn_on_the_target(fitting_swap):
    """A dark lock painted down one cheek of the source photo: the swap replaces it by the other cheek mirrored
    (``swap_occluders = "mirror"``, the default), so the result stays near the swap of the clean source; drawn as it is
    (``"keep"``) it lands on the target's cheek. Measured over the replaced region, mean colour difference from the
    clean source's swap: 5.5 / 9.3 / 7.8 mirrored against 9.2 / 12.7 / 13.8 kept (what remains is the fit moving
    with the lock). The lock stays clear of the eye and of the face's edge: one that runs into the background or
    hair there is kept whole (tests/test_texture_completion.py)."""
    import cv2

    from facehub.modeling.faces import FaceAnalyzer
    from facehub.modeling.faces.image_io import load_image

    analyzer = FaceAnalyzer(compute_embedding=False)
    assert fitting_swap.swap_occluders == "mirror"
    ratios = []
    for source, target in (("obama.jpg", "biden.jpg"), ("biden.jpg", "astronaut.png"), ("astronaut.png", "obama.jpg")):
        photo, target_photo = load_image(PHOTOS / source), load_image(PHOTOS / target)
        mesh = np.asarray(analyzer(photo)[0].dense_landmarks)[:468, :2]
        corners = np.array([(-0.066, -0.14), (0.046, -0.1), (0.078, 0.18), (-0.05, 0.22)])  # down the right cheek
        lock = np.zeros(photo.shape[:2], np.float32)
        cv2.fillPoly(lock, [np.round(mesh[50] + float(np.ptp(mesh[:, 0])) * corners).astype(np.int32)], 1.0)
        lock = cv2.GaussianBlur(lock, (0, 0), 1.5)[..., None]
        painted = (photo * (1.0 - lock) + np.array([40.0, 28.0, 20.0]) * lock).astype(np.uint8)
        clean = fitting_swap(photo, target_photo, output_type="np")
        mirrored = fitting_swap(painted, target_photo, output_type="np")
        fitting_swap.swap_occluders = "keep"
        try:
            kept = fitting_swap(painted, target_photo, output_type="np")
        finally:
            fitting_swap.swap_occluders = "mirror"
        region = clean.mask > 0.5
        mirrored_change, kept_change = (float(np.abs(out.images[0].astype(float) - clean.images[0])[region].mean())
                                        for out in (mirrored, kept))
        print(f"{source} -> {target}: {mirrored_change:.2f} mirrored, {kept_change:.2f} kept")
        ratios.append(mirrored_change / kept_change)
    assert max(ratios) < 0.9 and np.mean(ratios) < 0.75, ratios


def test_the_swap_works_in_the_faces_box_and_gives_what_the_whole_photo_would(fitting_swap):
    """Steps 3-5 run in :func:`swap_box` only, so a large photo costs what its face does: the result, the drawing,
    the mask and the pasted face equal those of the same steps over the whole photo, to the last level."""
    from facehub.modeling.faces.compositing import (
        FACE_MASK_FEATHER,
        FACE_MASK_INSET,
        alpha_blend,
        face_size,
        hull_mask,
        seamless_blend,
        transfer_color,
    )
    from facehub.modeling.faces.image_io import load_image
    from facehub.modeling.geometry.texture_swap import render_uv_texture, swap_box, swap_outline

    source, target = load_image(PHOTOS / "obama.jpg"), load_image(PHOTOS / "biden.jpg")
    out = fitting_swap(source, target, output_type="np")
    geometry = fitting_swap.swap_geometry(target, *out.reconstructions)
    mesh = geometry.dense_mesh(openings="closed", subdivision=1, texture="photo")
    texture = out.reconstructions.source.dense_mesh(openings="closed", subdivision=1, texture="completed").texture
    rendered, covered = render_uv_texture(target.shape[:2], mesh.vertices, mesh.triangles, mesh.uvs, texture)
    landmarks = np.asarray(geometry.mesh_landmarks68)[:, :2]
    size = face_size(landmarks)
    mask = hull_mask(swap_outline(landmarks), target.shape[:2], inset=FACE_MASK_INSET * size,
                     feather=FACE_MASK_FEATHER * size) * covered
    whole = seamless_blend(transfer_color(rendered, target, mask > 0.5), target, mask > 0.5)
    np.testing.assert_array_equal(out.images[0], whole)
    np.testing.assert_array_equal(out.rendered, rendered)
    np.testing.assert_array_equal(out.mask, mask)
    np.testing.assert_array_equal(out.warped, alpha_blend(rendered, target, mask))
    x0, y0, x1, y1 = swap_box(np.vstack([np.asarray(mesh.vertices)[:, :2], swap_outline(landmarks)]), size,
                              target.shape[:2])
    changed = np.argwhere((out.images[0] != target).any(axis=-1))
    assert changed[:, 0].min() >= y0 and changed[:, 0].max() < y1 and changed[:, 1].min() >= x0
    assert changed[:, 1].max() < x1
    assert (x1 - x0) * (y1 - y0) < 0.5 * target.shape[0] * target.shape[1]  # the box is the face's, not the photo


def test_swap_and_rotation_evaluations_and_the_comparison_run_every_method(tmp_path, capsys):
    from facehub.apps.cli import main
    from facehub.apps.comparison import compare
    from facehub.modeling.faces.image_io import load_image

    assert main(["eval", "swap", "--images", str(PHOTOS), "--limit", "3", "--pairs", "2", "--method", "face_fitting",
                 "--out", str(tmp_path / "swap")]) == 0
    text = capsys.readouterr().out
    assert "2D similarity warp + Poisson (baseline)" in text and "| face_fitting | 2 |" in text
    results = json.loads((tmp_path / "swap" / "results.json").read_text())
    assert set(results["methods"]) == {"2D similarity warp + Poisson (baseline)", "face_fitting"}
    assert (tmp_path / "swap" / "sheet.png").stat().st_size > 10_000

    assert main(["eval", "rotation", "--images", str(PHOTOS / "astronaut.png"), "--yaws=20", "--method", "prn_dense",
                 "--out", str(tmp_path / "rotation")]) == 0
    text = capsys.readouterr().out
    assert "| yaw +20 | 1 |" in text and "| frontalize | 1 |" in text and "| prn_dense |" in text
    rows = json.loads((tmp_path / "rotation" / "results.json").read_text())["methods"][0]["rows"]
    assert rows[0]["request"] == "yaw +20" and rows[0]["yaw_error"] is not None and rows[0]["yaw_error"] < 10.0
    # The face-fitting regressor reads each result's yaw a second time: a different reader, close to the analyzer's.
    assert rows[0]["second_yaw_error"] is not None and rows[0]["second_yaw_error"] < 10.0
    assert rows[0]["second_yaw_error"] != rows[0]["yaw_error"] and "2nd reader" in text
    assert (tmp_path / "rotation" / "sheet_prn_dense.png").exists()

    assert main(["compare", str(PHOTOS / "astronaut.png"), "--capability", "reconstruction", "--out",
                 str(tmp_path / "compare.png")]) == 0
    assert "| Morphable-model fitting |" in capsys.readouterr().out and (tmp_path / "compare.png").exists()
    photo = load_image(PHOTOS / "astronaut.png")
    result = compare(photo, load_image(PHOTOS / "obama.jpg"), yaw=20.0, capabilities=("reconstruction", "swap"))
    rows = {(r.capability, r.method) for r in result.rows}
    assert {("reconstruction", "face_fitting"), ("reconstruction", "prn_dense"), ("swap", "baseline"),
            ("swap", "depthnet"), ("swap", "face_fitting"), ("swap", "prn_dense")} <= rows
    fit = next(r for r in result.rows if r.capability == "reconstruction" and r.method == "face_fitting")
    assert fit.figures["landmark NME vs analyzer (%)"] < 5.0 and fit.image.shape == photo.shape
    assert "| 2D similarity warp + Poisson (baseline) |" in result.table()


def test_the_comparison_sheet_captions_every_tile_with_its_title_and_a_figure_measured_on_it(tmp_path):
    """`facehub compare`'s sheet captions a rotation with the yaw measured on the result, not the yaw asked for (a
    method that stopped at 21 must not read as 30), under the method's whole title; each caption line is drawn in its
    own band of the tile's caption bar."""
    from PIL import Image

    from facehub.apps.comparison import Comparison, ComparisonRow, save_sheet, sheet_caption

    grey = np.full((50, 50, 3), 128, np.uint8)
    rows = [
        ComparisonRow("rotation", "depthnet", "DepthNets", grey,
                      {"requested yaw": 30.0, "achieved yaw": 21.0, "achieved pitch": 1.0, "identity distance": 0.4}),
        ComparisonRow("reconstruction", "face_fitting", "Morphable-model fitting", grey,
                      {"landmark NME vs analyzer (%)": 0.595, "yaw": 3.0, "pitch": 1.0}),
        ComparisonRow("swap", "baseline", "2D similarity warp", grey,
                      {"distance to source": 0.371, "distance to target": 0.88}),
        ComparisonRow("rotation", "pose_cvaegan", "Pose CVAE-GAN", error="the pose is out of reach"),
    ]
    assert [sheet_caption(r) for r in rows] == [
        "DepthNets\nmeasured yaw +21.0", "Morphable-model fitting\nNME vs analyzer % 0.59",
        "2D similarity warp\ndist. to source 0.371", "Pose CVAE-GAN\nfailed"]
    # The demo's Compare tab captions its gallery the same way, on one line.
    assert [caption for _, caption in Comparison(rows=rows, num_faces=1).gallery()][0] == \
        "rotation: DepthNets, measured yaw +21.0"
    sheet = np.asarray(Image.open(save_sheet(Comparison(rows=rows, num_faces=1), tmp_path / "sheet.png", tile=200)))
    assert sheet.shape == (200, 800, 3)
    bar = sheet[200 - 34:, :200].max(axis=-1)  # the first tile's bar: two lines of 15 px and a 4 px margin
    assert (sheet[200 - 35, :200] != 0).any() and bar.min() == 0  # the bar is black and starts 34 px up
    first, second = bar[:17], bar[17:]
    assert (first > 128).sum() > 50 and (second > 128).sum() > 50  # text in both bands
