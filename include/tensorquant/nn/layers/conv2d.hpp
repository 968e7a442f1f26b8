// 2-D convolution: stride, valid / same / explicit padding, dilation, groups (depthwise
// when groups == channels); weights HWIO [KH, KW, C / groups, OC]. Float and double take
// im2col and the packed SIMD product; the number types take the naive loop, whose order
// is the documented accumulation order of intrinsic emulation: each output starts at 0,
// adds x w for (kh, kw, ic) in increasing order, then adds the bias.
#pragma once

#include "../../config.hpp"

#include "../../number/datapath.hpp"
#include "../kernels/datapath.hpp"
#include "../kernels/depthwise.hpp"
#include "../kernels/gemm.hpp"
#include "../kernels/intrinsic.hpp"
#include "../kernels/tensor_ops.hpp"
#include "activation.hpp"
#include "layer.hpp"

#include <cmath>
#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

namespace kernels {
// The float convolution of NHWC x (geometry g) into y: depthwise as a direct kernel, the
// others as products; b may be null.
template <class V, class Arch>
void float_conv(V const* x, conv_geometry const& g, V const* w, V const* b, V* y, float_mac<V, Arch> const& mac = {})
{
    if (is_depthwise(g))
        depthwise_products(mac, x, g, pack_depthwise<V, Arch>(w, b, g), y);
    else
        conv_products(mac, x, g, pack_conv_weights<packed_panels<V, Arch>>(w, b, g), y);
}
} // namespace kernels

// y[n, oy, ox, oc] = b[oc] + sum over (kh, kw, ic) of x[...] w[kh, kw, ic, oc]. An empty
// bias means none.
template <class V, class Arch = xsimd::default_arch>
tensor4<V> conv2d(tensor4<V> const& x, tensor4<V> const& w, tensor1<V> const& b, window_options const& o = {})
{
    const auto g = kernels::conv_geometry_of(x.shape(), w.shape(), o);
    kernels::check_bias(b.size(), g.oc, "conv2d");
    tensor4<V> y = tensor4<V>::from_shape({g.n, g.oh, g.ow, g.oc});
    if constexpr (std::is_floating_point_v<V>) {
        kernels::float_conv<V, Arch>(x.data(), g, w.data(), b.size() ? b.data() : nullptr, y.data());
    } else {
        const std::size_t K = g.k();
        std::vector<V> col(g.oh * g.ow * K);
        for (std::size_t img = 0; img < g.n; ++img)
            for (std::size_t grp = 0; grp < std::size_t(g.groups); ++grp) {
                kernels::im2col(x.data(), g, img, grp, col.data());
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

// Intrinsic convolution (paper eq. 7) with a runtime fixed-point format: x, w and b are
// quantized with q, then each output is Q(...Q(Q(0 + Q(x w)) + Q(x w))... + b) in the
// documented order. Bit-identical to conv2d<quantized<T, Q>> for deterministic q;
// stochastic products use threshold index (row K + k) OCg + column, where row counts
// output pixels over the batch, group after group (q's rng key sets seed and stream); x, w
// and b are quantized at stream blocks 1, 2 and 3 (positions 2^32, 2 2^32, 3 2^32 on).
template <std::floating_point T, class Arch = xsimd::default_arch>
tensor4<T> conv2d_intrinsic(tensor4<T> const& x, tensor4<T> const& w, tensor1<T> const& b, window_options const& o,
                            fixed_point_rt const& q)
{
    kernels::check_intrinsic_format(q, "conv2d");
    const auto g = kernels::conv_geometry_of(x.shape(), w.shape(), o);
    kernels::check_bias(b.size(), g.oc, "conv2d");
    const auto xq = kernels::quantized_copy(q, x, kernels::intrinsic_operand_offset(0));
    const auto wq = kernels::quantized_copy(q, w, kernels::intrinsic_operand_offset(1));
    const auto bq = kernels::quantized_copy(q, b, kernels::intrinsic_operand_offset(2));
    tensor4<T> y = tensor4<T>::from_shape({g.n, g.oh, g.ow, g.oc});
    kernels::visit_intrinsic<Arch>(q, [&](auto const& mac) {
        if constexpr (kernels::LaneMac<std::decay_t<decltype(mac)>>)
            if (kernels::is_depthwise(g)) {
                const auto pack = kernels::pack_depthwise<double, Arch>(wq.data(), bq.size() ? bq.data() : nullptr, g,
                                                                        1.0, mac.scale);
                return kernels::depthwise_products(mac, xq.data(), g, pack, y.data());
            }
        const auto packs = kernels::pack_conv_weights<kernels::packed_panels<double, Arch>>(
            wq.data(), bq.size() ? bq.data() : nullptr, g, 1.0, mac.scale);
        kernels::conv_products(mac, xq.data(), g, packs, y.data());
    });
    return y;
}

// The generic convolution on a compile-time datapath (number/datapath.hpp), in the order
// of conv2d_intrinsic: x and w rounded to their formats, b to the accumulator's, then each
// output Out(Acc(... Acc(Acc(0 + P(a_0 w_0)) + P(a_1 w_1)) ... + b)), k in increasing order.
// Stochastic formats draw from key's streams where conv2d_datapath does.
template <class Dp, std::floating_point T>
tensor4<typename Dp::template output<T>> conv2d(tensor4<T> const& x, tensor4<T> const& w, tensor1<T> const& b,
                                                window_options const& o, Dp, rng_key key = {})
{
    const kernels::generic_datapath<Dp, T> dp{key};
    using A = typename decltype(dp)::input;
    using S = typename decltype(dp)::accumulator;
    const auto g = kernels::conv_geometry_of(x.shape(), w.shape(), o);
    kernels::check_bias(b.size(), g.oc, "conv2d");
    const std::size_t K = g.k(), rows = g.oh * g.ow;
    const auto xq = dp.inputs(x);
    const auto wq = dp.weights(w);
    // im2col places zeros in the padding; a zero operand of the input format
    std::vector<A> col(rows * K);
    auto y = tensor4<typename Dp::template output<T>>::from_shape({g.n, g.oh, g.ow, g.oc});
    for (std::size_t img = 0; img < g.n; ++img)
        for (std::size_t grp = 0; grp < std::size_t(g.groups); ++grp) {
            {
                // padding zeros are converted to A, exactly: a stochastic A draws, uselessly
                stochastic_scope zeros(key);
                kernels::im2col(xq.data(), g, img, grp, col.data());
            }
            const std::size_t first_row = (grp * g.n + img) * rows; // rows count pixels group by group
            for (std::size_t r = 0; r < rows; ++r)
                for (std::size_t j = 0; j < g.ocg; ++j) {
                    const std::size_t oc = grp * g.ocg + j;
                    S acc = S::from_raw(T(0));
                    for (std::size_t kk = 0; kk < K; ++kk)
                        acc = dp.step(acc, col[r * K + kk], wq[kk * g.oc + oc], ((first_row + r) * K + kk) * g.ocg + j);
                    if (b.size()) acc = acc + dp.bias(b(oc), oc);
                    const std::size_t element = (img * rows + r) * g.oc + oc;
                    y.data()[element] = dp.finish(acc, element);
                }
        }
    return y;
}

// Convolution under a runtime datapath (nn/datapath.hpp), vectorised, bit-identical to
// the generic conv2d on the same datapath_of; stochastic formats draw at the blocks of
// kernels/datapath.hpp (rows as conv2d_intrinsic). Gives NHWC after the fused activation.
template <class Arch = xsimd::default_arch>
tensor4<float> conv2d_datapath(tensor4<float> const& x, tensor4<float> const& w, tensor1<float> const& b,
                               window_options const& o, datapath const& d, activation_fn const& act = {})
{
    const auto g = kernels::conv_geometry_of(x.shape(), w.shape(), o);
    kernels::check_bias(b.size(), g.oc, "conv2d");
    if (const auto problem = kernels::datapath_problem(d, g.k()); !problem.empty())
        throw format_error("conv2d datapath " + d.to_string() + ": " + problem);
    // A block dot product quantizes the patches (block_conv_products), the weights along K.
    const auto block = kernels::block_dot_plan_of(d);
    const auto xq = kernels::datapath_operand(block ? std::nullopt : d[datapath_role::input], x,
                                              kernels::intrinsic_operand_offset(0));
    const auto wq =
        kernels::datapath_operand(d[datapath_role::weights], w, kernels::intrinsic_operand_offset(1), g.k(), g.oc);
    return kernels::run_datapath<Arch>(
        d, g.k(), std::span<float const>(xq.data(), xq.size()), std::span<float const>(wq.data(), wq.size()), b, g.oc,
        {g.n, g.oh, g.ow, g.oc}, act,
        [&](auto const& mac, std::vector<double> const& bias, auto* y) {
            using Mac = std::decay_t<decltype(mac)>;
            using V = typename Mac::value_type;
            if constexpr (kernels::LaneMac<Mac>)
                if (!block && kernels::is_depthwise(g))
                    return kernels::depthwise_products(
                        mac, xq.data(), g,
                        kernels::pack_depthwise<V, Arch>(wq.data(), bias.data(), g, mac.w_scale, 1.0), y);
            const auto packs = kernels::pack_conv_weights<kernels::packed_panels<V, Arch>>(wq.data(), bias.data(), g,
                                                                                           mac.w_scale, 1.0);
            if constexpr (kernels::BlockAccumulator<Mac>)
                if (block)
                    return kernels::block_conv_products(mac, x.data(), g, packs, *d[datapath_role::input], *block,
                                                        kernels::intrinsic_operand_offset(0), y);
            kernels::conv_products(mac, xq.data(), g, packs, y);
        },
        [&](fixed_point_rt const& acc, auto const& bias_words, float* y) {
            const std::size_t rows = g.oh * g.ow, K = g.k();
            std::vector<float> col(rows * K);
            for (std::size_t img = 0; img < g.n; ++img)
                for (std::size_t grp = 0; grp < std::size_t(g.groups); ++grp) {
                    kernels::im2col(xq.data(), g, img, grp, col.data());
                    const std::vector<std::decay_t<decltype(bias_words[0])>> group_bias(
                        bias_words.begin() + std::ptrdiff_t(grp * g.ocg),
                        bias_words.begin() + std::ptrdiff_t((grp + 1) * g.ocg));
                    kernels::wide_products(
                        d, acc, col.data(), rows, K,
                        [&](std::size_t kk, std::size_t j) { return wq.data()[kk * g.oc + grp * g.ocg + j]; }, g.ocg,
                        group_bias, y + img * rows * g.oc + grp * g.ocg, g.oc);
                }
        });
}

namespace tape_ops {

// x [N, H, W, C], w HWIO, b [OC] (may be an empty leaf). The patch matrix of the forward
// pass is kept for the weight gradient; all three products use the packed SIMD kernel.
template <class Tape>
typename Tape::var conv2d(Tape& t, typename Tape::var x, typename Tape::var w, typename Tape::var b,
                          window_options const& o)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    auto const& xv = t.value(x);
    auto const& wv = t.value(w);
    auto const& bv = t.value(b);
    if (xv.dimension() != 4 || wv.dimension() != 4)
        throw shape_error("conv2d: input " + kernels::shape_string(xv.shape()) + " and weights " +
                          kernels::shape_string(wv.shape()) + " must be NHWC and HWIO");
    const auto g = kernels::conv_geometry_of(xv.shape(), wv.shape(), o);
    if (bv.size() != 0 && bv.size() != g.oc) throw shape_error("conv2d: bias does not fit the output channels");
    const std::size_t rows = g.oh * g.ow, M = g.n * rows, K = g.k();
    auto cols = std::make_shared<std::vector<std::vector<T>>>(std::size_t(g.groups));
    xt::xarray<T> y = xt::xarray<T>::from_shape({g.n, g.oh, g.ow, g.oc});
    std::vector<T> part(g.groups > 1 ? M * g.ocg : 0);
    for (std::size_t grp = 0; grp < std::size_t(g.groups); ++grp) {
        auto& col = (*cols)[grp];
        col.resize(M * K);
        for (std::size_t img = 0; img < g.n; ++img)
            kernels::im2col(xv.data(), g, img, grp, col.data() + img * rows * K);
        const kernels::packed_panels<T> pack(
            K, g.ocg, [&](std::size_t kk, std::size_t j) { return wv.data()[kk * g.oc + grp * g.ocg + j]; },
            [&](std::size_t j) { return bv.size() ? bv.data()[grp * g.ocg + j] : T(0); });
        T* dst = g.groups == 1 ? y.data() : part.data();
        kernels::gemm(kernels::float_mac<T>{}, col.data(), M, pack, dst);
        if (g.groups > 1)
            for (std::size_t r = 0; r < M; ++r) std::copy_n(&part[r * g.ocg], g.ocg, y.data() + r * g.oc + grp * g.ocg);
    }
    return t.record(std::move(y),
                    [x, w, b, g, cols](Tape& tp, V out) {
                        const std::size_t rows = g.oh * g.ow, M = g.n * rows, K = g.k();
                        T const* dy = tp.grad(out).data();
                        T const* wv = tp.value(w).data();
                        if (tp.needs_grad(b) && tp.value(b).size()) {
                            T* db = tp.grad(b).data();
                            for (std::size_t r = 0; r < M; ++r)
                                for (std::size_t c = 0; c < g.oc; ++c) db[c] += dy[r * g.oc + c];
                        }
                        std::vector<T> dyg(g.groups > 1 ? M * g.ocg : 0), tmp;
                        for (std::size_t grp = 0; grp < std::size_t(g.groups); ++grp) {
                            T const* d = dy;
                            if (g.groups > 1) {
                                for (std::size_t r = 0; r < M; ++r)
                                    std::copy_n(dy + r * g.oc + grp * g.ocg, g.ocg, &dyg[r * g.ocg]);
                                d = dyg.data();
                            }
                            if (tp.needs_grad(w)) {
                                // dW[k, j] = sum over rows of col[r, k] dy[r, j], image by image so that
                                // each image's patch rows stay in cache while they are reread
                                tmp.resize(K * g.ocg);
                                T* dw = tp.grad(w).data();
                                for (std::size_t img = 0; img < g.n; ++img) {
                                    T const* di = d + img * rows * g.ocg;
                                    kernels::matmul((*cols)[grp].data() + img * rows * K, K, rows, g.ocg,
                                                    [&](std::size_t r, std::size_t j) { return di[r * g.ocg + j]; },
                                                    tmp.data(), true);
                                    for (std::size_t kk = 0; kk < K; ++kk)
                                        for (std::size_t j = 0; j < g.ocg; ++j)
                                            dw[kk * g.oc + grp * g.ocg + j] += tmp[kk * g.ocg + j];
                                }
                            }
                            if (tp.needs_grad(x)) {
                                // dcol[r, k] = sum_j dy[r, j] W[k, j], then back to the image positions
                                tmp.resize(M * K);
                                kernels::matmul(
                                    d, M, g.ocg, K,
                                    [&](std::size_t j, std::size_t kk) { return wv[kk * g.oc + grp * g.ocg + j]; },
                                    tmp.data());
                                kernels::col2im_add(tmp.data(), g, grp, tp.grad(x).data());
                            }
                        }
                    },
                    {x, w, b});
}

} // namespace tape_ops

struct conv2d_layer
{
    static constexpr std::string_view kind = "conv2d";
    tensor4<float> weights; // HWIO
    tensor1<float> bias;
    window_options options{};
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
        // straight from the input's storage into the output's, the activation in place
        auto const& x = ctx.input(0);
        kernels::require_rank(x, 4, kind.data());
        const auto w = ctx.param(0, weights);
        const auto b = ctx.param(1, bias);
        const auto g = kernels::conv_geometry_of(x.shape(), w.shape(), options);
        kernels::check_bias(b.size(), g.oc, "conv2d");
        tensor<float> y = tensor<float>::from_shape({g.n, g.oh, g.ow, g.oc});
        kernels::float_mac<float> mac;
        if (act.kind == activation::relu || act.kind == activation::relu6)
            mac.clamped = true, mac.lo = 0, mac.hi = act.kind == activation::relu ? HUGE_VALF : 6.0f;
        kernels::float_conv(x.data(), g, w.data(), b.size() ? b.data() : nullptr, y.data(), mac);
        if (!mac.clamped) kernels::activate_float_inplace(y.data(), y.size(), with_parameters_of<float>(act));
        return y;
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        return kernels::to_tensor(
            kernels::activate_intrinsic(nn::conv2d_intrinsic(kernels::as4(ctx.input(0), kind.data()),
                                                             ctx.param(0, weights), ctx.param(1, bias), options, q),
                                        act, q));
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return kernels::activation_problem(act); }
    template <class Ctx>
    tensor<float> forward_datapath(Ctx& ctx, datapath const& d) const
    {
        return kernels::to_tensor(nn::conv2d_datapath(kernels::as4(ctx.input(0), kind.data()), ctx.param(0, weights),
                                                      ctx.param(1, bias), options, d, act));
    }
    std::string datapath_problem(datapath const& d) const
    {
        if (const auto p = kernels::activation_problem(act); !p.empty()) return p;
        return kernels::datapath_problem(d, weights.shape(0) * weights.shape(1) * weights.shape(2));
    }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        auto& t = ctx.tape();
        return tape_ops::activate(t, tape_ops::conv2d(t, ctx.input(0), ctx.param(0), ctx.param(1), options), act);
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
