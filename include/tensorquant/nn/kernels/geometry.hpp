// Shapes and window geometry of the layers: tensor aliases, padding rules, the output
// size of a convolution or pooling window, and the shape checks every layer shares. Used
// by the forward and backward passes alike.
#pragma once

#include "../../config.hpp"

#include "../../core/error.hpp"
#include "../../detail/xtensor_compat.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

// The tensors that flow between a network's layers: any rank, row-major. Image tensors
// are NHWC; each layer documents the layout it reads.
template <class V>
using tensor = xt::xarray<V>;
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

struct pool_options
{
    std::array<int, 2> size{2, 2};
    std::array<int, 2> stride{2, 2};
    padding_mode padding = padding_mode::valid;
    std::array<int, 4> pads{0, 0, 0, 0};
    // Average pooling divides by the whole window, padding included (ONNX's
    // count_include_pad = 1, PyTorch's default), rather than by the input cells it covers.
    bool count_pads = false;
};

namespace kernels {

template <class S>
std::string shape_string(S const& s)
{
    std::string r = "[";
    for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

// A tensor of no elements (a default xarray is a scalar: one element).
inline tensor<float> empty_tensor() { return tensor<float>::from_shape(std::vector<std::size_t>{0}); }

// A shape_error naming `what` unless x has the rank (4: an NHWC image batch).
template <class V>
void require_rank(tensor<V> const& x, std::size_t rank, char const* what)
{
    if (x.dimension() != rank)
        throw shape_error(std::string(what) + ": the input has shape " + shape_string(x.shape()) +
                          (rank == 4 ? "; it needs a 4-D NHWC tensor" : "; it needs rank " + std::to_string(rank)));
}

// x as a 4-D tensor (a copy); a shape_error naming `what` for another rank.
template <class V>
tensor4<V> as4(tensor<V> const& x, char const* what)
{
    require_rank(x, 4, what);
    tensor4<V> y = tensor4<V>::from_shape({x.shape(0), x.shape(1), x.shape(2), x.shape(3)});
    std::copy(x.data(), x.data() + x.size(), y.data());
    return y;
}

// t as a tensor of any rank, its storage moved (no copy).
template <class V, std::size_t N>
tensor<V> to_tensor(xt::xtensor<V, N>&& t)
{
    typename tensor<V>::inner_shape_type shape(t.shape().begin(), t.shape().end());
    typename tensor<V>::inner_strides_type strides(shape.size());
    xt::compute_strides(shape, xt::layout_type::row_major, strides);
    return tensor<V>(std::move(t.storage()), std::move(shape), std::move(strides));
}

// x as [rows, 1, 1, C] with C its last axis (a copy; a 4-D x keeps its shape).
template <class V>
tensor4<V> channels_last4(tensor<V> const& x)
{
    if (x.dimension() == 4) return as4(x, "");
    const std::size_t c = x.dimension() ? x.shape(x.dimension() - 1) : 1;
    tensor4<V> y = tensor4<V>::from_shape({c ? x.size() / c : 0, 1, 1, c});
    std::copy(x.data(), x.data() + x.size(), y.data());
    return y;
}

// t's elements in like's shape (no copy).
template <class V, std::size_t N>
tensor<V> reshaped_like(tensor<V> const& like, xt::xtensor<V, N>&& t)
{
    auto y = to_tensor(std::move(t));
    y.reshape(like.shape());
    return y;
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
                          std::to_string(in) + " with padding " + std::to_string(pad_lo) + "+" +
                          std::to_string(pad_hi));
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
    auto [oh, pt, pb] =
        axis_geometry(int(xs[1]), int(ws[0]), o.stride[0], o.dilation[0], o.padding, o.pads[0], o.pads[1], "conv2d");
    auto [ow, pl, pr] =
        axis_geometry(int(xs[2]), int(ws[1]), o.stride[1], o.dilation[1], o.padding, o.pads[2], o.pads[3], "conv2d");
    return {xs[0],
            xs[1],
            xs[2],
            xs[3],
            ws[0],
            ws[1],
            ws[2],
            ws[3],
            ws[3] / std::size_t(groups),
            std::size_t(oh),
            std::size_t(ow),
            pt,
            pl,
            o.stride[0],
            o.stride[1],
            o.dilation[0],
            o.dilation[1],
            groups};
}

inline void check_bias(std::size_t bias_size, std::size_t channels, char const* what)
{
    if (bias_size != 0 && bias_size != channels)
        throw shape_error(std::string(what) + ": bias has " + std::to_string(bias_size) + " elements, expected " +
                          std::to_string(channels) + " (or none)");
}

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
    return {xs[0],       xs[1],       xs[2], xs[3], std::size_t(oh), std::size_t(ow), o.size[0], o.size[1],
            o.stride[0], o.stride[1], pt,    pl};
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

} // namespace kernels
} // namespace tensorquant::inline TENSORQUANT_ABI::nn
