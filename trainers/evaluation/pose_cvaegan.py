"""``facehub eval pose_cvaegan``: what seed 000's claims mean, measured, with the other rotation methods as baselines.

The paper reports no numbers: it claims that G turns a face to the requested pose (section 4.3) while the person
stays the same. Measured here on two kinds of input:

1. **Held-out synthetic identities** (a synthetic world with a seed no trainer uses): identity ``i`` is rendered at a
   random yaw in +-``--input-yaw`` (pitch and roll 0, ambient light, a fixed backdrop) and turned to each yaw of
   ``--yaws``; the same identity rendered at that yaw is the exact answer. Per method and requested yaw:

   - **pose error**: ``|yaw - requested|`` of the result as the *evaluation-only* regressor
     (``facehub/face-fitting-eval``, never P, never the regressor methods train with) reads it, on the face the
     FaceAnalyzer finds on the result (on the input face's place when it finds none);
   - **identity distance** (dlib ResNet; same person below 0.6) of the result's face to the input face and to the
     exact render's face;
   - **masked L1**: mean absolute RGB difference (0-1 scale) against the exact render inside the exact render's face
     region;
   - **landmark NME**: 68 landmarks of the result (FaceAnalyzer) against the exact render's, over sqrt(w*h) of their
     box, %;
   - **lost**: results on which no face is found (they count in the pose error via the fallback, not in identity or
     NME).

2. **Real photos** (``--images``): the same pose error and identity distance to the input, with no exact render.

Methods: ``pose_cvaegan`` and, as baselines in the same table, the input unchanged (``input``), DepthNet's warp
(``depthnet``) and the 3D head rotation of the morphable-model fit (``face_fitting``); ``--method`` picks others
from ``methods.available("rotation")``. Writes ``results.json``, ``eval_results.json``, the plot
``pose_cvaegan_by_yaw.png`` (pose error and identity distance against requested yaw) and a contact sheet
``sheet_synthetic.png`` to ``--out``.

Usage::

    facehub eval pose_cvaegan [--model ID] [--identities 16] [--yaws=-45,-30,-15,0,15,30,45] [--images DIR]
        [--method NAME ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

DEFAULT_YAWS = (-45.0, -30.0, -15.0, 0.0, 15.0, 30.0, 45.0)
DEFAULT_BASELINES = ("depthnet", "face_fitting")
INPUT_BASELINE = "input"
EVALUATION_WORLD_SEED = 9077  # no trainer's synthetic world uses it
GRADER_ID = "facehub/face-fitting-eval"


@dataclass
class Trial:
    """One result: a method turning one input to one requested yaw."""

    method: str
    kind: str  # "synthetic" or "photo"
    input: str
    requested_yaw: float
    pose_error: float | None = None
    distance_to_input: float | None = None
    distance_to_exact: float | None = None
    masked_l1: float | None = None
    landmark_nme: float | None = None
    lost: bool = False
    refused: str | None = None
    seconds: float = 0.0


@dataclass
class MethodRow:
    """Means over a method's trials of one kind (``None`` where nothing was measured)."""

    method: str
    kind: str
    trials: int
    pose_error: float | None
    distance_to_input: float | None
    distance_to_exact: float | None
    masked_l1: float | None
    landmark_nme: float | None
    lost: int
    refused: int
    seconds: float
    by_yaw: dict[str, dict[str, float | None]] = field(default_factory=dict)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def summarise(trials: list[Trial], method: str, kind: str) -> MethodRow:
    mine = [t for t in trials if t.method == method and t.kind == kind]
    done = [t for t in mine if t.refused is None]
    by_yaw = {}
    for yaw in sorted({t.requested_yaw for t in mine}):
        at = [t for t in done if t.requested_yaw == yaw]
        by_yaw[f"{yaw:g}"] = {"pose_error": _mean(t.pose_error for t in at),
                              "distance_to_input": _mean(t.distance_to_input for t in at),
                              "distance_to_exact": _mean(t.distance_to_exact for t in at)}
    return MethodRow(method, kind, len(mine), _mean(t.pose_error for t in done),
                     _mean(t.distance_to_input for t in done), _mean(t.distance_to_exact for t in done),
                     _mean(t.masked_l1 for t in done), _mean(t.landmark_nme for t in done),
                     sum(t.lost for t in done), len(mine) - len(done), _mean(t.seconds for t in done) or 0.0, by_yaw)


class Grader:
    """What every result is measured with: the FaceAnalyzer (faces, landmarks, dlib descriptor) and the
    evaluation-only coefficient regressor (pose)."""

    def __init__(self):
        from facehub.modeling.face_fitting import FaceFittingPipeline
        from facehub.modeling.faces import FaceAnalyzer

        self.analyzer = FaceAnalyzer()
        self.regressor = FaceFittingPipeline.from_pretrained(GRADER_ID)

    def face_near(self, image: np.ndarray, box):
        from facehub.modeling.pipeline_utils import face_nearest

        return face_nearest(self.analyzer(image), box)

    def yaw(self, image: np.ndarray, face) -> float:
        # One reading, no flip test: the grader reads as it did when the model card's figures were measured.
        (coefficients,) = self.regressor.regress(image, [face], flip_test=False)
        return float(coefficients.rotation[0])


def measure(grader: Grader, trial: Trial, output: np.ndarray, input_face, exact: dict | None = None) -> None:
    """Fill ``trial``'s figures for the result ``output`` of turning ``input_face`` (module docstring)."""
    from facehub.modeling.faces.identity import face_distance
    from facehub.modeling.geometry.landmark_metrics import nme

    face = grader.face_near(output, input_face.bbox)
    trial.lost = face is None
    trial.pose_error = abs(grader.yaw(output, face if face is not None else input_face) - trial.requested_yaw)
    if face is not None:
        trial.distance_to_input = float(face_distance(face, input_face))
    if exact is not None:
        mask = exact["face_index"] >= 0
        difference = np.abs(output.astype(np.float64) - exact["image"].astype(np.float64)) / 255.0
        trial.masked_l1 = float(difference[mask].mean())
        if face is not None:
            trial.landmark_nme = 100.0 * float(nme(face.landmarks68, exact["landmarks68"]))
            if exact.get("face") is not None:
                trial.distance_to_exact = float(face_distance(face, exact["face"]))


def synthetic_inputs(count: int, input_yaw: float, size: int = 256):
    """``count`` held-out identities: (name, world, identity, input yaw, the input render)."""
    from facehub.trainers.data.synthetic_world import SyntheticFaceWorld, SyntheticWorldConfig

    world = SyntheticFaceWorld(SyntheticWorldConfig(num_identities=count, views_per_identity=1,
                                                    seed=EVALUATION_WORLD_SEED, image_size=size))
    rng = np.random.default_rng(EVALUATION_WORLD_SEED)
    for identity in range(count):
        yaw = float(rng.uniform(-input_yaw, input_yaw))
        yield f"synthetic-{identity}", world, identity, yaw, world.render_face(identity, pose=(yaw, 0.0, 0.0))


def load_methods(names: list[str], model: str | None) -> dict:
    from facehub import methods

    pipes = {}
    for name in names:
        if name == INPUT_BASELINE:
            pipes[name] = None
            continue
        pipes[name] = methods.load(name, "rotation", model=model if name == "pose_cvaegan" else None)
    return pipes


def turn(pipe, image: np.ndarray, yaw: float, trial: Trial) -> np.ndarray | None:
    """The method's result (``None`` when it refuses, with the reason in ``trial.refused``)."""
    from facehub.modeling.pipeline_utils import FaceSelectionError, UnreachablePoseError

    start = time.perf_counter()
    try:
        if pipe is None:
            return image
        return np.asarray(pipe(image, yaw=yaw, pitch=0.0, roll=0.0, measure=False, output_type="np").images[0])
    except (UnreachablePoseError, FaceSelectionError) as error:
        trial.refused = str(error).splitlines()[0]
        return None
    finally:
        trial.seconds = time.perf_counter() - start


def evaluate(pipes: dict, grader: Grader, identities: int, yaws, input_yaw: float, photos: list | None = None,
             sheet_rows: int = 4) -> tuple[list[Trial], dict]:
    """Every method on every input and requested yaw; returns the trials and contact-sheet rows."""
    trials, sheet = [], {}
    inputs = list(synthetic_inputs(identities, input_yaw))
    total = len(inputs) * len(yaws) * len(pipes) + len(photos or []) * len(yaws) * len(pipes)
    with tqdm(total=total, desc="eval pose_cvaegan", unit="result") as progress:
        for index, (name, world, identity, _, rendered) in enumerate(inputs):
            image = rendered["image"]
            input_face = grader.face_near(image, (0, 0, image.shape[1], image.shape[0]))
            if input_face is None:
                progress.update(len(yaws) * len(pipes))
                continue
            for yaw in yaws:
                exact = world.render_face(identity, pose=(yaw, 0.0, 0.0))
                exact["face"] = grader.face_near(exact["image"], input_face.bbox)
                for method, pipe in pipes.items():
                    trial = Trial(method, "synthetic", name, float(yaw))
                    output = turn(pipe, image, yaw, trial)
                    if output is not None:
                        measure(grader, trial, output, input_face, exact)
                    trials.append(trial)
                    if index < sheet_rows:
                        sheet.setdefault((name, method), {})[yaw] = output
                    progress.update()
                if index < sheet_rows:
                    sheet.setdefault((name, "exact"), {})[yaw] = exact["image"]
        for path, image, input_face in photos or []:
            for yaw in yaws:
                for method, pipe in pipes.items():
                    trial = Trial(method, "photo", str(path), float(yaw))
                    output = turn(pipe, image, yaw, trial)
                    if output is not None:
                        measure(grader, trial, output, input_face)
                    trials.append(trial)
                    progress.update()
    return trials, sheet


def _cell(value, digits=2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: list[MethodRow], kind: str) -> str:
    header = (f"{'method':<14} {'trials':>6} {'pose err':>8} {'id->input':>9} {'id->exact':>9} {'L1 face':>8} "
              f"{'NME %':>6} {'lost':>5} {'refused':>7} {'s/call':>6}")
    lines = [f"{kind}:", header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row.method:<14} {row.trials:>6} {_cell(row.pose_error, 1):>8} {_cell(row.distance_to_input):>9} "
                     f"{_cell(row.distance_to_exact):>9} {_cell(row.masked_l1, 3):>8} {_cell(row.landmark_nme, 1):>6} "
                     f"{row.lost:>5} {row.refused:>7} {row.seconds:>6.2f}")
    return "\n".join(lines)


def plot(rows: list[MethodRow], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for row in rows:
        if row.kind != "synthetic":
            continue
        yaws = [float(y) for y in row.by_yaw]
        for axis, key in zip(axes, ("pose_error", "distance_to_input"), strict=True):
            values = [row.by_yaw[y][key] for y in row.by_yaw]
            axis.plot(yaws, [np.nan if v is None else v for v in values], marker="o", label=row.method)
    axes[0].set(xlabel="requested yaw (degrees)", ylabel="pose error (degrees, eval-only regressor)",
                title="Pose error")
    axes[1].set(xlabel="requested yaw (degrees)", ylabel="dlib distance to the input face", title="Identity")
    axes[1].axhline(0.6, color="grey", linestyle=":", label="same-person threshold")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("pose_cvaegan and baselines on held-out synthetic identities")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def contact_sheet(sheet: dict, yaws, path: Path, thumb: int = 128) -> Path | None:
    from PIL import Image, ImageDraw

    if not sheet:
        return None
    keys = list(sheet)
    canvas = Image.new("RGB", (170 + thumb * len(yaws), thumb * len(keys)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, key in enumerate(keys):
        draw.text((4, r * thumb + thumb // 2), f"{key[0]}\n{key[1]}", fill="black")
        for c, yaw in enumerate(yaws):
            image = sheet[key].get(yaw)
            if image is not None:
                canvas.paste(Image.fromarray(np.asarray(image)).resize((thumb, thumb)), (170 + c * thumb, r * thumb))
            if r == 0:
                draw.text((170 + c * thumb + 4, 2), f"yaw {yaw:+.0f}", fill="white")
    canvas.save(path)
    return path


def eval_results(rows: list[MethodRow], identities: int, photos: int = 0) -> list[dict]:
    """The model card's metrics: one entry per method and kind of input, pose_cvaegan first and the baselines
    after it (named in ``dataset_name``), so the card compares them in one table."""
    datasets = {"synthetic": f"synthetic world (seed {EVALUATION_WORLD_SEED}, {identities} held-out identities, "
                             "exact renders at the requested yaw)",
                "photo": f"{photos} real photos (no exact render)"}
    entries = []
    for row in sorted(rows, key=lambda r: (r.method != "pose_cvaegan", r.kind)):
        metrics = {"yaw_error_deg": row.pose_error, "identity_distance_to_input": row.distance_to_input,
                   "identity_distance_to_exact": row.distance_to_exact, "masked_l1": row.masked_l1,
                   "landmark_nme_percent": row.landmark_nme}
        metrics = {k: round(v, 4) for k, v in metrics.items() if v is not None}
        if not metrics:
            continue
        who = "this model" if row.method == "pose_cvaegan" else f"baseline: {row.method}"
        entries.append({"task": "face-rotation", "dataset": f"facehub-{row.kind}",
                        "dataset_name": f"{datasets[row.kind]}; {who}", "metrics": metrics})
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facehub eval pose_cvaegan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="pose_cvaegan checkpoint (default: the embedded default)")
    parser.add_argument("--identities", type=int, default=16, help="held-out synthetic identities")
    parser.add_argument("--yaws", default=",".join(f"{y:g}" for y in DEFAULT_YAWS),
                        help="requested yaws, degrees, comma-separated; write --yaws=-45,45 when the first is negative")
    parser.add_argument("--input-yaw", type=float, default=30.0, help="inputs are turned at most this much")
    parser.add_argument("--images", default=None, help="a folder of real photos to measure too")
    parser.add_argument("--limit", type=int, default=None, help="at most this many photos")
    parser.add_argument("--method", action="append", default=None,
                        help="rotation methods to compare (default: pose_cvaegan, input, depthnet, face_fitting)")
    parser.add_argument("--out", default="runs/eval-pose-cvaegan", help="folder for results.json, the plot, the sheet")
    args = parser.parse_args(argv)
    yaws = [float(y) for y in args.yaws.split(",") if y.strip()]
    names = args.method or ["pose_cvaegan", INPUT_BASELINE, *DEFAULT_BASELINES]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    grader = Grader()
    pipes = load_methods(names, args.model)
    photos = None
    if args.images:
        from facehub.trainers.evaluation.rotation import list_photos, photos_with_faces

        photos, skipped = photos_with_faces(list_photos(args.images, args.limit), grader.analyzer)
        print(f"{len(photos)} photos with a face ({skipped} without)")
    trials, sheet = evaluate(pipes, grader, args.identities, yaws, args.input_yaw, photos)
    rows = [summarise(trials, name, kind) for kind in ("synthetic", "photo") for name in names
            if any(t.method == name and t.kind == kind for t in trials)]
    print(table([r for r in rows if r.kind == "synthetic"], f"held-out synthetic identities ({args.identities}, "
                                                              f"input yaw within +-{args.input_yaw:g})"))
    if photos:
        print(table([r for r in rows if r.kind == "photo"], f"real photos ({len(photos)})"))
    print("pose err: |yaw - requested| by the evaluation-only regressor; id: dlib distance (same person < 0.6); "
          "L1 face: mean |RGB| difference (0-1) inside the exact render's face; NME: landmarks vs the exact render.")
    (out / "results.json").write_text(json.dumps({"rows": [asdict(r) for r in rows],
                                                  "trials": [asdict(t) for t in trials]}, indent=1))
    results = eval_results(rows, args.identities, len(photos or []))
    (out / "eval_results.json").write_text(json.dumps(results, indent=2))
    print(f"plot: {plot(rows, out / 'pose_cvaegan_by_yaw.png')}")
    sheet_path = contact_sheet(sheet, yaws, out / "sheet_synthetic.png")
    if sheet_path:
        print(f"contact sheet: {sheet_path}")
    return 0
