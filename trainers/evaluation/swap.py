"""``facehub eval swap``: every registered swap method and the 2D baseline on pairs of photos, measured the same way.

Pairs are ordered pairs of different photos of a folder (source face onto target photo), drawn with a fixed seed;
each photo's largest face is used. For each method of ``methods.available("swap")`` (or those given with
``--method``) and the 2D baseline (:func:`~facehub.modeling.faces.compositing.similarity_swap`: a similarity warp
of the source onto the target's landmarks, colour transfer and Poisson blending), in the same run:

- **distance to source** and **distance to target**: dlib ResNet distance (the analyzer's 128-D descriptor; same
  person below 0.6) between the face found on the result (nearest the target face) and each input face;
- **closer to source**: share of pairs whose result is nearer the source than the target;
- **time**: seconds per swap.

Prints the table (and the rotation issue's targets: distance to source below the baseline's, closer to the source in
at least 90% of pairs) and writes ``results.json`` and ``sheet.png`` (each pair: source, target, then every method's
result labelled with its two distances) to ``--out``.

Usage::

    facehub eval swap --images tests/data/photos [--method NAME[=ID] ...] [--pairs 20] [--seed 0] [--sheet 6]
        [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from facehub.trainers.evaluation.rotation import (
    contact_sheet,
    identity_distance,
    list_photos,
    parse_methods,
    photos_with_faces,
)

BASELINE = "2D similarity warp + Poisson (baseline)"


@dataclass
class SwapTrial:
    """One method on one (source, target) pair."""

    source: str
    target: str
    status: str  # "ok", "lost" (no face on the result), "failed"
    distance_to_source: float | None = None
    distance_to_target: float | None = None
    seconds: float = 0.0
    message: str = ""


def summarise(trials: list[SwapTrial]) -> dict:
    """Means over the pairs a method swapped (lost and failed pairs are counted, not averaged)."""
    ok = [t for t in trials if t.status == "ok"]
    to_source = [t.distance_to_source for t in ok]
    to_target = [t.distance_to_target for t in ok]
    return {
        "pairs": len(trials),
        "distance_to_source": float(np.mean(to_source)) if ok else None,
        "distance_to_target": float(np.mean(to_target)) if ok else None,
        "closer_to_source": (100.0 * sum(s < t for s, t in zip(to_source, to_target, strict=True)) / len(trials))
        if trials else None,
        "lost": sum(t.status == "lost" for t in trials),
        "failed": sum(t.status == "failed" for t in trials),
        "seconds": float(np.mean([t.seconds for t in trials if t.status != "failed"] or [np.nan])),
    }


def swap_table(rows: dict[str, dict]) -> str:
    """Markdown table: one row per method and the baseline."""

    def fmt(value, digits=3):
        return "-" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"

    lines = ["| method | pairs | distance to source | distance to target | closer to source (%) | lost | failed | "
             "s / swap |", "|---|---|---|---|---|---|---|---|",
             "| target | | below the baseline's | | >= 90 | | | |"]
    for label, r in rows.items():
        lines.append(f"| {label} | {r['pairs']} | {fmt(r['distance_to_source'])} | {fmt(r['distance_to_target'])} | "
                     f"{fmt(r['closer_to_source'], 0)} | {r['lost']} | {r['failed']} | {fmt(r['seconds'], 2)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facehub eval swap", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", required=True, help="Folder of photos (searched recursively).")
    parser.add_argument("--method", action="append", metavar="NAME[=ID]",
                        help="Swap method (and checkpoint) to measure; repeat for several (default: every one).")
    parser.add_argument("--pairs", type=int, default=20, help="Ordered (source, target) pairs to swap (default 20).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the pair draw (default 0).")
    parser.add_argument("--limit", type=int, help="Use the first N photos only.")
    parser.add_argument("--repair", metavar="ID",
                        help="A repair checkpoint (`facehub train cyclegan`): adds a row for each swap method that "
                        "takes a repair network (DepthNets), with that network, beside the row without it.")
    parser.add_argument("--sheet", type=int, default=6, help="Pairs on the contact sheet (default 6).")
    parser.add_argument("--out", default="runs/eval-swap", help="Output folder (default runs/eval-swap).")
    args = parser.parse_args(argv)

    from facehub import methods
    from facehub.modeling.faces import FaceAnalyzer
    from facehub.modeling.faces.compositing import similarity_swap
    from facehub.modeling.pipeline_utils import FaceSelectionError, face_nearest

    chosen = parse_methods(args.method, "swap")
    analyzer = FaceAnalyzer(compute_embedding=True)
    photos, _ = photos_with_faces(list_photos(args.images, args.limit), analyzer)
    if len(photos) < 2:
        raise ValueError(f"Need at least two photos with a face under {args.images!r}; found {len(photos)}.")
    every = [(i, j) for i in range(len(photos)) for j in range(len(photos)) if i != j]
    order = np.random.default_rng(args.seed).permutation(len(every))
    pairs = [every[k] for k in order[: args.pairs]]

    def measure(result, i, j, trial):
        found = face_nearest(analyzer(result), photos[j][2].bbox)
        if found is None:
            trial.status = "lost"
            return "no face"
        trial.distance_to_source = identity_distance(found, photos[i][2])
        trial.distance_to_target = identity_distance(found, photos[j][2])
        return f"to src {trial.distance_to_source:.2f}, tgt {trial.distance_to_target:.2f}"

    runners = [(BASELINE, None)] + [(name if model is None else f"{name} ({model})",
                                     methods.load(name, "swap", model=model)) for name, model in chosen]
    if args.repair:
        network = methods.load("cyclegan", "repair", model=args.repair).repair
        runners += [(f"{label} + repair", type(pipe)(**{**pipe.components, "repair": network}))
                    for label, pipe in runners[1:] if "repair" in getattr(pipe, "components", {})]
    trials: dict[str, list[SwapTrial]] = {label: [] for label, _ in runners}
    sheet = [[(photos[i][1], "source"), (photos[j][1], "target")] for i, j in pairs[: args.sheet]]
    for label, pipe in runners:
        for index, (i, j) in enumerate(tqdm(pairs, desc=f"swap eval: {label}")):
            trial = SwapTrial(photos[i][0].name, photos[j][0].name, "ok")
            start = time.perf_counter()
            try:
                if pipe is None:
                    result = similarity_swap(photos[i][1], photos[i][2].landmarks68, photos[j][1],
                                             photos[j][2].landmarks68)
                else:
                    result = np.asarray(pipe(photos[i][1], photos[j][1], output_type="np").images[0])
            except (FaceSelectionError, ValueError, RuntimeError) as err:
                trial.status, trial.message = "failed", f"{type(err).__name__}: {err}"
                trials[label].append(trial)
                if index < args.sheet:
                    sheet[index].append((None, f"{label}\nfailed"))
                continue
            trial.seconds = time.perf_counter() - start
            text = measure(result, i, j, trial)
            trials[label].append(trial)
            if index < args.sheet:
                sheet[index].append((result, f"{label}\n{text}"))

    rows = {label: summarise(items) for label, items in trials.items()}
    print(f"{len(pairs)} pairs of {len(photos)} photos with a face under {args.images}\n")
    print(swap_table(rows))
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    sheet_path = contact_sheet(sheet, out_dir / "sheet.png") if sheet else None
    (out_dir / "results.json").write_text(json.dumps({
        "images": str(args.images), "photos": len(photos), "pairs": [[photos[i][0].name, photos[j][0].name]
                                                                     for i, j in pairs],
        "methods": {label: {"summary": rows[label], "trials": [asdict(t) for t in items]}
                    for label, items in trials.items()},
        "sheet": str(sheet_path) if sheet_path else None,
    }, indent=2))
    print(f"results: {out_dir / 'results.json'}")
    if sheet_path:
        print(f"contact sheet: {sheet_path}")
    return 0
