"""Numba CPU backend: the reference's own functions, compiled, in a prange loop.

There is no second copy of the formulas: every function of the reference kernel's call
graph (``reference.KERNEL_FUNCTIONS``) is registered as jitable, so ``evaluate_plan``
compiles from the same source the scalar reference runs. Plans are split into blocks
of ``BLOCK`` so each parallel task is large (threads collapse on tiny regions when the
other core is busy; see STYLE.md).
"""

from __future__ import annotations

import hashlib
import os
import platform
import tempfile
import types
import warnings
from pathlib import Path

import numpy as np

from .. import reference as R
from .. import schema as S

NAME = "numba"
BLOCK = 4096  # plans per parallel task: few tasks, so the references a task's call takes on
# the shared arrays (atomic, contended between threads) are rare; as native's BLOCK
STAGE = 256  # plans staged between flushes: STAGE x N_OUT x 8 B = 64 KiB stays in L2 and
# under glibc's mmap threshold (128 KiB), so each task allocates it from the heap

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

try:
    import numba
    from numba import njit, prange
    from numba.extending import register_jitable
    from numba.typed import List

    _IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - numba is a dependency
    numba = None
    _IMPORT_ERROR = exc


def _cache_dir() -> str:
    """Numba's on-disk cache keys on the kernel file alone, not on reference.py and
    schema.py, which the kernels inline: a stale cache would silently return the old
    model. So the cache lives in a folder named after a hash of every source the kernels
    compile from, and of the Numba version."""
    here = Path(__file__).resolve()
    digest = hashlib.sha256(numba.__version__.encode())
    for path in (here, here.parent.parent / "reference.py", here.parent.parent / "schema.py"):
        digest.update(path.read_bytes())
    base = os.environ.get("PYENGINE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "pyengine")
    folder = os.path.join(base, "numba-" + digest.hexdigest()[:16])
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, ".write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError:
        folder = os.path.join(tempfile.gettempdir(), "pyengine-numba-" + digest.hexdigest()[:16])
        os.makedirs(folder, exist_ok=True)
    return folder


def _streaming_intrinsics():
    """``store(ary2d, i, j, value)``: ``ary2d[i, j] = value`` as an LLVM non-temporal store
    (movnti on x86); ``fence()``: sfence on x86, nothing elsewhere. The native backend's
    flush() does the same with _mm_stream_si64 and _mm_sfence."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")

    @intrinsic
    def store(typingctx, ary, i, j, value):
        def codegen(context, builder, sig, args):
            aryty = sig.args[0]
            a = context.make_array(aryty)(context, builder, args[0])
            idx = [context.cast(builder, args[k], sig.args[k], types.intp) for k in (1, 2)]
            ptr = cgutils.get_item_pointer(context, builder, aryty, a, idx, wraparound=False)
            val = context.cast(builder, args[3], sig.args[3], aryty.dtype)
            instr = builder.store(val, ptr)
            instr.set_metadata("nontemporal", builder.module.add_metadata(
                [ir.Constant(ir.IntType(32), 1)]))
            return context.get_dummy_value()

        return types.void(ary, i, j, value), codegen

    @intrinsic
    def fence(typingctx):
        def codegen(context, builder, sig, args):
            if x86:
                fn = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse.sfence")
                builder.call(fn, [])
            return context.get_dummy_value()

        return types.void(), codegen

    return store, fence


def _row_pointer_intrinsic():
    """``row_pointer(ary2d, i)``: a float64 pointer to row i of a C-contiguous 2-D array.
    numba.carray over it is a row view without a memory-info reference: handed to the
    inlined kernel as `out`, it costs no atomic reference counting per plan (a slice
    ``tmp[r]`` takes and drops references in each inlined function it reaches)."""
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def row_pointer(typingctx, ary, i):
        sig = types.CPointer(types.float64)(ary, i)

        def codegen(context, builder, sig, args):
            aryty = sig.args[0]
            a = context.make_array(aryty)(context, builder, args[0])
            idx = [args[1], context.get_constant(types.intp, 0)]
            return cgutils.get_item_pointer(context, builder, aryty, a, idx, wraparound=False)

        return sig, codegen

    return row_pointer


def _trailing_zeros_intrinsic():
    """``ctz(x)``: the index of the lowest set bit of a non-zero int64 (LLVM cttz), as the
    native backend's __builtin_ctzll counts violation bits."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def ctz(typingctx, x):
        def codegen(context, builder, sig, args):
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.IntType(64), [ir.IntType(64), ir.IntType(1)]),
                "llvm.cttz.i64")
            return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 1)])

        return types.int64(types.int64), codegen

    return ctz


def unavailable() -> str | None:
    if numba is None:
        return f"numba is not installed ({_IMPORT_ERROR})"
    return None


if numba is not None:
    # Numba IR inlining of the per-plan stages (below) trips a pedantic internal check
    # ("variable ... is not in scope", NumbaIRAssumptionWarning) on the renamed locals of
    # inlined functions with several returns; the compiled kernels are exact (the digest
    # and the equivalence tests check every bit), so the check is not shown to users.
    from numba.core.errors import NumbaIRAssumptionWarning

    warnings.filterwarnings("ignore", category=NumbaIRAssumptionWarning)
    _store_streaming, _store_fence = _streaming_intrinsics()
    _ctz = _trailing_zeros_intrinsic()
    _row_pointer = _row_pointer_intrinsic()
    from numba import carray as _carray
    # the cache locator is fixed when a kernel is defined: point it at our folder for
    # the definitions below only, and leave Numba's setting as it was for everyone else
    _previous_cache_dir = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = _cache_dir()
    # the per-plan stages inlined (Numba IR): as calls, passing their named results by
    # value cost more than most of them compute (evaluate 9.8 -> 15.3 M plans/s)
    for _fn in R.KERNEL_FUNCTIONS + (R.evaluate_plan,):
        if _fn in R.PER_PLAN_FUNCTIONS:
            register_jitable(inline="always")(_fn)
        else:
            register_jitable(_fn)
    _evaluate_plan = R.evaluate_plan
    _no_stages = R.no_stages
    _Stages = R.Stages
    # The same function under a second name, inlined (Numba IR inlining) where it runs
    # for every plan: a call would pass its named results by value and take references on
    # its array arguments (`out`; the input vectors reach it as tuples, below). The sweep
    # block calls the plain one for the few feasible plans it evaluates in full: each
    # inlined copy costs about 20 s of compilation (once; the kernels are cached on disk).
    _evaluate_plan_inlined = types.FunctionType(
        R.evaluate_plan.__code__, R.evaluate_plan.__globals__, "evaluate_plan_inlined",
        R.evaluate_plan.__defaults__, R.evaluate_plan.__closure__)
    register_jitable(inline="always")(_evaluate_plan_inlined)
    N_OUT = S.N_OUTPUTS
    N_PLAN = S.N_PLAN
    N_BITS = len(S.VIOLATIONS)
    CACHE_FROM = S.CACHE_FROM
    CACHE2_FROM = S.CACHE2_FROM
    CACHE3_FROM = S.CACHE3_FROM
    # The kernel's input vectors as tuples of floats (values, not arrays): every function
    # the kernel inlines would otherwise take and drop a reference on each array argument
    # it is handed (NRT_incref/decref, atomic; the refcount pruning pass keeps them across
    # the branches of the stages), which cost more than the arithmetic of the whole
    # feasibility path (plan_fields alone: 15 ns a plan with the array, 0.5 ns with the
    # tuple). Indexing with the schema's constant indices reads a tuple as it reads the
    # array, so the reference's own source compiles unchanged for either.
    def _tuple_of(n: int, name: str):
        src = (f"def {name}(a):\n    return (" + ", ".join(f"a[{i}]" for i in range(n))
               + ",)\n")
        namespace: dict = {}
        exec(src, namespace)  # noqa: S102 - generated from the schema's vector lengths
        return njit(inline="always")(namespace[name])

    _model_tuple = _tuple_of(S.N_MODEL, "model_tuple")
    _hardware_tuple = _tuple_of(S.N_HARDWARE, "hardware_tuple")
    _limits_tuple = _tuple_of(S.N_LIMITS, "limits_tuple")
    _plan_tuple = _tuple_of(N_PLAN, "plan_tuple")
    ROW_BLOCK = 4096  # rows grouped together (as native's ROW_BLOCK and MEMO_SLOTS)
    MEMO_SLOTS = 2 * ROW_BLOCK
    PLAN_LO = np.array(S.PLAN_LO)
    PLAN_HI = np.array(S.PLAN_HI)
    PLAN_INTEGRAL = np.array(S.PLAN_INTEGRAL)

    @njit(inline="always")
    def _decode(values, offsets, lengths, index, digits, p):
        # mixed radix, last column fastest: once per block (int64 division is slow)
        rem = index
        for c in range(N_PLAN - 1, -1, -1):
            n = lengths[c]
            digits[c] = rem % n
            rem //= n
            p[c] = values[offsets[c] + digits[c]]

    @njit(inline="always")
    def _advance(values, offsets, lengths, digits, p):
        # odometer step to the next linear index; returns the lowest column that changed
        # (>= CACHE_FROM means the per-layer costs of the previous plan still hold)
        for c in range(N_PLAN - 1, -1, -1):
            digits[c] += 1
            if digits[c] < lengths[c]:
                p[c] = values[offsets[c] + digits[c]]
                return c
            digits[c] = 0
            p[c] = values[offsets[c]]
        return 0

    @njit(inline="always")
    def _reuse_level(changed):
        # which cached values the previous plan's still-equal leading columns allow
        if changed >= CACHE3_FROM:
            return 3
        if changed >= CACHE2_FROM:
            return 2
        if changed >= CACHE_FROM:
            return 1
        return 0

    @njit(inline="always")
    def _flush(tmp, out, lo, count):
        # block outputs leave as contiguous runs, one per column (no strided stores), in
        # streaming stores: written once and not read back here, so the cache lines are
        # not fetched first (a read for ownership would double the memory traffic)
        for j in range(N_OUT):
            for i in range(count):
                _store_streaming(out, j, lo + i, tmp[i, j])
        _store_fence()

    # Each kernel is a prange over blocks of BLOCK plans calling a plain njit block
    # function: evaluate_plan is inlined there, not into the parfor body, which Numba's
    # parallel passes would analyse again at great compile-time cost.

    @njit(error_model="numpy", cache=True)
    def _evaluate_block(m, h, k, values, offsets, lengths, first, count, out, codes, lo):
        # plans [first, first + count) of the packed space into out[:, lo:] / codes[lo:]
        # (odometer, stage reuse)
        tmp = np.empty((STAGE, N_OUT))
        p = np.empty(N_PLAN)
        digits = np.empty(N_PLAN, dtype=np.int64)
        mt, ht, kt = _model_tuple(m), _hardware_tuple(h), _limits_tuple(k)
        stages = _no_stages()
        _decode(values, offsets, lengths, first, digits, p)
        reuse = 0
        for s in range(0, count, STAGE):
            staged = min(STAGE, count - s)
            for r in range(staged):
                i = s + r
                if i > 0:
                    reuse = _reuse_level(_advance(values, offsets, lengths, digits, p))
                row = _carray(_row_pointer(tmp, r), N_OUT)
                code, stages = _evaluate_plan_inlined(mt, ht, kt, _plan_tuple(p), row,
                                                      stages, reuse)
                codes[lo + i] = code
            _flush(tmp, out, lo + s, staged)

    @njit(inline="always")
    def _values_valid(p, first):
        # every value of columns [first, N_PLAN) one a plan may hold (schema.plan_bounds;
        # native: values_valid)
        for c in range(first, N_PLAN):
            v = p[c]
            if not (v >= PLAN_LO[c] and v <= PLAN_HI[c]):
                return False
            if PLAN_INTEGRAL[c] and v != np.floor(v):
                return False
        return True

    @njit(inline="always")
    def _same_columns(bits, i, j, lo, hi):
        # rows i and j hold the same bits in columns [lo, hi)
        for c in range(lo, hi):
            if bits[i, c] != bits[j, c]:
                return False
        return True

    @njit(inline="always")
    def _find_layer(bits, r, slots, keys, used):
        # the memo entry of row r's layer shape (columns before CACHE_FROM, bit for bit)
        # and whether it is new (native: LayerMemo.find)
        h = np.uint64(0)
        for c in range(CACHE_FROM):
            h = h * np.uint64(0x100000001B3) + bits[r, c]
        h = (h ^ (h >> np.uint64(31))) * np.uint64(0xBF58476D1CE4E5B9)
        s = np.int64((h >> np.uint64(40)) & np.uint64(MEMO_SLOTS - 1))
        while True:
            e = slots[s] - 1
            if e < 0:
                slots[s] = used + 1
                keys[used] = r
                return used, True
            if _same_columns(bits, r, keys[e], 0, CACHE_FROM):
                return e, False
            s = (s + 1) & (MEMO_SLOTS - 1)

    @njit(error_model="numpy", cache=True)
    def _rows_block(m, h, k, plans, lo, count, out, codes, tmp):
        # rows [lo, lo + count) of plans, grouped as the native rows_block does: a row with
        # a layer shape met earlier in the block reuses its layer stage (a memo), a row with
        # the previous row's layer shape reuses its stages as far as the two agree; rows
        # read in order, outputs staged and flushed in streaming stores. Returns the first
        # invalid row, or -1.
        bits = plans[lo:lo + count].view(np.uint64)
        mt, ht, kt = _model_tuple(m), _hardware_tuple(h), _limits_tuple(k)
        slots = np.zeros(MEMO_SLOTS, dtype=np.int64)
        keys = np.empty(count, dtype=np.int64)
        stages = _no_stages()
        memo = List()
        used = 0
        for s in range(0, count, STAGE):
            staged = min(STAGE, count - s)
            for j in range(staged):
                r = s + j
                p = plans[lo + r]
                fresh = False
                e = 0
                if r > 0 and _same_columns(bits, r, r - 1, 0, CACHE_FROM):
                    reuse = 1
                    if _same_columns(bits, r, r - 1, CACHE_FROM, CACHE2_FROM):
                        reuse = 3 if _same_columns(bits, r, r - 1, CACHE2_FROM,
                                                   CACHE3_FROM) else 2
                    if not _values_valid(p, CACHE_FROM):
                        return lo + r
                else:
                    e, fresh = _find_layer(bits, r, slots, keys, used)
                    if not _values_valid(p, 0 if fresh else CACHE_FROM):
                        return lo + r
                    reuse = 0
                    if fresh:
                        used += 1
                    else:
                        stages = _Stages(memo[e], stages.split, stages.batch)
                        reuse = 1
                row = _carray(_row_pointer(tmp, j), N_OUT)
                code, stages = _evaluate_plan_inlined(mt, ht, kt, _plan_tuple(p), row,
                                                      stages, reuse)
                codes[lo + r] = code
                if fresh:
                    memo.append(stages.layer)
            _flush(tmp, out, lo + s, staged)
        return -1

    @njit(error_model="numpy", cache=True)
    def _sweep_block(m, h, k, values, offsets, lengths, first, count, cols, out, index,
                     by_bit):
        # the feasible plans of [first, first + count): their indices into index and
        # output columns `cols` into out (block-sized); returns how many. As the native
        # sweep_block: a call without outputs decides feasibility; only a feasible plan
        # is evaluated again, reusing every stage (level 3: the same plan).
        mt, ht, kt = _model_tuple(m), _hardware_tuple(h), _limits_tuple(k)
        none = np.empty(0)
        col = np.empty(N_OUT)
        p = np.empty(N_PLAN)
        digits = np.empty(N_PLAN, dtype=np.int64)
        stages = _no_stages()
        found = 0
        _decode(values, offsets, lengths, first, digits, p)
        reuse = 0
        for i in range(count):
            if i > 0:
                reuse = _reuse_level(_advance(values, offsets, lengths, digits, p))
            pt = _plan_tuple(p)
            code, stages = _evaluate_plan_inlined(mt, ht, kt, pt, none, stages, reuse)
            if code == 0:
                if cols.shape[0] > 0:
                    _evaluate_plan(mt, ht, kt, pt, col, stages, 3)
                    for c in range(cols.shape[0]):
                        out[c, found] = col[cols[c]]
                index[found] = first + i
                found += 1
            else:
                # the set bits only (native: __builtin_ctzll), not every violation's bit
                bits = np.int64(code)
                while bits != 0:
                    by_bit[_ctz(bits)] += 1
                    bits &= bits - 1
        return found

    @njit(parallel=True, error_model="numpy", cache=True)
    def _rows_kernel(m, h, k, plans, out, codes):
        n = plans.shape[0]
        n_blocks = (n + ROW_BLOCK - 1) // ROW_BLOCK
        invalid = np.full(n_blocks, -1, dtype=np.int64)
        for b in prange(n_blocks):
            lo = b * ROW_BLOCK
            invalid[b] = _rows_block(m, h, k, plans, lo, min(n, lo + ROW_BLOCK) - lo, out,
                                     codes, np.empty((STAGE, N_OUT)))
        for b in range(n_blocks):
            if invalid[b] >= 0:
                return invalid[b]
        return -1

    @njit(parallel=True, error_model="numpy", cache=True)
    def _space_kernel(m, h, k, values, offsets, lengths, start, stop, out, codes):
        n = stop - start
        n_blocks = (n + BLOCK - 1) // BLOCK
        for b in prange(n_blocks):
            lo = b * BLOCK
            _evaluate_block(m, h, k, values, offsets, lengths, start + lo,
                            min(n, lo + BLOCK) - lo, out, codes, lo)

    @njit(parallel=True, error_model="numpy", cache=True)
    def _sweep_kernel(m, h, k, values, offsets, lengths, start, stop, cols, out, index):
        n = stop - start
        n_blocks = (n + BLOCK - 1) // BLOCK
        found = np.zeros(n_blocks, dtype=np.int64)
        by_bit = np.zeros((n_blocks, N_BITS), dtype=np.int64)
        for b in prange(n_blocks):
            lo = b * BLOCK
            # through block-local buffers: the block function writing into the shared
            # out/index itself ran 3x slower on two threads than on one (measured)
            o = np.empty((cols.shape[0], BLOCK))
            ix = np.empty(BLOCK, dtype=np.int64)
            f = _sweep_block(m, h, k, values, offsets, lengths, start + lo,
                             min(n, lo + BLOCK) - lo, cols, o, ix, by_bit[b])
            for c in range(cols.shape[0]):
                for j in range(f):
                    out[c, lo + j] = o[c, j]
            for j in range(f):
                index[lo + j] = ix[j]
            found[b] = f
        # each block wrote its plans at its own offset: close the gaps, in order
        total = 0
        for b in range(n_blocks):
            lo = b * BLOCK
            f = found[b]
            if lo != total:
                for c in range(cols.shape[0]):
                    for j in range(f):
                        out[c, total + j] = out[c, lo + j]
                for j in range(f):
                    index[total + j] = index[lo + j]
            total += f
        return total, by_bit.sum(axis=0)

    @njit(parallel=True, error_model="numpy", cache=True)
    def _count_kernel(m, h, k, values, offsets, lengths, start, stop):
        n = stop - start
        n_blocks = (n + BLOCK - 1) // BLOCK
        found = np.zeros(n_blocks, dtype=np.int64)
        by_bit = np.zeros((n_blocks, N_BITS), dtype=np.int64)
        no_cols = np.empty(0, dtype=np.int64)
        for b in prange(n_blocks):
            lo = b * BLOCK
            out = np.empty((0, BLOCK))
            index = np.empty(BLOCK, dtype=np.int64)
            found[b] = _sweep_block(m, h, k, values, offsets, lengths, start + lo,
                                    min(n, lo + BLOCK) - lo, no_cols, out, index, by_bit[b])
        return found.sum(), by_bit.sum(axis=0)

    numba.config.CACHE_DIR = _previous_cache_dir


def _quiet(fn):
    """fn with Numba's pedantic IR-scope warnings silenced while it runs (and compiles):
    a global filter does not survive callers that reset warning filters, as pytest does."""
    import functools

    @functools.wraps(fn)
    def call(*args, **kw):
        with warnings.catch_warnings():
            if numba is not None:
                warnings.simplefilter("ignore", NumbaIRAssumptionWarning)
            return fn(*args, **kw)

    return call


@_quiet
def evaluate_rows(m, h, k, plans, out, codes) -> int:
    """Rows of plans into out/codes; the first row holding a value no plan may hold, or -1
    (then the outputs are not all written)."""
    return int(_rows_kernel(m, h, k, plans, out, codes))


@_quiet
def evaluate_space(m, h, k, values, offsets, lengths, start, stop, out, codes) -> None:
    _space_kernel(m, h, k, values, offsets, lengths, np.int64(start), np.int64(stop), out, codes)


@_quiet
def sweep_space(m, h, k, values, offsets, lengths, start, stop, cols, out, index):
    """The feasible plans of [start, stop) compacted, in index order, into out[:, :found]
    (output columns ``cols``) and index[:found]; returns (found, by_bit)."""
    found, by_bit = _sweep_kernel(m, h, k, values, offsets, lengths, np.int64(start),
                                  np.int64(stop), cols, out, index)
    return int(found), by_bit


@_quiet
def count_space(m, h, k, values, offsets, lengths, start, stop):
    feasible, by_bit = _count_kernel(m, h, k, values, offsets, lengths, np.int64(start),
                                     np.int64(stop))
    return int(feasible), by_bit
