// Matrix products behind conv2d and dense, forward and backward: C[M x N] = A[M x K] B[K x N] (+ bias), all
// row-major. B is packed once into zero-padded panels of one SIMD batch of columns, and
// each output row block runs down k in order, so the float and the intrinsic product
// share one loop and differ only in the multiply-accumulate step.
#pragma once

#include "../../config.hpp"

#include "../../core/overflow.hpp"
#include "../../core/rounding.hpp"
#include "../../detail/xsimd_compat.hpp"
#include "../../quantizers/fixed_point.hpp"
#include "geometry.hpp"
#include "im2col.hpp"
#include "parallel.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn::kernels {

using tensorquant::detail::exp2i;
using tensorquant::detail::fixed_kernel;

template <class T>
using aligned_vector = std::vector<T, xsimd::aligned_allocator<T>>;

template <class T, class Arch = xsimd::default_arch>
struct packed_panels
{
    using batch = xsimd::batch<T, Arch>;
    static constexpr std::size_t lanes = batch::size;
    std::size_t k = 0, n = 0, panels = 0;
    aligned_vector<T> data; // panel p, row kk, lane j at ((p k + kk) lanes + j)
    aligned_vector<T> bias; // panels * lanes, zero-padded

    packed_panels() = default;
    // B[kk, j] = get(kk, j); bias_of(j) (j < n) may be absent.
    template <class Get, class Bias>
    packed_panels(std::size_t k_, std::size_t n_, Get get, Bias bias_of)
        : k(k_), n(n_), panels((n_ + lanes - 1) / lanes), data(panels * k_ * lanes, T(0)), bias(panels * lanes, T(0))
    {
        for (std::size_t p = 0; p < panels; ++p)
            for (std::size_t kk = 0; kk < k; ++kk)
                for (std::size_t j = 0; j < lanes && p * lanes + j < n; ++j)
                    data[(p * k + kk) * lanes + j] = get(kk, p * lanes + j);
        for (std::size_t j = 0; j < n; ++j) bias[j] = bias_of(j);
    }
};

// Element (r, k) of A is a[r row_stride + k col_stride]: a row-major matrix, or the
// transpose of one without copying it.
struct strides
{
    std::size_t row, col;
};

// Rows are processed in blocks of MR and columns in pairs of panels, so 2 MR independent
// accumulators hide the latency of the step and each broadcast of a serves two panels;
// every element of C still sums over k in increasing order.
template <std::size_t MR, std::size_t NP, class Mac, class TA, class TC>
void gemm_block(Mac const& mac, TA const* a, strides as, std::size_t r0, std::size_t first_row, std::size_t p,
                packed_panels<typename Mac::value_type, typename Mac::arch> const& b, TC* c)
{
    using B = typename Mac::batch;
    constexpr std::size_t L = B::size;
    const std::size_t K = b.k, N = b.n;
    alignas(64) typename Mac::value_type tmp[L];
    B acc[MR][NP];
    for (std::size_t i = 0; i < MR; ++i)
        for (std::size_t q = 0; q < NP; ++q) acc[i][q] = mac.init(B::load_aligned(&b.bias[(p + q) * L]));
    typename Mac::value_type const* bp[NP];
    for (std::size_t q = 0; q < NP; ++q) bp[q] = &b.data[(p + q) * K * L];
    for (std::size_t kk = 0; kk < K; ++kk) {
        B w[NP];
        for (std::size_t q = 0; q < NP; ++q) w[q] = B::load_aligned(bp[q] + kk * L);
        for (std::size_t i = 0; i < MR; ++i) {
            const TA av = a[(r0 + i) * as.row + kk * as.col];
            for (std::size_t q = 0; q < NP; ++q)
                acc[i][q] = mac.step(acc[i][q], av, w[q], ((first_row + r0 + i) * K + kk) * N + (p + q) * L);
        }
    }
    for (std::size_t i = 0; i < MR; ++i)
        for (std::size_t q = 0; q < NP; ++q) {
            const B out = mac.finish(acc[i][q], B::load_aligned(&b.bias[(p + q) * L]));
            const std::size_t col = (p + q) * L, width = std::min(L, N - col);
            if constexpr (std::is_same_v<TC, typename Mac::value_type>)
                if (width == L) {
                    out.store_unaligned(c + (r0 + i) * N + col);
                    continue;
                }
            out.store_aligned(tmp);
            std::copy(tmp, tmp + width, c + (r0 + i) * N + col);
        }
}

// Panels per block: two where a Mac asks for them (the float step, whose broadcast costs
// as much as the step), one otherwise (a long step gains nothing and would compile twice).
template <class Mac>
constexpr std::size_t panels_per_block() noexcept
{
    if constexpr (requires { Mac::panels_per_block; })
        return Mac::panels_per_block;
    else
        return 1;
}

template <std::size_t MR, class Mac, class TA, class TC>
void gemm_rows(Mac const& mac, TA const* a, strides as, std::size_t rows, std::size_t first_row,
               packed_panels<typename Mac::value_type, typename Mac::arch> const& b, TC* c)
{
    constexpr std::size_t NP = panels_per_block<Mac>();
    for (std::size_t r0 = 0; r0 + MR <= rows; r0 += MR) {
        std::size_t p = 0;
        if constexpr (NP > 1)
            for (; p + NP <= b.panels; p += NP) gemm_block<MR, NP>(mac, a, as, r0, first_row, p, b, c);
        for (; p < b.panels; ++p) gemm_block<MR, 1>(mac, a, as, r0, first_row, p, b, c);
    }
}

template <class Mac, class TA, class TC>
void gemm(Mac const& mac, TA const* a, std::size_t m,
          packed_panels<typename Mac::value_type, typename Mac::arch> const& b, TC* c, std::size_t first_row = 0,
          strides as = {0, 1})
{
    constexpr std::size_t MR = Mac::rows_per_block;
    if (as.row == 0) as.row = b.k; // row-major A
    const std::size_t full = m / MR * MR;
    gemm_rows<MR>(mac, a, as, full, first_row, b, c);
    if (full < m) gemm_rows<1>(mac, a + full * as.row, as, m - full, first_row + full, b, c + full * b.n);
}

// Float: acc = bias + sum_k a b, with fused multiply-adds where the instruction set has
// them (detail::simd::fma). A block of 8 rows by two panels keeps 16 accumulators in
// AVX-512's 32 registers; 6 rows (12) where there are 16 registers.
template <class T, class Arch = xsimd::default_arch>
struct float_mac
{
    static constexpr std::size_t rows_per_block = sizeof(xsimd::batch<T, Arch>) >= 64 ? 8 : 6;
    static constexpr std::size_t panels_per_block = 2;
    using value_type = T;
    using arch = Arch;
    using batch = xsimd::batch<T, Arch>;
    batch init(batch const& bias) const noexcept { return bias; }
    batch step(batch const& acc, T a, batch const& w, std::uint64_t) const noexcept
    {
        return tensorquant::detail::simd::fma(batch(a), w, acc);
    }
    batch finish(batch const& acc, batch const&) const noexcept
    {
        if (!clamped) return acc;
        return xsimd::select(acc < batch(lo), batch(lo), xsimd::select(acc > batch(hi), batch(hi), acc));
    }
    // A fused ReLU or ReLU6 on the way out: x < lo ? lo : x > hi ? hi : x (NaN kept), as
    // the activation's own pass computes it.
    bool clamped = false;
    T lo = 0, hi = 0;
};

// Intrinsic (paper eq. 7): acc = Q(acc + Q(a w)) for k in increasing order, then
// Q(acc + bias). Values are kept in units of 2^-F as doubles: a (in units) times w (a
// value of the format) is exact while 2W <= 53, sums of two words are exact, so the
// only roundings are the format's own. Products of stochastic formats use the
// threshold of index (row K + k) N + column.
// Watched: report words beyond the range to the kernel's range_watch (a separate
// instantiation, so unwatched products pay nothing for it).
template <class R, class O, class Arch = xsimd::default_arch, bool Watched = false>
struct intrinsic_mac
{
    static constexpr std::size_t rows_per_block = 4; // a step is long: four rows give enough parallelism
    using value_type = double;
    using arch = Arch;
    using batch = xsimd::batch<double, Arch>;
    fixed_kernel<double, R, O> k;
    double scale; // 2^F: a value of the format to units

    batch fit(batch const& s) const noexcept
    {
        if constexpr (Watched) k.note_beyond(s);
        if constexpr (O::modular)
            return k.wrap(s, s);
        else
            return k.clamp_scaled(s);
    }
    batch round(batch const& p, std::uint64_t index) const noexcept
    {
        batch u(0.0);
        if constexpr (is_stochastic_rounding_v<R>) u = k.rng.uniform(index, static_cast<batch const*>(nullptr));
        if constexpr (O::modular) {
            const batch r = k.round(p, u);
            if constexpr (Watched) k.note_beyond(r);
            return k.wrap(r, p);
        } else {
            if constexpr (Watched) k.note_beyond(p);
            return k.round(k.clamp_scaled(p), u);
        }
    }
    batch init(batch const&) const noexcept { return batch(0.0); }
    template <class TA>
    batch step(batch const& acc, TA a, batch const& w, std::uint64_t index) const noexcept
    {
        return fit(acc + round(batch(static_cast<double>(a) * scale) * w, index));
    }
    // bias is packed in units; the result goes back to values
    batch finish(batch const& acc, batch const& bias) const noexcept { return fit(acc + bias) * batch(1.0 / scale); }
};

// out[m x n] = A b, with b[kk, j] = get(kk, j) and A = a[m x k] row-major, or with
// transpose_a the transpose of a row-major a[k x m]: the gradients' products.
template <class Arch = xsimd::default_arch, class T, class Get>
void matmul(T const* a, std::size_t m, std::size_t k, std::size_t n, Get get, T* out, bool transpose_a = false)
{
    const packed_panels<T, Arch> b(k, n, get, [](std::size_t) { return T(0); });
    const strides as = transpose_a ? strides{1, m} : strides{k, 1};
    gemm(float_mac<T, Arch>{}, a, m, b, out, 0, as);
}

// Runs the product of every image and group with the multiply-accumulate Mac; the
// weights of group g are columns [g OCg, (g+1) OCg) of the [K, OC] view of HWIO. Row
// indices (for stochastic thresholds) count output pixels over the batch, group by group.
// Images run in parallel (nn::compute_threads); a 1x1 convolution of stride 1 without
// padding reads its rows straight from x.
template <class Mac, class V, class Pack, class VY>
void conv_products(Mac const& mac, V const* x, conv_geometry const& g, Pack const& pack, VY* y)
{
    const std::size_t rows = g.oh * g.ow, K = g.k();
    if (g.groups == 1 && g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pad_top == 0 && g.pad_left == 0 &&
        g.oh == g.h && g.ow == g.w) {
        constexpr std::size_t chunk = 96; // rows per task: a multiple of every Mac's rows_per_block
        const std::size_t m = g.n * rows;
        parallel_for((m + chunk - 1) / chunk, [&](std::size_t t, unsigned) {
            const std::size_t first = t * chunk, count = std::min(chunk, m - first);
            gemm(mac, x + first * K, count, pack[0], y + first * g.oc, first);
        });
        return;
    }
    // scratch per worker, left uninitialised: im2col and the product write all of it
    const unsigned workers = worker_count(g.n);
    std::vector<std::unique_ptr<V[]>> cols;
    std::vector<std::unique_ptr<VY[]>> outs;
    for (unsigned t = 0; t < workers; ++t) {
        cols.push_back(std::make_unique_for_overwrite<V[]>(rows * K));
        outs.push_back(std::make_unique_for_overwrite<VY[]>(g.groups > 1 ? rows * g.ocg : 0));
    }
    parallel_for(g.n, [&](std::size_t img, unsigned worker) {
        V* col = cols[worker].get();
        VY* out = outs[worker].get();
        for (std::size_t grp = 0; grp < std::size_t(g.groups); ++grp) {
            im2col(x, g, img, grp, col);
            VY* dst = y + img * rows * g.oc;
            const std::size_t first_row = (grp * g.n + img) * rows;
            if (g.groups == 1) {
                gemm(mac, col, rows, pack[grp], dst, first_row);
            } else {
                gemm(mac, col, rows, pack[grp], out, first_row);
                for (std::size_t r = 0; r < rows; ++r)
                    std::copy(&out[r * g.ocg], &out[r * g.ocg] + g.ocg, dst + r * g.oc + grp * g.ocg);
            }
        }
    });
}

template <class P, class TW, class TB>
std::vector<P> pack_conv_weights(TW const* w, TB const* b, conv_geometry const& g, double w_scale = 1,
                                 double b_scale = 1)
{
    std::vector<P> packs;
    for (std::size_t grp = 0; grp < std::size_t(g.groups); ++grp)
        packs.emplace_back(
            g.k(), g.ocg, [&](std::size_t kk, std::size_t j) { return w[kk * g.oc + grp * g.ocg + j] * w_scale; },
            [&](std::size_t j) { return b ? b[grp * g.ocg + j] * b_scale : 0; });
    return packs;
}

} // namespace tensorquant::inline TENSORQUANT_ABI::nn::kernels
