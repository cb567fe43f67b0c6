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

Usage::

    facehub eval stylefaceuv --model full=runs/sfuv/export [--model no-symmetric=runs/sfuv-nosym/export]
        [--faces 24] [--yaws 15,30,45] [--out runs/eval-stylefaceuv]
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

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
            turned = {**lam, "pose": lam["pose"].clone()}
            turned["pose"][:, 0] = math.radians(yaw)
            ours = renderer.render(turned, diffuse, displacement)
            exact_lam = {**exact_coefficients, "pose": exact_coefficients["pose"].clone()}
            exact_lam["pose"][:, 0] = math.radians(yaw)
            exact = oracle.detailed.render(exact_lam, *exact_maps)
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
    from PIL import Image

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
    first = next(iter(renders.values()))
    yaw_keys = sorted(first)
    tiles = [torch.cat([first[y][1] for y in yaw_keys], dim=-1)]  # exact
    tiles += [torch.cat([renders[name][y][0] for y in yaw_keys], dim=-1) for name in renders]
    sheet = torch.cat([torch.cat(list(t), dim=-2) for t in tiles], dim=-1)  # faces down, rows across
    array = ((sheet.clamp(-1, 1) + 1) * 127.5).byte().permute(1, 2, 0).numpy()
    Image.fromarray(array).save(out / "sheet.png")


def main(argv: list[str] | None = None) -> int:
    from facehub.modeling.stylefaceuv import DetailedFaceRenderer
    from facehub.trainers.data.stylefaceuv_oracle import OracleStyleGenerator
    from facehub.trainers.evaluation.disco_facegan import Grader

    parser = argparse.ArgumentParser(prog="facehub eval stylefaceuv", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="label=export of an oracle-mode run")
    parser.add_argument("--faces", type=int, default=24)
    parser.add_argument("--yaws", default="15,30,45", help="comma-separated |yaw| in degrees")
    parser.add_argument("--out", default="runs/eval-stylefaceuv")
    args = parser.parse_args(argv)
    yaws = [float(y) for y in args.yaws.split(",") if y.strip()]
    if args.faces < 1 or not yaws or any(not 0 < y <= 60 for y in yaws):
        parser.error("--faces must be at least 1 and every --yaws in (0, 60]")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
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
