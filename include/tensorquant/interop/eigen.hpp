// Eigen 3 customisation for the number types (optional: include it where Eigen is
// available, e.g. Debian's libeigen3-dev). Eigen's products, sums and dot already
// compile on quantized<T, Q>; NumTraits makes precision-dependent code (isApprox,
// decompositions, the *Approx tests) use the format's epsilon rather than 0, and tells
// Eigen's cost model that the operations are exact integer arithmetic, not one
// instruction each.
//
// Accumulation order: Eigen evaluates a dot product, sum() and the small products it
// turns into coefficient loops (rows + cols + depth < 20, or lazyProduct) left to right
// for types without SIMD packets, so a coefficient of A * B is
// ((a0 b0 + a1 b1) + a2 b2) + ..., every product and every sum rounded once. Larger
// products go through Eigen's blocked kernel, which accumulates each block of the depth
// separately: the result is still quantized at every step, but in that order.
#pragma once

#include "../config.hpp"

#include "../number/quantized.hpp"

#include <Eigen/Core>

#include <limits>

namespace tensorquant::inline TENSORQUANT_ABI::detail {
template <class V>
struct eigen_number_traits : Eigen::GenericNumTraits<V>
{
    using Real = V;
    using NonInteger = V;
    using Literal = V;
    using Nested = V;
    enum {
        IsComplex = 0,
        IsInteger = 0,
        IsSigned = 1,
        RequireInitialization = 0,
        ReadCost = 1,
        AddCost = 8, // an exact integer add, then the rounding and overflow step
        MulCost = 16
    };
    static V epsilon() { return std::numeric_limits<V>::epsilon(); }
    // isApprox's tolerance: a few steps of the format (Eigen uses about 100 ulps for float)
    static V dummy_precision() { return V(4) * std::numeric_limits<V>::epsilon(); }
    static V highest() { return (std::numeric_limits<V>::max)(); }
    static V lowest() { return std::numeric_limits<V>::lowest(); }
    static V infinity() { return std::numeric_limits<V>::infinity(); }
    static V quiet_NaN() { return std::numeric_limits<V>::quiet_NaN(); }
    static int digits() { return std::numeric_limits<V>::digits; }
    static int digits10() { return std::numeric_limits<V>::digits10; }
};
} // namespace tensorquant::inline TENSORQUANT_ABI::detail

template <class T, class Q>
struct Eigen::NumTraits<tensorquant::quantized<T, Q>>
    : tensorquant::detail::eigen_number_traits<tensorquant::quantized<T, Q>>
{
};
