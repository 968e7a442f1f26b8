// Depthwise convolution (one input and one output channel per group) straight from NHWC,
// SIMD lanes across channels, instead of one single-column product per channel. Each
// output keeps the order of the product path: the Mac's init, the taps (kh, kw) in
// increasing order, a padding tap adding a zero operand as im2col's zero does, then the
// finish with the bias, so the results are the same bits.
#pragma once

#include "../../config.hpp"

#include "gemm.hpp"
#include "geometry.hpp"
#include "parallel.hpp"

#include <algorithm>
#include <cstddef>

namespace tensorquant::inline TENSORQUANT_ABI::nn::kernels {

inline bool is_depthwise(conv_geometry const& g) noexcept { return g.groups > 1 && g.cg == 1 && g.ocg == 1; }

// One step with a different operand a in every lane: the Macs whose step does not depend
// on the element's index (deterministic roundings).
template <class T, class Arch>
auto lane_step(float_mac<T, Arch> const&, xsimd::batch<T, Arch> const& acc, xsimd::batch<T, Arch> const& a,
               xsimd::batch<T, Arch> const& w) noexcept
{
    return tensorquant::detail::simd::fma(a, w, acc);
}
template <class R, class O, class Arch, bool Watched>
    requires(!is_stochastic_rounding_v<R>)
auto lane_step(intrinsic_mac<R, O, Arch, Watched> const& mac, xsimd::batch<double, Arch> const& acc,
               xsimd::batch<double, Arch> const& a, xsimd::batch<double, Arch> const& w) noexcept
{
    return mac.fit(acc + mac.round(a * xsimd::batch<double, Arch>(mac.scale) * w, 0));
}

template <class Mac>
concept LaneMac = requires(Mac const& m, typename Mac::batch const& b)
{
    lane_step(m, b, b, b);
};

// Weights of tap t, channel c at w[t padded + c] (times w_scale), bias[c] (times b_scale),
// channels zero-padded to whole SIMD batches.
template <class V>
struct depthwise_pack
{
    std::size_t taps = 0, padded = 0;
    aligned_vector<V> w, bias;
};

template <class V, class Arch, class TW, class TB>
depthwise_pack<V> pack_depthwise(TW const* w, TB const* b, conv_geometry const& g, double w_scale = 1,
                                 double b_scale = 1)
{
    constexpr std::size_t L = xsimd::batch<V, Arch>::size;
    depthwise_pack<V> p;
    p.taps = g.kh * g.kw;
    p.padded = (g.oc + L - 1) / L * L;
    p.w.assign(p.taps * p.padded, V(0));
    p.bias.assign(p.padded, V(0));
    for (std::size_t t = 0; t < p.taps; ++t)
        for (std::size_t c = 0; c < g.oc; ++c) p.w[t * p.padded + c] = V(w[t * g.oc + c] * w_scale);
    if (b)
        for (std::size_t c = 0; c < g.oc; ++c) p.bias[c] = V(b[c] * b_scale);
    return p;
}

// Four pixels of whole SIMD batches whose taps lie inside the image along x, on float
// storage: no checks per tap; a row of taps above or below the image steps with zero
// operands. Four independent chains of steps hide the step's latency.
template <class Mac, class V>
void depthwise_interior(Mac const& mac, V const* x, conv_geometry const& g, depthwise_pack<V> const& p, V* y,
                        std::size_t img, std::size_t oy, std::size_t ox, std::size_t c0)
{
    using B = typename Mac::batch;
    const std::size_t C = g.oc;
    const B bias = B::load_aligned(&p.bias[c0]);
    B a0 = mac.init(bias), a1 = a0, a2 = a0, a3 = a0;
    const std::size_t step = std::size_t(g.sw) * C;
    for (std::size_t ky = 0; ky < g.kh; ++ky) {
        const long iy = long(oy) * g.sh + long(ky) * g.dh - g.pad_top;
        V const* wk = &p.w[ky * g.kw * p.padded + c0];
        if (iy < 0 || iy >= long(g.h)) {
            const B zero(V(0));
            for (std::size_t kx = 0; kx < g.kw; ++kx) {
                const B w = B::load_aligned(wk + kx * p.padded);
                a0 = lane_step(mac, a0, zero, w), a1 = lane_step(mac, a1, zero, w);
                a2 = lane_step(mac, a2, zero, w), a3 = lane_step(mac, a3, zero, w);
            }
            continue;
        }
        V const* src =
            x + ((img * g.h + std::size_t(iy)) * g.w + ox * std::size_t(g.sw) - std::size_t(g.pad_left)) * C + c0;
        for (std::size_t kx = 0; kx < g.kw; ++kx, src += std::size_t(g.dw) * C) {
            const B w = B::load_aligned(wk + kx * p.padded);
            a0 = lane_step(mac, a0, B::load_unaligned(src), w);
            a1 = lane_step(mac, a1, B::load_unaligned(src + step), w);
            a2 = lane_step(mac, a2, B::load_unaligned(src + 2 * step), w);
            a3 = lane_step(mac, a3, B::load_unaligned(src + 3 * step), w);
        }
    }
    V* dst = y + ((img * g.oh + oy) * g.ow + ox) * C + c0;
    mac.finish(a0, bias).store_unaligned(dst);
    mac.finish(a1, bias).store_unaligned(dst + C);
    mac.finish(a2, bias).store_unaligned(dst + 2 * C);
    mac.finish(a3, bias).store_unaligned(dst + 3 * C);
}

// y (NHWC) from x (NHWC); one task per row of output pixels. On float storage the
// pixels inside the image along x go four at a time (depthwise_interior), the rest and
// other storage one at a time with checked operands.
template <class Mac, class TX, class TY>
    requires LaneMac<Mac>
void depthwise_products(Mac const& mac, TX const* x, conv_geometry const& g,
                        depthwise_pack<typename Mac::value_type> const& p, TY* y)
{
    using V = typename Mac::value_type;
    using B = typename Mac::batch;
    constexpr std::size_t L = B::size, pixels = 4;
    const std::size_t C = g.oc;
    // the operand at input (iy, ix), channels [c0, c0 + width): zero outside the image
    auto operand = [&](std::size_t img, long iy, long ix, std::size_t c0, std::size_t width, V* tmp) {
        if (iy < 0 || iy >= long(g.h) || ix < 0 || ix >= long(g.w)) return B(V(0));
        TX const* src = x + ((img * g.h + std::size_t(iy)) * g.w + std::size_t(ix)) * C + c0;
        if constexpr (std::is_same_v<TX, V>)
            if (width == L) return B::load_unaligned(src);
        std::fill(tmp + width, tmp + L, V(0));
        for (std::size_t i = 0; i < width; ++i) tmp[i] = V(src[i]);
        return B::load_aligned(tmp);
    };
    parallel_for(g.n * g.oh, [&](std::size_t task, unsigned) {
        const std::size_t img = task / g.oh, oy = task % g.oh;
        alignas(64) V tmp[L];
        alignas(64) V out[L];
        auto run = [&](std::size_t ox0, std::size_t c0) { // one pixel, any channel width
            constexpr std::size_t count = 1;
            const std::size_t width = std::min(L, C - c0);
            const B bias = B::load_aligned(&p.bias[c0]);
            B acc[count];
            for (std::size_t j = 0; j < count; ++j) acc[j] = mac.init(bias);
            for (std::size_t ky = 0; ky < g.kh; ++ky) {
                const long iy = long(oy) * g.sh + long(ky) * g.dh - g.pad_top;
                for (std::size_t kx = 0; kx < g.kw; ++kx) {
                    const B w = B::load_aligned(&p.w[(ky * g.kw + kx) * p.padded + c0]);
                    for (std::size_t j = 0; j < count; ++j) {
                        const long ix = long(ox0 + j) * g.sw + long(kx) * g.dw - g.pad_left;
                        acc[j] = lane_step(mac, acc[j], operand(img, iy, ix, c0, width, tmp), w);
                    }
                }
            }
            for (std::size_t j = 0; j < count; ++j) {
                TY* dst = y + ((img * g.oh + oy) * g.ow + ox0 + j) * C + c0;
                const B r = mac.finish(acc[j], bias);
                if constexpr (std::is_same_v<TY, V>)
                    if (width == L) {
                        r.store_unaligned(dst);
                        continue;
                    }
                r.store_aligned(out);
                for (std::size_t i = 0; i < width; ++i) dst[i] = TY(out[i]);
            }
        };
        // pixels whose taps all fall inside the image along x: [x_first, x_last)
        const std::size_t reach = (g.kw - 1) * std::size_t(g.dw);
        const std::size_t x_first = std::min<std::size_t>(g.ow, (std::size_t(g.pad_left) + g.sw - 1) / g.sw);
        std::size_t x_last = x_first;
        while (x_last < g.ow && long(x_last) * g.sw - g.pad_left + long(reach) < long(g.w)) ++x_last;
        for (std::size_t c0 = 0; c0 < C; c0 += L) {
            std::size_t ox = 0;
            if constexpr (std::is_same_v<TX, V> && std::is_same_v<TY, V>)
                if (c0 + L <= C) {
                    for (; ox < x_first; ++ox) run(ox, c0);
                    for (; ox + pixels <= x_last; ox += pixels) depthwise_interior(mac, x, g, p, y, img, oy, ox, c0);
                }
            for (; ox < g.ow; ++ox) run(ox, c0);
        }
    });
}

} // namespace tensorquant::inline TENSORQUANT_ABI::nn::kernels
