"""``facehub eval rotation``: every registered rotation method on a folder of photos, measured the same way.

For each photo's largest face, each method of ``methods.available("rotation")`` (or those given with ``--method``)
and each requested pose (yaw in ``--yaws`` with the face's own pitch and roll, as ``pipe(photo, yaw=...)`` asks,
and the frontal pose ``yaw = pitch = roll = 0``, "frontalize"):

- **achieved-pose error**: ``|yaw_measured - yaw_requested|`` (and pitch, against the requested pose's), the pose
  measured on the result by the :class:`~facehub.modeling.faces.FaceAnalyzer` (the contract's ``achieved_pose``;
  past 45 degrees its yaw is read through a calibration, :mod:`facehub.modeling.faces.yaw_calibration`; how far it
  follows real heads, bin by bin: ``benchmarks/accuracy_face_analyzer.py --aflw-labels``);
  a result on which no face is found, on the whole image or around the face's place
  (:func:`~facehub.modeling.pipeline_utils.measure_pose`), counts as *lost*, a refusal
  (:class:`~facehub.modeling.pipeline_utils.UnreachablePoseError`) as *refused*;
- **a second reading of the yaw** (``--second-reader``, on by default): the same error with the yaw read by the
  face-fitting bundle's coefficient regressor (``facehub/face-fitting``, its flip test on, and a face it reads as
  turned beyond 60 degrees read again around its own landmarks) from the face the analyzer found on the result. It is a CNN trained on real AFLW crops across all yaws, so it keeps turning with heads past
  the 55 degrees or so where MediaPipe's mesh stops, with errors of its own (its pose error on real faces is the
  "regressor alone" row of ``facehub eval face_fitting``). Two readers that agree make a figure trustworthy; where
  they part, near +-60, the table shows both. The targets are judged on the analyzer's reading, the contract's.
  The regressor is not an outside judge of ``face_fitting``, which starts from its reading of the input photo;
- **identity distance**: dlib ResNet distance (the analyzer's 128-D descriptor; same person below 0.6) between the
  face on the result and the input face;
- **fold-over fraction**: share of the re-drawn pixels that show a surface from behind (the output's
  ``folded_fraction``: triangles whose orientation flipped), where the method reports it;
- **time**: seconds of the whole call, measurement included.

Prints one table per method and a summary against the rotation issue's targets (yaw within 5 degrees up to 45 and
within 10 at 60, identity distance <= 0.45, no fold-overs), and writes ``results.json`` and one contact sheet per
method (``sheet_<method>.png``: the input and every requested pose of the first ``--sheet`` photos, each labelled
with its measured yaw) to ``--out``.

Usage::

    facehub eval rotation --images tests/data/photos [--method NAME[=ID] ...] [--yaws=-60,-45,-30,-15,15,30,45,60]
        [--limit N] [--sheet 6] [--out DIR] [--second-reader ID | --no-second-reader]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

DEFAULT_YAWS = (-60.0, -45.0, -30.0, -15.0, 15.0, 30.0, 45.0, 60.0)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
FRONTALIZE = "frontalize"
DEFAULT_SECOND_READER = "facehub/face-fitting"


def list_photos(folder: str | Path, limit: int | None = None) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted; or the one photo ``folder`` names), at most ``limit``."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise FileNotFoundError(f"No folder {str(folder)!r}: give a folder of photos (or one photo) with --images.")
    photos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not photos:
        raise FileNotFoundError(f"No photos ({', '.join(IMAGE_SUFFIXES)}) under {str(folder)!r}.")
    return photos[:limit] if limit else photos


def identity_distance(a, b) -> float | None:
    """dlib descriptor distance between two faces (:func:`~facehub.modeling.faces.identity.face_distance`);
    ``None`` when either is missing or has no embedding."""
    from facehub.modeling.faces.identity import face_distance

    if getattr(a, "embedding", None) is None or getattr(b, "embedding", None) is None:
        return None
    return float(face_distance(a, b))


def photos_with_faces(paths: list[Path], analyzer) -> tuple[list[tuple[Path, np.ndarray, object]], int]:
    """``(path, image, largest face)`` of every photo in which ``analyzer`` finds a face, and how many had none."""
    from facehub.modeling.faces.image_io import load_image

    found, skipped = [], 0
    for path in paths:
        image = load_image(path)
        faces = analyzer(image)
        if faces:
            found.append((path, image, faces[0]))
        else:
            skipped += 1
    return found, skipped


@dataclass
class RotationTrial:
    """One method on one photo at one requested pose."""

    photo: str
    request: str
    requested_yaw: float
    status: str  # "ok", "lost" (no face on the result), "refused", "failed"
    yaw_error: float | None = None
    pitch_error: float | None = None
    identity_distance: float | None = None
    folded_fraction: float | None = None
    seconds: float = 0.0
    message: str = ""
    second_yaw_error: float | None = None  # |yaw read by the second reader - requested yaw|


@dataclass
class MethodSummary:
    """A method's figures over every trial."""

    method: str
    trials: list[RotationTrial] = field(default_factory=list)

    def _ok(self, requests=None) -> list[RotationTrial]:
        return [t for t in self.trials if t.status == "ok" and (requests is None or t.request in requests)]

    def row(self, request: str) -> dict:
        """The figures of one requested pose."""
        chosen = [t for t in self.trials if t.request == request]
        ok = [t for t in chosen if t.status == "ok"]
        errors = np.array([t.yaw_error for t in ok], dtype=float)
        ids = np.array([t.identity_distance for t in ok if t.identity_distance is not None], dtype=float)
        folds = [t.folded_fraction for t in ok if t.folded_fraction is not None]
        second = np.array([t.second_yaw_error for t in ok if t.second_yaw_error is not None], dtype=float)
        return {
            "request": request,
            "trials": len(chosen),
            "yaw_error": float(errors.mean()) if len(errors) else None,
            "second_yaw_error": float(second.mean()) if len(second) else None,
            "second_within_10": float((second <= 10.0).mean() * 100) if len(second) else None,
            "pitch_error": float(np.mean([t.pitch_error for t in ok])) if ok else None,
            "within_5": float((errors <= 5.0).mean() * 100) if len(errors) else None,
            "within_10": float((errors <= 10.0).mean() * 100) if len(errors) else None,
            "identity_distance": float(ids.mean()) if len(ids) else None,
            "folded_percent": float(np.mean(folds) * 100) if folds else None,
            "folded_results": int(sum(f > 0.001 for f in folds)),
            "refused": sum(t.status == "refused" for t in chosen),
            "lost": sum(t.status == "lost" for t in chosen),
            "failed": sum(t.status == "failed" for t in chosen),
            "seconds": float(np.mean([t.seconds for t in chosen if t.status in ("ok", "lost")] or [np.nan])),
        }

    def summary(self) -> dict:
        """The figures the targets name: yaw error up to 45 and at 60 degrees, identity, folds, time."""

        def requests(low, high):
            return {t.request for t in self.trials if low <= abs(t.requested_yaw) <= high and t.request != FRONTALIZE}

        up_to_45, at_60 = requests(0.0, 45.0), requests(46.0, 90.0)
        near = self._ok(up_to_45)
        far = self._ok(at_60)
        every = self._ok()
        ids = [t.identity_distance for t in every if t.identity_distance is not None]
        folds = [t.folded_fraction for t in every if t.folded_fraction is not None]
        counted = [t for t in self.trials if t.request in up_to_45]
        far_second = [t.second_yaw_error for t in far if t.second_yaw_error is not None]
        asked_at_60 = max(1, sum(t.request in at_60 for t in self.trials))  # refused and lost trials count too
        return {
            "method": self.method,
            "yaw_error_to_45": float(np.mean([t.yaw_error for t in near])) if near else None,
            "within_5_to_45": (100.0 * sum(t.yaw_error <= 5.0 for t in near) / len(counted)) if counted else None,
            "within_10_at_60": (100.0 * sum(t.yaw_error <= 10.0 for t in far) / asked_at_60) if at_60 else None,
            "second_within_10_at_60": (100.0 * sum(e <= 10.0 for e in far_second) / asked_at_60)
            if at_60 and far_second else None,
            "identity_distance": float(np.mean(ids)) if ids else None,
            "folded_results": int(sum(f > 0.001 for f in folds)),
            "refused": sum(t.status == "refused" for t in self.trials),
            "lost": sum(t.status == "lost" for t in self.trials),
            "seconds": float(np.mean([t.seconds for t in self.trials if t.status in ("ok", "lost")] or [np.nan])),
        }


class SecondYawReader:
    """The yaw of a face found on a result, read by a face-fitting bundle's coefficient regressor (module docstring,
    *a second reading of the yaw*)."""

    def __init__(self, model: str = DEFAULT_SECOND_READER):
        from facehub.modeling.face_fitting import FaceFittingPipeline

        self.pipeline = FaceFittingPipeline.from_pretrained(model)
        if getattr(self.pipeline, "regressor", None) is None:
            raise ValueError(f"The face-fitting bundle {model!r} has no coefficient regressor to read the yaw with; "
                             "give one that has (--second-reader facehub/face-fitting) or --no-second-reader.")

    def __call__(self, image: np.ndarray, face) -> float:
        """Yaw in degrees (house convention) of ``face``, a :class:`~facehub.modeling.faces.Face` of ``image``."""
        coefficients = self.pipeline.regress(image, [face], True)[0]
        return float(self.pipeline.fitter.face_model.head_pose(coefficients.rotation)[0])


def _fmt(value, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"


def method_table(summary: MethodSummary, requests: list[str]) -> str:
    """Markdown table of one method, one row per requested pose."""
    lines = [f"### {summary.method}", "",
             "| request | trials | yaw error (deg) | pitch error | within 5 % | within 10 % | yaw error, 2nd reader | "
             "within 10 %, 2nd reader | identity dist. | fold-over % | refused | lost | s / call |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for request in requests:
        r = summary.row(request)
        lines.append(f"| {request} | {r['trials']} | {_fmt(r['yaw_error'])} | {_fmt(r['pitch_error'])} | "
                     f"{_fmt(r['within_5'], 0)} | {_fmt(r['within_10'], 0)} | {_fmt(r['second_yaw_error'])} | "
                     f"{_fmt(r['second_within_10'], 0)} | {_fmt(r['identity_distance'], 3)} | "
                     f"{_fmt(r['folded_percent'], 2)} | {r['refused']} | {r['lost']} | {_fmt(r['seconds'], 2)} |")
    return "\n".join(lines)


def summary_table(summaries: list[MethodSummary]) -> str:
    """Markdown table of every method against the targets."""
    lines = ["| method | yaw error <= 45 (deg) | within 5 deg <= 45 (%) | within 10 deg at 60 (%) | "
             "within 10 deg at 60, 2nd reader (%) | identity dist. | results with fold-overs | refused | lost | "
             "s / call |",
             "|---|---|---|---|---|---|---|---|---|---|",
             "| target | | 100 | 100 | | <= 0.45 | 0 | | | <= 1 (512 px) |"]
    for s in summaries:
        r = s.summary()
        lines.append(f"| {r['method']} | {_fmt(r['yaw_error_to_45'])} | {_fmt(r['within_5_to_45'], 0)} | "
                     f"{_fmt(r['within_10_at_60'], 0)} | {_fmt(r['second_within_10_at_60'], 0)} | "
                     f"{_fmt(r['identity_distance'], 3)} | {r['folded_results']} | "
                     f"{r['refused']} | {r['lost']} | {_fmt(r['seconds'], 2)} |")
    return "\n".join(lines)


#: Caption text of the contact sheets: OpenCV's Hershey simplex at this scale, about this many pixels a character.
CAPTION_SCALE, CAPTION_CHAR_WIDTH, CAPTION_LINE_HEIGHT = 0.42, 7, 15


def contact_sheet(rows: list[list[tuple[np.ndarray, str]]], path: Path, tile: int = 160) -> Path:
    """Save a grid of labelled thumbnails (one list of ``(image, label)`` per row) as a PNG. A label may have several
    lines (``\\n``); each line is cut to the tile's width, and every tile of the sheet gets a caption bar as tall as the
    longest label's."""
    import cv2
    from PIL import Image

    lines = max((len(label.split("\n")) for row in rows for _, label in row), default=1)
    bar = 4 + CAPTION_LINE_HEIGHT * lines
    fits = max(1, (tile - 6) // CAPTION_CHAR_WIDTH)

    def thumb(image: np.ndarray | None, label: str) -> np.ndarray:
        canvas = np.full((tile, tile, 3), 235, np.uint8)
        if image is not None:
            h, w = image.shape[:2]
            s = tile / max(h, w)
            small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
            y, x = (tile - small.shape[0]) // 2, (tile - small.shape[1]) // 2
            canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
        cv2.rectangle(canvas, (0, tile - bar), (tile, tile), (0, 0, 0), -1)
        for i, text in enumerate(label.split("\n")):
            baseline = tile - bar + CAPTION_LINE_HEIGHT * (i + 1) - 1
            cv2.putText(canvas, text[:fits], (3, baseline), cv2.FONT_HERSHEY_SIMPLEX, CAPTION_SCALE, (255, 255, 255),
                        1, cv2.LINE_AA)
        return canvas

    path = Path(path)
    width = max(len(r) for r in rows)
    grid = [np.hstack([thumb(*cell) for cell in r] + [thumb(None, "")] * (width - len(r))) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.vstack(grid)).save(path)
    return path


def parse_methods(given: list[str] | None, capability: str) -> list[tuple[str, str | None]]:
    """``NAME`` or ``NAME=ID`` entries -> (name, model id or None); default every registered method."""
    from facehub import methods

    if not given:
        return [(name, None) for name in methods.available(capability)]
    out = []
    for entry in given:
        name, _, model = entry.partition("=")
        if capability not in methods.get(name).capabilities:
            raise ValueError(f"Method {name!r} has no {capability!r} capability; methods with one: "
                             f"{', '.join(methods.available(capability))}.")
        out.append((name, model or None))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facehub eval rotation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", required=True, help="Folder of photos (searched recursively), or one photo.")
    parser.add_argument("--method", action="append", metavar="NAME[=ID]",
                        help="Rotation method (and checkpoint) to measure; repeat for several (default: every one).")
    parser.add_argument("--yaws", default=",".join(f"{y:g}" for y in DEFAULT_YAWS),
                        help="Requested yaws in degrees, comma-separated (the face's own pitch and roll); "
                             "write --yaws=-60,60 when the first is negative.")
    parser.add_argument("--no-frontalize", action="store_true", help="Leave out the frontal request (0, 0, 0).")
    parser.add_argument("--limit", type=int, help="Use the first N photos only.")
    parser.add_argument("--sheet", type=int, default=6, help="Photos on each method's contact sheet (default 6).")
    parser.add_argument("--out", default="runs/eval-rotation", help="Output folder (default runs/eval-rotation).")
    parser.add_argument("--second-reader", default=DEFAULT_SECOND_READER, metavar="ID",
                        help="Face-fitting bundle whose coefficient regressor reads each result's yaw a second time "
                             f"(default {DEFAULT_SECOND_READER}).")
    parser.add_argument("--no-second-reader", action="store_true", help="Read each result's yaw once (the analyzer).")
    args = parser.parse_args(argv)

    from facehub import methods
    from facehub.modeling.faces import FaceAnalyzer
    from facehub.modeling.pipeline_utils import FaceSelectionError, UnreachablePoseError, face_nearest

    yaws = [float(v) for v in args.yaws.split(",") if v.strip()]
    photos = list_photos(args.images, args.limit)
    chosen = parse_methods(args.method, "rotation")
    requests: list[tuple[str, tuple[float, float | None, float | None]]] = [
        (f"yaw {y:+g}", (y, None, None)) for y in yaws]
    if not args.no_frontalize:
        requests.append((FRONTALIZE, (0.0, 0.0, 0.0)))
    analyzer = FaceAnalyzer(compute_embedding=True)
    second_reader = None if args.no_second_reader else SecondYawReader(args.second_reader)
    inputs, skipped = photos_with_faces(photos, analyzer)
    if not inputs:
        raise ValueError(f"The face analyzer found no face in the {len(photos)} photos under {args.images!r}.")
    out_dir = Path(args.out)
    summaries, sheets = [], {}
    for name, model in chosen:
        label = f"{name}" if model is None else f"{name} ({model})"
        pipe = methods.load(name, "rotation", model=model)
        summary = MethodSummary(label)
        sheet_rows = []
        for index, (path, image, face) in enumerate(tqdm(inputs, desc=f"rotation eval: {name}")):
            row = [(image, f"input {face.pose[0]:+.0f}")]
            for request, (yaw, pitch, roll) in requests:
                trial = RotationTrial(str(path.name), request, yaw, "ok")
                start = time.perf_counter()
                try:
                    out = pipe(image, yaw=yaw, pitch=pitch, roll=roll, output_type="np")
                except UnreachablePoseError as err:
                    trial.status, trial.message = "refused", str(err)
                    row.append((None, "refused"))
                    summary.trials.append(trial)
                    continue
                except (FaceSelectionError, ValueError, RuntimeError) as err:
                    trial.status, trial.message = "failed", f"{type(err).__name__}: {err}"
                    row.append((None, "failed"))
                    summary.trials.append(trial)
                    continue
                trial.seconds = time.perf_counter() - start
                result = np.asarray(out.images[0])
                trial.folded_fraction = getattr(out, "folded_fraction", None)
                achieved = out.achieved_pose
                if achieved is None:
                    trial.status = "lost"
                    row.append((result, f"{request}: no face"))
                else:
                    trial.yaw_error = abs(achieved.yaw - yaw)
                    trial.pitch_error = abs(achieved.pitch - out.requested_pose.pitch)
                    found = face_nearest(analyzer(result), face.bbox)
                    trial.identity_distance = identity_distance(found, face)
                    if second_reader is not None and found is not None:
                        trial.second_yaw_error = abs(second_reader(result, found) - yaw)
                    row.append((result, f"{yaw:+.0f} -> {achieved.yaw:+.0f}"))
                summary.trials.append(trial)
            if index < args.sheet:
                sheet_rows.append(row)
        summaries.append(summary)
        if sheet_rows:
            sheets[label] = str(contact_sheet(sheet_rows, out_dir / f"sheet_{name}.png"))
        print(method_table(summary, [r for r, _ in requests]) + "\n")

    print(f"{len(inputs)} photos with a face under {args.images} ({skipped} without one were skipped); requests: "
          f"{', '.join(r for r, _ in requests)}\n")
    print(summary_table(summaries))
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {
        "images": str(args.images), "photos": len(inputs), "skipped": skipped,
        "requests": [r for r, _ in requests],
        "methods": [{"summary": s.summary(), "rows": [s.row(r) for r, _ in requests],
                     "trials": [asdict(t) for t in s.trials]} for s in summaries],
        "sheets": sheets,
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results: {out_dir / 'results.json'}")
    for label, sheet in sheets.items():
        print(f"contact sheet ({label}): {sheet}")
    return 0
