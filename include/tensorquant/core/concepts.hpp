// What a quantizer is. A user-defined struct or lambda that meets one of these works
// everywhere a built-in quantizer does.
#pragma once

#include "../config.hpp"

#include "../detail/xsimd_compat.hpp"

#include <concepts>
#include <cstdint>
#include <span>
#include <type_traits>

namespace tensorquant::inline TENSORQUANT_ABI {

// The result of a call is exactly the element type (not merely convertible: a quantizer
// written for float and given double data would narrow silently).
template <class R, class T>
concept exactly = std::same_as<std::remove_cvref_t<R>, T>;

// Element-wise: q(x) -> T. The common case; lambdas qualify.
template <class Q, class T>
concept ElementQuantizer = std::floating_point<T> && requires(Q const& q, T x)
{
    {
        q(x)
        } -> exactly<T>;
};

// Element-wise but needs the element's index (stochastic rounding: the random threshold
// of element i is a function of (seed, stream, i)): q(x, i) -> T.
template <class Q, class T>
concept IndexedQuantizer = std::floating_point<T> && requires(Q const& q, T x, std::uint64_t i)
{
    {
        q(x, i)
        } -> exactly<T>;
};

template <class Q, class T>
concept ScalarQuantizer = ElementQuantizer<Q, T> || IndexedQuantizer<Q, T>;

// Optional SIMD overloads, q(batch) or q(batch, index of lane 0); without them the
// scalar operator is used lane by lane.
template <class Q, class T, class A>
concept BatchQuantizer = requires(Q const& q, xsimd::batch<T, A> const& b, std::uint64_t i)
{
    {
        q(b)
        } -> std::same_as<xsimd::batch<T, A>>;
}
|| requires(Q const& q, xsimd::batch<T, A> const& b, std::uint64_t i)
{
    {
        q(b, i)
        } -> std::same_as<xsimd::batch<T, A>>;
};

// Needs statistics of the whole tensor (XNOR-Net's mean |x|, TWN's threshold): prepare()
// looks at the data once and returns the element-wise quantizer to apply to it.
template <class Q, class T>
concept TensorQuantizer = std::floating_point<T> && requires(Q const& q, std::span<T const> s)
{
    {
        q.prepare(s)
        } -> ScalarQuantizer<T>;
};

// A quantizer whose kind or policy is chosen at run time: visit<T>(f) calls f once with
// the concrete, statically typed quantizer, so loops run on the typed kernel.
template <class Q, class T>
concept DispatchingQuantizer = std::floating_point<T> && requires(Q const& q)
{
    typename Q::dispatching_tag;
    q.template visit<T>([](auto const&) {});
};

template <class Q, class T>
concept Quantizer = ScalarQuantizer<Q, T> || TensorQuantizer<Q, T> || DispatchingQuantizer<Q, T>;

} // namespace tensorquant::inline TENSORQUANT_ABI
