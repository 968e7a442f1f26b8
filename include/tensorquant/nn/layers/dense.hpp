// Fully connected: x [N, IN] times weights [IN, OUT] plus bias, in the same accumulation
// order as conv2d (the inputs in increasing order, then the bias).
#pragma once

#include "../../config.hpp"

#include "../../number/datapath.hpp"
#include "../kernels/datapath.hpp"
#include "../kernels/gemm.hpp"
#include "../kernels/intrinsic.hpp"
#include "../kernels/tensor_ops.hpp"
#include "activation.hpp"
#include "flatten.hpp"
#include "layer.hpp"

#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

// How a dense layer reads its input: each sample flattened ([N, ...] -> [N, F], the classic
// fully connected layer), or the last axis ([..., K] -> [..., M], ONNX's MatMul by a
// constant matrix; the leading axes are rows).
enum class dense_input { flatten, last_axis };

namespace kernels {

// The rows and the length of a row of an input of this shape.
template <class S>
std::pair<std::size_t, std::size_t> dense_rows(S const& shape, dense_input mode)
{
    if (shape.size() == 0) throw shape_error("dense: the input is a scalar");
    std::size_t size = 1;
    for (auto d : shape) size *= d;
    const std::size_t k = mode == dense_input::flatten ? (shape[0] ? size / shape[0] : 0) : shape[shape.size() - 1];
    return {k ? size / k : (mode == dense_input::flatten ? shape[0] : 0), k};
}
template <class S>
std::vector<std::size_t> dense_output_shape(S const& shape, dense_input mode, std::size_t outputs)
{
    std::vector<std::size_t> r(shape.begin(), shape.end());
    if (mode == dense_input::flatten)
        r.resize(1);
    else
        r.pop_back();
    r.push_back(outputs);
    return r;
}
// The input as its [rows, K] matrix (a copy).
inline tensor2<float> dense_matrix(tensor<float> const& x, dense_input mode)
{
    const auto [rows, k] = dense_rows(x.shape(), mode);
    tensor2<float> m = tensor2<float>::from_shape({rows, k});
    std::copy(x.data(), x.data() + x.size(), m.data());
    return m;
}

} // namespace kernels

// y[n, j] = b[j] + sum over i of x[n, i] w[i, j].
template <class V, class Arch = xsimd::default_arch>
tensor2<V> dense(tensor2<V> const& x, tensor2<V> const& w, tensor1<V> const& b)
{
    if (x.shape(1) != w.shape(0))
        throw shape_error("dense: input " + kernels::shape_string(x.shape()) + " does not fit weights " +
                          kernels::shape_string(w.shape()) + " [IN, OUT]");
    const std::size_t n = x.shape(0), in = w.shape(0), out = w.shape(1);
    kernels::check_bias(b.size(), out, "dense");
    tensor2<V> y = tensor2<V>::from_shape({n, out});
    if constexpr (std::is_floating_point_v<V>) {
        kernels::packed_panels<V, Arch> pack(
            in, out, [&](std::size_t i, std::size_t j) { return w(i, j); },
            [&](std::size_t j) { return b.size() ? b(j) : V(0); });
        kernels::gemm(kernels::float_mac<V, Arch>{}, x.data(), n, pack, y.data());
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

// Intrinsic dense layer, the same rules as conv2d_intrinsic (row = sample).
template <std::floating_point T, class Arch = xsimd::default_arch>
tensor2<T> dense_intrinsic(tensor2<T> const& x, tensor2<T> const& w, tensor1<T> const& b, fixed_point_rt const& q)
{
    kernels::check_intrinsic_format(q, "dense");
    if (x.shape(1) != w.shape(0))
        throw shape_error("dense: input " + kernels::shape_string(x.shape()) + " does not fit weights " +
                          kernels::shape_string(w.shape()) + " [IN, OUT]");
    const std::size_t n = x.shape(0), in = w.shape(0), out = w.shape(1);
    kernels::check_bias(b.size(), out, "dense");
    const auto xq = kernels::quantized_copy(q, x, kernels::intrinsic_operand_offset(0));
    const auto wq = kernels::quantized_copy(q, w, kernels::intrinsic_operand_offset(1));
    const auto bq = kernels::quantized_copy(q, b, kernels::intrinsic_operand_offset(2));
    tensor2<T> y = tensor2<T>::from_shape({n, out});
    kernels::visit_intrinsic<Arch>(q, [&](auto const& mac) {
        kernels::packed_panels<double, Arch> pack(
            in, out, [&](std::size_t i, std::size_t j) { return double(wq(i, j)); },
            [&](std::size_t j) { return bq.size() ? double(bq(j)) * mac.scale : 0.0; });
        kernels::gemm(mac, xq.data(), n, pack, y.data());
    });
    return y;
}

// The generic dense layer on a compile-time datapath (number/datapath.hpp): x and w are
// rounded to their formats and b to the accumulator's; then for each output
// Out(Acc(... Acc(Acc(0 + P(a_0 w_0)) + P(a_1 w_1)) ... + b)), k in increasing order.
// Stochastic formats draw from key's streams where dense_datapath does (row = sample).
template <class Dp, std::floating_point T>
tensor2<typename Dp::template output<T>> dense(tensor2<T> const& x, tensor2<T> const& w, tensor1<T> const& b, Dp,
                                               rng_key key = {})
{
    const kernels::generic_datapath<Dp, T> dp{key};
    using S = typename decltype(dp)::accumulator;
    if (x.shape(1) != w.shape(0))
        throw shape_error("dense: input " + kernels::shape_string(x.shape()) + " does not fit weights " +
                          kernels::shape_string(w.shape()) + " [IN, OUT]");
    const std::size_t n = x.shape(0), in = w.shape(0), out = w.shape(1);
    kernels::check_bias(b.size(), out, "dense");
    const auto xq = dp.inputs(x);
    const auto wq = dp.weights(w);
    auto y = tensor2<typename Dp::template output<T>>::from_shape({n, out});
    for (std::size_t r = 0; r < n; ++r)
        for (std::size_t j = 0; j < out; ++j) {
            S acc = S::from_raw(T(0));
            for (std::size_t i = 0; i < in; ++i)
                acc = dp.step(acc, xq[r * in + i], wq[i * out + j], (r * in + i) * out + j);
            if (b.size()) acc = acc + dp.bias(b(j), j);
            y(r, j) = dp.finish(acc, r * out + j);
        }
    return y;
}

// Dense under a runtime datapath (nn/datapath.hpp), vectorised, bit-identical to the
// generic dense on the same datapath_of; its stochastic formats draw at the blocks of
// kernels/datapath.hpp (row = sample). Gives [N, 1, 1, OUT] after the fused activation (the
// layer reshapes it to its output).
template <class Arch = xsimd::default_arch>
tensor4<float> dense_datapath(tensor2<float> const& x, tensor2<float> const& w, tensor1<float> const& b,
                              datapath const& d, activation_fn const& act = {})
{
    if (x.shape(1) != w.shape(0))
        throw shape_error("dense: input " + kernels::shape_string(x.shape()) + " does not fit weights " +
                          kernels::shape_string(w.shape()) + " [IN, OUT]");
    const std::size_t n = x.shape(0), in = w.shape(0), out = w.shape(1);
    kernels::check_bias(b.size(), out, "dense");
    if (const auto problem = kernels::datapath_problem(d, in); !problem.empty())
        throw format_error("dense datapath " + d.to_string() + ": " + problem);
    // block formats: the inputs' rows and the weights' columns (the reduction axis)
    const auto xq = kernels::datapath_operand(d[datapath_role::input], x, kernels::intrinsic_operand_offset(0), in, 1);
    const auto wq =
        kernels::datapath_operand(d[datapath_role::weights], w, kernels::intrinsic_operand_offset(1), in, out);
    const auto block = kernels::block_dot_plan_of(d);
    return kernels::run_datapath<Arch>(
        d, in, std::span<float const>(xq.data(), xq.size()), std::span<float const>(wq.data(), wq.size()), b, out,
        {n, 1, 1, out}, act,
        [&](auto const& mac, std::vector<double> const& bias, auto* y) {
            using Mac = std::decay_t<decltype(mac)>;
            using V = typename Mac::value_type;
            kernels::packed_panels<V, Arch> pack(
                in, out, [&](std::size_t i, std::size_t j) { return V(double(wq(i, j)) * mac.w_scale); },
                [&](std::size_t j) { return V(bias[j]); });
            if constexpr (kernels::BlockAccumulator<Mac>)
                if (block) return kernels::block_gemm(mac, xq.data(), n, pack, *block, y);
            kernels::gemm(mac, xq.data(), n, pack, y);
        },
        [&](fixed_point_rt const& acc, auto const& bias_words, float* y) {
            kernels::wide_products(
                d, acc, xq.data(), n, in, [&](std::size_t i, std::size_t j) { return wq(i, j); }, out, bias_words, y,
                out);
        });
}

namespace tape_ops {

// x [N, ...] (flattened to [N, IN]) or [..., IN] (the last axis), w [IN, OUT], b [OUT];
// gives [N, OUT] or [..., OUT].
template <class Tape>
typename Tape::var dense(Tape& t, typename Tape::var x, typename Tape::var w, typename Tape::var b,
                         dense_input mode = dense_input::flatten)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    auto const& xv = t.value(x);
    auto const& wv = t.value(w);
    auto const& bv = t.value(b);
    const auto rows = kernels::dense_rows(xv.shape(), mode);
    const std::size_t n = rows.first, in = rows.second; // (clang 14 cannot capture structured bindings)
    if (wv.dimension() != 2 || wv.shape(0) != in)
        throw shape_error("dense: input " + kernels::shape_string(xv.shape()) + " does not fit weights " +
                          kernels::shape_string(wv.shape()) + " [IN, OUT]");
    const std::size_t outs = wv.shape(1);
    if (bv.size() != 0 && bv.size() != outs) throw shape_error("dense: bias does not fit the outputs");
    xt::xarray<T> y = xt::xarray<T>::from_shape(kernels::dense_output_shape(xv.shape(), mode, outs));
    const kernels::packed_panels<T> pack(
        in, outs, [&](std::size_t i, std::size_t j) { return wv.data()[i * outs + j]; },
        [&](std::size_t j) { return bv.size() ? bv.data()[j] : T(0); });
    kernels::gemm(kernels::float_mac<T>{}, xv.data(), n, pack, y.data());
    return t.record(std::move(y),
                    [x, w, b, n, in, outs](Tape& tp, V o) {
                        T const* dy = tp.grad(o).data();
                        if (tp.needs_grad(b) && tp.value(b).size()) {
                            T* db = tp.grad(b).data();
                            for (std::size_t r = 0; r < n; ++r)
                                for (std::size_t j = 0; j < outs; ++j) db[j] += dy[r * outs + j];
                        }
                        std::vector<T> tmp;
                        if (tp.needs_grad(w)) {
                            tmp.resize(in * outs);
                            kernels::matmul(
                                tp.value(x).data(), in, n, outs,
                                [&](std::size_t r, std::size_t j) { return dy[r * outs + j]; }, tmp.data(), true);
                            kernels::accumulate(tp.grad(w), tmp.data());
                        }
                        if (tp.needs_grad(x)) {
                            T const* wv = tp.value(w).data();
                            tmp.resize(n * in);
                            kernels::matmul(
                                dy, n, outs, in, [&](std::size_t j, std::size_t i) { return wv[i * outs + j]; },
                                tmp.data());
                            kernels::accumulate(tp.grad(x), tmp.data());
                        }
                    },
                    {x, w, b});
}

} // namespace tape_ops

struct dense_layer
{
    static constexpr std::string_view kind = "dense";
    tensor2<float> weights; // [IN, OUT]
    tensor1<float> bias;
    activation_fn act{}; // fused
    dense_input input = dense_input::flatten;

    template <class Self, class Fn>
    static void parameters_of(Self& self, Fn&& fn)
    {
        fn(parameter_info{"weights", true, true}, self.weights);
        fn(parameter_info{"bias", true, false}, self.bias);
    }

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        auto const& x = ctx.input(0);
        return shaped(x,
                      kernels::activate_float(
                          nn::dense(kernels::dense_matrix(x, input), ctx.param(0, weights), ctx.param(1, bias)), act));
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        auto const& x = ctx.input(0);
        return shaped(x, kernels::activate_intrinsic(nn::dense_intrinsic(kernels::dense_matrix(x, input),
                                                                         ctx.param(0, weights), ctx.param(1, bias), q),
                                                     act, q));
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return kernels::activation_problem(act); }
    template <class Ctx>
    tensor<float> forward_datapath(Ctx& ctx, datapath const& d) const
    {
        auto const& x = ctx.input(0);
        return shaped(
            x, nn::dense_datapath(kernels::dense_matrix(x, input), ctx.param(0, weights), ctx.param(1, bias), d, act));
    }
    std::string datapath_problem(datapath const& d) const
    {
        if (const auto p = kernels::activation_problem(act); !p.empty()) return p;
        return kernels::datapath_problem(d, weights.shape(0));
    }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        auto& t = ctx.tape();
        return tape_ops::activate(t, tape_ops::dense(t, ctx.input(0), ctx.param(0), ctx.param(1), input), act);
    }

private:
    // The [rows, OUT] result in the layer's output shape (no copy).
    template <class R>
    tensor<float> shaped(tensor<float> const& x, R&& rows) const
    {
        auto y = kernels::to_tensor(std::move(rows));
        y.reshape(kernels::dense_output_shape(x.shape(), input, weights.shape(1)));
        return y;
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
