// Reference layers, generic over the value type V: float, double, quantized<T, Q> or
// quantized_rt<T>. Layout (TensorFlow's, as TensorQuant used): activations NHWC,
// convolution weights HWIO [KH, KW, C / groups, OC], dense weights [IN, OUT].
//
// float and double take a fast path (im2col and a SIMD matrix product). Number types
// take the naive loops, whose order is the documented accumulation order of intrinsic
// emulation: each output starts at 0, adds x w for (kh, kw, ic) in increasing order,
// then adds the bias. conv2d_intrinsic and dense_intrinsic compute exactly that order
// for a runtime fixed-point format, vectorised across output channels.
#pragma once

#include "../apply.hpp"
#include "../core/error.hpp"
#include "../detail/xtensor_compat.hpp"
#include "../number/quantized.hpp"
#include "../quantizers/fixed_point.hpp"
#include "detail/gemm.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace tensorquant::nn {

template <class V>
using tensor4 = xt::xtensor<V, 4>;
template <class V>
using tensor2 = xt::xtensor<V, 2>;
template <class V>
using tensor1 = xt::xtensor<V, 1>;

enum class padding_mode { valid, same, explicit_pads };

struct window_options
{
    std::array<int, 2> stride{1, 1};
    padding_mode padding = padding_mode::valid;
    std::array<int, 4> pads{0, 0, 0, 0}; // top, bottom, left, right (explicit_pads)
    std::array<int, 2> dilation{1, 1};
    int groups = 1; // convolution only; groups == channels is depthwise
};

namespace detail {

using namespace ::tensorquant::detail; // kernels, matrix products

template <class S>
std::string shape_string(S const& s)
{
    std::string r = "[";
    for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

// Output size and padding of one spatial axis. 'same' pads like TensorFlow: the output
// is ceil(in / stride), the extra row or column of padding goes at the end.
inline std::array<int, 3> axis_geometry(int in, int k, int stride, int dilation, padding_mode mode, int pad_lo,
                                        int pad_hi, char const* what)
{
    if (stride < 1 || dilation < 1) throw shape_error(std::string(what) + ": stride and dilation must be >= 1");
    const int span = (k - 1) * dilation + 1;
    if (mode == padding_mode::same) {
        const int out = (in + stride - 1) / stride;
        const int total = std::max((out - 1) * stride + span - in, 0);
        pad_lo = total / 2, pad_hi = total - total / 2;
    } else if (mode == padding_mode::valid) {
        pad_lo = pad_hi = 0;
    } else if (pad_lo < 0 || pad_hi < 0) {
        throw shape_error(std::string(what) + ": explicit padding must be >= 0");
    }
    const int out = (in + pad_lo + pad_hi - span) / stride + 1;
    if (in + pad_lo + pad_hi < span || out < 1)
        throw shape_error(std::string(what) + ": a window of " + std::to_string(span) + " does not fit an input of " +
                          std::to_string(in) + " with padding " + std::to_string(pad_lo) + "+" + std::to_string(pad_hi));
    return {out, pad_lo, pad_hi};
}

struct conv_geometry
{
    std::size_t n, h, w, c, kh, kw, cg, oc, ocg, oh, ow;
    int pad_top, pad_left, sh, sw, dh, dw, groups;
    std::size_t k() const noexcept { return kh * kw * cg; }
};

template <class SX, class SW>
conv_geometry conv_geometry_of(SX const& xs, SW const& ws, window_options const& o)
{
    const int groups = o.groups;
    if (groups < 1) throw shape_error("conv2d: groups must be >= 1");
    if (xs[3] % groups || ws[3] % groups || ws[2] * groups != xs[3])
        throw shape_error("conv2d: input " + shape_string(xs) + " (NHWC) and weights " + shape_string(ws) +
                          " (HWIO) do not fit groups=" + std::to_string(groups) +
                          ": weights need C / groups input channels and OC divisible by groups");
    auto [oh, pt, pb] = axis_geometry(int(xs[1]), int(ws[0]), o.stride[0], o.dilation[0], o.padding, o.pads[0],
                                      o.pads[1], "conv2d");
    auto [ow, pl, pr] = axis_geometry(int(xs[2]), int(ws[1]), o.stride[1], o.dilation[1], o.padding, o.pads[2],
                                      o.pads[3], "conv2d");
    return {xs[0], xs[1], xs[2], xs[3], ws[0], ws[1], ws[2], ws[3], ws[3] / std::size_t(groups), std::size_t(oh),
            std::size_t(ow), pt, pl, o.stride[0], o.stride[1], o.dilation[0], o.dilation[1], groups};
}

// Copies n elements; runs of up to 8 (a 5x5 kernel on one channel copies 5) are
// unrolled, since a memmove call costs more than such a copy.
template <class V, class Out>
inline void copy_run(V const* src, std::size_t n, Out* dst)
{
    switch (n) {
    case 8: dst[7] = static_cast<Out>(src[7]); [[fallthrough]];
    case 7: dst[6] = static_cast<Out>(src[6]); [[fallthrough]];
    case 6: dst[5] = static_cast<Out>(src[5]); [[fallthrough]];
    case 5: dst[4] = static_cast<Out>(src[4]); [[fallthrough]];
    case 4: dst[3] = static_cast<Out>(src[3]); [[fallthrough]];
    case 3: dst[2] = static_cast<Out>(src[2]); [[fallthrough]];
    case 2: dst[1] = static_cast<Out>(src[1]); [[fallthrough]];
    case 1: dst[0] = static_cast<Out>(src[0]); [[fallthrough]];
    case 0: return;
    default: std::copy(src, src + n, dst);
    }
}

// Patch rows of image img, group g: row (oy, ox), column (kh, kw, ic); padding reads 0.
// With one group and no dilation, a patch row (kw, ic) is contiguous in the image.
template <class V, class Out>
void im2col(V const* x, conv_geometry const& g, std::size_t img, std::size_t group, Out* col)
{
    const std::size_t K = g.k(), run = g.kw * g.cg;
    const bool contiguous = g.groups == 1 && g.dw == 1;
    for (std::size_t oy = 0; oy < g.oh; ++oy)
        for (std::size_t ox = 0; ox < g.ow; ++ox) {
            Out* row = col + (oy * g.ow + ox) * K;
            const long ix0 = long(ox) * g.sw - g.pad_left;
            const bool inside_x = ix0 >= 0 && ix0 + long(g.kw - 1) * g.dw < long(g.w);
            for (std::size_t ky = 0; ky < g.kh; ++ky) {
                const long iy = long(oy) * g.sh + long(ky) * g.dh - g.pad_top;
                Out* dst = row + ky * run;
                if (iy < 0 || iy >= long(g.h)) {
                    std::fill(dst, dst + run, Out(0));
                    continue;
                }
                V const* line = x + (img * g.h + std::size_t(iy)) * g.w * g.c + group * g.cg;
                if (contiguous && inside_x) {
                    copy_run(line + std::size_t(ix0) * g.c, run, dst);
                    continue;
                }
                for (std::size_t kx = 0; kx < g.kw; ++kx) {
                    const long ix = ix0 + long(kx) * g.dw;
                    Out* d = dst + kx * g.cg;
                    if (ix < 0 || ix >= long(g.w)) std::fill(d, d + g.cg, Out(0));
                    else std::copy(line + std::size_t(ix) * g.c, line + std::size_t(ix) * g.c + g.cg, d);
                }
            }
        }
}

// The adjoint of im2col over every image: adds each patch-matrix entry (rows of all
// images in turn) to the image position it was read from.
template <class T>
void col2im_add(T const* col, conv_geometry const& g, std::size_t group, T* x)
{
    const std::size_t K = g.k(), run = g.kw * g.cg;
    const bool contiguous = g.groups == 1 && g.dw == 1;
    for (std::size_t img = 0; img < g.n; ++img)
        for (std::size_t oy = 0; oy < g.oh; ++oy)
            for (std::size_t ox = 0; ox < g.ow; ++ox) {
                T const* row = col + ((img * g.oh + oy) * g.ow + ox) * K;
                const long ix0 = long(ox) * g.sw - g.pad_left;
                const bool inside_x = ix0 >= 0 && ix0 + long(g.kw - 1) * g.dw < long(g.w);
                for (std::size_t ky = 0; ky < g.kh; ++ky) {
                    const long iy = long(oy) * g.sh + long(ky) * g.dh - g.pad_top;
                    if (iy < 0 || iy >= long(g.h)) continue;
                    T* line = x + (img * g.h + std::size_t(iy)) * g.w * g.c + group * g.cg;
                    T const* src = row + ky * run;
                    if (contiguous && inside_x) {
                        T* dst = line + std::size_t(ix0) * g.c;
                        for (std::size_t i = 0; i < run; ++i) dst[i] += src[i];
                        continue;
                    }
                    for (std::size_t kx = 0; kx < g.kw; ++kx) {
                        const long ix = ix0 + long(kx) * g.dw;
                        if (ix < 0 || ix >= long(g.w)) continue;
                        T* dst = line + std::size_t(ix) * g.c;
                        for (std::size_t c = 0; c < g.cg; ++c) dst[c] += src[kx * g.cg + c];
                    }
                }
            }
}

// Runs the product of every image and group with the multiply-accumulate Mac; the
// weights of group g are columns [g OCg, (g+1) OCg) of the [K, OC] view of HWIO. Row
// indices (for stochastic thresholds) count output pixels over the batch, group by group.
template <class Mac, class V, class Pack>
void conv_products(Mac const& mac, V const* x, conv_geometry const& g, Pack const& pack, V* y)
{
    const std::size_t rows = g.oh * g.ow, K = g.k();
    std::vector<V> col(rows * K);
    std::vector<V> out(g.groups > 1 ? rows * g.ocg : 0);
    for (std::size_t img = 0; img < g.n; ++img)
        for (std::size_t grp = 0; grp < std::size_t(g.groups); ++grp) {
            im2col(x, g, img, grp, col.data());
            V* dst = y + img * rows * g.oc;
            const std::size_t first_row = (grp * g.n + img) * rows;
            if (g.groups == 1) {
                detail::gemm(mac, col.data(), rows, pack[grp], dst, first_row);
            } else {
                detail::gemm(mac, col.data(), rows, pack[grp], out.data(), first_row);
                for (std::size_t r = 0; r < rows; ++r)
                    std::copy(&out[r * g.ocg], &out[r * g.ocg] + g.ocg, dst + r * g.oc + grp * g.ocg);
            }
        }
}

template <class P, class T>
std::vector<P> pack_conv_weights(T const* w, T const* b, conv_geometry const& g, double w_scale = 1,
                                 double b_scale = 1)
{
    std::vector<P> packs;
    for (std::size_t grp = 0; grp < std::size_t(g.groups); ++grp)
        packs.emplace_back(
            g.k(), g.ocg, [&](std::size_t kk, std::size_t j) { return w[kk * g.oc + grp * g.ocg + j] * w_scale; },
            [&](std::size_t j) { return b ? b[grp * g.ocg + j] * b_scale : 0; });
    return packs;
}

template <class V>
inline constexpr bool is_float_v = std::is_floating_point_v<V>;

inline void check_bias(std::size_t bias_size, std::size_t channels, char const* what)
{
    if (bias_size != 0 && bias_size != channels)
        throw shape_error(std::string(what) + ": bias has " + std::to_string(bias_size) + " elements, expected " +
                          std::to_string(channels) + " (or none)");
}

} // namespace detail

// ---------------------------------------------------------------------------------------
// Convolution and dense.

// y[n, oy, ox, oc] = b[oc] + sum over (kh, kw, ic) of x[...] w[kh, kw, ic, oc]. An empty
// bias means none.
template <class V>
tensor4<V> conv2d(tensor4<V> const& x, tensor4<V> const& w, tensor1<V> const& b, window_options const& o = {})
{
    const auto g = detail::conv_geometry_of(x.shape(), w.shape(), o);
    detail::check_bias(b.size(), g.oc, "conv2d");
    tensor4<V> y = tensor4<V>::from_shape({g.n, g.oh, g.ow, g.oc});
    if constexpr (detail::is_float_v<V>) {
        const auto packs = detail::pack_conv_weights<detail::packed_panels<V>>(w.data(), b.size() ? b.data() : nullptr, g);
        detail::conv_products(detail::float_mac<V>{}, x.data(), g, packs, y.data());
    } else {
        const std::size_t K = g.k();
        std::vector<V> col(g.oh * g.ow * K);
        for (std::size_t img = 0; img < g.n; ++img)
            for (std::size_t grp = 0; grp < std::size_t(g.groups); ++grp) {
                detail::im2col(x.data(), g, img, grp, col.data());
                for (std::size_t r = 0; r < g.oh * g.ow; ++r)
                    for (std::size_t j = 0; j < g.ocg; ++j) {
                        const std::size_t oc = grp * g.ocg + j;
                        V acc = V(0);
                        for (std::size_t kk = 0; kk < K; ++kk) acc = acc + col[r * K + kk] * w.data()[kk * g.oc + oc];
                        if (b.size()) acc = acc + b(oc);
                        y.data()[(img * g.oh * g.ow + r) * g.oc + oc] = acc;
                    }
            }
    }
    return y;
}

// y[n, j] = b[j] + sum over i of x[n, i] w[i, j].
template <class V>
tensor2<V> dense(tensor2<V> const& x, tensor2<V> const& w, tensor1<V> const& b)
{
    if (x.shape(1) != w.shape(0))
        throw shape_error("dense: input " + detail::shape_string(x.shape()) + " does not fit weights " +
                          detail::shape_string(w.shape()) + " [IN, OUT]");
    const std::size_t n = x.shape(0), in = w.shape(0), out = w.shape(1);
    detail::check_bias(b.size(), out, "dense");
    tensor2<V> y = tensor2<V>::from_shape({n, out});
    if constexpr (detail::is_float_v<V>) {
        detail::packed_panels<V> pack(
            in, out, [&](std::size_t i, std::size_t j) { return w(i, j); },
            [&](std::size_t j) { return b.size() ? b(j) : V(0); });
        detail::gemm(detail::float_mac<V>{}, x.data(), n, pack, y.data());
    } else {
        for (std::size_t r = 0; r < n; ++r)
            for (std::size_t j = 0; j < out; ++j) {
                V acc = V(0);
                for (std::size_t i = 0; i < in; ++i) acc = acc + x(r, i) * w(i, j);
                if (b.size()) acc = acc + b(j);
                y(r, j) = acc;
            }
    }
    return y;
}

namespace detail {

// Products of 2W bits must be exact in double.
inline void check_intrinsic_format(fixed_point_rt const& q, char const* what)
{
    const auto f = q.format();
    if (f.width > 26)
        throw format_error(std::string(what) + ": the vectorised intrinsic path computes exact products of two " +
                           std::to_string(f.width) + "-bit words in double and needs W <= 26; use the generic layer "
                           "with quantized<double, Q> for wider formats");
}

template <class T, class Fn>
decltype(auto) visit_intrinsic(fixed_point_rt const& q, Fn&& fn)
{
    return visit_rounding(q.rounding(), [&](auto r) -> decltype(auto) {
        return visit_overflow(q.overflow(), [&](auto o) -> decltype(auto) {
            using R = decltype(r);
            using O = decltype(o);
            return fn(intrinsic_mac<R, O>{fixed_kernel<double, R, O>(q.format(), q.key()), exp2i<double>(q.format().frac)});
        });
    });
}

template <class T, std::size_t N>
xt::xtensor<T, N> quantized_copy(fixed_point_rt const& q, xt::xtensor<T, N> const& x)
{
    xt::xtensor<T, N> y = x;
    quantize_inplace(q, std::span<T>(y.data(), y.size()));
    return y;
}

} // namespace detail

// Intrinsic convolution (paper eq. 7) with a runtime fixed-point format: x, w and b are
// quantized with q, then each output is Q(...Q(Q(0 + Q(x w)) + Q(x w))... + b) in the
// documented order. Bit-identical to conv2d<quantized<T, Q>> for deterministic q;
// stochastic products use threshold index (row K + k) OCg + column, where row counts
// output pixels over the batch, group after group (q's rng key sets seed and stream).
template <std::floating_point T>
tensor4<T> conv2d_intrinsic(tensor4<T> const& x, tensor4<T> const& w, tensor1<T> const& b, window_options const& o,
                            fixed_point_rt const& q)
{
    detail::check_intrinsic_format(q, "conv2d");
    const auto g = detail::conv_geometry_of(x.shape(), w.shape(), o);
    detail::check_bias(b.size(), g.oc, "conv2d");
    const auto xq = detail::quantized_copy(q, x), wq = detail::quantized_copy(q, w);
    const auto bq = detail::quantized_copy(q, b);
    tensor4<T> y = tensor4<T>::from_shape({g.n, g.oh, g.ow, g.oc});
    detail::visit_intrinsic<T>(q, [&](auto const& mac) {
        const auto packs = detail::pack_conv_weights<detail::packed_panels<double>>(
            wq.data(), bq.size() ? bq.data() : nullptr, g, 1.0, mac.scale);
        detail::conv_products(mac, xq.data(), g, packs, y.data());
    });
    return y;
}

// Intrinsic dense layer, the same rules as conv2d_intrinsic (row = sample).
template <std::floating_point T>
tensor2<T> dense_intrinsic(tensor2<T> const& x, tensor2<T> const& w, tensor1<T> const& b, fixed_point_rt const& q)
{
    detail::check_intrinsic_format(q, "dense");
    if (x.shape(1) != w.shape(0))
        throw shape_error("dense: input " + detail::shape_string(x.shape()) + " does not fit weights " +
                          detail::shape_string(w.shape()) + " [IN, OUT]");
    const std::size_t n = x.shape(0), in = w.shape(0), out = w.shape(1);
    detail::check_bias(b.size(), out, "dense");
    const auto xq = detail::quantized_copy(q, x), wq = detail::quantized_copy(q, w);
    const auto bq = detail::quantized_copy(q, b);
    tensor2<T> y = tensor2<T>::from_shape({n, out});
    detail::visit_intrinsic<T>(q, [&](auto const& mac) {
        detail::packed_panels<double> pack(
            in, out, [&](std::size_t i, std::size_t j) { return double(wq(i, j)); },
            [&](std::size_t j) { return bq.size() ? double(bq(j)) * mac.scale : 0.0; });
        detail::gemm(mac, xq.data(), n, pack, y.data());
    });
    return y;
}

// ---------------------------------------------------------------------------------------
// Pooling.

struct pool_options
{
    std::array<int, 2> size{2, 2};
    std::array<int, 2> stride{2, 2};
    padding_mode padding = padding_mode::valid;
    std::array<int, 4> pads{0, 0, 0, 0};
};

namespace detail {

struct pool_geometry
{
    std::size_t n, h, w, c, oh, ow;
    int kh, kw, sh, sw, pad_top, pad_left;
};

template <class S>
pool_geometry pool_geometry_of(S const& xs, pool_options const& o, char const* what)
{
    if (o.size[0] < 1 || o.size[1] < 1) throw shape_error(std::string(what) + ": window size must be >= 1");
    auto [oh, pt, pb] = axis_geometry(int(xs[1]), o.size[0], o.stride[0], 1, o.padding, o.pads[0], o.pads[1], what);
    auto [ow, pl, pr] = axis_geometry(int(xs[2]), o.size[1], o.stride[1], 1, o.padding, o.pads[2], o.pads[3], what);
    return {xs[0], xs[1], xs[2], xs[3], std::size_t(oh), std::size_t(ow), o.size[0], o.size[1], o.stride[0], o.stride[1], pt, pl};
}

// Calls fn(image, oy, ox, y0, y1, x0, x1) per output window, with the window's rows
// [y0, y1) and columns [x0, x1) clipped to the image.
template <class Fn>
void for_each_window(pool_geometry const& g, Fn&& fn)
{
    for (std::size_t img = 0; img < g.n; ++img)
        for (std::size_t oy = 0; oy < g.oh; ++oy)
            for (std::size_t ox = 0; ox < g.ow; ++ox) {
                const long y0 = long(oy) * g.sh - g.pad_top, x0 = long(ox) * g.sw - g.pad_left;
                const long y1 = std::min<long>(y0 + g.kh, long(g.h)), x1 = std::min<long>(x0 + g.kw, long(g.w));
                fn(img, oy, ox, std::max<long>(y0, 0), y1, std::max<long>(x0, 0), x1);
            }
}

} // namespace detail

// Padding never wins a max and is not counted in an average (TensorFlow's rule).
template <class V>
tensor4<V> max_pool(tensor4<V> const& x, pool_options const& o = {})
{
    const auto g = detail::pool_geometry_of(x.shape(), o, "max_pool");
    tensor4<V> y = tensor4<V>::from_shape({g.n, g.oh, g.ow, g.c});
    detail::for_each_window(g, [&](std::size_t img, std::size_t oy, std::size_t ox, long ya, long yb, long xa, long xb) {
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
    const auto g = detail::pool_geometry_of(x.shape(), o, "avg_pool");
    tensor4<V> y = tensor4<V>::from_shape({g.n, g.oh, g.ow, g.c});
    std::vector<V> sum(g.c);
    detail::for_each_window(g, [&](std::size_t img, std::size_t oy, std::size_t ox, long ya, long yb, long xa, long xb) {
        std::fill(sum.begin(), sum.end(), V(0));
        for (long iy = ya; iy < yb; ++iy)
            for (long ix = xa; ix < xb; ++ix)
                for (std::size_t c = 0; c < g.c; ++c) sum[c] = sum[c] + x(img, iy, ix, c);
        const std::int64_t count = (yb - ya) * (xb - xa);
        for (std::size_t c = 0; c < g.c; ++c) y(img, oy, ox, c) = divide(sum[c], count);
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

// ---------------------------------------------------------------------------------------
// Batch norm (inference) with TensorQuant's quantization points: inv = sqrt(var + eps),
// inv = 1 / inv, inv = inv gamma, rest = beta - mean inv, y = x inv + rest. With a
// number type each step rounds once.
template <class V>
tensor4<V> batch_norm(tensor4<V> const& x, tensor1<V> const& gamma, tensor1<V> const& beta, tensor1<V> const& mean,
                      tensor1<V> const& variance, V epsilon)
{
    const std::size_t c = x.shape(3);
    for (auto const* p : {&gamma, &beta, &mean, &variance})
        if (p->size() != c)
            throw shape_error("batch_norm: parameter of shape " + detail::shape_string(p->shape()) +
                              " does not fit " + std::to_string(c) + " channels");
    using std::sqrt;
    std::vector<V> inv(c), rest(c);
    for (std::size_t j = 0; j < c; ++j) {
        V i = sqrt(variance(j) + epsilon);
        i = V(1) / i;
        i = i * gamma(j);
        inv[j] = i;
        rest[j] = beta(j) - mean(j) * i;
    }
    tensor4<V> y = tensor4<V>::from_shape(x.shape());
    const std::size_t n = x.size() / std::max<std::size_t>(c, 1);
    for (std::size_t r = 0; r < n; ++r)
        for (std::size_t j = 0; j < c; ++j) y.data()[r * c + j] = x.data()[r * c + j] * inv[j] + rest[j];
    return y;
}

// ---------------------------------------------------------------------------------------
// Element-wise and shape layers.

enum class activation { none, relu, relu6, leaky_relu };

template <class V, class E>
auto activate(E const& x, activation a, double alpha = 0.2)
{
    using std::max;
    using std::min;
    auto y = xt::eval(x);
    switch (a) {
    case activation::none: break;
    case activation::relu:
        for (auto& v : y) v = max(v, V(0));
        break;
    case activation::relu6:
        for (auto& v : y) v = min(max(v, V(0)), V(6));
        break;
    case activation::leaky_relu: {
        const V slope(alpha);
        for (auto& v : y) v = v < V(0) ? v * slope : v;
        break;
    }
    }
    return y;
}

template <class V>
tensor4<V> add(tensor4<V> const& a, tensor4<V> const& b)
{
    if (a.shape() != b.shape())
        throw shape_error("add: shapes " + detail::shape_string(a.shape()) + " and " + detail::shape_string(b.shape()) +
                          " differ");
    tensor4<V> y = tensor4<V>::from_shape(a.shape());
    for (std::size_t i = 0; i < a.size(); ++i) y.data()[i] = a.data()[i] + b.data()[i];
    return y;
}

// Along channels (NHWC axis 3).
template <class V>
tensor4<V> concat(std::vector<tensor4<V> const*> const& parts)
{
    if (parts.empty()) throw shape_error("concat: no inputs");
    auto s = parts[0]->shape();
    std::size_t c = 0;
    for (auto const* p : parts) {
        if (p->shape(0) != s[0] || p->shape(1) != s[1] || p->shape(2) != s[2])
            throw shape_error("concat: shapes " + detail::shape_string(s) + " and " + detail::shape_string(p->shape()) +
                              " differ outside the channel axis");
        c += p->shape(3);
    }
    tensor4<V> y = tensor4<V>::from_shape({s[0], s[1], s[2], c});
    const std::size_t pixels = s[0] * s[1] * s[2];
    std::size_t offset = 0;
    for (auto const* p : parts) {
        const std::size_t pc = p->shape(3);
        for (std::size_t r = 0; r < pixels; ++r)
            std::copy(p->data() + r * pc, p->data() + (r + 1) * pc, y.data() + r * c + offset);
        offset += pc;
    }
    return y;
}

// [N, H, W, C] -> [N, H W C], in NHWC order.
template <class V>
tensor2<V> flatten(tensor4<V> const& x)
{
    tensor2<V> y = tensor2<V>::from_shape({x.shape(0), x.size() / std::max<std::size_t>(x.shape(0), 1)});
    std::copy(x.data(), x.data() + x.size(), y.data());
    return y;
}

// Row-wise softmax, in floating point only (exp is not an operation of the number types).
template <std::floating_point T>
tensor2<T> softmax(tensor2<T> const& x)
{
    tensor2<T> y = tensor2<T>::from_shape(x.shape());
    for (std::size_t r = 0; r < x.shape(0); ++r) {
        T m = -std::numeric_limits<T>::infinity(), s = 0;
        for (std::size_t j = 0; j < x.shape(1); ++j) m = std::max(m, x(r, j));
        for (std::size_t j = 0; j < x.shape(1); ++j) s += (y(r, j) = std::exp(x(r, j) - m));
        for (std::size_t j = 0; j < x.shape(1); ++j) y(r, j) /= s;
    }
    return y;
}

} // namespace tensorquant::nn
