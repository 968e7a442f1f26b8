// Max, average and global average pooling (NHWC). Padding never wins a max and is not
// counted in an average (TensorFlow's rule) unless pool_options::count_pads says so.
// Intrinsic: max pooling compares values already in the format; an average sums the
// window (row by row), then divides once by the count.
#pragma once

#include "../../config.hpp"

#include "../kernels/geometry.hpp"
#include "../kernels/intrinsic.hpp"
#include "../kernels/tensor_ops.hpp"
#include "layer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

// Padding never wins a max and is not counted in an average (TensorFlow's rule).
template <class V>
tensor4<V> max_pool(tensor4<V> const& x, pool_options const& o = {})
{
    const auto g = kernels::pool_geometry_of(x.shape(), o, "max_pool");
    tensor4<V> y = tensor4<V>::from_shape({g.n, g.oh, g.ow, g.c});
    kernels::for_each_window(g,
                             [&](std::size_t img, std::size_t oy, std::size_t ox, long ya, long yb, long xa, long xb) {
                                 V* out = &y(img, oy, ox, 0);
                                 for (std::size_t c = 0; c < g.c; ++c) out[c] = x(img, ya, xa, c);
                                 for (long iy = ya; iy < yb; ++iy)
                                     for (long ix = xa; ix < xb; ++ix) {
                                         V const* in = &x(img, iy, ix, 0);
                                         for (std::size_t c = 0; c < g.c; ++c) out[c] = in[c] > out[c] ? in[c] : out[c];
                                     }
                             });
    return y;
}

// Intrinsic order: the window sum (row by row), then one division by the count.
template <class V>
tensor4<V> avg_pool(tensor4<V> const& x, pool_options const& o = {})
{
    const auto g = kernels::pool_geometry_of(x.shape(), o, "avg_pool");
    tensor4<V> y = tensor4<V>::from_shape({g.n, g.oh, g.ow, g.c});
    std::vector<V> sum(g.c);
    kernels::for_each_window(
        g, [&](std::size_t img, std::size_t oy, std::size_t ox, long ya, long yb, long xa, long xb) {
            std::fill(sum.begin(), sum.end(), V(0));
            for (long iy = ya; iy < yb; ++iy)
                for (long ix = xa; ix < xb; ++ix)
                    for (std::size_t c = 0; c < g.c; ++c) sum[c] = sum[c] + x(img, iy, ix, c);
            const std::int64_t count = o.count_pads ? std::int64_t(o.size[0]) * o.size[1] : (yb - ya) * (xb - xa);
            for (std::size_t c = 0; c < g.c; ++c) y(img, oy, ox, c) = divide(sum[c], count);
        });
    return y;
}

// avg_pool on quantized_rt under q's format, computed faster: the window's partial sums
// in double (a sum of two values on the grid is exact; the quantizer applies the
// overflow policy after each addition, in the same order), then one division per output
// with the number type (test_layers checks both agree bit for bit).
inline tensor4<float> avg_pool_intrinsic(tensor4<float> const& x, pool_options const& o, fixed_point_rt const& q)
{
    kernels::check_intrinsic_format(q, "avg_pool");
    const auto g = kernels::pool_geometry_of(x.shape(), o, "avg_pool");
    const auto xq = kernels::quantized_copy(q, x);
    tensor4<float> y = tensor4<float>::from_shape({g.n, g.oh, g.ow, g.c});
    std::vector<double> sum(g.c);
    number_scope scope(q);
    // a stochastic format: one threshold per division, window by window, channel by
    // channel (sums of values in the format are exact and draw none), as the generic
    // avg_pool on quantized_rt under this stream would
    stochastic_scope stream(q.key(), kernels::intrinsic_operand_offset(1));
    kernels::for_each_window(
        g, [&](std::size_t img, std::size_t oy, std::size_t ox, long ya, long yb, long xa, long xb) {
            std::fill(sum.begin(), sum.end(), 0.0);
            for (long iy = ya; iy < yb; ++iy)
                for (long ix = xa; ix < xb; ++ix) {
                    float const* row = &xq(img, std::size_t(iy), std::size_t(ix), 0);
                    for (std::size_t c = 0; c < g.c; ++c) sum[c] += double(row[c]);
                    quantize_inplace(q, std::span<double>(sum));
                }
            const std::int64_t count = o.count_pads ? std::int64_t(o.size[0]) * o.size[1] : (yb - ya) * (xb - xa);
            for (std::size_t c = 0; c < g.c; ++c)
                y(img, oy, ox, c) = divide(quantized_rt<float>::from_raw(float(sum[c])), count).value();
        });
    return y;
}

// [N, H, W, C] -> [N, 1, 1, C].
template <class V>
tensor4<V> global_avg_pool(tensor4<V> const& x)
{
    pool_options o;
    o.size = o.stride = {int(x.shape(1)), int(x.shape(2))};
    return avg_pool(x, o);
}

namespace tape_ops {

// The gradient goes to the first position of each window (in window order) that holds
// the maximum, as nn::max_pool picks it.
template <class Tape>
typename Tape::var max_pool(Tape& t, typename Tape::var x, pool_options const& o = {})
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    const auto x4 = kernels::as_fixed<T, 4>(t.value(x));
    const auto g = kernels::pool_geometry_of(x4.shape(), o, "max_pool");
    return t.record(
        kernels::as_dynamic(nn::max_pool(x4, o)),
        [x, g](Tape& tp, V out) {
            T const* in = tp.value(x).data();
            T const* y = tp.value(out).data();
            T const* dy = tp.grad(out).data();
            T* dx = tp.grad(x).data();
            if (g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.pad_top == 0 && g.pad_left == 0 &&
                g.h == 2 * g.oh && g.w == 2 * g.ow) {
                // the common 2x2 / 2 pooling without padding: four candidates per output
                const std::size_t row = g.w * g.c;
                for (std::size_t img = 0; img < g.n; ++img)
                    for (std::size_t oy = 0; oy < g.oh; ++oy)
                        for (std::size_t ox = 0; ox < g.ow; ++ox) {
                            const std::size_t o0 = ((img * g.oh + oy) * g.ow + ox) * g.c;
                            const std::size_t i0 = ((img * g.h + 2 * oy) * g.w + 2 * ox) * g.c;
                            for (std::size_t c = 0; c < g.c; ++c) {
                                const T m = y[o0 + c], d = dy[o0 + c];
                                const std::size_t a = i0 + c, b = a + g.c, e = a + row, f = e + g.c;
                                const bool ta = in[a] == m, tb = !ta && in[b] == m, te = !ta && !tb && in[e] == m;
                                const bool tf = !ta && !tb && !te;
                                dx[a] += ta ? d : T(0);
                                dx[b] += tb ? d : T(0);
                                dx[e] += te ? d : T(0);
                                dx[f] += tf ? d : T(0);
                            }
                        }
                return;
            }
            std::vector<unsigned char> done(g.c);
            kernels::for_each_window(
                g, [&](std::size_t img, std::size_t oy, std::size_t ox, long ya, long yb, long xa, long xb) {
                    const std::size_t o0 = ((img * g.oh + oy) * g.ow + ox) * g.c;
                    std::fill(done.begin(), done.end(), 0);
                    for (long iy = ya; iy < yb; ++iy)
                        for (long ix = xa; ix < xb; ++ix) {
                            const std::size_t base = ((img * g.h + std::size_t(iy)) * g.w + std::size_t(ix)) * g.c;
                            for (std::size_t c = 0; c < g.c; ++c) { // branch-free over the channels
                                const bool take = !done[c] && in[base + c] == y[o0 + c];
                                dx[base + c] += take ? dy[o0 + c] : T(0);
                                done[c] |= take;
                            }
                        }
                });
        },
        {x});
}

template <class Tape>
typename Tape::var avg_pool(Tape& t, typename Tape::var x, pool_options const& o = {})
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    const auto x4 = kernels::as_fixed<T, 4>(t.value(x));
    const auto g = kernels::pool_geometry_of(x4.shape(), o, "avg_pool");
    return t.record(kernels::as_dynamic(nn::avg_pool(x4, o)),
                    [x, g, window = o.count_pads ? T(o.size[0] * o.size[1]) : T(0)](Tape& tp, V out) {
                        T const* dy = tp.grad(out).data();
                        T* dx = tp.grad(x).data();
                        kernels::for_each_window(g, [&](std::size_t img, std::size_t oy, std::size_t ox, long ya,
                                                        long yb, long xa, long xb) {
                            const T inv = T(1) / (window > T(0) ? window : T((yb - ya) * (xb - xa)));
                            T const* d = dy + ((img * g.oh + oy) * g.ow + ox) * g.c;
                            for (long iy = ya; iy < yb; ++iy)
                                for (long ix = xa; ix < xb; ++ix) {
                                    T* dst = dx + ((img * g.h + std::size_t(iy)) * g.w + std::size_t(ix)) * g.c;
                                    for (std::size_t c = 0; c < g.c; ++c) dst[c] += d[c] * inv;
                                }
                        });
                    },
                    {x});
}

template <class Tape>
typename Tape::var global_avg_pool(Tape& t, typename Tape::var x)
{
    auto const& s = t.value(x).shape();
    pool_options o;
    o.size = o.stride = {int(s[1]), int(s[2])};
    return avg_pool(t, x, o);
}

} // namespace tape_ops

struct max_pool_layer
{
    static constexpr std::string_view kind = "max_pool";
    pool_options options{};

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        return kernels::to_tensor(nn::max_pool(kernels::as4(ctx.input(0), kind.data()), options));
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        return kernels::to_tensor(nn::max_pool(
            kernels::quantized_copy(q, kernels::as4(ctx.input(0), kind.data()), kernels::intrinsic_operand_offset(0)),
            options));
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return tape_ops::max_pool(ctx.tape(), ctx.input(0), options);
    }
};

struct avg_pool_layer
{
    static constexpr std::string_view kind = "avg_pool";
    pool_options options{};

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        return kernels::to_tensor(nn::avg_pool(kernels::as4(ctx.input(0), kind.data()), options));
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        return kernels::to_tensor(avg_pool_intrinsic(kernels::as4(ctx.input(0), kind.data()), options, q));
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return tape_ops::avg_pool(ctx.tape(), ctx.input(0), options);
    }
};

struct global_avg_pool_layer
{
    static constexpr std::string_view kind = "global_avg_pool";

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        return kernels::to_tensor(nn::global_avg_pool(kernels::as4(ctx.input(0), kind.data())));
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        const auto x = kernels::as4(ctx.input(0), kind.data());
        pool_options whole;
        whole.size = whole.stride = {int(x.shape(1)), int(x.shape(2))};
        return kernels::to_tensor(avg_pool_intrinsic(x, whole, q));
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return tape_ops::global_avg_pool(ctx.tape(), ctx.input(0));
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
