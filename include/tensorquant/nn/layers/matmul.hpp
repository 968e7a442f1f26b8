// The matrix product of ONNX's MatMul (numpy's matmul): [..., M, K] x [..., K, N] with the
// leading axes broadcast, a 1-D operand promoted to a matrix and its axis dropped again;
// between two inputs (attention) or an input and a constant (a parameter, on either side),
// with an optional fused activation. Each output sums over k in increasing order from 0:
// float with fused multiply-adds (the packed GEMM of dense and conv2d), intrinsic as
// acc = Q(acc + Q(a b)) with both operands first rounded to the format (the intrinsic GEMM).
// A product with a constant matrix on the right is usually a dense layer (dense_input::
// last_axis), which also runs datapaths.
#pragma once

#include "../../config.hpp"

#include "../kernels/broadcast.hpp"
#include "../kernels/gemm.hpp"
#include "../kernels/intrinsic.hpp"
#include "../kernels/tensor_ops.hpp"
#include "activation.hpp"
#include "layer.hpp"

#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

namespace kernels {

struct matmul_geometry
{
    std::size_t m = 1, k = 1, n = 1;
    broadcast_plan batches; // over the leading axes; strides in matrices
    std::vector<std::size_t> shape;
};

template <class SA, class SB>
matmul_geometry matmul_geometry_of(SA const& sa, SB const& sb)
{
    std::vector<std::size_t> a(sa.begin(), sa.end()), b(sb.begin(), sb.end());
    if (a.empty() || b.empty()) throw shape_error("matmul: an operand is a scalar");
    const bool a_vector = a.size() == 1, b_vector = b.size() == 1;
    if (a_vector) a.insert(a.begin(), 1);
    if (b_vector) b.push_back(1);
    matmul_geometry g;
    g.m = a[a.size() - 2], g.k = a.back(), g.n = b.back();
    if (b[b.size() - 2] != g.k)
        throw shape_error("matmul: shapes " + shape_string(sa) + " and " + shape_string(sb) +
                          " do not multiply (the inner sizes differ)");
    const std::vector<std::size_t> ba(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
    g.batches = broadcast_shapes(ba, bb, "matmul");
    g.shape = g.batches.shape;
    if (!a_vector) g.shape.push_back(g.m);
    if (!b_vector) g.shape.push_back(g.n);
    return g;
}

} // namespace kernels

// The generic product: each output is acc = 0, then acc = acc + a b for k in increasing
// order, every operation rounded as V rounds.
template <class V>
tensor<V> matmul(tensor<V> const& a, tensor<V> const& b)
{
    const auto g = kernels::matmul_geometry_of(a.shape(), b.shape());
    tensor<V> y = tensor<V>::from_shape(g.shape);
    kernels::for_each_broadcast(g.batches, [&](std::size_t i, std::size_t ia, std::size_t ib) {
        V const* pa = a.data() + ia * g.m * g.k;
        V const* pb = b.data() + ib * g.k * g.n;
        V* py = y.data() + i * g.m * g.n;
        for (std::size_t r = 0; r < g.m; ++r)
            for (std::size_t j = 0; j < g.n; ++j) {
                V acc = V(0);
                for (std::size_t kk = 0; kk < g.k; ++kk) acc = acc + pa[r * g.k + kk] * pb[kk * g.n + j];
                py[r * g.n + j] = acc;
            }
    });
    return y;
}

// The float product with the packed GEMM (fused multiply-adds).
template <class T, class Arch = xsimd::default_arch>
tensor<T> matmul_float(tensor<T> const& a, tensor<T> const& b)
{
    const auto g = kernels::matmul_geometry_of(a.shape(), b.shape());
    tensor<T> y = tensor<T>::from_shape(g.shape);
    kernels::for_each_broadcast(g.batches, [&](std::size_t i, std::size_t ia, std::size_t ib) {
        T const* pb = b.data() + ib * g.k * g.n;
        const kernels::packed_panels<T, Arch> pack(
            g.k, g.n, [&](std::size_t kk, std::size_t j) { return pb[kk * g.n + j]; },
            [](std::size_t) { return T(0); });
        kernels::gemm(kernels::float_mac<T, Arch>{}, a.data() + ia * g.m * g.k, g.m, pack, y.data() + i * g.m * g.n);
    });
    return y;
}

// The intrinsic product of operands already in q's format, bit-identical to matmul on
// quantized_rt for deterministic q; a stochastic q's products take the thresholds of
// index ((batch M + row) K + k) N + column.
template <class Arch = xsimd::default_arch>
tensor<float> matmul_intrinsic(tensor<float> const& a, tensor<float> const& b, fixed_point_rt const& q)
{
    kernels::check_intrinsic_format(q, "matmul");
    const auto g = kernels::matmul_geometry_of(a.shape(), b.shape());
    tensor<float> y = tensor<float>::from_shape(g.shape);
    kernels::visit_intrinsic<Arch>(q, [&](auto const& mac) {
        kernels::for_each_broadcast(g.batches, [&](std::size_t i, std::size_t ia, std::size_t ib) {
            float const* pb = b.data() + ib * g.k * g.n;
            const kernels::packed_panels<double, Arch> pack(
                g.k, g.n, [&](std::size_t kk, std::size_t j) { return double(pb[kk * g.n + j]); },
                [](std::size_t) { return 0.0; });
            kernels::gemm(mac, a.data() + ia * g.m * g.k, g.m, pack, y.data() + i * g.m * g.n, i * g.m);
        });
    });
    return y;
}

namespace tape_ops {

template <class Tape>
typename Tape::var matmul(Tape& t, typename Tape::var a, typename Tape::var b)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    const auto g = kernels::matmul_geometry_of(t.value(a).shape(), t.value(b).shape());
    return t.record(nn::matmul_float(t.value(a), t.value(b)),
                    [a, b, g](Tape& tp, V out) {
                        T const* dy = tp.grad(out).data();
                        T const* av = tp.value(a).data();
                        T const* bv = tp.value(b).data();
                        std::vector<T> tmp;
                        kernels::for_each_broadcast(g.batches, [&](std::size_t i, std::size_t ia, std::size_t ib) {
                            T const* d = dy + i * g.m * g.n;
                            T const* pa = av + ia * g.m * g.k;
                            T const* pb = bv + ib * g.k * g.n;
                            if (tp.needs_grad(a)) { // dA = dY B^T
                                tmp.resize(g.m * g.k);
                                kernels::matmul(
                                    d, g.m, g.n, g.k, [&](std::size_t j, std::size_t kk) { return pb[kk * g.n + j]; },
                                    tmp.data());
                                T* da = tp.grad(a).data() + ia * g.m * g.k;
                                for (std::size_t e = 0; e < tmp.size(); ++e) da[e] += tmp[e];
                            }
                            if (tp.needs_grad(b)) { // dB = A^T dY
                                tmp.resize(g.k * g.n);
                                kernels::matmul(
                                    pa, g.k, g.m, g.n, [&](std::size_t r, std::size_t j) { return d[r * g.n + j]; },
                                    tmp.data(), true);
                                T* db = tp.grad(b).data() + ib * g.k * g.n;
                                for (std::size_t e = 0; e < tmp.size(); ++e) db[e] += tmp[e];
                            }
                        });
                    },
                    {a, b});
}

} // namespace tape_ops

struct matmul_layer
{
    static constexpr std::string_view kind = "matmul";
    activation_fn act{};                              // fused
    tensor<float> constant = kernels::empty_tensor(); // the right operand (the left if
                                                      // constant_first); empty: two inputs
    bool constant_first = false;

    template <class Self, class Fn>
    static void parameters_of(Self& self, Fn&& fn)
    {
        if (self.constant.size()) fn(parameter_info{"weights", true, true}, self.constant);
    }

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        return with_operands(
            ctx, [&](auto const& a, auto const& b) { return kernels::activate_float(matmul_float(a, b), act); });
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        return with_operands(ctx, [&](auto const& a, auto const& b) {
            return kernels::activate_intrinsic(
                matmul_intrinsic(kernels::quantized_copy(q, a, kernels::intrinsic_operand_offset(0)),
                                 kernels::quantized_copy(q, b, kernels::intrinsic_operand_offset(1)), q),
                act, q);
        });
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return kernels::activation_problem(act); }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        auto& t = ctx.tape();
        auto a = ctx.input(0);
        auto b = constant.size() ? ctx.param(0) : ctx.input(1);
        if (constant_first) std::swap(a, b);
        return tape_ops::activate(t, tape_ops::matmul(t, a, b), act);
    }

private:
    template <class Ctx, class Fn>
    tensor<float> with_operands(Ctx& ctx, Fn&& fn) const
    {
        if (!constant.size()) return fn(ctx.input(0), ctx.input(1));
        const tensor<float> c = ctx.param(0, constant);
        return constant_first ? fn(c, ctx.input(0)) : fn(ctx.input(0), c);
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
