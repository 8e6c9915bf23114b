"""Exact Pareto fronts (non-dominated filtering) on CPU (Numba) and GPU (CuPy).

Definitions. Objectives are the k columns of an [n, k] array; each is minimised or
maximised (``senses``); a maximised column is negated first, so below everything is
minimised. Point q *dominates* p when ``q[j] <= p[j]`` for every j and ``q[j] < p[j]`` for
at least one j. The front is the set of points no other point dominates.

- **Duplicates**: two points with equal objective vectors do not dominate each other, so
  ``duplicates="all"`` (the default, the exact definition) keeps every copy of a
  non-dominated point. ``duplicates="first"`` keeps one per distinct vector: the one the
  caller numbered lowest (the smallest position, or the smallest ``index`` of a
  :class:`Front`), so the choice never depends on how the input was chunked.
- **NaN**: a row holding a NaN is not comparable; it is never on the front and never
  removes another row. ``+inf``/``-inf`` compare as usual.
- Results are **indices** (positions into the input, ascending), so callers gather rows.

Algorithm (CPU), linear passes over all n points and exact work on the few left:

1. pivots: for a few positive weightings w of the range-normalised objectives, the
   point minimising ``sum(w * x)`` (a non-dominated point); one parallel pass.
2. prune: drop every point a pivot strictly dominates; one parallel pass. Any real point
   may prune the points it dominates, so this is exact whatever the pivots are. When many
   points survive, the front of a strided sample of them supplies up to 64 more pivots
   and the survivors are pruned again.
3. exact filter of the survivors: for k = 2 a lexicographic sort and one sweep
   (O(m log m)); for k >= 3 "sort-filter-skyline": sort by the normalised sum (ties by
   the objectives lexicographically, so a dominator always sorts first), then keep a
   point iff no point already kept dominates it (O(m * front)).

For 10 million uniform random 3-objective points steps 1-2 leave well under 1% of them.
The GPU version (:func:`_front_xp` with a CuPy RawKernel) does steps 1-2 the same way
and replaces the sequential step 3 by a tiled all-pairs dominance test with early exit.

``merge_fronts(a, b)`` merges per-chunk fronts: the front of a union equals the front of
the union of the parts' fronts (a pruned point is dominated by a point of its own part,
and dominance is transitive), so streaming and Dask sweeps are exact.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

from numba import njit, prange  # noqa: E402

SENSES = ("min", "max")
BLOCK = 1 << 16  # rows per parallel task (large regions: see STYLE.md)
SAMPLE = 4096  # survivors sampled to find more pivots
MAX_PIVOTS = 64
GPU_MAX_K = 16


# --------------------------------------------------------------------------- public API


def signs(senses: Sequence[str] | None, k: int) -> np.ndarray:
    """+1 for a minimised objective, -1 for a maximised one (validated)."""
    if senses is None:
        return np.ones(k)
    if isinstance(senses, str):
        senses = [senses]
    senses = list(senses)
    if len(senses) != k:
        raise ValueError(f"{len(senses)} senses given for {k} objectives")
    bad = [s for s in senses if s not in SENSES]
    if bad:
        raise ValueError(f"objective sense {bad[0]!r} is not allowed: use 'min' or 'max'")
    return np.array([1.0 if s == "min" else -1.0 for s in senses])


def pareto_front(values, senses: Sequence[str] | None = None, *, duplicates: str = "all",
                 order=None):
    """Positions (ascending, int64) of the non-dominated rows of ``values`` [n, k].

    ``senses``: "min"/"max" per column (default all "min"). ``duplicates``: "all" keeps
    every copy of a non-dominated vector, "first" the copy with the smallest ``order``
    value (default: the smallest position). A CuPy array is filtered on its GPU and the
    positions come back as a CuPy array.
    """
    if duplicates not in ("all", "first"):
        raise ValueError(f"duplicates={duplicates!r}: use 'all' or 'first'")
    xp = _xp(values)
    x = values if values.ndim == 2 else values.reshape(-1, 1)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"values must be [n, k] with k >= 1, got shape {tuple(values.shape)}")
    sg = signs(senses, x.shape[1])
    if xp is np:
        x = np.ascontiguousarray(x, dtype=np.float64)
        idx = _front_cpu(x, sg)
    else:
        x = xp.ascontiguousarray(x, dtype=xp.float64)
        idx = _front_xp(x, sg, xp, _gpu_dominated_by)
    if duplicates == "first" and idx.size > 1:
        idx = _first_of_duplicates(x, idx, order, xp)
    return idx


@dataclass
class Front:
    """A set of non-dominated points: objective ``values`` [m, k] (original senses), the
    caller's ids ``index`` [m] (plan numbers, say) and optional payload ``rows`` [m, ...]
    carried along (all NumPy, or all CuPy)."""

    values: object
    index: object
    senses: tuple[str, ...]
    rows: object = None

    @classmethod
    def of(cls, values, senses=None, index=None, rows=None, duplicates: str = "all") -> Front:
        """The front of arbitrary points (``index`` defaults to the positions)."""
        xp = _xp(values)
        values = values if values.ndim == 2 else values.reshape(-1, 1)
        if index is None:
            index = xp.arange(values.shape[0], dtype=xp.int64)
        senses = tuple(senses) if senses is not None else ("min",) * values.shape[1]
        keep = pareto_front(values, senses, duplicates=duplicates, order=index)
        return cls(values[keep], index[keep], senses, None if rows is None else rows[keep])

    @classmethod
    def empty(cls, senses: Sequence[str], rows_width: int | None = None, xp=np) -> Front:
        rows = None if rows_width is None else xp.empty((0, rows_width))
        return cls(xp.empty((0, len(senses))), xp.empty(0, dtype=xp.int64), tuple(senses), rows)

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def sorted(self) -> Front:
        """The same front ordered by index (a canonical order)."""
        o = argsort_stable(self.index)
        return Front(self.values[o], self.index[o], self.senses,
                     None if self.rows is None else self.rows[o])


def merge_fronts(a: Front, b: Front, duplicates: str = "all") -> Front:
    """The front of the union of two fronts (for per-chunk fronts of a stream).

    Exact: equal to the front of the union of the points the two fronts came from. The
    result is ordered by ``index``, so merging is independent of the order of the parts.
    """
    if tuple(a.senses) != tuple(b.senses):
        raise ValueError(f"cannot merge fronts with senses {a.senses} and {b.senses}")
    xp = _xp(a.values)
    values = xp.concatenate([a.values, b.values])
    index = xp.concatenate([a.index, b.index])
    # payload rows travel when every non-empty part carries them
    carried = [f.rows for f in (a, b) if f.rows is not None or len(f)]
    rows = None
    if carried and all(r is not None for r in carried):
        rows = xp.concatenate(carried)
    merged = Front.of(values, a.senses, index, rows, duplicates=duplicates)
    return merged.sorted()


def dominates(q, p, senses: Sequence[str] | None = None) -> bool:
    """Does point q dominate point p (one pair; for docs and tests)?"""
    sg = signs(senses, len(p))
    qs = np.asarray(q, dtype=np.float64) * sg
    ps = np.asarray(p, dtype=np.float64) * sg
    return bool(np.all(qs <= ps) and np.any(qs < ps))


# --------------------------------------------------------------------------- helpers


def _xp(arr):
    mod = type(arr).__module__.split(".")[0]
    if mod == "cupy":
        import cupy

        return cupy
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"values must be a NumPy or CuPy array, got {type(arr).__name__}")
    return np


def argsort_stable(a):
    """Stable argsort on NumPy or CuPy (CuPy's sort is always stable)."""
    if _xp(a) is np:
        return np.argsort(a, kind="stable")
    return _xp(a).argsort(a)


def _first_of_duplicates(x, idx, order, xp):
    """Among front rows with equal objective vectors keep the one with the smallest order."""
    if xp is not np:  # a front is small: deduplicate on the host
        hidx = idx.get()
        horder = None if order is None else order.get()[hidx]
        keep = _first_of_duplicates(x[idx].get(), np.arange(hidx.size), horder, np)
        return idx[xp.asarray(keep)]
    rows = x[idx]
    key = idx if order is None else order[idx]
    # sort by (vector, key) and keep the first of every run of equal vectors
    o = np.lexsort([key] + [rows[:, j] for j in range(rows.shape[1] - 1, -1, -1)])
    r = rows[o]
    new = np.ones(o.shape[0], dtype=bool)
    new[1:] = np.any(r[1:] != r[:-1], axis=1)
    return np.sort(idx[o[new]])


# --------------------------------------------------------------------------- CPU (Numba)


@njit(cache=True, inline="always")
def _norm(v, lo, scale):
    # range-normalised value in [0, 1]; -inf -> -1, +inf -> 2 (monotone, always finite)
    if v == np.inf:
        return 2.0
    if v == -np.inf:
        return -1.0
    return (v - lo) * scale


@njit(parallel=True, cache=True)
def _stats(x, sg):
    """Per column: finite min and max of x*sg (inf/-inf when a column has none)."""
    n, k = x.shape
    nb = (n + BLOCK - 1) // BLOCK
    lo = np.full((nb, k), np.inf)
    hi = np.full((nb, k), -np.inf)
    for b in prange(nb):
        for i in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
            for j in range(k):
                v = x[i, j] * sg[j]
                if np.isfinite(v):
                    if v < lo[b, j]:
                        lo[b, j] = v
                    if v > hi[b, j]:
                        hi[b, j] = v
    out_lo = np.empty(k)
    out_hi = np.empty(k)
    for j in range(k):
        out_lo[j] = lo[:, j].min()
        out_hi[j] = hi[:, j].max()
    return out_lo, out_hi


def _scales(lo, hi):
    span = hi - lo
    ok = np.isfinite(span) & (span > 0)
    scale = np.where(ok, 1.0 / np.where(ok, span, 1.0), 1.0)
    return np.where(np.isfinite(lo), lo, 0.0), scale


def _weights(k):
    """Pivot weightings: equal, then each objective emphasised 4:1."""
    w = np.ones((k + 1, k))
    for j in range(k):
        w[j + 1, j] = 4.0
    return w


@njit(parallel=True, cache=True)
def _argmin_scores(x, sg, lo, scale, w):
    """For each weighting w[p], the row minimising sum_j w[p, j] * norm(x[i, j]*sg[j])."""
    n, k = x.shape
    n_w = w.shape[0]
    nb = (n + BLOCK - 1) // BLOCK
    best = np.full((nb, n_w), np.inf)
    arg = np.full((nb, n_w), -1, dtype=np.int64)
    for b in prange(nb):
        z = np.empty(k)
        for i in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
            bad = False
            for j in range(k):
                v = x[i, j] * sg[j]
                if np.isnan(v):
                    bad = True
                    break
                z[j] = _norm(v, lo[j], scale[j])
            if bad:
                continue
            for p in range(n_w):
                s = 0.0
                for j in range(k):
                    s += w[p, j] * z[j]
                if s < best[b, p]:
                    best[b, p] = s
                    arg[b, p] = i
    out = np.full(n_w, -1, dtype=np.int64)
    for p in range(n_w):
        bv = np.inf
        for b in range(nb):
            if arg[b, p] >= 0 and (out[p] < 0 or best[b, p] < bv):
                bv = best[b, p]
                out[p] = arg[b, p]
    return out


@njit(cache=True, inline="always")
def _dominated_by_any(x, i, sg, piv):
    """Is row i of x (times sg) strictly dominated by a pivot row (already signed)?"""
    k = x.shape[1]
    for p in range(piv.shape[0]):
        le = True
        lt = False
        for j in range(k):
            a = piv[p, j]
            v = x[i, j] * sg[j]
            if a > v:
                le = False
                break
            if a < v:
                lt = True
        if le and lt:
            return True
    return False


@njit(parallel=True, cache=True)
def _prune_all(x, sg, piv):
    """Rows that are NaN-free and not dominated by a pivot (a bool mask)."""
    n, k = x.shape
    keep = np.zeros(n, dtype=np.bool_)
    nb = (n + BLOCK - 1) // BLOCK
    for b in prange(nb):
        for i in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
            nan = False
            for j in range(k):
                if np.isnan(x[i, j]):
                    nan = True
            if not nan and not _dominated_by_any(x, i, sg, piv):
                keep[i] = True
    return keep


@njit(parallel=True, cache=True)
def _prune_subset(x, sg, idx, piv):
    m = idx.shape[0]
    keep = np.zeros(m, dtype=np.bool_)
    nb = (m + BLOCK - 1) // BLOCK
    for b in prange(nb):
        for t in range(b * BLOCK, min(m, (b + 1) * BLOCK)):
            keep[t] = not _dominated_by_any(x, idx[t], sg, piv)
    return keep


@njit(cache=True)
def _scores_of(x, sg, idx, lo, scale):
    k = x.shape[1]
    s = np.empty(idx.shape[0])
    for t in range(idx.shape[0]):
        acc = 0.0
        for j in range(k):
            acc += _norm(x[idx[t], j] * sg[j], lo[j], scale[j])
        s[t] = acc
    return s


@njit(cache=True)
def _sfs(x, sg, order):
    """Sort-filter-skyline over rows `order` (sorted so that a dominator comes first)."""
    m = order.shape[0]
    k = x.shape[1]
    win = np.empty((max(m, 1), k))
    widx = np.empty(max(m, 1), dtype=np.int64)
    w = 0
    p = np.empty(k)
    for t in range(m):
        i = order[t]
        for j in range(k):
            p[j] = x[i, j] * sg[j]
        dominated = False
        for u in range(w):
            le = True
            lt = False
            for j in range(k):
                a = win[u, j]
                if a > p[j]:
                    le = False
                    break
                if a < p[j]:
                    lt = True
            if le and lt:
                dominated = True
                if u > 0:  # move the dominator to the front: it will likely strike again
                    for j in range(k):
                        tmp = win[0, j]
                        win[0, j] = win[u, j]
                        win[u, j] = tmp
                    ti = widx[0]
                    widx[0] = widx[u]
                    widx[u] = ti
                break
        if not dominated:
            for j in range(k):
                win[w, j] = p[j]
            widx[w] = i
            w += 1
    return widx[:w].copy()


@njit(cache=True)
def _sweep2(x, sg, order):
    """2-D skyline over rows `order`, sorted lexicographically by (x0, x1) (signed)."""
    m = order.shape[0]
    out = np.empty(m, dtype=np.int64)
    n_out = 0
    have_best = False
    best = 0.0
    t = 0
    while t < m:
        i0 = order[t]
        f0 = x[i0, 0] * sg[0]
        gmin = x[i0, 1] * sg[1]
        u = t
        while u < m and x[order[u], 0] * sg[0] == f0:
            u += 1
        if not have_best or gmin < best:
            v = t
            while v < u and x[order[v], 1] * sg[1] == gmin:
                out[n_out] = order[v]
                n_out += 1
                v += 1
            best = gmin
            have_best = True
        t = u
    return out[:n_out].copy()


def _signed_cols(x, sg, idx):
    return [x[idx, j] * sg[j] for j in range(x.shape[1])]


def _exact(x, sg, idx, lo, scale):
    """Exact front of the rows idx (NaN-free): 2-D sweep or sort-filter-skyline."""
    if idx.size == 0:
        return idx
    cols = _signed_cols(x, sg, idx)
    if x.shape[1] == 2:
        order = idx[np.lexsort((cols[1], cols[0]))]
        return _sweep2(x, sg, order)
    score = _scores_of(x, sg, idx, lo, scale)
    order = idx[np.lexsort(cols[::-1] + [score])]
    return _sfs(x, sg, order)


def _front_cpu(x: np.ndarray, sg: np.ndarray) -> np.ndarray:
    n, k = x.shape
    if n == 0:
        return np.empty(0, dtype=np.int64)
    lo, hi = _stats(x, sg)
    lo, scale = _scales(lo, hi)
    piv_rows = _argmin_scores(x, sg, lo, scale, _weights(k))
    piv_rows = np.unique(piv_rows[piv_rows >= 0])
    if piv_rows.size == 0:  # every row holds a NaN
        return np.empty(0, dtype=np.int64)
    piv = x[piv_rows] * sg
    idx = np.flatnonzero(_prune_all(x, sg, piv))
    for _ in range(2):
        if idx.size <= 4 * SAMPLE:
            break
        sample = idx[:: max(1, idx.size // SAMPLE)]
        sf = _exact(x, sg, sample, lo, scale)
        if sf.size > MAX_PIVOTS:  # the ones with the smallest normalised sum prune most
            sf = sf[np.argsort(_scores_of(x, sg, sf, lo, scale), kind="stable")[:MAX_PIVOTS]]
        before = idx.size
        idx = idx[_prune_subset(x, sg, idx, x[sf] * sg)]
        if idx.size > 0.5 * before:
            break
    return np.sort(_exact(x, sg, idx, lo, scale))


# --------------------------------------------------------------------------- GPU (CuPy)

_KERNEL_SRC = r"""
#define MAXK %(maxk)d
extern "C" __global__
void dominated_by(const double* __restrict__ q, const long long nq,
                  const double* __restrict__ r, const long long nr,
                  const int k, unsigned char* __restrict__ out)
{
    // out[i] = 1 when some row of r strictly dominates row i of q (both [., k], signed,
    // NaN-free). Rows of r are staged through shared memory one tile (blockDim rows) at a
    // time; a block stops as soon as every one of its threads has found a dominator.
    extern __shared__ double tile[];
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    double p[MAXK];
    int dom = 1;
    if (i < nq) {
        dom = 0;
        for (int j = 0; j < k; ++j) p[j] = q[i * k + j];
    }
    for (long long base = 0; base < nr; base += blockDim.x) {
        if (__syncthreads_and(dom)) break;
        const long long cnt = (nr - base < (long long)blockDim.x) ? nr - base : blockDim.x;
        if (threadIdx.x < cnt)
            for (int j = 0; j < k; ++j)
                tile[threadIdx.x * k + j] = r[(base + threadIdx.x) * k + j];
        __syncthreads();
        if (!dom) {
            for (long long u = 0; u < cnt; ++u) {
                bool le = true, lt = false;
                for (int j = 0; j < k; ++j) {
                    const double a = tile[u * k + j];
                    if (a > p[j]) { le = false; break; }
                    if (a < p[j]) lt = true;
                }
                if (le && lt) { dom = 1; break; }
            }
        }
    }
    if (i < nq) out[i] = (unsigned char)dom;
}
"""

_GPU_KERNEL = None
_GPU_THREADS = 256


def _gpu_dominated_by(q, r):
    """CuPy: bool mask over rows of q (signed, [m, k]) dominated by some row of r."""
    import cupy

    global _GPU_KERNEL
    if _GPU_KERNEL is None:
        _GPU_KERNEL = cupy.RawKernel(_KERNEL_SRC % {"maxk": GPU_MAX_K}, "dominated_by")
    m, k = q.shape
    out = cupy.zeros(m, dtype=cupy.uint8)
    if m == 0:
        return out.astype(bool)
    if r.shape[0] == 0:
        return out.astype(bool)
    q = cupy.ascontiguousarray(q, dtype=cupy.float64)
    r = cupy.ascontiguousarray(r, dtype=cupy.float64)
    blocks = (m + _GPU_THREADS - 1) // _GPU_THREADS
    _GPU_KERNEL((blocks,), (_GPU_THREADS,),
                (q, np.int64(m), r, np.int64(r.shape[0]), np.int32(k), out),
                shared_mem=_GPU_THREADS * k * 8)
    return out.astype(bool)


def _cpu_dominated_by(q, r):
    """NumPy/Numba twin of the GPU kernel (tests run the GPU orchestration through it)."""
    if q.shape[0] == 0 or r.shape[0] == 0:
        return np.zeros(q.shape[0], dtype=bool)
    return ~_prune_subset(np.ascontiguousarray(q), np.ones(q.shape[1]),
                          np.arange(q.shape[0], dtype=np.int64), np.ascontiguousarray(r))


def _front_xp(x, sg, xp, dominated_by):
    """Front on an array module (CuPy on the GPU): prune by pivots, then all-pairs test.

    ``dominated_by(q, r)`` returns the rows of q that some row of r strictly dominates.
    Everything stays on the device; only the positions come back (as a device array).
    """
    n, k = x.shape
    if n == 0:
        return xp.empty(0, dtype=xp.int64)
    if k > GPU_MAX_K:
        raise ValueError(f"the GPU Pareto kernel handles at most {GPU_MAX_K} objectives")
    xs = x * xp.asarray(sg)
    nan = xp.isnan(xs).any(axis=1)
    fin = xp.isfinite(xs)
    lo = xp.where(fin, xs, xp.inf).min(axis=0)
    hi = xp.where(fin, xs, -xp.inf).max(axis=0)
    span = hi - lo
    ok = xp.isfinite(span) & (span > 0)
    scale = xp.where(ok, 1.0 / xp.where(ok, span, 1.0), 1.0)
    lo = xp.where(xp.isfinite(lo), lo, 0.0)
    z = xp.where(fin, (xs - lo) * scale, xp.where(xs > 0, 2.0, -1.0))
    z = xp.where(nan[:, None], xp.inf, z)
    if bool(nan.all()):
        return xp.empty(0, dtype=xp.int64)
    w = xp.asarray(_weights(k))
    score = z.sum(axis=1)
    piv_rows = xp.stack([xp.argmin(z @ w[p]) for p in range(w.shape[0])])
    idx = xp.flatnonzero(~nan & ~dominated_by(xs, xs[piv_rows]))
    for _ in range(2):
        if idx.shape[0] <= 4 * SAMPLE:
            break
        sample = idx[:: max(1, int(idx.shape[0]) // SAMPLE)]
        sf = sample[~dominated_by(xs[sample], xs[sample])]
        if sf.shape[0] > MAX_PIVOTS:
            sf = sf[xp.argsort(score[sf])[:MAX_PIVOTS]]
        before = int(idx.shape[0])
        idx = idx[~dominated_by(xs[idx], xs[sf])]
        if int(idx.shape[0]) > 0.5 * before:
            break
    # all-pairs among the survivors, likely dominators (small sums) first
    idx = idx[xp.argsort(score[idx])]
    cand = xs[idx]
    front = idx[~dominated_by(cand, cand)]
    return xp.sort(front)
