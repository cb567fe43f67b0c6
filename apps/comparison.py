"""One photo (two for swap) through every registered rotation, reconstruction and swap method, side by side, each
with the same measured figures. Used by the demo's Compare tab and by ``facehub compare``; no Gradio here.

Per capability (a method appears by declaring it in its ``MethodSpec``; nothing else is edited):

- **rotation**, at the requested yaw (the face's own pitch and roll): the result, the pose the face analyzer
  measures on it (``achieved_pose``), the dlib identity distance of its face to the input face, the time;
- **reconstruction**: the photo with the method's 68 landmarks drawn, its pose, the landmark agreement with the
  face analyzer (NME against the analyzer's 68 points, % of the face size), the time;
- **swap** (with a second photo, the target): the result, identity distance to the source and to the target, the
  time; the 2D baseline (:func:`~facehub.modeling.faces.compositing.similarity_swap`) comes along as a row.

A method that fails on the photo (a refusal, or an error) gets a row with its message instead of figures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

CAPABILITIES = ("rotation", "reconstruction", "swap")
BASELINE = "2D similarity warp + Poisson (baseline)"


@dataclass
class ComparisonRow:
    """One method on the photo(s): its result image, its figures (name -> value) or the error it raised."""

    capability: str
    method: str
    title: str
    image: np.ndarray | None = None
    figures: dict[str, float | str | None] = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""


@dataclass
class Comparison:
    """Every row of one comparison, and the input faces' analysis."""

    rows: list[ComparisonRow]
    num_faces: int

    def table(self) -> str:
        """Markdown: one table per capability, the same figures for every method."""
        out = []
        for capability in CAPABILITIES:
            rows = [r for r in self.rows if r.capability == capability]
            if not rows:
                continue
            names = list(dict.fromkeys(key for r in rows for key in r.figures))
            out.append(f"### {capability}\n")
            out.append("| method | " + " | ".join(names) + " | s |")
            out.append("|---|" + "---|" * (len(names) + 1))
            for r in rows:
                if r.error:
                    out.append(f"| {r.title} | " + " | ".join("-" for _ in names) + f" | failed: {r.error} |")
                    continue
                cells = [_cell(r.figures.get(name)) for name in names]
                out.append(f"| {r.title} | " + " | ".join(cells) + f" | {r.seconds:.2f} |")
            out.append("")
        return "\n".join(out)

    def gallery(self) -> list[tuple[np.ndarray, str]]:
        """(image, caption) of every row that produced an image; the caption is the capability, the method's title
        and the figure measured on the result, as on the contact sheet (:func:`sheet_caption`)."""
        return [(r.image, f"{r.capability}: " + sheet_caption(r).replace("\n", ", "))
                for r in self.rows if r.image is not None]


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


_ANALYZER = None


def analyzer():
    """The face analyzer with the identity descriptor, shared by every comparison of the process."""
    global _ANALYZER
    if _ANALYZER is None:
        from facehub.modeling.faces import FaceAnalyzer

        _ANALYZER = FaceAnalyzer(compute_embedding=True)
    return _ANALYZER


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray, colour=(0, 255, 0)) -> np.ndarray:
    """A copy of ``image`` with ``landmarks`` (N, >= 2) drawn as dots sized to the face."""
    import cv2

    out = np.ascontiguousarray(image.copy())
    points = np.asarray(landmarks, np.float64)[:, :2]
    radius = max(1, int(round(0.012 * float(np.ptp(points[:, 0]) or 1.0))))
    for x, y in np.round(points).astype(int):
        cv2.circle(out, (int(x), int(y)), radius, colour, -1, cv2.LINE_AA)
    return out


def compare(photo: np.ndarray, target: np.ndarray | None = None, *, yaw: float = 30.0,
            load: Callable[[str, str], object] | None = None, capabilities=CAPABILITIES,
            progress: Callable[[float, str], None] | None = None) -> Comparison:
    """Run every registered method of each capability on ``photo`` (and ``target`` for swap).

    Args:
        photo, target: RGB uint8 arrays (``target``: the swap's target photo; no swap rows without it).
        yaw: the rotation request (the face's own pitch and roll kept).
        load: ``(method, capability) -> pipeline``; default ``methods.load`` on each method's embedded default
            (the demo passes its model cache).
        progress: ``(fraction, text)`` callback.
    """
    from facehub import methods
    from facehub.modeling.geometry.landmark_metrics import nme
    from facehub.modeling.pipeline_utils import face_nearest
    from facehub.trainers.evaluation.rotation import identity_distance

    load = load or (lambda name, capability: methods.load(name, capability))
    progress = progress or (lambda fraction, text: None)
    faces = analyzer()(photo)
    if not faces:
        from facehub.modeling.pipeline_utils import NoFaceFoundError

        raise NoFaceFoundError("No face was found in the photo. Use a photo where one face is clearly visible.")
    face = faces[0]
    target_face = None
    if target is not None and "swap" in capabilities:
        target_faces = analyzer()(target)
        if not target_faces:
            from facehub.modeling.pipeline_utils import NoFaceFoundError

            raise NoFaceFoundError("No face was found in the target photo (the second photo, for swap).")
        target_face = target_faces[0]
    jobs = [(capability, name) for capability in capabilities for name in methods.available(capability)
            if capability != "swap" or target is not None]
    if target is not None and "swap" in capabilities:
        jobs.insert(next((i for i, job in enumerate(jobs) if job[0] == "swap"), len(jobs)), ("swap", None))
    rows = []
    for index, (capability, name) in enumerate(jobs):
        title = BASELINE if name is None else methods.get(name).title
        progress(index / max(len(jobs), 1), f"{capability}: {title}")
        row = ComparisonRow(capability, name or "baseline", title)
        start = time.perf_counter()
        try:
            if capability == "rotation":
                out = load(name, capability)(photo, yaw=yaw, output_type="np")  # its own pitch and roll
                row.image = np.asarray(out.images[0])
                achieved = out.achieved_pose
                found = face_nearest(analyzer()(row.image), face.bbox)
                row.figures = {
                    "requested yaw": float(out.requested_pose.yaw),
                    "achieved yaw": None if achieved is None else float(achieved.yaw),
                    "achieved pitch": None if achieved is None else float(achieved.pitch),
                    "identity distance": identity_distance(found, face),
                }
            elif capability == "reconstruction":
                pipe = load(name, capability)
                reconstruction = pipe.reconstruct_faces(photo, [face], compute_depth=False)[0]
                landmarks = np.asarray(reconstruction.landmarks68)[:, :2]
                row.image = draw_landmarks(photo, landmarks)
                row.figures = {
                    "landmark NME vs analyzer (%)": 100.0 * float(nme(landmarks, face.landmarks68)),
                    "yaw": float(reconstruction.pose[0]), "pitch": float(reconstruction.pose[1]),
                }
            else:
                if name is None:
                    from facehub.modeling.faces.compositing import similarity_swap

                    row.image = similarity_swap(photo, face.landmarks68, target, target_face.landmarks68)
                else:
                    row.image = np.asarray(load(name, capability)(photo, target, output_type="np").images[0])
                found = face_nearest(analyzer()(row.image), target_face.bbox)
                row.figures = {"distance to source": identity_distance(found, face),
                               "distance to target": identity_distance(found, target_face)}
        except ValueError as err:  # refusals (UnreachablePoseError, no face...) are results too
            row.error = " ".join(str(err).split())
        except Exception as err:  # one broken method must not hide the others' rows; the log keeps the trace
            logger.exception("%s %s failed in the comparison", capability, title)
            row.error = f"{type(err).__name__}: {' '.join(str(err).split())}"
        row.seconds = time.perf_counter() - start
        rows.append(row)
    progress(1.0, "done")
    return Comparison(rows=rows, num_faces=len(faces))


#: The figure each capability's tiles show on the contact sheet, its caption and its format: one that is measured on
#: the result (a rotation's requested yaw would read as if it had been reached).
SHEET_FIGURE = {
    "rotation": ("achieved yaw", "measured yaw", "{:+.1f}"),
    "reconstruction": ("landmark NME vs analyzer (%)", "NME vs analyzer %", "{:.2f}"),
    "swap": ("distance to source", "dist. to source", "{:.3f}"),
}


def sheet_caption(row: ComparisonRow) -> str:
    """A row's caption on the contact sheet: its method's title and, on a second line, its measured figure
    (:data:`SHEET_FIGURE`; "-" where it could not be measured) or that it failed."""
    if row.error:
        return f"{row.title}\nfailed"
    figure, caption, form = SHEET_FIGURE[row.capability]
    value = row.figures.get(figure)
    return f"{row.title}\n{caption} {'-' if value is None else form.format(value)}"


def save_sheet(comparison: Comparison, path, tile: int = 200):
    """A PNG with every row's image (none for a failed row), captioned by :func:`sheet_caption`."""
    from facehub.trainers.evaluation.rotation import contact_sheet

    cells = [(None if r.error else r.image, sheet_caption(r)) for r in comparison.rows]
    per_row = 4
    return contact_sheet([cells[i:i + per_row] for i in range(0, len(cells), per_row)], path, tile=tile)
