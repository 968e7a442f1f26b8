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

#include <algorithm>
#include <cstddef>
#include <cstdint>
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

// Rows are processed in blocks of MR so MR independent accumulators hide the latency of
// the step; every element of C still sums over k in increasing order.
template <std::size_t MR, class Mac, class TA, class TC>
void gemm_rows(Mac const& mac, TA const* a, strides as, std::size_t rows, std::size_t first_row,
               packed_panels<typename Mac::value_type, typename Mac::arch> const& b, TC* c)
{
    using B = typename Mac::batch;
    constexpr std::size_t L = B::size;
    const std::size_t K = b.k, N = b.n;
    alignas(64) typename Mac::value_type tmp[L];
    for (std::size_t r0 = 0; r0 + MR <= rows; r0 += MR)
        for (std::size_t p = 0; p < b.panels; ++p) {
            B acc[MR];
            for (std::size_t i = 0; i < MR; ++i) acc[i] = mac.init(B::load_aligned(&b.bias[p * L]));
            const auto* bp = &b.data[p * K * L];
            for (std::size_t kk = 0; kk < K; ++kk) {
                const B w = B::load_aligned(bp + kk * L);
                for (std::size_t i = 0; i < MR; ++i)
                    acc[i] = mac.step(acc[i], a[(r0 + i) * as.row + kk * as.col], w,
                                      ((first_row + r0 + i) * K + kk) * N + p * L);
            }
            for (std::size_t i = 0; i < MR; ++i) {
                const B out = mac.finish(acc[i], B::load_aligned(&b.bias[p * L]));
                out.store_aligned(tmp);
                const std::size_t width = std::min(L, N - p * L);
                std::copy(tmp, tmp + width, c + (r0 + i) * N + p * L);
            }
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

// Float: acc = bias + sum_k a b, with fused multiply-adds. Eight rows per block: eight
// independent accumulators cover the FMA latency even when C has one panel.
template <class T, class Arch = xsimd::default_arch>
struct float_mac
{
    static constexpr std::size_t rows_per_block = 8;
    using value_type = T;
    using arch = Arch;
    using batch = xsimd::batch<T, Arch>;
    batch init(batch const& bias) const noexcept { return bias; }
    batch step(batch const& acc, T a, batch const& w, std::uint64_t) const noexcept
    {
        return xsimd::fma(batch(a), w, acc);
    }
    batch finish(batch const& acc, batch const&) const noexcept { return acc; }
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
template <class Mac, class V, class Pack, class VY>
void conv_products(Mac const& mac, V const* x, conv_geometry const& g, Pack const& pack, VY* y)
{
    const std::size_t rows = g.oh * g.ow, K = g.k();
    std::vector<V> col(rows * K);
    std::vector<VY> out(g.groups > 1 ? rows * g.ocg : 0);
    for (std::size_t img = 0; img < g.n; ++img)
        for (std::size_t grp = 0; grp < std::size_t(g.groups); ++grp) {
            im2col(x, g, img, grp, col.data());
            VY* dst = y + img * rows * g.oc;
            const std::size_t first_row = (grp * g.n + img) * rows;
            if (g.groups == 1) {
                gemm(mac, col.data(), rows, pack[grp], dst, first_row);
            } else {
                gemm(mac, col.data(), rows, pack[grp], out.data(), first_row);
                for (std::size_t r = 0; r < rows; ++r)
                    std::copy(&out[r * g.ocg], &out[r * g.ocg] + g.ocg, dst + r * g.oc + grp * g.ocg);
            }
        }
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
