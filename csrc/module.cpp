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

// Rows are evaluated in groups, whatever order they come in: within a block of ROW_BLOCK
// rows, a row whose layer-shape columns (those before CACHE_FROM) equal an earlier row's
// reuses the layer stage computed for that row (a memo keyed by those columns, bit for
// bit), and a row with the previous row's layer shape reuses its stages as far as the two
// agree (up to every stage), as consecutive plans of a space do. Rows are read once and in order, and outputs leave in
// order in streaming stores: the memory traffic of an in-order walk. (Tried and measured
// slower on the 2-core machine: a stable radix sort of each block by a key of its cache
// columns with the outputs scattered back, 0.43x the in-order rate against 0.5x; a full
// lexicographic sort, 0.18x; a second memo for the split stage, which saves less than it
// costs.)
constexpr std::int64_t ROW_BLOCK = 4096;
constexpr std::int64_t MEMO_SLOTS = 2 * ROW_BLOCK;  // open addressing, at most half full

// Whether plans p and q hold the same bits in columns [FROM, TO).
template <int FROM, int TO>
inline bool same_columns(const double* p, const double* q) {
    int c = FROM;
#if defined(__SSE4_1__)
    for (; c + 2 <= TO; c += 2) {
        const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + c));
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + c));
        if (_mm_movemask_epi8(_mm_cmpeq_epi64(a, b)) != 0xFFFF) {
            return false;
        }
    }
#endif
    for (; c < TO; ++c) {
        if (std::memcmp(p + c, q + c, sizeof(double)) != 0) {
            return false;
        }
    }
    return true;
}

// Whether every value of row p in columns [FROM, N_PLAN) is one a plan may hold
// (schema.h PLAN_LO/PLAN_HI/PLAN_INTEGRAL, the test of first_invalid_column), two
// columns per instruction where there is SSE4.1.
template <int FROM>
inline bool values_valid(const double* p) {
    int c = FROM;
#if defined(__SSE4_1__)
    __m128d ok = _mm_castsi128_pd(_mm_set1_epi32(-1));
    for (; c + 2 <= N_PLAN; c += 2) {
        const __m128d v = _mm_loadu_pd(p + c);
        const __m128d lo = _mm_set_pd(pyengine::PLAN_LO[c + 1], pyengine::PLAN_LO[c]);
        const __m128d hi = _mm_set_pd(pyengine::PLAN_HI[c + 1], pyengine::PLAN_HI[c]);
        // the fractional part allowed: none for counts and codes, any for the others
        const __m128d frac = _mm_set_pd(pyengine::PLAN_INTEGRAL[c + 1] ? 0.0 : HUGE_VAL,
                                        pyengine::PLAN_INTEGRAL[c] ? 0.0 : HUGE_VAL);
        const __m128d f = _mm_sub_pd(v, _mm_floor_pd(v));
        ok = _mm_and_pd(ok, _mm_and_pd(_mm_and_pd(_mm_cmpge_pd(v, lo), _mm_cmple_pd(v, hi)),
                                       _mm_cmple_pd(f, frac)));
    }
    if (_mm_movemask_pd(ok) != 3) {
        return false;
    }
#endif
    for (; c < N_PLAN; ++c) {
        const double v = p[c];
        if (!(v >= pyengine::PLAN_LO[c] && v <= pyengine::PLAN_HI[c])
            || (pyengine::PLAN_INTEGRAL[c] && v != std::floor(v))) {
            return false;
        }
    }
    return true;
}

// The layer stages of the distinct layer shapes (columns before CACHE_FROM, bit for bit)
// met in a block.
struct LayerMemo {
    std::vector<std::int32_t> slots;  // entry + 1; 0 = empty
    std::vector<const double*> keys;  // the first row with each layer shape
    std::vector<pyengine::LayerStage> stages;
    std::int32_t used = 0;

    LayerMemo() : slots(MEMO_SLOTS), keys(ROW_BLOCK), stages(ROW_BLOCK) {}

    void clear() {
        std::fill(slots.begin(), slots.end(), 0);
        used = 0;
    }

    // The entry of row p's layer shape, and whether it was just made (its stage not
    // computed yet). The hash (multiply-add over the columns' bits, mixed) only spreads
    // the slots: entries are told apart by their columns.
    std::int32_t find(const double* p, bool& fresh) {
        std::uint64_t h = 0;
        for (int c = 0; c < pyengine::CACHE_FROM; ++c) {
            std::uint64_t x;
            std::memcpy(&x, p + c, sizeof x);
            h = h * 0x100000001B3ULL + x;
        }
        h = (h ^ (h >> 31)) * 0xBF58476D1CE4E5B9ULL;
        for (std::uint64_t s = (h >> 40) & (MEMO_SLOTS - 1);; s = (s + 1) & (MEMO_SLOTS - 1)) {
            const std::int32_t e = slots[s] - 1;
            if (e < 0) {
                slots[s] = used + 1;
                keys[static_cast<size_t>(used)] = p;
                fresh = true;
                return used++;
            }
            if (same_columns<0, pyengine::CACHE_FROM>(p, keys[static_cast<size_t>(e)])) {
                fresh = false;
                return e;
            }
        }
    }
};

// Rows [lo, hi) of plans into out/codes, grouped (see ROW_BLOCK). Returns the index of
// the first row holding a value no plan may hold, or -1 (rows after it are not evaluated).
__attribute__((flatten)) std::int64_t rows_block(const Inputs& in, const double* plans,
                                                 std::int64_t lo, std::int64_t hi, double* out,
                                                 std::int64_t* codes, std::int64_t n) {
    static thread_local LayerMemo layers;
    layers.clear();
    double tmp[CHUNK][N_OUTPUTS];
    pyengine::Stages stages = pyengine::no_stages();
    for (std::int64_t i = lo; i < hi; i += CHUNK) {
        const std::int64_t count = std::min(CHUNK, hi - i);
        for (std::int64_t r = 0; r < count; ++r) {
            const double* p = plans + (i + r) * N_PLAN;
            int reuse;
            bool fresh = false;
            std::int32_t e = 0;
            if (i + r > lo && same_columns<0, pyengine::CACHE_FROM>(p, p - N_PLAN)) {
                // the previous row's layer shape (validated with it): its stages hold as
                // far as the rows agree
                const double* q = p - N_PLAN;
                reuse = !same_columns<pyengine::CACHE_FROM, pyengine::CACHE2_FROM>(p, q) ? 1
                        : same_columns<pyengine::CACHE2_FROM, pyengine::CACHE3_FROM>(p, q) ? 3
                        : 2;
                if (!values_valid<pyengine::CACHE_FROM>(p)) {
                    return i + r;
                }
            } else {
                e = layers.find(p, fresh);
                // a known layer shape has its columns validated with its first row
                if (fresh ? !values_valid<0>(p) : !values_valid<pyengine::CACHE_FROM>(p)) {
                    return i + r;
                }
                reuse = 0;
                if (!fresh) {
                    stages.layer = layers.stages[static_cast<size_t>(e)];
                    reuse = 1;
                }
            }
            codes[i + r] = pyengine::evaluate_plan(in.m, in.h, in.k, p, tmp[r], stages, reuse);
            if (fresh) {
                layers.stages[static_cast<size_t>(e)] = stages.layer;
            }
        }
        flush(tmp, count, out, n, i);
    }
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
