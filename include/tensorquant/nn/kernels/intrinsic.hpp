// The pieces of intrinsic emulation the layers share: the format check and dispatch of
// the vectorised products, quantized copies of inputs and parameters, and the detour
// through quantized_rt for the layers whose intrinsic form is the number type's.
#pragma once

#include "../../config.hpp"

#include "../../apply.hpp"
#include "../../core/error.hpp"
#include "../../number/quantized.hpp"
#include "../../quantizers/fixed_point.hpp"
#include "gemm.hpp"

#include <span>
#include <string>

namespace tensorquant::inline TENSORQUANT_ABI::nn::kernels {

// Products of 2W bits must be exact in double.
inline void check_intrinsic_format(fixed_point_rt const& q, char const* what)
{
    const auto f = q.format();
    if (f.width > 26)
        throw format_error(std::string(what) + ": the vectorised intrinsic path computes exact products of two " +
                           std::to_string(f.width) +
                           "-bit words in double and needs W <= 26; use the generic layer "
                           "with quantized<double, Q> for wider formats");
}

template <class Arch, class Fn>
decltype(auto) visit_intrinsic(fixed_point_rt const& q, Fn&& fn)
{
    return tensorquant::detail::visit_rounding(q.rounding(), [&](auto r) -> decltype(auto) {
        return tensorquant::detail::visit_overflow(q.overflow(), [&](auto o) -> decltype(auto) {
            using R = decltype(r);
            using O = decltype(o);
            const fixed_kernel<double, R, O> k(q.format(), q.key());
            const double scale = exp2i<double>(q.format().frac);
            if (k.watch) return fn(intrinsic_mac<R, O, Arch, true>{k, scale});
            return fn(intrinsic_mac<R, O, Arch>{k, scale});
        });
    });
}

// Stream blocks of a layer's intrinsic format (each 2^32 positions): block 0 for the
// products of conv2d and dense (index (row K + k) N + column) or the single rounding of
// add; block k + 1 for operand k (the inputs, then weights and bias); the last block for
// the rounding of a fused activation.
constexpr std::uint64_t intrinsic_operand_offset(std::size_t k) noexcept { return std::uint64_t(k + 1) << 32; }
inline constexpr std::uint64_t intrinsic_activation_offset = std::uint64_t(0xffffffffu) << 32;

// x with every element quantized by q (stream positions from index_offset); x is an
// xtensor or an xarray of float or double.
template <class Q, class Tensor>
Tensor quantized_copy(Q const& q, Tensor const& x, std::uint64_t index_offset = 0)
{
    using T = typename Tensor::value_type;
    Tensor y = x;
    apply_options o;
    o.index_offset = index_offset;
    quantize_inplace(q, std::span<T>(y.data(), y.size()), o);
    return y;
}

template <std::size_t N>
xt::xtensor<quantized_rt<float>, N> to_rt(xt::xtensor<float, N> const& x)
{
    auto y = xt::xtensor<quantized_rt<float>, N>::from_shape(x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) y.data()[i] = quantized_rt<float>(x.data()[i]);
    return y;
}
template <std::size_t N>
xt::xtensor<float, N> from_rt(xt::xtensor<quantized_rt<float>, N> const& x)
{
    auto y = xt::xtensor<float, N>::from_shape(x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) y.data()[i] = x.data()[i].value();
    return y;
}

// fn(x as quantized_rt) under q's number scope, back to float.
template <std::size_t N, class Fn>
auto via_number(fixed_point_rt const& q, xt::xtensor<float, N> const& x, Fn&& fn)
{
    number_scope scope(q);
    return from_rt(fn(to_rt(x)));
}

} // namespace tensorquant::inline TENSORQUANT_ABI::nn::kernels
