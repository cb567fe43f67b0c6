"""``facehub eval stylefaceuv``: how well StyleFaceUV's 3D faces hold up when turned, in oracle mode, where the exact
answer exists (seed 004; our text of the paper loses its results table, so no number of the paper is quoted).

Each ``--model`` is the export of a ``facehub train stylefaceuv`` run in oracle mode with withheld detail
(``model.oracle={..., detail: true}``): its UV generator, F_3D and F_yaw, and the oracle of its training config. For
``--faces`` held-out stylecodes (seed 9071), the face's render at yaw ``a`` (F_3D's coefficients at that yaw, the
UV maps) is compared with the oracle's exact render of the same face at ``a`` (its exact coefficients and detail
maps), for ``a`` in +-``--yaws``:

- **masked L1** (grey levels, on the pixels both renders cover), and the **far-side L1**: the same on the pixels
  whose texels the face's own view (its own pose) never shows: what only the symmetric view could teach;
- **landmark NME** (% of the image side): the 68 landmarks the evaluation-only regressor
  (``facehub/face-fitting-eval``) reads on both renders;
- **dlib distance** between the render and the exact render (the same person: < 0.6 on dlib's own chips), and
  between the render at ``a`` and at the face's own pose (**identity across views**);
- **displacement error** (mm): the predicted against the exact displacement map on the face's texels, beside the
  zero map's error (how much of the withheld geometry the map recovers).

Rows: every ``--model`` (e.g. ``full=...`` and the ablation ``no-symmetric=...`` trained with
``losses.multiview_weight=0``), and **F_3D only**: the first model's coefficients with the morphable model's albedo
and no displacement (what the paper's Fig. 1 shows before the UV maps). Writes ``results.json``, ``by_yaw.png``
(L1 and far-side L1 against yaw) and ``sheet.png`` (exact, then each row, at every yaw, for four faces).

A ``--model`` that is a ``StyleFaceUVPipeline`` bundle on a real backbone (``facehub/stylefaceuv``, or the export
of a ``model.backbone=...`` run) has no exact answer; the evaluation then measures, for ``--faces`` seeded faces of
the bundle, against the backbone's own image of each stylecode:

- **image L1** (grey levels, on the render's face pixels) between the 3D face rendered at the pose F_3D reads and
  the StyleGAN2 image; **image NME** (%) and **id d image** (dlib distance) between that render pasted over the
  image and the image itself, read by the evaluation-only regressor;
- **identity across views**: dlib distance between the render at +-``a`` and at the face's own pose;
- **F_yaw** (eq. 2): the StyleGAN2 image of ``w + F_yaw(w, a) d``: the error of the yaw the regressor reads on it
  against ``a`` (degrees; beside it the **unturned** error, the original image's yaw against ``a``), and its dlib
  distance to the original image (the same face turned in 2D).

Rows: the bundle and its **F_3D only** row (the same coefficients, the morphable model's albedo, no displacement).

Usage::

    facehub eval stylefaceuv --model full=runs/sfuv/export [--model no-symmetric=runs/sfuv-nosym/export]
        [--faces 24] [--yaws 15,30,45] [--out runs/eval-stylefaceuv]
    facehub eval stylefaceuv --model default=facehub/stylefaceuv [--faces 24] [--yaws 15,30]
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from facehub.modeling.stylefaceuv.rendering import at_yaw

FACES_SEED = 9071
#: The UV grid on which "seen by the face's own view" is decided (the far-side L1).
SEEN_TEXELS = 64
F3D_ONLY = "F_3D only"


@dataclass
class Row:
    name: str
    l1: dict[str, float] = field(default_factory=dict)
    far_l1: dict[str, float] = field(default_factory=dict)
    nme: dict[str, float] = field(default_factory=dict)
    identity_to_exact: dict[str, float] = field(default_factory=dict)
    identity_across_views: dict[str, float] = field(default_factory=dict)
    displacement_error_mm: float | None = None
    zero_map_error_mm: float | None = None


def load_oracle_export(path: str | Path):
    """(uv_generator, F_3D, F_yaw, oracle settings) of an oracle-mode export."""
    import yaml

    from facehub.modeling.stylefaceuv import StyleToCoefficients, YawStepMapper
    from facehub.modeling.stylegan2 import StyleGAN2Generator

    path = Path(path)
    config_file = path / "training_config.yaml"
    settings = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    oracle = (settings.get("model") or {}).get("oracle")
    if not oracle:
        raise ValueError(f"{path} is not the export of an oracle-mode `facehub train stylefaceuv` run (its "
                         "training_config.yaml has no model.oracle); this evaluation needs the exact answers.")
    if not oracle.get("detail"):
        raise ValueError(f"{path} was trained on an oracle without withheld detail; train with "
                         "model.oracle={..., detail: true} so the UV maps have something to recover.")
    return (StyleGAN2Generator.from_pretrained(path).eval(),
            StyleToCoefficients.from_pretrained(path / "style_to_coefficients").eval(),
            YawStepMapper.from_pretrained(path / "yaw_step").eval(), oracle)


@dataclass
class BundleRow:
    name: str
    image_l1: float = float("nan")
    image_nme: float = float("nan")
    image_identity: float = float("nan")
    identity_across_views: dict[str, float] = field(default_factory=dict)
    turn_yaw_error: dict[str, float] = field(default_factory=dict)
    unturned_yaw_error: dict[str, float] = field(default_factory=dict)
    turn_identity: dict[str, float] = field(default_factory=dict)


@torch.no_grad()
def evaluate_bundle(name, pipe, grader, styles, yaws, use_uv_maps: bool = True) -> tuple[BundleRow, dict]:
    """One row of the bundle mode (module docstring) and its renders by yaw (for the sheet)."""
    row = BundleRow(name)
    renderer = pipe.face_renderer()
    lam = pipe.style_to_coefficients(styles)
    diffuse = displacement = None
    if use_uv_maps:
        diffuse, displacement = renderer.maps(pipe.uv_generator(styles, input_is_w=True, noise_mode="const").images,
                                              lam)
    images = pipe.image_generator(styles, input_is_w=True, noise_mode="const").images.clamp(-1, 1)
    own = renderer.render(lam, diffuse, displacement)
    on_face = own.mask[:, 0] > 0
    row.image_l1 = float(((own.image - images).abs().mean(dim=1) * 127.5)[on_face].mean())
    pasted = own.image * own.mask + images * (1 - own.mask)
    located = grader.read_landmarks(torch.cat([pasted, images]))
    count = len(styles)
    row.image_nme = float((located[:count] - located[count:]).norm(dim=-1).mean() / images.shape[-1] * 100)
    image_descriptors = grader.descriptors(images)
    row.image_identity = float((grader.descriptors(pasted) - image_descriptors).norm(dim=1).mean())
    own_descriptors = grader.descriptors(own.image)
    own_yaw = grader.read(images)["pose"][:, 0]
    renders = {0.0: (own.image[:4], images[:4])}
    for magnitude in yaws:
        views, yaw_errors, unturned, turn_identity = [], [], [], []
        for yaw in (-magnitude, magnitude):
            ours = renderer.render(at_yaw(lam, yaw), diffuse, displacement)
            views.append(float((grader.descriptors(ours.image) - own_descriptors).norm(dim=1).mean()))
            target = torch.full((count,), math.radians(yaw))
            moved = pipe.image_generator(pipe.yaw_step.turn(styles, target), input_is_w=True,
                                         noise_mode="const").images.clamp(-1, 1)
            read = grader.read(moved)["pose"][:, 0]
            yaw_errors.append(float((read - target).abs().mean()) * 180.0 / math.pi)
            unturned.append(float((own_yaw - target).abs().mean()) * 180.0 / math.pi)
            turn_identity.append(float((grader.descriptors(moved) - image_descriptors).norm(dim=1).mean()))
            renders[yaw] = (ours.image[:4], moved[:4])
        key = f"{magnitude:g}"
        row.identity_across_views[key] = float(np.mean(views))
        row.turn_yaw_error[key], row.turn_identity[key] = float(np.mean(yaw_errors)), float(np.mean(turn_identity))
        row.unturned_yaw_error[key] = float(np.mean(unturned))
    return row, renders


def bundle_table(rows: list[BundleRow], yaws: list[float]) -> str:
    lines = [f"{'row':<16}{'image L1':>9}{'image NME %':>12}{'id d image':>11}"
             + "".join(f"{'id d views ' + format(y, 'g'):>15}" for y in yaws)
             + "".join(f"{'F_yaw err ' + format(y, 'g'):>14}{'unturned ' + format(y, 'g'):>13}"
                       f"{'F_yaw id d ' + format(y, 'g'):>15}" for y in yaws)]
    for row in rows:
        line = f"{row.name:<16}{row.image_l1:>9.2f}{row.image_nme:>12.2f}{row.image_identity:>11.3f}"
        line += "".join(f"{row.identity_across_views[f'{y:g}']:>15.3f}" for y in yaws)
        line += "".join(f"{row.turn_yaw_error[f'{y:g}']:>14.1f}{row.unturned_yaw_error[f'{y:g}']:>13.1f}"
                        f"{row.turn_identity[f'{y:g}']:>15.3f}" for y in yaws)
        lines.append(line)
    lines.append("image L1 (grey levels): the render at F_3D's pose against the StyleGAN2 image on the face; NME and "
                 "id d image: that render pasted over the image, against the image; id d views: the render at "
                 "+-yaw against the render at the face's own pose; F_yaw err (degrees) and id d: the StyleGAN2 "
                 "image of w + F_yaw(w, a) d against the yaw a and the original image, beside the original image's own "
                 "yaw error against a (unturned; F_yaw does not depend on the UV maps: the same in both rows). Read by facehub/face-fitting-eval and dlib.")
    return "\n".join(lines)


@torch.no_grad()
def evaluate_row(name, oracle, renderer, grader, styles, yaws, f3d, uv_generator=None) -> tuple[Row, dict]:
    """One row's figures (module docstring) and its renders by yaw (for the sheet)."""
    from facehub.modeling.stylefaceuv.rendering import accessed_texels, pixel_weights

    row = Row(name)
    lam = f3d(styles)
    exact_coefficients, exact_maps = oracle.coefficients(styles), oracle.detail_maps(styles)
    diffuse = displacement = None  # F_3D only: the morphable model's albedo, no displacement
    if uv_generator is not None:
        diffuse, displacement = renderer.maps(uv_generator(styles, input_is_w=True, noise_mode="const").images, lam)
        exact_displacement = exact_maps[1]
        size = exact_displacement.shape[-1]
        predicted = torch.nn.functional.interpolate(displacement, size=(size, size), mode="area")
        face = accessed_texels(oracle.detailed.render(exact_coefficients, *exact_maps), size) > 0
        row.displacement_error_mm = float((predicted - exact_displacement).abs()[face].mean())
        row.zero_map_error_mm = float(exact_displacement.abs()[face].mean())
    own = renderer.render(lam, diffuse, displacement)
    own_texels = accessed_texels(own, SEEN_TEXELS)
    own_descriptors = grader.descriptors(own.image)
    renders = {}
    for magnitude in yaws:
        values = {key: [] for key in ("l1", "far", "nme", "exact", "views")}
        for yaw in (-magnitude, magnitude):
            ours = renderer.render(at_yaw(lam, yaw), diffuse, displacement)
            exact = oracle.detailed.render(at_yaw(exact_coefficients, yaw), *exact_maps)
            both = (ours.mask * exact.mask)[:, 0] > 0
            difference = (ours.image - exact.image).abs().mean(dim=1) * 127.5  # grey levels
            values["l1"].append(float(difference[both].mean()))
            far = both & (pixel_weights(ours, own_texels)[:, 0] == 0)
            values["far"].append(float(difference[far].mean()) if far.any() else float("nan"))
            located = grader.read_landmarks(torch.cat([ours.image, exact.image]))
            count = len(styles)
            values["nme"].append(float((located[:count] - located[count:]).norm(dim=-1).mean()
                                       / ours.image.shape[-1] * 100))
            descriptors = grader.descriptors(ours.image)
            values["exact"].append(float((descriptors - grader.descriptors(exact.image)).norm(dim=1).mean()))
            values["views"].append(float((descriptors - own_descriptors).norm(dim=1).mean()))
            renders[yaw] = (ours.image[:4], exact.image[:4])
        key = f"{magnitude:g}"
        row.l1[key], row.far_l1[key] = float(np.mean(values["l1"])), float(np.nanmean(values["far"]))
        row.nme[key], row.identity_to_exact[key] = float(np.mean(values["nme"])), float(np.mean(values["exact"]))
        row.identity_across_views[key] = float(np.mean(values["views"]))
    return row, renders


def table(rows: list[Row], yaws: list[float]) -> str:
    lines = [f"{'row':<16}{'|yaw|':>6}{'L1':>8}{'far L1':>8}{'NME %':>8}{'id d exact':>11}{'id d views':>11}"]
    for row in rows:
        for magnitude in yaws:
            k = f"{magnitude:g}"
            lines.append(f"{row.name:<16}{magnitude:>6g}{row.l1[k]:>8.2f}{row.far_l1[k]:>8.2f}{row.nme[k]:>8.2f}"
                         f"{row.identity_to_exact[k]:>11.3f}{row.identity_across_views[k]:>11.3f}")
    lines.append("")
    for row in rows:
        if row.displacement_error_mm is not None:
            lines.append(f"{row.name}: displacement error {row.displacement_error_mm:.3f} mm against the zero map's "
                         f"{row.zero_map_error_mm:.3f} mm")
    lines.append("L1 in grey levels against the oracle's exact render at that yaw; far L1: on texels the face's own "
                 "view never shows; NME by facehub/face-fitting-eval; id d: dlib distance.")
    return "\n".join(lines)


def _plots(rows: list[Row], yaws: list[float], renders: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for row in rows:
        axes[0].plot(yaws, [row.l1[f"{y:g}"] for y in yaws], marker="o", label=row.name)
        axes[1].plot(yaws, [row.far_l1[f"{y:g}"] for y in yaws], marker="o", label=row.name)
    for axis, title in zip(axes, ("L1 against the exact render", "far-side L1"), strict=True):
        axis.set_xlabel("|yaw| (degrees)")
        axis.set_ylabel("grey levels")
        axis.set_title(title)
        axis.legend()
    figure.tight_layout()
    figure.savefig(out / "by_yaw.png", dpi=100)
    plt.close(figure)
    _save_sheet(renders, out)


def _save_sheet(renders: dict, out: Path) -> None:
    """``sheet.png``: four faces down; across, by yaw, the reference of the first row (the exact renders, or the
    backbone's images and F_yaw's turns), then each row's renders."""
    from PIL import Image

    first = next(iter(renders.values()))
    yaw_keys = sorted(first)
    tiles = [torch.cat([first[y][1] for y in yaw_keys], dim=-1)]
    tiles += [torch.cat([renders[name][y][0] for y in yaw_keys], dim=-1) for name in renders]
    sheet = torch.cat([torch.cat(list(t), dim=-2) for t in tiles], dim=-1)  # faces down, rows across
    array = ((sheet.clamp(-1, 1) + 1) * 127.5).byte().permute(1, 2, 0).numpy()
    Image.fromarray(array).save(out / "sheet.png")


def main(argv: list[str] | None = None) -> int:
    from facehub.modeling.stylefaceuv import DetailedFaceRenderer
    from facehub.trainers.data.stylefaceuv_oracle import OracleStyleGenerator
    from facehub.trainers.evaluation.disco_facegan import Grader

    parser = argparse.ArgumentParser(prog="facehub eval stylefaceuv", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True,
                        help="label=export of an oracle-mode run, or label=a StyleFaceUVPipeline bundle (id or folder)")
    parser.add_argument("--faces", type=int, default=24)
    parser.add_argument("--yaws", default="15,30,45", help="comma-separated |yaw| in degrees")
    parser.add_argument("--out", default="runs/eval-stylefaceuv")
    args = parser.parse_args(argv)
    yaws = [float(y) for y in args.yaws.split(",") if y.strip()]
    if args.faces < 1 or not yaws or any(not 0 < y <= 60 for y in yaws):
        parser.error("--faces must be at least 1 and every --yaws in (0, 60]")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bundles = [spec for spec in args.model if _is_bundle(spec.rpartition("=")[2])]
    if bundles:
        if len(bundles) != len(args.model):
            parser.error("compare oracle-mode exports with each other, and bundles on a backbone with each other")
        return _main_bundles(bundles, args.faces, yaws, out)
    models = []
    for spec in args.model:
        label, _, path = spec.rpartition("=")
        models.append((label or path, *load_oracle_export(path)))
    oracle = OracleStyleGenerator(**models[0][4])
    renderer = DetailedFaceRenderer(oracle.image_size, oracle.detailed.mesh_resolution)
    grader = Grader(oracle.renderer)
    styles = oracle.sample(args.faces, torch.Generator().manual_seed(FACES_SEED))
    rows, renders = [], {}
    for label, uv_generator, f3d, _, settings in models:
        if settings != models[0][4]:
            raise ValueError(f"{label} was trained on another oracle ({settings}); compare runs of one oracle.")
        row, renders[label] = evaluate_row(label, oracle, renderer, grader, styles, yaws, f3d, uv_generator)
        rows.append(row)
    row, renders[F3D_ONLY] = evaluate_row(F3D_ONLY, oracle, renderer, grader, styles, yaws, models[0][2])
    rows.append(row)
    print(table(rows, yaws))
    (out / "results.json").write_text(json.dumps({"faces": args.faces, "yaws": yaws, "oracle": models[0][4],
                                                  "rows": [asdict(r) for r in rows]}, indent=1))
    _plots(rows, yaws, renders, out)
    print(f"results: {out / 'results.json'}; plots: {out / 'by_yaw.png'}, {out / 'sheet.png'}")
    return 0


def _is_bundle(path: str) -> bool:
    """Whether ``path`` is a saved ``StyleFaceUVPipeline`` (an oracle-mode export is the UV generator alone)."""
    from facehub.hub.resolver import resolve

    try:
        folder = resolve(path)
    except Exception:  # noqa: BLE001 - not resolvable here: let the oracle loader say what is wrong with it
        return False
    return (Path(folder) / "model_index.json").is_file()


def _main_bundles(specs: list[str], faces: int, yaws: list[float], out: Path) -> int:
    from facehub.modeling.stylefaceuv import StyleFaceUVPipeline
    from facehub.modeling.stylefaceuv.backbone import StyleBackbone
    from facehub.trainers.evaluation.disco_facegan import Grader

    rows, renders = [], {}
    grader = None
    for spec in specs:
        label, _, path = spec.rpartition("=")
        label = label or path
        pipe = StyleFaceUVPipeline.from_pretrained(path)
        if grader is None:
            from facehub.modeling.disco_facegan import FactorRenderer

            grader = Grader(FactorRenderer(int(pipe.image_generator.config.resolution)))
        backbone = StyleBackbone(pipe.image_generator, factor_vaes=pipe.factor_vaes)
        styles = backbone.styles(torch.randn(faces, backbone.latent_width,
                                             generator=torch.Generator().manual_seed(FACES_SEED)))
        for name, use_uv_maps in ((label, True), (f"{label}: {F3D_ONLY}", False)):
            row, renders[name] = evaluate_bundle(name, pipe, grader, styles, yaws, use_uv_maps)
            rows.append(row)
    print(bundle_table(rows, yaws))
    (out / "results.json").write_text(json.dumps({"faces": faces, "yaws": yaws, "mode": "bundle",
                                                  "rows": [asdict(r) for r in rows]}, indent=1))
    _save_sheet(renders, out)
    print(f"results: {out / 'results.json'}; sheet: {out / 'sheet.png'}")
    return 0
