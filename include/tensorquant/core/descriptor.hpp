// Built-in quantizers are small descriptors (parameters as plain values) that build a
// kernel typed for T: visit<T>(fn) validates the parameters for T, then calls fn once
// with the kernel, so bulk loops never re-dispatch. Scalar calls go through the same path.
#pragma once

#include "../config.hpp"

#include "concepts.hpp"
#include "random.hpp"

#include <concepts>
#include <cstdint>

namespace tensorquant::inline TENSORQUANT_ABI::detail {

// The call operators every built-in kernel offers, written once: Derived provides
// apply(x, u) for scalars and batches (u: the stochastic threshold, 0 when unused) and,
// when Stochastic, a counter_rng named rng.
template <class Derived, class T, bool Stochastic>
struct kernel_calls
{
    constexpr T operator()(T x) const noexcept requires(!Stochastic) { return self().apply(x, T(0)); }
    constexpr T operator()(T x, std::uint64_t i) const noexcept requires(Stochastic)
    {
        return self().apply(x, self().rng.template uniform<T>(i));
    }
    template <class A>
    xsimd::batch<T, A> operator()(xsimd::batch<T, A> const& x) const noexcept requires(!Stochastic)
    {
        return self().apply(x, xsimd::batch<T, A>(T(0)));
    }
    template <class A>
    xsimd::batch<T, A> operator()(xsimd::batch<T, A> const& x, std::uint64_t i) const noexcept requires(Stochastic)
    {
        return self().apply(x, self().rng.uniform(i, static_cast<xsimd::batch<T, A> const*>(nullptr)));
    }

private:
    constexpr Derived const& self() const noexcept { return static_cast<Derived const&>(*this); }
};

// Calls the element-wise operator of a kernel for element i, whichever form it has.
template <class K, class T>
constexpr T call_at(K const& k, T x, std::uint64_t i)
{
    if constexpr (IndexedQuantizer<K, T>)
        return static_cast<T>(k(x, i));
    else
        return static_cast<T>(k(x));
}

template <class K, class T, class A>
inline xsimd::batch<T, A> call_at(K const& k, xsimd::batch<T, A> const& x, std::uint64_t i)
{
    if constexpr (requires {
                      {
                          k(x, i)
                          } -> std::same_as<xsimd::batch<T, A>>;
                  })
        return k(x, i);
    else
        return k(x);
}

template <class Derived>
struct descriptor_base
{
    using dispatching_tag = void;

    // Element by element (one dispatch per call); bulk loops go through visit instead.
    template <std::floating_point T>
    constexpr T operator()(T x, std::uint64_t i = 0) const
    {
        return static_cast<Derived const&>(*this).template visit<T>(
            [&](auto const& k) -> T { return call_at(k, x, i); });
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::detail
