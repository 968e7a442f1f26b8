// Built-in quantizers are small descriptors (parameters as plain values) that build a
// kernel typed for T: visit<T>(fn) validates the parameters for T, then calls fn once
// with the kernel, so bulk loops never re-dispatch. Scalar calls go through the same path.
#pragma once

#include "concepts.hpp"

#include <concepts>
#include <cstdint>

namespace tensorquant::detail {

template <class Derived>
struct descriptor_base
{
    using dispatching_tag = void;

    template <std::floating_point T>
    T operator()(T x, std::uint64_t i = 0) const
    {
        return static_cast<Derived const&>(*this).template visit<T>([&](auto const& k) -> T {
            if constexpr (IndexedQuantizer<std::decay_t<decltype(k)>, T>) return k(x, i);
            else return k(x);
        });
    }
};

// Calls the element-wise operator of a kernel for element i, whichever form it has.
template <class K, class T>
inline T call_at(K const& k, T x, std::uint64_t i)
{
    if constexpr (IndexedQuantizer<K, T>) return static_cast<T>(k(x, i));
    else return static_cast<T>(k(x));
}

template <class K, class T, class A>
inline xsimd::batch<T, A> call_at(K const& k, xsimd::batch<T, A> const& x, std::uint64_t i)
{
    if constexpr (requires { { k(x, i) } -> std::same_as<xsimd::batch<T, A>>; }) return k(x, i);
    else return k(x);
}

} // namespace tensorquant::detail
