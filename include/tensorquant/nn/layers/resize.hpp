// 2-D resizing of NHWC images (ONNX's Resize and Upsample over H and W): nearest neighbour
// (round_prefer_floor, round_prefer_ceil, floor, ceil) or bilinear, with the coordinate
// transformations half_pixel, pytorch_half_pixel, align_corners, asymmetric and
// tf_half_pixel_for_nn. A bilinear output is sum over (a, b) in {0,1}^2 of
// (wy_a wx_b) x[y_a, x_b], indices outside the image clamped to its edge. Float path: the
// weights and the sum in double, rounded once. Intrinsic path: each weight wy_a wx_b (in
// double) rounded to the format, then acc = Q(acc + Q(w x)) in the order (0,0), (0,1),
// (1,0), (1,1); nearest neighbour is exact.
#pragma once

#include "../../config.hpp"

#include "../../number/quantized.hpp"
#include "../kernels/geometry.hpp"
#include "../kernels/intrinsic.hpp"
#include "../kernels/tensor_ops.hpp"
#include "layer.hpp"

#include <array>
#include <cmath>
#include <string>
#include <string_view>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

enum class resize_mode {
    nearest,
    linear,
};
enum class resize_coordinates {
    half_pixel,
    pytorch_half_pixel,
    align_corners,
    asymmetric,
    tf_half_pixel_for_nn,
};
enum class nearest_rounding {
    round_prefer_floor,
    round_prefer_ceil,
    floor,
    ceil,
};
inline constexpr std::array<std::string_view, 5> resize_coordinates_names{
    "half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn"};
inline constexpr std::array<std::string_view, 4> nearest_rounding_names{"round_prefer_floor", "round_prefer_ceil",
                                                                        "floor", "ceil"};

struct resize_options
{
    resize_mode mode = resize_mode::nearest;
    resize_coordinates coordinates = resize_coordinates::half_pixel;
    nearest_rounding rounding = nearest_rounding::round_prefer_floor;
    std::array<double, 2> scales{1, 1};     // output size / input size along H and W
    std::array<std::size_t, 2> sizes{0, 0}; // the output's H and W; 0: floor(input scale)
};

namespace kernels {

// Per output index of one axis: the two input indices and their weights (nearest: one
// index, weight 1).
struct resize_taps
{
    std::vector<std::size_t> i0, i1;
    std::vector<double> w0, w1;
};

inline resize_taps resize_axis(std::size_t in, std::size_t out, double scale, resize_options const& o)
{
    resize_taps t;
    for (std::size_t r = 0; r < out; ++r) {
        double x = 0;
        const double xr = double(r);
        switch (o.coordinates) {
        case resize_coordinates::half_pixel:
            x = (xr + 0.5) / scale - 0.5;
            break;
        case resize_coordinates::pytorch_half_pixel:
            x = out > 1 ? (xr + 0.5) / scale - 0.5 : 0;
            break;
        case resize_coordinates::align_corners: // the resized length is in scale, as ONNX's reference
            x = double(in) * scale == 1 ? 0 : xr * double(in - 1) / (double(in) * scale - 1);
            break;
        case resize_coordinates::asymmetric:
            x = xr / scale;
            break;
        case resize_coordinates::tf_half_pixel_for_nn:
            x = (xr + 0.5) / scale;
            break;
        }
        auto clamp = [&](double v) { return std::size_t(std::min(std::max(v, 0.0), double(in - 1))); };
        if (o.mode == resize_mode::nearest) {
            double n = 0;
            switch (o.rounding) {
            case nearest_rounding::round_prefer_floor:
                n = x - std::floor(x) == 0.5 ? std::floor(x) : std::round(x);
                break;
            case nearest_rounding::round_prefer_ceil:
                n = x - std::floor(x) == 0.5 ? std::ceil(x) : std::round(x);
                break;
            case nearest_rounding::floor:
                n = std::floor(x);
                break;
            case nearest_rounding::ceil:
                n = std::ceil(x);
                break;
            }
            t.i0.push_back(clamp(n)), t.i1.push_back(clamp(n));
            t.w0.push_back(1), t.w1.push_back(0);
        } else {
            const double f = std::floor(x), frac = x - f;
            t.i0.push_back(clamp(f)), t.i1.push_back(clamp(f + 1));
            t.w0.push_back(1 - frac), t.w1.push_back(frac);
        }
    }
    return t;
}

struct resize_plan
{
    std::size_t n, h, w, c, oh, ow;
    resize_taps y, x;
};

template <class S>
resize_plan resize_plan_of(S const& shape, resize_options const& o)
{
    if (shape.size() != 4) throw shape_error("resize: the input " + shape_string(shape) + " is not NHWC");
    resize_plan p{shape[0], shape[1], shape[2], shape[3], o.sizes[0], o.sizes[1], {}, {}};
    const std::array<std::size_t, 2> in{p.h, p.w};
    for (int a = 0; a < 2; ++a) {
        std::size_t& out = a ? p.ow : p.oh;
        if (!out) out = std::size_t(std::floor(double(in[std::size_t(a)]) * o.scales[std::size_t(a)]));
        if (!(o.scales[std::size_t(a)] > 0)) throw shape_error("resize: scales must be positive");
        if (in[std::size_t(a)] == 0 && out) throw shape_error("resize: an empty image");
    }
    p.y = resize_axis(p.h, p.oh, o.scales[0], o);
    p.x = resize_axis(p.w, p.ow, o.scales[1], o);
    return p;
}

// fn(output offset, [(input offset, weight) x 4]) per output element.
template <class Fn>
void for_each_resized(resize_plan const& p, Fn&& fn)
{
    std::size_t e = 0;
    for (std::size_t img = 0; img < p.n; ++img)
        for (std::size_t oy = 0; oy < p.oh; ++oy)
            for (std::size_t ox = 0; ox < p.ow; ++ox)
                for (std::size_t ch = 0; ch < p.c; ++ch, ++e) {
                    auto at = [&](std::size_t iy, std::size_t ix) { return ((img * p.h + iy) * p.w + ix) * p.c + ch; };
                    const std::array<std::pair<std::size_t, double>, 4> taps{
                        std::pair{at(p.y.i0[oy], p.x.i0[ox]), p.y.w0[oy] * p.x.w0[ox]},
                        std::pair{at(p.y.i0[oy], p.x.i1[ox]), p.y.w0[oy] * p.x.w1[ox]},
                        std::pair{at(p.y.i1[oy], p.x.i0[ox]), p.y.w1[oy] * p.x.w0[ox]},
                        std::pair{at(p.y.i1[oy], p.x.i1[ox]), p.y.w1[oy] * p.x.w1[ox]}};
                    fn(e, taps);
                }
}

} // namespace kernels

template <class T>
tensor<T> resize_float(tensor<T> const& x, resize_options const& o)
{
    const auto p = kernels::resize_plan_of(x.shape(), o);
    tensor<T> y = tensor<T>::from_shape({p.n, p.oh, p.ow, p.c});
    kernels::for_each_resized(p, [&](std::size_t e, auto const& taps) {
        double s = 0;
        for (auto [i, w] : taps)
            if (w != 0) s += w * double(x.data()[i]);
        y.data()[e] = T(s);
    });
    return y;
}

// On values of q's format; a stochastic q draws in the order of the sums (block 0).
inline tensor<float> resize_intrinsic(tensor<float> const& xq, resize_options const& o, fixed_point_rt const& q)
{
    if (o.mode == resize_mode::nearest) return resize_float(xq, o);
    kernels::check_intrinsic_format(q, "resize");
    const auto p = kernels::resize_plan_of(xq.shape(), o);
    tensor<float> y = tensor<float>::from_shape({p.n, p.oh, p.ow, p.c});
    number_scope scope(q);
    stochastic_scope stream(q.key());
    using R = quantized_rt<float>;
    kernels::for_each_resized(p, [&](std::size_t e, auto const& taps) {
        R acc = R::from_raw(0.0f);
        for (auto [i, w] : taps) acc = acc + R(w) * R::from_raw(xq.data()[i]);
        y.data()[e] = acc.value();
    });
    return y;
}

namespace tape_ops {

template <class Tape>
typename Tape::var resize(Tape& t, typename Tape::var x, resize_options const& o)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    return t.record(resize_float(t.value(x), o),
                    [x, o](Tape& tp, V out) {
                        const auto p = kernels::resize_plan_of(tp.value(x).shape(), o);
                        T* dx = tp.grad(x).data();
                        T const* dy = tp.grad(out).data();
                        kernels::for_each_resized(p, [&](std::size_t e, auto const& taps) {
                            for (auto [i, w] : taps) dx[i] += T(w) * dy[e];
                        });
                    },
                    {x});
}

} // namespace tape_ops

struct resize_layer
{
    static constexpr std::string_view kind = "resize";
    resize_options options{};

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        return resize_float(ctx.input(0), options);
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        return resize_intrinsic(kernels::quantized_copy(q, ctx.input(0), kernels::intrinsic_operand_offset(0)), options,
                                q);
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return tape_ops::resize(ctx.tape(), ctx.input(0), options);
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
