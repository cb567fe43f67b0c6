"""A fast z-buffer rasteriser for meshes of many small triangles that need no gradient (display, texel visibility,
depth images, the fit's photometric crop): whole-photo meshes (tens of thousands of triangles at 512 px) in tens of
milliseconds on a CPU, where PyTorch3D's naive CPU rasteriser (:mod:`.render`) needs seconds. Not differentiable.
Large and long thin triangles cost their area (the spans below).

Every triangle is tested only against candidate pixel centres near it. Small triangles are grouped by the size of
their bounding box (1, 2, 4, ... pixels a side, up to :data:`SPAN_ABOVE`), so each group tests a fixed ``k x k`` window
with one batched tensor expression. A larger triangle is tested row by row of its box, on the span of the row between
its edges widened by a pixel on each side (a scanline rasteriser's span), so its cost follows its area and not its
box's: the slivers a turned or stretched mesh makes (a triangle 300 pixels long and 2 wide) would otherwise test
their whole box, rounded up to a power of two, for a handful of pixels. Either way a pixel centre ``(j + 0.5, i + 0.5)``
is inside when its three barycentric weights are >= 0 (within a small tolerance, so neighbouring triangles leave no
cracks): the span only chooses which centres are tested, so both paths draw the same pixels. The nearest candidate of
every pixel wins through one ``scatter_reduce(amax)`` of a key that packs the quantised depth above the triangle
index; the winners' barycentric weights are then recomputed exactly.

Orthographic only (the projection of every caller here): ``depth`` is interpolated linearly in screen space.
"""

from __future__ import annotations

import numpy as np
import torch

_INDEX_BITS = 26  # up to 67M triangles
_DEPTH_LEVELS = 1 << 30

#: Triangles whose bounding box is wider or taller than this many pixels are tested on their rows' spans rather than
#: on a ``k x k`` window (module docstring).
SPAN_ABOVE = 4


def _barycentric(corners: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Barycentric weights of points ``(px, py)`` (..., ) in triangles ``corners`` (..., 3, 2); also the signed
    double area of each triangle (0 for a degenerate one)."""
    x0, y0 = corners[..., 0, 0], corners[..., 0, 1]
    x1, y1 = corners[..., 1, 0], corners[..., 1, 1]
    x2, y2 = corners[..., 2, 0], corners[..., 2, 1]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    safe = torch.where(area.abs() > 1e-12, area, torch.ones_like(area))
    w0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) / safe
    w1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) / safe
    return torch.stack([w0, w1, 1.0 - w0 - w1], dim=-1), area


def _offsets_within(counts: torch.Tensor) -> torch.Tensor:
    """``0, 1, ..., n - 1`` for every ``n`` of ``counts``, concatenated (the position of each item within its group
    once ``torch.repeat_interleave`` has expanded the groups)."""
    first = torch.cumsum(counts, 0) - counts
    return torch.arange(int(counts.sum())) - torch.repeat_interleave(first, counts)


def _batch_stop(counts: torch.Tensor, start: int, budget: int) -> int:
    """End of the batch that begins at ``start``: as many items as fit in ``budget`` by their ``counts``, at least
    one."""
    return start + max(1, int(torch.searchsorted(torch.cumsum(counts[start:], 0), torch.tensor(budget), right=True)))


def _span_candidates(corners: torch.Tensor, ids: torch.Tensor, low: torch.Tensor, high: torch.Tensor,
                     max_candidates: int):
    """Candidate pixels of large triangles ``ids``, row by row of their boxes: on each row ``i`` the columns between
    where the line ``y = i + 0.5`` crosses the triangle's edges, one more on each side, within the box. Yields
    ``(triangle, row, column)`` index tensors in batches of at most about ``max_candidates`` pixels (one row of one
    triangle is never split)."""
    heights = high[ids, 1] - low[ids, 1] + 1
    start = 0
    while start < len(ids):  # batches of triangles whose rows together stay within a quarter of the budget
        stop = _batch_stop(heights, start, max(1, max_candidates // 4))
        chunk, rows_of = ids[start:stop], heights[start:stop]
        start = stop
        tri = torch.repeat_interleave(chunk, rows_of)
        row = torch.repeat_interleave(low[chunk, 1], rows_of) + _offsets_within(rows_of)
        c = corners[tri]  # (R, 3, 2)
        xa, ya = c[:, :, 0], c[:, :, 1]
        xb, yb = c[:, [1, 2, 0], 0], c[:, [1, 2, 0], 1]
        rise = yb - ya
        sloped = rise.abs() > 1e-12
        y = row.double()[:, None] + 0.5
        crosses = sloped & (y >= torch.minimum(ya, yb) - 1e-9) & (y <= torch.maximum(ya, yb) + 1e-9)
        at = ((y - ya) / torch.where(sloped, rise, torch.ones_like(rise))).clamp(0.0, 1.0)
        x = xa + at * (xb - xa)
        inf = torch.tensor(float("inf"), dtype=x.dtype)
        x_min = torch.where(crosses, x, inf).amin(dim=1)
        x_max = torch.where(crosses, x, -inf).amax(dim=1)
        box_low, box_high = low[tri, 0], high[tri, 0]
        found = crosses.any(dim=1)  # a row that meets no edge (rounding at a vertex) keeps its whole box width
        col_low = torch.where(found, torch.ceil(x_min - 0.5).long() - 1, box_low).clamp(min=box_low)
        col_high = torch.where(found, torch.floor(x_max - 0.5).long() + 1, box_high).clamp(max=box_high)
        counts = (col_high - col_low + 1).clamp(min=0)
        row_start = 0
        while row_start < len(tri):  # batches of rows within the pixel budget
            row_stop = _batch_stop(counts, row_start, max_candidates)
            n = counts[row_start:row_stop]
            yield (torch.repeat_interleave(tri[row_start:row_stop], n),
                   torch.repeat_interleave(row[row_start:row_stop], n),
                   torch.repeat_interleave(col_low[row_start:row_stop], n) + _offsets_within(n))
            row_start = row_stop


def rasterize_zbuffer(
    points: np.ndarray | torch.Tensor,
    depth: np.ndarray | torch.Tensor,
    triangles: np.ndarray | torch.Tensor,
    size: tuple[int, int],
    *,
    max_candidates: int = 4_000_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise triangles already projected to pixels, keeping the nearest surface at every pixel centre.

    Args:
        points: (V, 2) pixel positions ``(x, y)``; pixel ``(row i, col j)`` has its centre at ``(j + 0.5, i + 0.5)``.
        depth: (V,) larger is nearer (the house frame's z, which grows towards the camera).
        triangles: (F, 3) vertex indices; both windings are drawn.
        size: ``(height, width)`` of the output.
        max_candidates: pixel tests per batch (bounds the memory: about 60 bytes each).

    Returns:
        ``(H, W)`` int64 index of the triangle seen at each pixel (-1 where none) and ``(H, W, 3)`` float32
        barycentric weights of that pixel centre in it (0 where none).
    """
    h, w = int(size[0]), int(size[1])
    pts = torch.as_tensor(np.asarray(points, dtype=np.float64))
    z = torch.as_tensor(np.asarray(depth, dtype=np.float64))
    tris = torch.as_tensor(np.asarray(triangles, dtype=np.int64))
    face_index = np.full((h, w), -1, dtype=np.int64)
    bary_out = np.zeros((h, w, 3), dtype=np.float32)
    if len(tris) == 0 or h == 0 or w == 0:
        return face_index, bary_out
    if len(tris) >= 1 << _INDEX_BITS:
        raise ValueError(f"Got {len(tris)} triangles; at most {(1 << _INDEX_BITS) - 1} can be rasterised at once.")
    corners = pts[tris]  # (F, 3, 2)
    low = torch.ceil(corners.amin(dim=1) - 0.5).long()  # first pixel index whose centre is >= the box's low side
    high = torch.floor(corners.amax(dim=1) - 0.5).long()
    low[:, 0].clamp_(min=0)
    low[:, 1].clamp_(min=0)
    high[:, 0].clamp_(max=w - 1)
    high[:, 1].clamp_(max=h - 1)
    extent = torch.maximum(high[:, 0] - low[:, 0], high[:, 1] - low[:, 1]) + 1
    finite = torch.isfinite(corners).all(dim=2).all(dim=1) & torch.isfinite(z[tris]).all(dim=1)
    alive = finite & (high[:, 0] >= low[:, 0]) & (high[:, 1] >= low[:, 1])
    z_low, z_high = float(z[torch.isfinite(z)].min()), float(z[torch.isfinite(z)].max())
    z_scale = (_DEPTH_LEVELS - 1) / max(z_high - z_low, 1e-12)
    best = torch.full((h * w,), -1, dtype=torch.int64)
    eps = 1e-7

    def keep_nearest(tri_of: torch.Tensor, row: torch.Tensor, col: torch.Tensor, wts: torch.Tensor) -> None:
        """Offer candidates (inside their triangles, with weights ``wts``) to their pixels; the nearest wins."""
        zz = (wts * z[tris[tri_of]]).sum(dim=-1)
        key = (((zz - z_low) * z_scale).round().long().clamp(0, _DEPTH_LEVELS - 1) << _INDEX_BITS) | tri_of
        best.scatter_reduce_(0, row * w + col, key, reduce="amax")

    large = torch.nonzero(alive & (extent > SPAN_ABOVE)).flatten()
    if len(large):
        for tri_of, row, col in _span_candidates(corners, large, low, high, max_candidates):
            weights, area = _barycentric(corners[tri_of], col.double() + 0.5, row.double() + 0.5)
            inside = (weights >= -eps).all(dim=-1) & (area.abs() > 1e-12)
            if inside.any():
                keep_nearest(tri_of[inside], row[inside], col[inside], weights[inside])
    alive = alive & (extent <= SPAN_ABOVE)

    k = 1
    while True:
        group = torch.nonzero(alive & (extent <= k) & (extent > k // 2)).flatten()
        if len(group):
            offsets = torch.arange(k)
            dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
            dx, dy = dx.reshape(-1), dy.reshape(-1)
            per_batch = max(1, max_candidates // (k * k))
            for start in range(0, len(group), per_batch):
                ids = group[start:start + per_batch]
                col = low[ids, 0:1] + dx  # (n, k*k)
                row = low[ids, 1:2] + dy
                valid = (col <= high[ids, 0:1]) & (row <= high[ids, 1:2])
                weights, area = _barycentric(corners[ids][:, None], col + 0.5, row + 0.5)
                inside = valid & (weights >= -eps).all(dim=-1) & (area.abs() > 1e-12)
                if not inside.any():
                    continue
                keep_nearest(ids[:, None].expand_as(col)[inside], row[inside], col[inside], weights[inside])
        if k >= max(h, w) or not bool((alive & (extent > k)).any()):
            break
        k *= 2

    covered = torch.nonzero(best >= 0).flatten()
    if len(covered):
        tri_of = best[covered] & ((1 << _INDEX_BITS) - 1)
        rows, cols = covered // w, covered % w
        weights, _ = _barycentric(corners[tri_of], cols.double() + 0.5, rows.double() + 0.5)
        weights = weights.clamp(min=0.0)
        weights = weights / weights.sum(dim=-1, keepdim=True).clamp(min=1e-12)
        face_index.reshape(-1)[covered.numpy()] = tri_of.numpy()
        bary_out.reshape(-1, 3)[covered.numpy()] = weights.numpy().astype(np.float32)
    return face_index, bary_out


def rasterize_box(vertices: np.ndarray, triangles: np.ndarray,
                  box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`rasterize_zbuffer` of a mesh given in image pixels (V, 3) (house frame: larger z is nearer) over the
    window ``box = (x0, y0, x1, y1)`` of the image: the result's pixel ``(i, j)`` is the image's ``(y0 + i, x0 + j)``.

    Returns:
        (y1 - y0, x1 - x0) int64 triangle index per pixel (-1 where none) and (y1 - y0, x1 - x0, 3) float32
        barycentric weights.
    """
    x0, y0, x1, y1 = (int(c) for c in box)
    vertices = np.asarray(vertices, dtype=np.float64)
    return rasterize_zbuffer(vertices[:, :2] - [x0, y0], vertices[:, 2], triangles, (y1 - y0, x1 - x0))


def interpolate(attributes: np.ndarray, triangles: np.ndarray, face_index: np.ndarray,
                barycentric: np.ndarray) -> np.ndarray:
    """(V, C) vertex attributes -> (H, W, C) values at the pixels of :func:`rasterize_zbuffer` (0 where none)."""
    # One channel at a time from a (F, 3) table of each triangle's corner values: three 1-D lookups by the pixel's
    # triangle, instead of gathering (N, 3) corner indices and weights through boolean masks of the raster.
    attributes = np.asarray(attributes)
    flat = np.asarray(face_index).reshape(-1)
    covered = flat >= 0
    weights = np.asarray(barycentric).reshape(-1, 3)
    seen = np.maximum(flat, 0)
    table = attributes[np.asarray(triangles)]  # (F, 3, C)
    out = np.zeros((flat.size, attributes.shape[-1]), dtype=np.float32)
    for channel in range(attributes.shape[-1]):
        corners = table[:, :, channel]
        values = np.take(corners[:, 0], seen) * weights[:, 0]
        for k in (1, 2):
            values += np.take(corners[:, k], seen) * weights[:, k]
        out[:, channel] = np.where(covered, values, 0.0)
    return out.reshape(*np.shape(face_index), attributes.shape[-1])
