// CUDA kernels of the cupy backend (pyengine/backends/cupy_gpu.py compiles this file with
// NVRTC; tests/test_cuda_compile.py compiles it with nvcc). No formula lives here: each
// kernel reads or decodes plans and calls evaluate_plan from cost_model.hpp, the C++
// twin of pyengine/reference.py shared with the native CPU backend.
//
// Every kernel is a grid-stride loop over 64-bit indices, so a launch of any grid size
// covers billions of plans. A thread keeps the stage results of its previous plan and
// reuses those the plans' equal leading columns allow (evaluate_plan's `reuse`).
// evaluate_space_kernel gives consecutive plans to consecutive threads (coalesced output
// stores); count_space_kernel, which stores nothing, gives each thread a run of `run`
// consecutive plans, stepped by an odometer that also tells which stages still hold.
// Rows: row_keys_kernel checks each row and computes its grouping key, the caller sorts
// by key on the device, and evaluate_rows_kernel gives each thread a run of the sorted
// rows, writing each row's outputs at its own place.
#include "cost_model.hpp"

namespace {

using pyengine::CACHE_FROM;
using pyengine::N_OUTPUTS;
using pyengine::N_PLAN;

constexpr int MAX_BITS = 64;

// Linear index -> plan columns, last column fastest (reference_loop._decode). Once the
// remainder fits in 32 bits the cheaper 32-bit division gives the same digits.
__device__ inline void decode_plan(const double* __restrict__ values,
                                   const long long* __restrict__ offsets,
                                   const long long* __restrict__ lengths, long long index,
                                   double* p) {
    unsigned long long rem = static_cast<unsigned long long>(index);
    for (int c = N_PLAN - 1; c >= 0; --c) {
        const unsigned long long n = static_cast<unsigned long long>(lengths[c]);
        unsigned long long digit;
        if (n == 1ULL) {
            digit = 0ULL;
        } else if ((rem >> 32) == 0ULL && (n >> 32) == 0ULL) {
            const unsigned int r32 = static_cast<unsigned int>(rem);
            const unsigned int n32 = static_cast<unsigned int>(n);
            digit = r32 % n32;
            rem = r32 / n32;
        } else {
            digit = rem % n;
            rem /= n;
        }
        p[c] = values[offsets[c] + static_cast<long long>(digit)];
    }
}

// Linear index -> digits and plan columns (decode_plan keeping the digits for advance_plan).
__device__ inline void decode_digits(const double* __restrict__ values,
                                     const long long* __restrict__ offsets,
                                     const long long* __restrict__ lengths, long long index,
                                     long long* digits, double* p) {
    unsigned long long rem = static_cast<unsigned long long>(index);
    for (int c = N_PLAN - 1; c >= 0; --c) {
        const unsigned long long n = static_cast<unsigned long long>(lengths[c]);
        unsigned long long digit;
        if (n == 1ULL) {
            digit = 0ULL;
        } else if ((rem >> 32) == 0ULL && (n >> 32) == 0ULL) {
            const unsigned int r32 = static_cast<unsigned int>(rem);
            const unsigned int n32 = static_cast<unsigned int>(n);
            digit = r32 % n32;
            rem = r32 / n32;
        } else {
            digit = rem % n;
            rem /= n;
        }
        digits[c] = static_cast<long long>(digit);
        p[c] = values[offsets[c] + digits[c]];
    }
}

// Odometer step to index + 1; returns the lowest column that changed (>= CACHE_FROM:
// the previous plan's per-layer costs still hold).
__device__ inline int advance_plan(const double* __restrict__ values,
                                   const long long* __restrict__ offsets,
                                   const long long* __restrict__ lengths, long long* digits,
                                   double* p) {
    for (int c = N_PLAN - 1; c >= 0; --c) {
        if (++digits[c] < lengths[c]) {
            p[c] = values[offsets[c] + digits[c]];
            return c;
        }
        digits[c] = 0;
        p[c] = values[offsets[c]];
    }
    return 0;
}

// True when plan p equals prev (bit for bit) in the columns before CACHE_FROM; prev
// becomes p. Such a plan may reuse the per-layer costs cached for prev.
__device__ inline bool same_leading_columns(const double* p, double* prev, bool have_prev) {
    bool same = have_prev;
    for (int c = 0; c < CACHE_FROM; ++c) {
        same = same && __double_as_longlong(p[c]) == __double_as_longlong(prev[c]);
        prev[c] = p[c];
    }
    return same;
}


// Which stages a plan may reuse from the previous one after they first differ in column
// `changed` (module.cpp reuse_level).
__device__ inline int reuse_level(int changed) {
    if (changed >= pyengine::CACHE3_FROM) {
        return 3;
    }
    if (changed >= pyengine::CACHE2_FROM) {
        return 2;
    }
    return changed >= CACHE_FROM ? 1 : 0;
}

// Plan columns [from, to) hashed (module.cpp hash_columns).
__device__ inline unsigned long long hash_columns(const double* p, int from, int to) {
    unsigned long long h = 0x9E3779B97F4A7C15ULL;
    for (int c = from; c < to; ++c) {
        h = (h ^ static_cast<unsigned long long>(__double_as_longlong(p[c])))
            * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 29;
    }
    return h;
}

}  // namespace

// The grouping key of each row (the level-1 columns' hash above the level-2 columns'),
// and the first column of each row holding a value no plan may hold (-1: none). The
// caller sorts rows by key so that rows sharing leading columns are evaluated together.
extern "C" __global__ void row_keys_kernel(const double* __restrict__ plans, long long n,
                                           unsigned long long* __restrict__ keys,
                                           int* __restrict__ invalid) {
    const long long stride = static_cast<long long>(blockDim.x) * gridDim.x;
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += stride) {
        const double* p = plans + i * N_PLAN;
        invalid[i] = pyengine::first_invalid_column(p);
        keys[i] = (hash_columns(p, 0, CACHE_FROM) & 0xFFFFFFFFFF000000ULL)
                  | (hash_columns(p, CACHE_FROM, pyengine::CACHE2_FROM) >> 40);
    }
}

// plans [n, N_PLAN] taken in the order `order` (rows grouped by row_keys_kernel's key) ->
// out [N_OUTPUTS, n], codes [n] at each row's own place. Each thread evaluates runs of
// `run` consecutive positions of `order`, reusing stages between them.
extern "C" __global__ void evaluate_rows_kernel(const double* __restrict__ m,
                                                const double* __restrict__ h,
                                                const double* __restrict__ k,
                                                const double* __restrict__ plans,
                                                const long long* __restrict__ order,
                                                long long run, double* __restrict__ out,
                                                long long* __restrict__ codes, long long n) {
    double col[N_OUTPUTS];
    pyengine::Stages stages = pyengine::no_stages();
    const long long n_runs = (n + run - 1) / run;
    const long long stride = static_cast<long long>(blockDim.x) * gridDim.x;
    for (long long r = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
         r < n_runs; r += stride) {
        const long long lo = r * run;
        const long long hi = lo + run < n ? lo + run : n;
        double p[N_PLAN];
        double prev[N_PLAN];
        for (long long i = lo; i < hi; ++i) {
            const long long row = order[i];
            int changed = i > lo ? N_PLAN : 0;  // the first column that differs from prev
            for (int c = N_PLAN - 1; c >= 0; --c) {
                p[c] = plans[row * N_PLAN + c];
                if (i > lo && __double_as_longlong(p[c]) != __double_as_longlong(prev[c])) {
                    changed = c;
                }
            }
            const int reuse = reuse_level(changed);
            codes[row] = pyengine::evaluate_plan(m, h, k, p, col, stages, reuse);
            for (int j = 0; j < N_OUTPUTS; ++j) {
                out[j * n + row] = col[j];
            }
            for (int c = 0; c < N_PLAN; ++c) {
                prev[c] = p[c];
            }
        }
    }
}

// plans [start, stop) of a packed Space -> out [N_OUTPUTS, stop - start], codes
extern "C" __global__ void evaluate_space_kernel(const double* __restrict__ m,
                                                 const double* __restrict__ h,
                                                 const double* __restrict__ k,
                                                 const double* __restrict__ values,
                                                 const long long* __restrict__ offsets,
                                                 const long long* __restrict__ lengths,
                                                 long long start, long long stop,
                                                 double* __restrict__ out,
                                                 long long* __restrict__ codes) {
    const long long n = stop - start;
    double col[N_OUTPUTS];
    pyengine::Stages stages = pyengine::no_stages();
    double prev[CACHE_FROM];
    bool have_prev = false;
    const long long stride = static_cast<long long>(blockDim.x) * gridDim.x;
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += stride) {
        double p[N_PLAN];
        decode_plan(values, offsets, lengths, start + i, p);
        const bool reuse = same_leading_columns(p, prev, have_prev);
        have_prev = true;
        codes[i] = pyengine::evaluate_plan(m, h, k, p, col, stages, reuse);
        for (int j = 0; j < N_OUTPUTS; ++j) {
            out[j * n + i] = col[j];
        }
    }
}

// feasible plans in [start, stop) and, per violation bit, the plans violating it: a
// shared-memory reduction per block, then one atomicAdd per block and counter.
// feasible [1] and by_bit [n_bits] (n_bits <= 64) are zeroed by the caller; run >= 1.
extern "C" __global__ void count_space_kernel(const double* __restrict__ m,
                                              const double* __restrict__ h,
                                              const double* __restrict__ k,
                                              const double* __restrict__ values,
                                              const long long* __restrict__ offsets,
                                              const long long* __restrict__ lengths,
                                              long long start, long long stop, long long run,
                                              int n_bits, unsigned long long* feasible,
                                              unsigned long long* by_bit) {
    __shared__ unsigned long long block_feasible;
    __shared__ unsigned long long block_by_bit[MAX_BITS];
    if (threadIdx.x == 0) {
        block_feasible = 0ULL;
    }
    for (int b = threadIdx.x; b < MAX_BITS; b += blockDim.x) {
        block_by_bit[b] = 0ULL;
    }
    __syncthreads();

    const long long n = stop - start;
    pyengine::Stages stages = pyengine::no_stages();
    unsigned long long my_feasible = 0ULL;
    const long long n_runs = (n + run - 1) / run;
    const long long stride = static_cast<long long>(blockDim.x) * gridDim.x;
    for (long long r = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
         r < n_runs; r += stride) {
        const long long lo = r * run;
        const long long hi = lo + run < n ? lo + run : n;
        double p[N_PLAN];
        long long digits[N_PLAN];
        decode_digits(values, offsets, lengths, start + lo, digits, p);
        bool reuse = false;
        for (long long i = lo; i < hi; ++i) {
            if (i > lo) {
                reuse = advance_plan(values, offsets, lengths, digits, p) >= CACHE_FROM;
            }
            // no outputs: the code only (evaluate_plan skips the timings)
            const long long code = pyengine::evaluate_plan(m, h, k, p, nullptr, stages, reuse);
            if (code == 0) {
                ++my_feasible;
            }
            for (unsigned long long bits = static_cast<unsigned long long>(code);
                 bits != 0ULL; bits &= bits - 1ULL) {
                atomicAdd(&block_by_bit[__ffsll(static_cast<long long>(bits)) - 1], 1ULL);
            }
        }
    }
    // warp sums first, then one shared add per warp
    for (int offset = 16; offset > 0; offset >>= 1) {
        my_feasible += __shfl_down_sync(0xffffffffu, my_feasible, offset);
    }
    if ((threadIdx.x & 31) == 0) {
        atomicAdd(&block_feasible, my_feasible);
    }
    __syncthreads();
    if (threadIdx.x == 0 && block_feasible != 0ULL) {
        atomicAdd(feasible, block_feasible);
    }
    for (int b = threadIdx.x; b < n_bits && b < MAX_BITS; b += blockDim.x) {
        if (block_by_bit[b] != 0ULL) {
            atomicAdd(&by_bit[b], block_by_bit[b]);
        }
    }
}
