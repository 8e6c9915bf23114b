// pybind11 bindings of the native backend: pyengine._native.
//
// The formulas live in cost_model.hpp (the C++ twin of pyengine/reference.py); this file
// only checks arrays, releases the GIL and runs OpenMP loops over blocks of plans.
// Arrays are used in place (zero-copy): a wrong dtype, shape, layout or a read-only
// output raises ValueError naming the argument instead of silently converting.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__SSE4_1__)
#include <smmintrin.h>
#endif
#include <cmath>

#include "cost_model.hpp"
#include "schema.h"

#ifndef PYENGINE_SOURCE_HASH
#define PYENGINE_SOURCE_HASH ""  // setup.py defines it: a digest of csrc/*.cpp, *.hpp, *.h
#endif

namespace py = pybind11;

namespace {

using pyengine::N_HARDWARE;
using pyengine::N_LIMITS;
using pyengine::N_MODEL;
using pyengine::N_OUTPUTS;
using pyengine::N_PLAN;

// Plans per OpenMP task: large enough that a parallel region is long (threads collapse on
// tiny regions when the other core is busy), small enough to balance a few threads.
constexpr std::int64_t BLOCK = 4096;
constexpr int MAX_BITS = 64;

std::string shape_text(const std::vector<py::ssize_t>& shape) {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); ++i) {
        s += shape[i] < 0 ? std::string("n") : std::to_string(shape[i]);
        if (i + 1 < shape.size() || shape.size() == 1) {
            s += ",";
        }
        if (i + 1 < shape.size()) {
            s += " ";
        }
    }
    return s + ")";
}

// The data pointer of `obj` after checking it is a C-contiguous numpy array of T with
// the given shape (-1: any length); writable arrays are required for outputs.
template <typename T>
T* array_ptr(const py::handle& obj, const char* name, const std::vector<py::ssize_t>& shape,
             bool writable) {
    const char* dtype_name = std::is_same<T, double>::value ? "float64" : "int64";
    if (!py::isinstance<py::array>(obj)) {
        throw py::value_error(std::string("argument '") + name + "' must be a numpy " +
                              dtype_name + " array, got " +
                              std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
    }
    auto arr = py::reinterpret_borrow<py::array>(obj);
    if (!py::isinstance<py::array_t<T>>(arr)) {
        throw py::value_error(std::string("argument '") + name + "' must have dtype " +
                              dtype_name + ", got " + std::string(py::str(arr.dtype())));
    }
    bool ok = arr.ndim() == static_cast<py::ssize_t>(shape.size());
    for (size_t i = 0; ok && i < shape.size(); ++i) {
        ok = shape[i] < 0 || arr.shape(static_cast<py::ssize_t>(i)) == shape[i];
    }
    if (!ok) {
        std::vector<py::ssize_t> got(arr.shape(), arr.shape() + arr.ndim());
        throw py::value_error(std::string("argument '") + name + "' must have shape " +
                              shape_text(shape) + ", got " + shape_text(got));
    }
    if (!(arr.flags() & py::array::c_style)) {
        throw py::value_error(std::string("argument '") + name + "' must be C-contiguous");
    }
    if (writable) {
        if (!arr.writeable()) {
            throw py::value_error(std::string("argument '") + name + "' must be writable");
        }
        return static_cast<T*>(arr.mutable_data());
    }
    return const_cast<T*>(static_cast<const T*>(arr.data()));
}

struct Inputs {
    const double* m;
    const double* h;
    const double* k;
};

Inputs inputs(const py::handle& m, const py::handle& h, const py::handle& k) {
    return Inputs{array_ptr<double>(m, "m", {N_MODEL}, false),
                  array_ptr<double>(h, "h", {N_HARDWARE}, false),
                  array_ptr<double>(k, "k", {N_LIMITS}, false)};
}

// A packed Space (pyengine.space.PackedSpace): every plan column as an axis.
struct Axes {
    const double* values;
    const std::int64_t* offsets;
    const std::int64_t* lengths;
};

Axes axes(const py::handle& values, const py::handle& offsets, const py::handle& lengths,
          std::int64_t start, std::int64_t stop) {
    const double* v = array_ptr<double>(values, "values", {-1}, false);
    const py::ssize_t n_values = py::reinterpret_borrow<py::array>(values).shape(0);
    const std::int64_t* off = array_ptr<std::int64_t>(offsets, "offsets", {N_PLAN}, false);
    const std::int64_t* len = array_ptr<std::int64_t>(lengths, "lengths", {N_PLAN}, false);
    std::int64_t size = 1;
    bool overflow = false;
    for (int c = 0; c < N_PLAN; ++c) {
        if (len[c] < 1 || off[c] < 0 || off[c] > n_values - len[c]) {
            throw py::value_error("axis " + std::to_string(c) + " (offset " +
                                  std::to_string(off[c]) + ", length " +
                                  std::to_string(len[c]) + ") is outside 'values' (size " +
                                  std::to_string(n_values) + ")");
        }
        overflow = overflow || __builtin_mul_overflow(size, len[c], &size);
    }
    if (start < 0 || stop < start || (!overflow && stop > size)) {
        throw py::value_error("start, stop = " + std::to_string(start) + ", " +
                              std::to_string(stop) + " must satisfy 0 <= start <= stop <= " +
                              (overflow ? std::string("2**63") : std::to_string(size)));
    }
    return Axes{v, off, len};
}

// Linear index -> plan columns, last column fastest (reference_loop._decode).
inline void decode(const Axes& a, std::int64_t index, std::int64_t* digits, double* p) {
    std::int64_t rem = index;
    for (int c = N_PLAN - 1; c >= 0; --c) {
        const std::int64_t n = a.lengths[c];
        digits[c] = rem % n;
        rem /= n;
        p[c] = a.values[a.offsets[c] + digits[c]];
    }
}

// Which cached values evaluate_plan may reuse after the odometer changed column `changed`.
inline int reuse_level(int changed) {
    if (changed >= pyengine::CACHE3_FROM) {
        return 3;
    }
    if (changed >= pyengine::CACHE2_FROM) {
        return 2;
    }
    return changed >= pyengine::CACHE_FROM ? 1 : 0;
}

// Odometer step to index + 1: the plan decode() gives, without integer division.
// Returns the lowest column that changed: >= CACHE_FROM means the previous plan's
// per-layer costs still hold (evaluate_plan's `reuse`).
inline int advance(const Axes& a, std::int64_t* digits, double* p) {
    for (int c = N_PLAN - 1; c >= 0; --c) {
        if (++digits[c] < a.lengths[c]) {
            p[c] = a.values[a.offsets[c] + digits[c]];
            return c;
        }
        digits[c] = 0;
        p[c] = a.values[a.offsets[c]];
    }
    return 0;
}

// Outputs of CHUNK plans are staged (64 KiB, cache-resident) and leave as contiguous
// runs, one per output column, instead of N_OUTPUTS strided stores per plan.
constexpr std::int64_t CHUNK = 256;

inline void flush(const double (*tmp)[N_OUTPUTS], std::int64_t count, double* out,
                  std::int64_t n, std::int64_t at) {
    for (int j = 0; j < N_OUTPUTS; ++j) {
        double* dst = out + j * n + at;
#if defined(__SSE2__)
        // streaming stores: the block is written once and not read back here, so the
        // cache lines are not fetched first (a read for ownership doubles the traffic)
        for (std::int64_t r = 0; r < count; ++r) {
            long long bits;
            std::memcpy(&bits, &tmp[r][j], sizeof bits);
            _mm_stream_si64(reinterpret_cast<long long*>(dst + r), bits);
        }
#else
        for (std::int64_t r = 0; r < count; ++r) {
            dst[r] = tmp[r][j];
        }
#endif
    }
#if defined(__SSE2__)
    _mm_sfence();  // order the streaming stores before the block is handed back
#endif
}

// The first column in which two plans differ, bit for bit (N_PLAN: none).
inline int first_difference(const double* p, const double* q) {
    int c = 0;
    while (c < N_PLAN && std::memcmp(p + c, q + c, sizeof(double)) == 0) {
        ++c;
    }
    return c;
}

// Rows are evaluated in groups: a block of ROW_BLOCK rows is sorted (stably) on a key of
// its cache-level columns, so that rows sharing leading columns follow each other and
// reuse the stages computed for the first of them, whatever order the caller's rows
// came in. The block's rows (ROW_BLOCK x 160 B) and its staged outputs (ROW_BLOCK x
// N_OUTPUTS x 8 B) stay in L2 while it is evaluated; outputs then leave in streaming
// stores at the callers' positions, as in_order blocks do.
constexpr std::int64_t ROW_BLOCK = 4096;
constexpr int INDEX_BITS = 12;  // a row's place in its block, in the key's low bits
constexpr int KEY_BITS = 40;    // 20 bits of the level-1 hash, 8 of the level-2 hash, index
constexpr int RADIX_BITS = 7;   // 4 passes over the 28 hash bits
static_assert(ROW_BLOCK <= (std::int64_t{1} << INDEX_BITS), "row index must fit the key");
static_assert((KEY_BITS - INDEX_BITS) % (2 * RADIX_BITS) == 0, "an even number of passes");

// Plan columns [from, to) hashed (multiply-xor over their bits; only equal columns must
// give equal hashes, nothing else depends on it).
inline std::uint64_t hash_columns(const double* p, int from, int to) {
    std::uint64_t h = 0x9E3779B97F4A7C15ULL;
    for (int c = from; c < to; ++c) {
        std::uint64_t x;
        std::memcpy(&x, p + c, sizeof x);
        h = (h ^ x) * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 29;
    }
    return h;
}

// The sort key of a row: 20 bits of the level-1 columns' hash, then 8 of the level-2
// columns', then the row's place in its block. Equal leading columns give equal leading
// key bits, so the sort puts them together.
inline std::uint64_t group_key(const double* p, std::uint64_t row) {
    const std::uint64_t h1 = hash_columns(p, 0, pyengine::CACHE_FROM) >> 44;
    const std::uint64_t h2 = hash_columns(p, pyengine::CACHE_FROM, pyengine::CACHE2_FROM) >> 56;
    return (h1 << (INDEX_BITS + 8)) | (h2 << INDEX_BITS) | row;
}

// LSD radix sort of keys on their hash bits, RADIX_BITS a pass (an even number of passes,
// so the result is back in `keys`): stable, rows of one group keep their order.
void sort_keys(std::uint64_t* keys, std::uint64_t* spare, std::int64_t count) {
    constexpr int buckets = 1 << RADIX_BITS;
    for (int shift = INDEX_BITS; shift < KEY_BITS; shift += RADIX_BITS) {
        std::int64_t start[buckets + 1] = {0};
        for (std::int64_t i = 0; i < count; ++i) {
            ++start[((keys[i] >> shift) & (buckets - 1)) + 1];
        }
        for (int d = 0; d < buckets; ++d) {
            start[d + 1] += start[d];
        }
        for (std::int64_t i = 0; i < count; ++i) {
            spare[start[(keys[i] >> shift) & (buckets - 1)]++] = keys[i];
        }
        std::swap(keys, spare);
    }
}

// Whether every value of row p is one a plan may hold (schema.h first_invalid_column, two
// columns per SSE instruction where there is SSE4.1).
inline bool row_valid(const double* p) {
#if defined(__SSE4_1__)
    static const struct Bounds {
        alignas(16) double lo[N_PLAN + 1];
        alignas(16) double hi[N_PLAN + 1];
        alignas(16) double frac[N_PLAN + 1];  // largest fractional part allowed: 0 or inf
        Bounds() {
            for (int c = 0; c <= N_PLAN; ++c) {
                lo[c] = -HUGE_VAL;
                hi[c] = HUGE_VAL;
                frac[c] = HUGE_VAL;
            }
            for (int c = 0; c < N_PLAN; ++c) {
                lo[c] = pyengine::PLAN_LO[c];
                hi[c] = pyengine::PLAN_HI[c];
                frac[c] = pyengine::PLAN_INTEGRAL[c] ? 0.0 : HUGE_VAL;
            }
        }
    } b;
    __m128d ok = _mm_castsi128_pd(_mm_set1_epi32(-1));
    int c = 0;
    for (; c + 2 <= N_PLAN; c += 2) {
        const __m128d v = _mm_loadu_pd(p + c);
        const __m128d f = _mm_sub_pd(v, _mm_round_pd(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC));
        ok = _mm_and_pd(ok, _mm_cmpge_pd(v, _mm_load_pd(b.lo + c)));
        ok = _mm_and_pd(ok, _mm_cmple_pd(v, _mm_load_pd(b.hi + c)));
        ok = _mm_and_pd(ok, _mm_cmple_pd(f, _mm_load_pd(b.frac + c)));
    }
    return _mm_movemask_pd(ok) == 3 && (c == N_PLAN || pyengine::first_invalid_column(p) < 0);
#else
    return pyengine::first_invalid_column(p) < 0;
#endif
}

// Rows [lo, hi) of plans into out/codes, grouped (see ROW_BLOCK). Returns the index of
// the first row holding a value no plan may hold, or -1; a block with such a row is not
// evaluated.
__attribute__((flatten)) std::int64_t rows_block(const Inputs& in, const double* plans,
                                                 std::int64_t lo, std::int64_t hi, double* out,
                                                 std::int64_t* codes, std::int64_t n) {
    static thread_local std::vector<std::uint64_t> keys(ROW_BLOCK), spare(ROW_BLOCK);
    static thread_local std::vector<double> staged(ROW_BLOCK * N_OUTPUTS);
    const std::int64_t count = hi - lo;
    // validate, and count the rows that start a new level-1 group in the caller's order
    std::int64_t starts = 0;
    for (std::int64_t r = 0; r < count; ++r) {
        const double* p = plans + (lo + r) * N_PLAN;
        if (!row_valid(p)) {
            return lo + r;
        }
        starts += r == 0 || first_difference(p, p - N_PLAN) < pyengine::CACHE_FROM;
        keys[static_cast<size_t>(r)] = static_cast<std::uint64_t>(r);
    }
    // rows already grouped (a space's order, a sorted table) are evaluated as they come;
    // others are sorted by group (the block's rows are still in L2)
    if (starts * 16 > count) {
        for (std::int64_t r = 0; r < count; ++r) {
            keys[static_cast<size_t>(r)] = group_key(plans + (lo + r) * N_PLAN,
                                                     static_cast<std::uint64_t>(r));
        }
        sort_keys(keys.data(), spare.data(), count);
    }
    auto* tmp = reinterpret_cast<double (*)[N_OUTPUTS]>(staged.data());
    pyengine::Stages stages = pyengine::no_stages();
    const double* prev = nullptr;
    for (std::int64_t i = 0; i < count; ++i) {
        const std::int64_t r = static_cast<std::int64_t>(
            keys[static_cast<size_t>(i)] & ((std::uint64_t{1} << INDEX_BITS) - 1));
        const double* p = plans + (lo + r) * N_PLAN;
        // a row equal (bit for bit) to the previous one in its leading columns shares
        // what depends on them only, as consecutive plans of a space do
        const int reuse = prev != nullptr ? reuse_level(first_difference(p, prev)) : 0;
        codes[lo + r] = pyengine::evaluate_plan(in.m, in.h, in.k, p, tmp[r], stages, reuse);
        prev = p;
    }
    flush(tmp, count, out, n, lo);
    return -1;
}

std::int64_t evaluate_rows(const py::object& m_, const py::object& h_, const py::object& k_,
                           const py::object& plans_, const py::object& out_,
                           const py::object& codes_) {
    const Inputs in = inputs(m_, h_, k_);
    const double* plans = array_ptr<double>(plans_, "plans", {-1, N_PLAN}, false);
    const std::int64_t n = py::reinterpret_borrow<py::array>(plans_).shape(0);
    double* out = array_ptr<double>(out_, "out", {N_OUTPUTS, n}, true);
    std::int64_t* codes = array_ptr<std::int64_t>(codes_, "codes", {n}, true);
    py::gil_scoped_release release;
    const std::int64_t n_blocks = (n + ROW_BLOCK - 1) / ROW_BLOCK;
    std::vector<std::int64_t> invalid(static_cast<size_t>(n_blocks), -1);
#pragma omp parallel for schedule(static)
    for (std::int64_t b = 0; b < n_blocks; ++b) {
        const std::int64_t lo = b * ROW_BLOCK;
        invalid[static_cast<size_t>(b)] = rows_block(in, plans, lo, std::min(n, lo + ROW_BLOCK),
                                                     out, codes, n);
    }
    for (std::int64_t bad : invalid) {
        if (bad >= 0) {
            return bad;
        }
    }
    return -1;
}

// Plans [lo, hi) of the space window starting at `start`, into out/codes (flattened:
// evaluate_plan and everything it calls inlined into one loop).
__attribute__((flatten)) void space_block(const Inputs& in, const Axes& a, std::int64_t start,
                                          std::int64_t lo, std::int64_t hi, double* out,
                                          std::int64_t* codes, std::int64_t n) {
    double tmp[CHUNK][N_OUTPUTS];
    pyengine::Stages stages = pyengine::no_stages();
    double p[N_PLAN];
    std::int64_t digits[N_PLAN];
    decode(a, start + lo, digits, p);
    int reuse = 0;
    for (std::int64_t i = lo; i < hi; i += CHUNK) {
        const std::int64_t count = std::min(CHUNK, hi - i);
        for (std::int64_t r = 0; r < count; ++r) {
            if (i + r > lo) {
                reuse = reuse_level(advance(a, digits, p));
            }
            codes[i + r] = pyengine::evaluate_plan(in.m, in.h, in.k, p, tmp[r], stages, reuse);
        }
        flush(tmp, count, out, n, i);
    }
}

void evaluate_space(const py::object& m_, const py::object& h_, const py::object& k_,
                    const py::object& values_, const py::object& offsets_,
                    const py::object& lengths_, std::int64_t start, std::int64_t stop,
                    const py::object& out_, const py::object& codes_) {
    const Inputs in = inputs(m_, h_, k_);
    const Axes a = axes(values_, offsets_, lengths_, start, stop);
    const std::int64_t n = stop - start;
    double* out = array_ptr<double>(out_, "out", {N_OUTPUTS, n}, true);
    std::int64_t* codes = array_ptr<std::int64_t>(codes_, "codes", {n}, true);
    py::gil_scoped_release release;
    const std::int64_t n_blocks = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static)
    for (std::int64_t b = 0; b < n_blocks; ++b) {
        const std::int64_t lo = b * BLOCK;
        space_block(in, a, start, lo, std::min(n, lo + BLOCK), out, codes, n);
    }
}

// The feasible plans of [first, first + count) of a space: how many, with every violation
// bit counted, and with `keep` their indices and output columns `cols`, written from slot
// `at` on (out: [n_cols, stride]). A first call without outputs decides feasibility and
// stops before the timings; with `keep` a feasible plan is evaluated again, reusing every
// cached value (level 2: the same plan), for the columns. count_space is the instance
// without `keep` (a compile-time choice: the unused second evaluation costs a counting
// loop a fifth more instructions even when skipped at run time).
template <bool keep>
__attribute__((flatten)) std::int64_t sweep_block(
        const Inputs& in, const Axes& a, std::int64_t first, std::int64_t count,
        const std::int64_t* cols, std::int64_t n_cols, double* out, std::int64_t stride,
        std::int64_t* index, std::int64_t at, std::int64_t* by_bit) {
    double col[N_OUTPUTS];
    pyengine::Stages stages = pyengine::no_stages();
    double p[N_PLAN];
    std::int64_t digits[N_PLAN];
    std::int64_t found = 0;
    decode(a, first, digits, p);
    int reuse = 0;
    for (std::int64_t i = 0; i < count; ++i) {
        if (i > 0) {
            reuse = reuse_level(advance(a, digits, p));
        }
        const long long code = pyengine::evaluate_plan(in.m, in.h, in.k, p, nullptr, stages,
                                                       reuse);
        if (code == 0) {
            if constexpr (keep) {
                if (n_cols > 0) {
                    pyengine::evaluate_plan(in.m, in.h, in.k, p, col, stages, 3);
                    for (std::int64_t c = 0; c < n_cols; ++c) {
                        out[c * stride + at + found] = col[cols[c]];
                    }
                }
                index[at + found] = first + i;
            }
            ++found;
        }
        for (unsigned long long bits = static_cast<unsigned long long>(code); bits != 0;
             bits &= bits - 1) {
            ++by_bit[__builtin_ctzll(bits)];
        }
    }
    return found;
}

// block(b, lo, count, by_bit) for every BLOCK-sized block b of n plans (first plan lo), in
// parallel; each thread counts violations into its own by_bit, summed into `by_bit`.
template <typename Block>
void over_blocks(std::int64_t n, std::int64_t* by_bit, const Block& block) {
    const std::int64_t n_blocks = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel
    {
        std::int64_t my_by_bit[MAX_BITS] = {0};
#pragma omp for schedule(static)
        for (std::int64_t b = 0; b < n_blocks; ++b) {
            const std::int64_t lo = b * BLOCK;
            block(b, lo, std::min(n, lo + BLOCK) - lo, my_by_bit);
        }
#pragma omp critical
        {
            for (int bit = 0; bit < MAX_BITS; ++bit) {
                by_bit[bit] += my_by_bit[bit];
            }
        }
    }
}

// (found, counts per violation bit) as count_space and sweep_space return them
py::tuple found_and_counts(std::int64_t found, const std::int64_t* by_bit) {
    py::array_t<std::int64_t> counts(pyengine::N_VIOLATIONS);
    std::copy(by_bit, by_bit + pyengine::N_VIOLATIONS, counts.mutable_data());
    return py::make_tuple(found, counts);
}

py::tuple count_space(const py::object& m_, const py::object& h_, const py::object& k_,
                      const py::object& values_, const py::object& offsets_,
                      const py::object& lengths_, std::int64_t start, std::int64_t stop) {
    const Inputs in = inputs(m_, h_, k_);
    const Axes a = axes(values_, offsets_, lengths_, start, stop);
    static_assert(pyengine::N_VIOLATIONS <= MAX_BITS, "feasibility codes are 64-bit sets");
    const std::int64_t n = stop - start;
    std::vector<std::int64_t> feasible(static_cast<size_t>((n + BLOCK - 1) / BLOCK), 0);
    std::int64_t by_bit[MAX_BITS] = {0};
    {
        py::gil_scoped_release release;
        over_blocks(n, by_bit, [&](std::int64_t b, std::int64_t lo, std::int64_t count,
                                   std::int64_t* my_by_bit) {
            feasible[b] = sweep_block<false>(in, a, start + lo, count, nullptr, 0, nullptr, 0,
                                             nullptr, 0, my_by_bit);
        });
    }
    return found_and_counts(std::accumulate(feasible.begin(), feasible.end(), std::int64_t{0}),
                            by_bit);
}

// sweep_space: the feasible plans of [start, stop), compacted in index order into
// out[:, :found] (the output columns `cols`) and index[:found]; (found, by_bit).
py::tuple sweep_space(const py::object& m_, const py::object& h_, const py::object& k_,
                      const py::object& values_, const py::object& offsets_,
                      const py::object& lengths_, std::int64_t start, std::int64_t stop,
                      const py::object& cols_, const py::object& out_,
                      const py::object& index_) {
    const Inputs in = inputs(m_, h_, k_);
    const Axes a = axes(values_, offsets_, lengths_, start, stop);
    const std::int64_t n = stop - start;
    const std::int64_t* cols = array_ptr<std::int64_t>(cols_, "cols", {-1}, false);
    const std::int64_t n_cols = py::reinterpret_borrow<py::array>(cols_).shape(0);
    for (std::int64_t c = 0; c < n_cols; ++c) {
        if (cols[c] < 0 || cols[c] >= N_OUTPUTS) {
            throw py::value_error("cols[" + std::to_string(c) + "] = " +
                                  std::to_string(cols[c]) + " is not an output column (0 to " +
                                  std::to_string(N_OUTPUTS - 1) + ")");
        }
    }
    double* out = array_ptr<double>(out_, "out", {n_cols, -1}, true);
    const std::int64_t stride = py::reinterpret_borrow<py::array>(out_).shape(1);
    std::int64_t* index = array_ptr<std::int64_t>(index_, "index", {-1}, true);
    const std::int64_t capacity = py::reinterpret_borrow<py::array>(index_).shape(0);
    if (stride < n || capacity < n) {
        throw py::value_error("out and index must hold stop - start = " + std::to_string(n) +
                              " plans, got " + std::to_string(stride) + " and " +
                              std::to_string(capacity));
    }
    const std::int64_t n_blocks = (n + BLOCK - 1) / BLOCK;
    std::vector<std::int64_t> found(static_cast<size_t>(n_blocks), 0);
    std::int64_t by_bit[MAX_BITS] = {0};
    std::int64_t total = 0;
    {
        py::gil_scoped_release release;
        over_blocks(n, by_bit, [&](std::int64_t b, std::int64_t lo, std::int64_t count,
                                   std::int64_t* my_by_bit) {
            found[b] = sweep_block<true>(in, a, start + lo, count, cols, n_cols, out, stride,
                                         index, lo, my_by_bit);
        });
        // each block wrote its plans at its own offset: close the gaps, in order
        for (std::int64_t b = 0; b < n_blocks; ++b) {
            const std::int64_t lo = b * BLOCK;
            if (lo != total && found[b] > 0) {
                for (std::int64_t c = 0; c < n_cols; ++c) {
                    std::memmove(out + c * stride + total, out + c * stride + lo,
                                 sizeof(double) * found[b]);
                }
                std::memmove(index + total, index + lo, sizeof(std::int64_t) * found[b]);
            }
            total += found[b];
        }
    }
    return found_and_counts(total, by_bit);
}

int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

}  // namespace

PYBIND11_MODULE(_native, mod) {
    mod.doc() = "pyengine native cost model (C++, OpenMP): csrc/cost_model.hpp over arrays";
    mod.attr("N_PLAN") = N_PLAN;
    mod.attr("N_OUTPUTS") = N_OUTPUTS;
    mod.attr("N_MODEL") = N_MODEL;
    mod.attr("N_HARDWARE") = N_HARDWARE;
    mod.attr("N_LIMITS") = N_LIMITS;
    mod.attr("CACHE_FROM") = pyengine::CACHE_FROM;
    mod.attr("N_VIOLATIONS") = pyengine::N_VIOLATIONS;
    mod.attr("BLOCK") = BLOCK;
    mod.attr("SOURCE_HASH") = PYENGINE_SOURCE_HASH;
    mod.def("evaluate_rows", &evaluate_rows, py::arg("m"), py::arg("h"), py::arg("k"),
            py::arg("plans"), py::arg("out"), py::arg("codes"),
            "Evaluate plans [n, N_PLAN] into out [N_OUTPUTS, n] and codes [n], in place; "
            "returns the first row holding a value no plan may hold, or -1.");
    mod.def("evaluate_space", &evaluate_space, py::arg("m"), py::arg("h"), py::arg("k"),
            py::arg("values"), py::arg("offsets"), py::arg("lengths"), py::arg("start"),
            py::arg("stop"), py::arg("out"), py::arg("codes"),
            "Evaluate the plans [start, stop) of a packed Space into out and codes.");
    mod.def("count_space", &count_space, py::arg("m"), py::arg("h"), py::arg("k"),
            py::arg("values"), py::arg("offsets"), py::arg("lengths"), py::arg("start"),
            py::arg("stop"),
            "(feasible, by_bit): feasible plans in [start, stop) and, per violation bit, "
            "how many plans violate it.");
    mod.def("sweep_space", &sweep_space, py::arg("m"), py::arg("h"), py::arg("k"),
            py::arg("values"), py::arg("offsets"), py::arg("lengths"), py::arg("start"),
            py::arg("stop"), py::arg("cols"), py::arg("out"), py::arg("index"),
            "(found, by_bit): the feasible plans of [start, stop) compacted in index order "
            "into out[:, :found] (output columns `cols`) and index[:found], and per "
            "violation bit how many plans violate it.");
    mod.def("max_threads", &max_threads, "OpenMP threads a parallel region uses.");
}
