"""``facehub eval depthnet``: DepthNets' Table 1 (keypoint registration) and Table 2 (DepthCorr) on held-out pairs.

Moniz, Beckham et al. 2018, section 3. Every DepthNet given is placed in its row of Table 1 by its own config
(formulation, case A or B); the baselines and a ground-truth-depth row are computed alongside:

====  ==========================================================================
1     2D affine registration (no depth)
2     3D affine from a mean 3D keypoint template (Procrustes fit to the source)
3, 4  separate depth + affine outputs (section 2.1), case B / case A
5, 6  the same networks, affine re-solved by least squares (section 2.2)
7, 8  depth only, pseudo-inverse affine inside the loss (section 2.3)
GT    the true depths with the eq. 3 affine (where the data has depths)
====  ==========================================================================

Metrics (:mod:`facehub.modeling.geometry.landmark_metrics`): MSE in pixels^2 and MSE_norm (divided by the target's
squared inter-ocular distance), mean and standard deviation over pairs, and the median MSE_norm (near-profile
targets, whose outer eye corners almost coincide in the image, make the mean MSE_norm heavy-tailed); DepthCorr of
the inferred source depths against the true ones.

Usage::

    facehub eval depthnet [--model ID ...] [--data DIR] [--pairs 2000] [--seed 424242] [--out DIR]

Without ``--data`` the held-out pairs are morphable-model faces (:class:`MorphableKeypointPairs`, a seed no training
config uses). With ``--data`` they come from a ``facehub prepare`` folder (required for case-A models, which read
the face crops); its depths are the dense landmarks' z (exact for the synthetic world, MediaPipe's for photos).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from facehub.modeling.depthnet import DepthNetModel
from facehub.modeling.depthnet.baselines import register_affine_2d, template_depths
from facehub.modeling.geometry.affine import apply_affine_3d_to_2d, solve_affine_3d_to_2d
from facehub.modeling.geometry.landmark_metrics import depth_correlation, keypoint_mse, keypoint_mse_norm

HELD_OUT_SEED = 424242

ROW_LABELS = {
    "affine_2d": "1) 2D affine registration",
    "template_3d": "2) 3D affine, mean 3D template",
    "explicit_affine": "{n}) DepthNet, depth + affine outputs (2.1)",
    "explicit_affine_solved": "{n}) DepthNet 2.1, affine by least squares (2.2)",
    "pseudo_inverse": "{n}) DepthNet, pseudo-inverse (2.3)",
    "ground_truth": "GT) true depths + eq. 3 affine",
}
_ROW_NUMBER = {"explicit_affine": 3, "explicit_affine_solved": 5, "pseudo_inverse": 7}


@dataclass
class RowResult:
    """One row of Table 1 (and of Table 2 when the row infers depths)."""

    key: str
    label: str
    mse: float
    mse_std: float
    mse_norm: float
    mse_norm_std: float
    mse_norm_median: float
    depth_corr: float | None = None
    per_pair_mse_norm: list[float] = field(default_factory=list, repr=False)


@dataclass
class DepthNetEvaluation:
    """All rows, in Table 1 order, and the held-out data they were measured on."""

    rows: list[RowResult]
    num_pairs: int
    data: str

    def row(self, key: str) -> RowResult:
        return next(r for r in self.rows if r.key == key)

    def table(self) -> str:
        """Markdown tables: Table 1 (MSE, MSE_norm) and Table 2 (DepthCorr)."""
        lines = [f"Held-out pairs: {self.num_pairs} ({self.data})", "",
                 "| Model | MSE (px^2) | MSE_norm (x1e-3) | median MSE_norm (x1e-3) |", "|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r.label} | {r.mse:.3f} ± {r.mse_std:.3f} | {1e3 * r.mse_norm:.3f} ± "
                         f"{1e3 * r.mse_norm_std:.3f} | {1e3 * r.mse_norm_median:.3f} |")
        lines += ["", "| Model | DepthCorr |", "|---|---|"]
        lines += [f"| {r.label} | {r.depth_corr:.3f} |" for r in self.rows if r.depth_corr is not None]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"num_pairs": self.num_pairs, "data": self.data,
                "rows": [{k: v for k, v in asdict(r).items() if k != "per_pair_mse_norm"} for r in self.rows]}


def _row(key: str, label: str, registered: np.ndarray, target: np.ndarray, depths=None, true_depths=None):
    mse, mse_norm = keypoint_mse(registered, target), keypoint_mse_norm(registered, target)
    corr = depth_correlation(depths, true_depths) if depths is not None and true_depths is not None else None
    return RowResult(key, label, float(mse.mean()), float(mse.std()), float(mse_norm.mean()), float(mse_norm.std()),
                     float(np.median(mse_norm)), corr, mse_norm.tolist())


def _register(source: np.ndarray, target: np.ndarray, depths: np.ndarray) -> np.ndarray:
    points = torch.from_numpy(np.concatenate([source, depths[..., None]], axis=-1))
    return apply_affine_3d_to_2d(solve_affine_3d_to_2d(points, torch.from_numpy(target)), points).numpy()


@torch.no_grad()
def _depthnet_outputs(model: DepthNetModel, batches, progress: bool) -> tuple[np.ndarray, np.ndarray | None]:
    model.eval()
    dtype = next(model.parameters()).dtype
    depths, affines = [], []
    for batch in tqdm(batches, desc="depthnet", disable=not progress, leave=False):
        images = [batch[k].to(dtype) if model.uses_images else None for k in ("source_images", "target_images")]
        out = model(batch["source_keypoints"].to(dtype), batch["target_keypoints"].to(dtype), *images)
        depths.append(out.depths.double().numpy())
        if out.affine is not None:
            affines.append(out.affine.double().numpy())
    return np.concatenate(depths), (np.concatenate(affines) if affines else None)


def evaluate(models: dict[str, DepthNetModel], pairs, batch_size: int = 256, template: np.ndarray | None = None,
             data_name: str = "", progress: bool = True) -> DepthNetEvaluation:
    """Table 1 and 2 rows for the baselines, ``models`` (name -> DepthNetModel) and ground-truth depths.

    ``pairs`` is a dataset of DepthNet items (``source_keypoints``, ``target_keypoints``, optionally
    ``source_depths`` and, for case-A models, ``source_images`` / ``target_images``).
    """
    loader = torch.utils.data.DataLoader(pairs, batch_size=batch_size, shuffle=False)
    batches = list(tqdm(loader, desc="held-out pairs", disable=not progress, leave=False))
    source = np.concatenate([b["source_keypoints"].double().numpy() for b in batches])
    target = np.concatenate([b["target_keypoints"].double().numpy() for b in batches])
    true_depths = (np.concatenate([b["source_depths"].double().numpy() for b in batches])
                   if "source_depths" in batches[0] else None)

    rows = [_row("affine_2d", ROW_LABELS["affine_2d"], register_affine_2d(source, target), target)]
    template_z = template_depths(source, template)
    rows.append(_row("template_3d", ROW_LABELS["template_3d"], _register(source, target, template_z), target,
                     template_z, true_depths))
    for name, model in models.items():
        depths, affine = _depthnet_outputs(model, batches, progress)
        case = " [case A]" if model.uses_images else ""
        number_offset = 1 if model.uses_images else 0
        if affine is not None:
            points = np.concatenate([source, depths[..., None]], axis=-1)
            predicted = np.einsum("bij,bnj->bni", affine[..., :3], points) + affine[:, None, :, 3]
            for key, registered in (("explicit_affine", predicted),
                                    ("explicit_affine_solved", _register(source, target, depths))):
                label = ROW_LABELS[key].format(n=_ROW_NUMBER[key] + number_offset) + case + f" ({name})"
                rows.append(_row(key, label, registered, target, depths, true_depths))
        else:
            label = ROW_LABELS["pseudo_inverse"].format(n=7 + number_offset) + case + f" ({name})"
            rows.append(_row("pseudo_inverse", label, _register(source, target, depths), target, depths, true_depths))
    if true_depths is not None:
        rows.append(_row("ground_truth", ROW_LABELS["ground_truth"], _register(source, target, true_depths), target,
                         true_depths, true_depths))
    return DepthNetEvaluation(rows, len(source), data_name)


def plot_histograms(evaluation: DepthNetEvaluation, path: Path) -> Path:
    """Histogram of per-pair MSE_norm per row (Table 1, right), log-spaced bins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = [np.asarray(r.per_pair_mse_norm) for r in evaluation.rows]
    positive = np.concatenate([v[v > 0] for v in values])
    bins = np.logspace(np.log10(positive.min()), np.log10(positive.max()), 50)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for row, v in zip(evaluation.rows, values, strict=True):
        ax.hist(np.clip(v, bins[0], None), bins=bins, histtype="step", linewidth=1.5, label=row.label)
    ax.set_xscale("log")
    ax.set_xlabel("MSE_norm per pair (squared inter-ocular distances)")
    ax.set_ylabel("pairs")
    ax.set_title(f"DepthNet registration error, {evaluation.num_pairs} held-out pairs")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facehub eval depthnet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=None, metavar="ID",
                        help="DepthNet checkpoint (Hub id, embedded id or folder); repeat for several "
                        "(default: facehub/depthnet).")
    parser.add_argument("--data", help="`facehub prepare` folder of held-out faces (default: morphable-model pairs).")
    parser.add_argument("--pairs", type=int, default=2000, help="Held-out pairs (default 2000).")
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED, help=f"Pair seed (default {HELD_OUT_SEED}).")
    parser.add_argument("--out", help="Folder for results.json, eval_results.json and mse_histogram.png.")
    args = parser.parse_args(argv)

    from facehub.modeling.depthnet import KeypointRegistrationPipeline

    models = {}
    for model_id in args.model or ["facehub/depthnet"]:
        pipe = KeypointRegistrationPipeline.from_pretrained(model_id)
        models[model_id] = pipe.depth_net
    image_size = next((m.config.image_size for m in models.values() if m.uses_images), None)
    if args.data:
        from facehub.trainers.depthnet import PreparedKeypointPairs

        pairs = PreparedKeypointPairs(args.data, num_pairs=args.pairs, seed=args.seed, image_size=image_size)
        data_name = f"prepared faces from {args.data}"
    else:
        if image_size:
            raise SystemExit("Case-A DepthNets read face crops: evaluate them with --data DIR (a `facehub prepare` "
                             "folder).")
        from facehub.trainers.data.keypoint_pairs import MorphableKeypointPairs

        pairs = MorphableKeypointPairs(num_pairs=args.pairs, seed=args.seed, max_yaw=90.0)
        data_name = f"morphable-model faces, seed {args.seed}, yaw up to 90 degrees"
    evaluation = evaluate(models, pairs, data_name=data_name)
    print(evaluation.table())
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(evaluation.to_json(), indent=2))
        best = next((r for r in evaluation.rows if r.key in ("pseudo_inverse", "explicit_affine_solved")), None)
        if best is not None:
            metrics = {"mse_norm": round(best.mse_norm, 6),
                       "mse_norm_vs_2d_affine": round(best.mse_norm / evaluation.row("affine_2d").mse_norm, 4)}
            if best.depth_corr is not None:
                metrics["depth_corr"] = round(best.depth_corr, 4)
            (out / "eval_results.json").write_text(json.dumps(
                {"task": "keypoint-registration", "dataset": "facehub-morphable-pairs" if not args.data else "prepared",
                 "dataset_name": data_name, "metrics": metrics}, indent=2))
        print(f"plot: {plot_histograms(evaluation, out / 'mse_histogram.png')}")
    return 0
