// 2-D transposed convolution (ONNX's ConvTranspose) on NHWC: stride, dilation, padding,
// output padding and groups; weights [KH, KW, C, OC / groups] (input channel, then output
// channel within the group). Output (oy, ox) of channel oc sums, for (kh, kw, ic) in
// increasing order over the input channels of oc's group, x[iy, ix, ic] w[kh, kw, ic, oc]
// where oy = iy stride - pad_top + kh dilation (likewise for x), then adds the bias. In a
// number type every product and sum rounds; the intrinsic path is that loop on the layer's
// fixed-point format (operands rounded first, a stochastic format drawing in loop order).
#pragma once

#include "../../config.hpp"

#include "../../number/quantized.hpp"
#include "../kernels/geometry.hpp"
#include "../kernels/intrinsic.hpp"
#include "../kernels/tensor_ops.hpp"
#include "activation.hpp"
#include "layer.hpp"

#include <array>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

struct transpose_options
{
    std::array<int, 2> stride{1, 1}, dilation{1, 1}, output_padding{0, 0};
    std::array<int, 4> pads{0, 0, 0, 0}; // top, bottom, left, right
    int groups = 1;
};

namespace kernels {

struct deconv_geometry
{
    std::size_t n, h, w, c, kh, kw, cg, ocg, oc, oh, ow;
};

template <class SX, class SW>
deconv_geometry deconv_geometry_of(SX const& xs, SW const& ws, transpose_options const& o)
{
    if (xs.size() != 4 || ws.size() != 4)
        throw shape_error("conv_transpose: input " + shape_string(xs) + " and weights " + shape_string(ws) +
                          " must be NHWC and [KH, KW, C, OC / groups]");
    if (o.groups < 1 || xs[3] != ws[2] || xs[3] % std::size_t(o.groups))
        throw shape_error("conv_transpose: input " + shape_string(xs) + " (NHWC) does not fit weights " +
                          shape_string(ws) + " with groups=" + std::to_string(o.groups));
    deconv_geometry g{
        xs[0], xs[1], xs[2], xs[3], ws[0], ws[1], xs[3] / std::size_t(o.groups), ws[3], ws[3] * std::size_t(o.groups),
        0,     0};
    const std::array<std::size_t, 2> in{g.h, g.w}, k{g.kh, g.kw};
    std::array<std::size_t, 2> out{};
    for (int a = 0; a < 2; ++a) {
        if (o.stride[std::size_t(a)] < 1 || o.dilation[std::size_t(a)] < 1)
            throw shape_error("conv_transpose: stride and dilation must be >= 1");
        const long size = long(o.stride[std::size_t(a)]) * (long(in[std::size_t(a)]) - 1) +
                          o.output_padding[std::size_t(a)] +
                          (long(k[std::size_t(a)]) - 1) * o.dilation[std::size_t(a)] + 1 - o.pads[std::size_t(2 * a)] -
                          o.pads[std::size_t(2 * a + 1)];
        if (size < 1) throw shape_error("conv_transpose: the padding leaves no output");
        out[std::size_t(a)] = std::size_t(size);
    }
    g.oh = out[0], g.ow = out[1];
    return g;
}

// fn(input offset, weight offset) for the taps of output (img, oy, ox, oc), in order.
template <class Fn>
void for_each_tap(deconv_geometry const& g, transpose_options const& o, std::size_t img, std::size_t oy, std::size_t ox,
                  std::size_t oc, Fn&& fn)
{
    const std::size_t grp = oc / g.ocg, j = oc % g.ocg;
    for (std::size_t kh = 0; kh < g.kh; ++kh) {
        const long ty = long(oy) + o.pads[0] - long(kh) * o.dilation[0];
        if (ty < 0 || ty % o.stride[0]) continue;
        const long iy = ty / o.stride[0];
        if (iy >= long(g.h)) continue;
        for (std::size_t kw = 0; kw < g.kw; ++kw) {
            const long tx = long(ox) + o.pads[2] - long(kw) * o.dilation[1];
            if (tx < 0 || tx % o.stride[1]) continue;
            const long ix = tx / o.stride[1];
            if (ix >= long(g.w)) continue;
            for (std::size_t i = 0; i < g.cg; ++i) {
                const std::size_t ic = grp * g.cg + i;
                fn(((img * g.h + std::size_t(iy)) * g.w + std::size_t(ix)) * g.c + ic,
                   ((kh * g.kw + kw) * g.c + ic) * g.ocg + j);
            }
        }
    }
}

} // namespace kernels

template <class V>
tensor<V> conv_transpose2d(tensor<V> const& x, tensor<V> const& w, tensor<V> const& b, transpose_options const& o)
{
    const auto g = kernels::deconv_geometry_of(x.shape(), w.shape(), o);
    kernels::check_bias(b.size(), g.oc, "conv_transpose");
    tensor<V> y = tensor<V>::from_shape({g.n, g.oh, g.ow, g.oc});
    V* py = y.data();
    for (std::size_t img = 0; img < g.n; ++img)
        for (std::size_t oy = 0; oy < g.oh; ++oy)
            for (std::size_t ox = 0; ox < g.ow; ++ox)
                for (std::size_t oc = 0; oc < g.oc; ++oc) {
                    V acc = V(0);
                    kernels::for_each_tap(g, o, img, oy, ox, oc, [&](std::size_t xi, std::size_t wi) {
                        acc = acc + x.data()[xi] * w.data()[wi];
                    });
                    if (b.size()) acc = acc + b.data()[oc];
                    *py++ = acc;
                }
    return y;
}

inline tensor<float> conv_transpose2d_intrinsic(tensor<float> const& x, tensor<float> const& w, tensor<float> const& b,
                                                transpose_options const& o, fixed_point_rt const& q)
{
    kernels::check_intrinsic_format(q, "conv_transpose");
    number_scope scope(q);
    stochastic_scope stream(q.key());
    using R = quantized_rt<float>;
    auto to_rt = [](tensor<float> const& t) {
        tensor<R> r = tensor<R>::from_shape(t.shape());
        for (std::size_t i = 0; i < t.size(); ++i) r.data()[i] = R::from_raw(t.data()[i]);
        return r;
    };
    const auto y = conv_transpose2d(to_rt(x), to_rt(w), to_rt(b), o);
    tensor<float> r = tensor<float>::from_shape(y.shape());
    for (std::size_t i = 0; i < y.size(); ++i) r.data()[i] = y.data()[i].value();
    return r;
}

namespace tape_ops {

template <class Tape>
typename Tape::var conv_transpose2d(Tape& t, typename Tape::var x, typename Tape::var w, typename Tape::var b,
                                    transpose_options const& o)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    return t.record(nn::conv_transpose2d(t.value(x), t.value(w), t.value(b), o),
                    [x, w, b, o](Tape& tp, V out) {
                        const auto g = kernels::deconv_geometry_of(tp.value(x).shape(), tp.value(w).shape(), o);
                        T const* dy = tp.grad(out).data();
                        T const* xv = tp.value(x).data();
                        T const* wv = tp.value(w).data();
                        T* dx = tp.needs_grad(x) ? tp.grad(x).data() : nullptr;
                        T* dw = tp.needs_grad(w) ? tp.grad(w).data() : nullptr;
                        T* db = tp.needs_grad(b) && tp.value(b).size() ? tp.grad(b).data() : nullptr;
                        std::size_t e = 0;
                        for (std::size_t img = 0; img < g.n; ++img)
                            for (std::size_t oy = 0; oy < g.oh; ++oy)
                                for (std::size_t ox = 0; ox < g.ow; ++ox)
                                    for (std::size_t oc = 0; oc < g.oc; ++oc, ++e) {
                                        const T d = dy[e];
                                        if (db) db[oc] += d;
                                        kernels::for_each_tap(g, o, img, oy, ox, oc,
                                                              [&](std::size_t xi, std::size_t wi) {
                                                                  if (dx) dx[xi] += d * wv[wi];
                                                                  if (dw) dw[wi] += d * xv[xi];
                                                              });
                                    }
                    },
                    {x, w, b});
}

} // namespace tape_ops

struct conv_transpose2d_layer
{
    static constexpr std::string_view kind = "conv_transpose2d";
    tensor<float> weights; // [KH, KW, C, OC / groups]
    tensor<float> bias = kernels::empty_tensor();
    transpose_options options{};
    activation_fn act{}; // fused

    template <class Self, class Fn>
    static void parameters_of(Self& self, Fn&& fn)
    {
        fn(parameter_info{"weights", true, true}, self.weights);
        fn(parameter_info{"bias", true, false}, self.bias);
    }

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        return kernels::activate_float(
            conv_transpose2d(ctx.input(0), ctx.param(0, weights), ctx.param(1, bias), options), act);
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        using kernels::intrinsic_operand_offset;
        using kernels::quantized_copy;
        return kernels::activate_intrinsic(
            conv_transpose2d_intrinsic(quantized_copy(q, ctx.input(0), intrinsic_operand_offset(0)),
                                       quantized_copy(q, ctx.param(0, weights), intrinsic_operand_offset(1)),
                                       quantized_copy(q, ctx.param(1, bias), intrinsic_operand_offset(2)), options, q),
            act, q);
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return kernels::activation_problem(act); }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        auto& t = ctx.tape();
        return tape_ops::activate(t, tape_ops::conv_transpose2d(t, ctx.input(0), ctx.param(0), ctx.param(1), options),
                                  act);
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
