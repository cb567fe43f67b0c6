"""``facehub eval disco_facegan``: seed 002's Tables 1 and 2 in miniature, with the control and identity figures the
paper shows as pictures, all scored by the evaluation-only regressor (``facehub/face-fitting-eval``), never by the
regressor the generator imitated.

Rows: every ``--model`` (label=path, e.g. the three ablation rows of Table 1: adversarial only, + imitative,
+ contrastive), and the **renderer** itself: the morphable model's render of the same factors, scored the same way,
as the ceiling a perfectly imitating generator would reach.

Figures:

The grader reads a face through its crop placed on the landmarks the training regressor locates (see
:class:`Grader`); every number comes from the grader.

- **Disentanglement score** (eq. 9). For factor ``u_i``: ``--groups`` sets of the other factors (and noise), each
  with ``--per-group`` draws of ``u_i``; every image is read back by the grader (identity = identity-shape and
  albedo coefficients, expression, lighting, pose). ``sigma_j`` is the variance of estimate ``j`` within a group
  (mean over its dimensions), averaged over the groups, divided by the variance of that estimate over real photos
  (``--data``: a ``facehub prepare`` folder; without it, over the renderer's images of prior draws).
  ``DS_i = prod_{j != i} sigma_i / sigma_j``: high when varying ``u_i`` moves only ``u_i``. 95% intervals by
  bootstrap over the groups.
- **W-space consistency** (eq. 10, Table 2): the cosine similarity of the directions ``w(u_i = a) - w(u_i = b)`` over
  different other factors, for fixed ``(a, b)`` (Property 1) and for a fixed offset ``b - a`` (Property 2); mean and
  standard deviation over ``--pairs`` pairs.
- **Control error**: what the grader reads against what was asked: yaw and pitch (degrees), expression and lighting
  (RMSE in coefficient units).
- **Identity kept**: the dlib distance (on the aligned crop resized to dlib's 150 px chip; same person < 0.6 on dlib's
  own chips) between a face and the same factors with only the expression, the lighting or the yaw (+-20 degrees)
  changed.
- **Frechet distance on the grader's features** (``FD-grader``): between generated faces and real photos, on the
  evaluation regressor's pooled features. It is not FID (no Inception network, few samples); compare rows of one run
  only.

What the miniature can show: whether the factors steer what the grader reads, and how much the contrastive losses
add, at 64 px. What it cannot: image quality comparable with the paper's 256 px FFHQ model, or absolute DS values
comparable with Table 1 (another estimator, another data variance).

Usage::

    facehub eval disco_facegan [--model ID | --model label=PATH ...] [--data PREPARED] [--groups 40]
        [--per-group 5] [--pairs 30] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from facehub.modeling.disco_facegan.configuration_disco_facegan import FACTORS

GRADER_ID = "facehub/face-fitting-eval"
DEFAULT_MODEL = "facehub/disco-facegan"
RENDERER_ROW = "renderer (ceiling)"
BOOTSTRAP_ROUNDS = 200


@dataclass
class Row:
    """One model's (or the renderer's) figures."""

    name: str
    disentanglement: dict[str, float] = field(default_factory=dict)
    disentanglement_ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    sigma: dict[str, dict[str, float]] = field(default_factory=dict)
    consistency_fixed_ends: dict[str, tuple[float, float]] = field(default_factory=dict)
    consistency_fixed_offset: dict[str, tuple[float, float]] = field(default_factory=dict)
    control: dict[str, float] = field(default_factory=dict)
    identity_kept: dict[str, float] = field(default_factory=dict)
    frechet_grader: float | None = None


class Grader:
    """The evaluation-only regressor, dlib's descriptor, and a locator that places the grader's crop.

    The crop (PRNet's square around the 68 landmarks) has to follow the face, wherever the asked-for factors put
    it, without being told where that is. The training regressor is the better locator on 64 px faces (the grader's
    own two-pass reading drifts: yaw error 14 against 3 degrees on the renderer's images), so it finds the landmarks,
    starting from the average face's; every figure is then read by the grader alone.
    """

    def __init__(self, renderer, vaes=None, locator_id: str = "facehub/face-fitting"):
        from facehub.trainers.losses.imitation import FaceReader

        self.reader = FaceReader(GRADER_ID, renderer.face_model)
        self.locator = FaceReader(locator_id, renderer.face_model)
        if vaes is not None:  # the data's average face
            self.crop_landmarks = renderer.aligned_frame({f: getattr(vaes, f"mean_{f}")[None] for f in FACTORS})[1]
        else:  # the morphable model's mean face
            self.crop_landmarks = renderer.mean_face_landmarks()

    @torch.no_grad()
    def locate(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 68, 2) landmarks of aligned faces, by the locator in two passes from the average face's crop."""
        return self.locator.read_located(images, self.crop_landmarks)["landmarks68"]

    @torch.no_grad()
    def read_landmarks(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 68, 2) landmarks the grader reads on aligned faces, through the crop on the located landmarks."""
        return self.reader.regress(images, self.locate(images))["landmarks68"]

    @torch.no_grad()
    def read(self, images: torch.Tensor, batch_size: int = 64) -> dict[str, torch.Tensor]:
        """Estimated lambda (pose radians) of (N, 3, S, S) aligned faces in [-1, 1], read by the grader through the
        crop on the located landmarks."""
        reads = [self.reader.as_lambda(self.reader.regress(chunk, self.locate(chunk)))
                 for chunk in images.split(batch_size)]
        return {f: torch.cat([read[f] for read in reads]) for f in FACTORS}

    @torch.no_grad()
    def descriptors(self, images: torch.Tensor) -> torch.Tensor:
        """dlib's (uncentred) 128-D descriptors of aligned faces resized to its chip."""
        centre = self.reader.identity_centre
        return self.reader.identity_features(images) + centre

    @torch.no_grad()
    def pooled(self, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """The grader's pooled features of aligned faces (for the Frechet distance)."""
        regressor = self.reader.regressor
        out = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            crops, _, _ = regressor.crop_tensor(chunk, self.locate(chunk))
            out.append(regressor.pooled_features(crops).double().numpy())
        return np.concatenate(out)


def factor_variance(values: torch.Tensor) -> float:
    """Variance over the rows, averaged over the dimensions."""
    return float(values.double().var(dim=0, unbiased=True).mean())


def disentanglement_score(sigma: dict[str, float], factor: str) -> float:
    """Eq. 9: ``DS_i = prod_{j != i} sigma_i / sigma_j`` with normalised within-group variances ``sigma``."""
    return float(np.prod([sigma[factor] / max(sigma[other], 1e-12) for other in FACTORS if other != factor]))


def bootstrap_interval(per_group: list[dict[str, float]], factor: str, rounds: int = BOOTSTRAP_ROUNDS,
                       seed: int = 0) -> tuple[float, float]:
    """95% interval of DS over groups resampled with replacement."""
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(rounds):
        chosen = rng.integers(0, len(per_group), len(per_group))
        sigma = {f: float(np.mean([per_group[i][f] for i in chosen])) for f in FACTORS}
        scores.append(disentanglement_score(sigma, factor))
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2))`` of two feature sets (rows are samples)."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2.0 * np.real(root)))


def _compose(base: dict[str, torch.Tensor], factor: str, values: torch.Tensor) -> dict[str, torch.Tensor]:
    count = len(values)
    lam = {f: v.expand(count, -1).clone() for f, v in base.items()}
    lam[factor] = values
    return lam


@torch.no_grad()
def measure(name: str, draw, grader: Grader, vaes, reference_variance: dict[str, float], groups: int, per_group: int,
            seed: int) -> Row:
    """DS, control error and identity kept for one image source ``draw(lambda, noise) -> images``."""
    row = Row(name)
    generator = torch.Generator().manual_seed(seed)
    for factor in FACTORS:
        per_group_sigma = []
        for _ in tqdm(range(groups), desc=f"{name}: vary {factor}", leave=False):
            base = vaes.sample(1, generator=generator)
            values = vaes.sample(per_group, generator=generator)[factor]
            noise = torch.randn(1, _noise_dim(draw), generator=generator).expand(per_group, -1)
            read = grader.read(draw(_compose(base, factor, values), noise))
            per_group_sigma.append({f: factor_variance(read[f]) / reference_variance[f] for f in FACTORS})
        sigma = {f: float(np.mean([g[f] for g in per_group_sigma])) for f in FACTORS}
        row.sigma[factor] = sigma
        row.disentanglement[factor] = disentanglement_score(sigma, factor)
        row.disentanglement_ci[factor] = bootstrap_interval(per_group_sigma, factor, seed=seed)
    # control: ask, read back
    lam = vaes.sample(groups * per_group, generator=generator)
    noise = torch.randn(len(lam["pose"]), _noise_dim(draw), generator=generator)
    read = grader.read(draw(lam, noise))
    row.control = {
        "yaw_error_deg": float((read["pose"][:, 0] - lam["pose"][:, 0]).abs().mean() * 180 / math.pi),
        # The baseline: the yaw error of faces drawn frontal whatever was asked (read exactly).
        "yaw_error_if_frontal_deg": float(lam["pose"][:, 0].abs().mean() * 180 / math.pi),
        "pitch_error_deg": float((read["pose"][:, 1] - lam["pose"][:, 1]).abs().mean() * 180 / math.pi),
        "expression_rmse": float((read["expression"] - lam["expression"]).square().mean().sqrt()),
        "lighting_rmse": float((read["lighting"] - lam["lighting"]).square().mean().sqrt()),
    }
    # identity kept when one other factor changes
    first = grader.descriptors(draw(lam, noise))
    other = vaes.sample(len(noise), generator=generator)
    turned = lam["pose"].clone()
    turned[:, 0] = turned[:, 0] + torch.where(torch.rand(len(noise), generator=generator) < 0.5, -1.0, 1.0) * \
        math.radians(20.0)
    for label, changed in (("expression", {**lam, "expression": other["expression"]}),
                           ("lighting", {**lam, "lighting": other["lighting"]}), ("yaw", {**lam, "pose": turned})):
        row.identity_kept[label] = float((grader.descriptors(draw(changed, noise)) - first).norm(dim=1).mean())
    return row


def _noise_dim(draw) -> int:
    return int(getattr(draw, "noise_dim", 0))


class GeneratorSource:
    """``draw(lambda, noise)`` through a DiscoFaceGAN pipeline's generator (stored noise maps)."""

    def __init__(self, pipe):
        from facehub.modeling.disco_facegan import generator_input

        self.pipe, self.generator_input = pipe, generator_input
        self.noise_dim = pipe.noise_dim

    @torch.no_grad()
    def __call__(self, lam, noise, batch_size: int = 64) -> torch.Tensor:
        out = []
        for start in range(0, len(noise), batch_size):
            part = {f: v[start:start + batch_size] for f, v in lam.items()}
            inputs = self.generator_input(self.pipe.factor_vaes, part, noise[start:start + batch_size])
            out.append(self.pipe.image_generator(inputs, noise_mode="const").images.clamp(-1, 1))
        return torch.cat(out)


class RendererSource:
    """``draw(lambda, noise)`` by the morphable model's render (the ceiling row); the noise is ignored."""

    def __init__(self, renderer, noise_dim: int):
        self.renderer, self.noise_dim = renderer, noise_dim

    def __call__(self, lam, noise) -> torch.Tensor:
        return self.renderer.render(lam).image


def consistency(pipe, pairs: int, others: int, seed: int) -> tuple[dict, dict]:
    """Table 2: mean and std over ``pairs`` of the average pairwise cosine of the W directions, for fixed ends and
    for a fixed offset."""
    from facehub.modeling.disco_facegan import generator_input

    vaes, mapping = pipe.factor_vaes, pipe.image_generator.map
    generator = torch.Generator().manual_seed(seed)
    fixed_ends, fixed_offset = {}, {}
    with torch.no_grad():
        for factor in FACTORS:
            ends, offsets = [], []
            for _ in range(pairs):
                rest = vaes.sample(others, generator=generator)
                noise = torch.randn(others, pipe.noise_dim, generator=generator)
                a, b = vaes.sample(2, generator=generator)[factor].split(1)
                start = vaes.sample(others, generator=generator)[factor]

                def direction(first, second, rest=rest, factor=factor, noise=noise):
                    w1 = mapping(generator_input(vaes, {**rest, factor: first.expand(others, -1)}, noise))
                    w2 = mapping(generator_input(vaes, {**rest, factor: second.expand(others, -1)}, noise))
                    d = w2 - w1
                    return d / d.norm(dim=1, keepdim=True).clamp(min=1e-12)

                for store, d in ((ends, direction(a, b)), (offsets, direction(start, start + (b - a)))):
                    cos = d @ d.t()
                    store.append(float(cos[~torch.eye(others, dtype=torch.bool)].mean()))
            fixed_ends[factor] = (float(np.mean(ends)), float(np.std(ends)))
            fixed_offset[factor] = (float(np.mean(offsets)), float(np.std(offsets)))
    return fixed_ends, fixed_offset


def real_faces(path: str, size: int, limit: int) -> torch.Tensor:
    """Aligned crops of a prepared folder, (N, 3, S, S) in [-1, 1]."""
    from facehub.trainers.data.aligned_faces import aligned_face_table, load_prepared_rows

    rows = load_prepared_rows(path)
    count = min(len(rows), limit)
    table = aligned_face_table((rows[i] for i in range(count)), str(path), size, 60.0, count)
    return torch.from_numpy(table.crops).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def table(rows: list[Row]) -> str:
    lines = ["Disentanglement score (eq. 9; higher is better; 95% bootstrap interval)",
             f"{'row':<28}" + "".join(f"{f:>22}" for f in FACTORS)]
    for row in rows:
        cells = "".join(f"{row.disentanglement[f]:>9.3g} [{row.disentanglement_ci[f][0]:.2g},"
                        f"{row.disentanglement_ci[f][1]:.2g}]".rjust(22) for f in FACTORS)
        lines.append(f"{row.name:<28}{cells}")
    lines += ["", "W-space consistency (eq. 10; cosine, mean +- std): fixed ends / fixed offset",
              f"{'row':<28}" + "".join(f"{f:>22}" for f in FACTORS)]
    for row in rows:
        if row.consistency_fixed_ends:
            lines.append(f"{row.name:<28}" + "".join(
                f"{row.consistency_fixed_ends[f][0]:.2f}+-{row.consistency_fixed_ends[f][1]:.2f} / "
                f"{row.consistency_fixed_offset[f][0]:.2f}".rjust(22) for f in FACTORS))
    lines += ["", f"{'row':<28}{'yaw err':>9}{'if frontal':>11}{'pitch err':>10}{'expr rmse':>10}{'light rmse':>11}"
              f"{'id d(expr)':>11}{'id d(light)':>12}{'id d(yaw)':>10}{'FD-grader':>10}"]
    for row in rows:
        c, k = row.control, row.identity_kept
        fd = f"{row.frechet_grader:.2f}" if row.frechet_grader is not None else "-"
        frontal = c.get("yaw_error_if_frontal_deg")
        frontal = f"{frontal:.1f}" if frontal is not None else "-"
        lines.append(f"{row.name:<28}{c['yaw_error_deg']:>9.1f}{frontal:>11}{c['pitch_error_deg']:>10.1f}"
                     f"{c['expression_rmse']:>10.3f}{c['lighting_rmse']:>11.3f}{k['expression']:>11.3f}"
                     f"{k['lighting']:>12.3f}{k['yaw']:>10.3f}{fd:>10}")
    lines.append("Angles in degrees, read by the evaluation-only regressor; if frontal: the yaw error of faces drawn "
                 "frontal whatever the request (the baseline); id d: dlib distance on the aligned crop "
                 "when only that factor changes; FD-grader: Frechet distance on the grader's features against real "
                 "photos (not FID).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from facehub.modeling.disco_facegan import DiscoFaceGANPipeline, FactorRenderer

    parser = argparse.ArgumentParser(prog="facehub eval disco_facegan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=None,
                        help="checkpoint, or label=checkpoint; repeat for ablation rows (default: the embedded default)")
    parser.add_argument("--data", default=None, help="facehub prepare folder of real faces (variance and FD)")
    parser.add_argument("--limit", type=int, default=500, help="at most this many real faces")
    parser.add_argument("--groups", type=int, default=40, help="groups per factor (paper: 1,000)")
    parser.add_argument("--per-group", type=int, default=5, help="draws of the varied factor per group (paper: 10)")
    parser.add_argument("--pairs", type=int, default=30, help="(a, b) pairs for Table 2 (paper: 50)")
    parser.add_argument("--others", type=int, default=20, help="other-factor draws per pair (paper: 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/eval-disco-facegan", help="folder for results.json")
    args = parser.parse_args(argv)
    if args.groups < 2 or args.per_group < 2 or args.pairs < 1 or args.others < 2:
        parser.error("--groups and --per-group must be at least 2, --pairs at least 1 and --others at least 2")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    models = []
    for spec in args.model or [DEFAULT_MODEL]:
        label, _, path = spec.rpartition("=")
        models.append((label or path, DiscoFaceGANPipeline.from_pretrained(path)))
    first = models[0][1]
    size = int(first.image_generator.config.resolution)
    renderer = FactorRenderer(size)
    grader = Grader(renderer, first.factor_vaes)
    vaes = first.factor_vaes
    if args.data:
        real = real_faces(args.data, size, args.limit)
        reference = grader.read(real)
        print(f"reference variance: {len(real)} real faces of {args.data}")
    else:
        real = None
        prior = vaes.sample(200, generator=torch.Generator().manual_seed(args.seed + 1))
        reference = grader.read(renderer.render(prior).image)
        print("reference variance: the renderer's images of 200 prior draws (no --data)")
    reference_variance = {f: max(factor_variance(reference[f]), 1e-12) for f in FACTORS}

    rows = []
    for label, pipe in models:
        row = measure(label, GeneratorSource(pipe), grader, pipe.factor_vaes, reference_variance, args.groups,
                         args.per_group, args.seed)
        row.consistency_fixed_ends, row.consistency_fixed_offset = consistency(pipe, args.pairs, args.others,
                                                                               args.seed)
        if real is not None:
            lam = pipe.factor_vaes.sample(len(real), generator=torch.Generator().manual_seed(args.seed + 2))
            noise = torch.randn(len(real), pipe.noise_dim, generator=torch.Generator().manual_seed(args.seed + 3))
            row.frechet_grader = frechet_distance(grader.pooled(GeneratorSource(pipe)(lam, noise)), grader.pooled(real))
        rows.append(row)
    ceiling = measure(RENDERER_ROW, RendererSource(renderer, first.noise_dim), grader, vaes, reference_variance,
                         args.groups, args.per_group, args.seed)
    rows.append(ceiling)
    print(table(rows))
    results = {"grader": GRADER_ID, "groups": args.groups, "per_group": args.per_group, "pairs": args.pairs,
               "others": args.others, "data": args.data, "rows": [asdict(r) for r in rows]}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"results: {out / 'results.json'}")
    return 0
