// Batch normalisation. Inference uses TensorQuant's quantization points (each a rounding
// under intrinsic emulation): inv = sqrt(var + eps), inv = 1 / inv, inv = inv gamma,
// rest = beta - mean inv, y = x inv + rest. Training normalises with the batch's
// statistics and keeps running averages in mean and variance.
#pragma once

#include "../../config.hpp"

#include "../kernels/geometry.hpp"
#include "../kernels/intrinsic.hpp"
#include "../kernels/tensor_ops.hpp"
#include "activation.hpp"
#include "layer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

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
            throw shape_error("batch_norm: parameter of shape " + kernels::shape_string(p->shape()) + " does not fit " +
                              std::to_string(c) + " channels");
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

// batch_norm on quantized_rt under q's format, computed faster: the per-channel inv and
// rest with the number type, then y = x inv + rest over the tensor with the quantizer on
// doubles. The product of two words of at most 26 bits and the sum of two values on the
// grid are exact in double, so rounding them with the quantizer is what the number
// type's integer arithmetic does (test_layers checks both agree bit for bit).
inline tensor4<float> batch_norm_intrinsic(tensor4<float> const& x, tensor1<float> const& gamma,
                                           tensor1<float> const& beta, tensor1<float> const& mean,
                                           tensor1<float> const& variance, float epsilon, fixed_point_rt const& q)
{
    kernels::check_intrinsic_format(q, "batch_norm");
    const std::size_t c = x.shape(3);
    for (auto const* p : {&gamma, &beta, &mean, &variance})
        if (p->size() != c)
            throw shape_error("batch_norm: parameter of shape " + kernels::shape_string(p->shape()) + " does not fit " +
                              std::to_string(c) + " channels");
    std::vector<double> inv(c), rest(c);
    {
        number_scope scope(q);
        stochastic_scope stream(q.key(), kernels::intrinsic_operand_offset(2)); // a stochastic q's constants
        using V = quantized_rt<float>;
        for (std::size_t j = 0; j < c; ++j) {
            using std::sqrt;
            V i = sqrt(V(variance(j)) + V(epsilon));
            i = V(1) / i;
            i = i * V(gamma(j));
            inv[j] = double(i.value());
            rest[j] = double((V(beta(j)) - V(mean(j)) * i).value());
        }
    }
    const auto xq = kernels::quantized_copy(q, x);
    std::vector<double> t(x.size());
    const std::size_t n = x.size() / std::max<std::size_t>(c, 1);
    for (std::size_t r = 0; r < n; ++r)
        for (std::size_t j = 0; j < c; ++j) t[r * c + j] = double(xq.data()[r * c + j]) * inv[j];
    apply_options products; // their own thresholds, not the inputs'
    products.index_offset = kernels::intrinsic_operand_offset(1);
    quantize_inplace(q, std::span<double>(t), products);
    for (std::size_t r = 0; r < n; ++r)
        for (std::size_t j = 0; j < c; ++j) t[r * c + j] += rest[j];
    quantize_inplace(q, std::span<double>(t));
    tensor4<float> y = tensor4<float>::from_shape(x.shape());
    std::copy(t.begin(), t.end(), y.data());
    return y;
}

namespace tape_ops {

// Training-mode batch norm: normalises with the batch's mean and (biased) variance over
// N, H, W; mean_out and var_out receive them for the running averages.
template <class Tape>
typename Tape::var batch_norm(Tape& t, typename Tape::var x, typename Tape::var gamma, typename Tape::var beta,
                              typename Tape::value_type epsilon,
                              std::vector<typename Tape::value_type>* mean_out = nullptr,
                              std::vector<typename Tape::value_type>* var_out = nullptr)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    auto const& xv = t.value(x);
    const std::size_t c = xv.shape(xv.dimension() - 1), m = xv.size() / c;
    std::vector<T> mean(c, 0), var(c, 0), inv(c);
    for (std::size_t r = 0; r < m; ++r)
        for (std::size_t j = 0; j < c; ++j) mean[j] += xv.data()[r * c + j];
    for (auto& v : mean) v /= T(m);
    for (std::size_t r = 0; r < m; ++r)
        for (std::size_t j = 0; j < c; ++j) {
            const T d = xv.data()[r * c + j] - mean[j];
            var[j] += d * d;
        }
    for (std::size_t j = 0; j < c; ++j) var[j] /= T(m), inv[j] = T(1) / std::sqrt(var[j] + epsilon);
    if (mean_out) *mean_out = mean;
    if (var_out) *var_out = var;
    xt::xarray<T> xhat = xt::xarray<T>::from_shape(xv.shape()), y = xt::xarray<T>::from_shape(xv.shape());
    T const* gm = t.value(gamma).data();
    T const* bt = t.value(beta).data();
    for (std::size_t r = 0; r < m; ++r)
        for (std::size_t j = 0; j < c; ++j) {
            const T h = (xv.data()[r * c + j] - mean[j]) * inv[j];
            xhat.data()[r * c + j] = h;
            y.data()[r * c + j] = h * gm[j] + bt[j];
        }
    return t.record(std::move(y),
                    [x, gamma, beta, c, m, inv = std::move(inv), xhat = std::move(xhat)](Tape& tp, V out) {
                        T const* dy = tp.grad(out).data();
                        std::vector<T> sum_dy(c, 0), sum_dy_xhat(c, 0);
                        for (std::size_t r = 0; r < m; ++r)
                            for (std::size_t j = 0; j < c; ++j) {
                                sum_dy[j] += dy[r * c + j];
                                sum_dy_xhat[j] += dy[r * c + j] * xhat.data()[r * c + j];
                            }
                        if (tp.needs_grad(gamma)) kernels::accumulate(tp.grad(gamma), sum_dy_xhat.data());
                        if (tp.needs_grad(beta)) kernels::accumulate(tp.grad(beta), sum_dy.data());
                        if (tp.needs_grad(x)) {
                            T* dx = tp.grad(x).data();
                            T const* gm = tp.value(gamma).data();
                            for (std::size_t r = 0; r < m; ++r)
                                for (std::size_t j = 0; j < c; ++j)
                                    dx[r * c + j] +=
                                        gm[j] * inv[j] / T(m) *
                                        (T(m) * dy[r * c + j] - sum_dy[j] - xhat.data()[r * c + j] * sum_dy_xhat[j]);
                        }
                    },
                    {x, gamma, beta});
}

// Inference-mode batch norm (the reference layer) with gradients to x, gamma and beta.
template <class Tape>
typename Tape::var batch_norm_inference(Tape& t, typename Tape::var x, typename Tape::var gamma,
                                        typename Tape::var beta, std::vector<typename Tape::value_type> const& mean,
                                        std::vector<typename Tape::value_type> const& variance,
                                        typename Tape::value_type epsilon)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    auto const& xv = t.value(x);
    const std::size_t c = xv.shape(xv.dimension() - 1), m = xv.size() / c;
    std::vector<T> inv(c);
    for (std::size_t j = 0; j < c; ++j) inv[j] = T(1) / std::sqrt(variance[j] + epsilon);
    xt::xarray<T> y = xt::xarray<T>::from_shape(xv.shape());
    T const* gm = t.value(gamma).data();
    T const* bt = t.value(beta).data();
    for (std::size_t r = 0; r < m; ++r)
        for (std::size_t j = 0; j < c; ++j)
            y.data()[r * c + j] = (xv.data()[r * c + j] - mean[j]) * inv[j] * gm[j] + bt[j];
    return t.record(std::move(y),
                    [x, gamma, beta, c, m, inv, mean](Tape& tp, V out) {
                        T const* dy = tp.grad(out).data();
                        T const* xv = tp.value(x).data();
                        T const* gm = tp.value(gamma).data();
                        for (std::size_t r = 0; r < m; ++r)
                            for (std::size_t j = 0; j < c; ++j) {
                                const T d = dy[r * c + j];
                                if (tp.needs_grad(gamma))
                                    tp.grad(gamma).data()[j] += d * (xv[r * c + j] - mean[j]) * inv[j];
                                if (tp.needs_grad(beta)) tp.grad(beta).data()[j] += d;
                                if (tp.needs_grad(x)) tp.grad(x).data()[r * c + j] += d * inv[j] * gm[j];
                            }
                    },
                    {x, gamma, beta});
}

} // namespace tape_ops

struct batch_norm_layer
{
    static constexpr std::string_view kind = "batch_norm";
    tensor1<float> gamma, beta, mean, variance;
    float epsilon = 1e-3f;
    activation_fn act{}; // fused

    template <class Self, class Fn>
    static void parameters_of(Self& self, Fn&& fn)
    {
        fn(parameter_info{"gamma", true, false}, self.gamma);
        fn(parameter_info{"beta", true, false}, self.beta);
        fn(parameter_info{"mean", false, false}, self.mean);
        fn(parameter_info{"variance", false, false}, self.variance);
    }

    // The input has its channels on the last axis (NHWC, or [N, C]).
    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        auto const& x = ctx.input(0);
        return kernels::reshaped_like(
            x,
            kernels::activate_float(nn::batch_norm(kernels::channels_last4(x), ctx.param(0, gamma), ctx.param(1, beta),
                                                   ctx.param(2, mean), ctx.param(3, variance), epsilon),
                                    act));
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        auto const& x = ctx.input(0);
        return kernels::reshaped_like(
            x, kernels::activate_intrinsic(batch_norm_intrinsic(kernels::channels_last4(x), ctx.param(0, gamma),
                                                                ctx.param(1, beta), ctx.param(2, mean),
                                                                ctx.param(3, variance), epsilon, q),
                                           act, q));
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return kernels::activation_problem(act); }
    // Training: batch statistics, which the trainer folds into the running averages.
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        std::vector<float> m, v;
        auto y = tape_ops::batch_norm(ctx.tape(), ctx.input(0), ctx.param(0), ctx.param(1), epsilon, &m, &v);
        ctx.record_statistics(std::move(m), std::move(v));
        return tape_ops::activate(ctx.tape(), y, act);
    }
    // running = keep running + (1 - keep) batch
    void update_statistics(std::vector<float> const& batch_mean, std::vector<float> const& batch_variance, float keep)
    {
        for (std::size_t j = 0; j < batch_mean.size(); ++j) {
            mean(j) = keep * mean(j) + (1 - keep) * batch_mean[j];
            variance(j) = keep * variance(j) + (1 - keep) * batch_variance[j];
        }
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
