// Compile-time composition: compose(a, b, c) applies a, then b, then c to each element
// (for instance a threshold followed by a fixed-point format). Each stage is resolved to
// its typed kernel once per call and the stages inline into one loop body, so the
// composition costs what the stages cost. Stages must be element-wise: a quantizer that
// needs statistics of its own input tensor (binary_mean, ternary_twn) is applied as a
// separate pass. Every stage sees the same element index; give stochastic stages
// different rng streams.
#pragma once

#include "../config.hpp"

#include "../core/concepts.hpp"
#include "../core/descriptor.hpp"
#include "../core/error.hpp"
#include "simple.hpp"

#include <tuple>

namespace tensorquant::inline TENSORQUANT_ABI {

namespace detail {

template <class... Ks>
struct composed_kernel
{
    std::tuple<Ks...> stages;

    template <class X>
    constexpr X run(X x, std::uint64_t i) const
    {
        std::apply([&](auto const&... k) { ((x = call_at(k, x, i)), ...); }, stages);
        return x;
    }
    template <std::floating_point T>
    constexpr T operator()(T x, std::uint64_t i) const
    {
        return run(x, i);
    }
    template <class T, class A>
        requires(BatchQuantizer<Ks, T, A>&&...)
    xsimd::batch<T, A>
    operator()(xsimd::batch<T, A> const& x, std::uint64_t i) const { return run(x, i); }
};

template <class T, class Q>
constexpr decltype(auto) with_kernel_of(Q const& q, auto&& fn)
{
    if constexpr (DispatchingQuantizer<Q, T>)
        return q.template visit<T>(fn);
    else {
        static_assert(ScalarQuantizer<Q, T>, "compose: every stage must be element-wise (q(x), q(x, i) or visit<T>); "
                                             "apply tensor-statistics quantizers as a separate pass");
        return fn(q);
    }
}

// Resolves stage q to its kernel, then the remaining stages, then calls fn with the
// composed kernel. Each call has one stage fewer, so no deduced return type depends on
// itself (clang rejects that).
template <class T, class Fn, class Q, class... Rest, class... Ks>
constexpr decltype(auto) build_composed(Fn&& fn, std::tuple<Ks...> done, Q const& q, Rest const&... rest)
{
    auto with_stage = [&](auto const& k) -> decltype(auto) {
        auto next = std::tuple_cat(done, std::tuple<std::decay_t<decltype(k)>>(k));
        if constexpr (sizeof...(Rest) == 0)
            return std::apply(
                [&](auto const&... ks) { return fn(composed_kernel<std::decay_t<decltype(ks)>...>{{ks...}}); }, next);
        else
            return build_composed<T>(fn, next, rest...);
    };
    return with_kernel_of<T>(q, [&](auto const& k) -> decltype(auto) {
        using K = std::decay_t<decltype(k)>;
        if constexpr (ScalarQuantizer<K, T>) {
            return with_stage(k);
        } else {
            // a runtime choice (any_quantizer) that turned out to need tensor statistics
            throw format_error("compose: a quantizer that needs statistics of its input tensor (binary with mean "
                               "magnitude, TWN ternary) cannot be a stage; apply it as a separate pass");
            return with_stage(identity_kernel<T>{}); // unreachable; gives this branch the others' type
        }
    });
}

} // namespace detail

template <class... Qs>
struct composed : detail::descriptor_base<composed<Qs...>>
{
    std::tuple<Qs...> stages;

    constexpr explicit composed(Qs... qs) : stages(std::move(qs)...) {}

    template <std::floating_point T, class Fn>
    constexpr decltype(auto) visit(Fn&& fn) const
    {
        return std::apply(
            [&](auto const&... qs) -> decltype(auto) { return detail::build_composed<T>(fn, std::tuple<>{}, qs...); },
            stages);
    }
};

template <class... Qs>
    requires(sizeof...(Qs) >= 2)
constexpr composed<Qs...> compose(Qs... qs) { return composed<Qs...>(std::move(qs)...); }

} // namespace tensorquant::inline TENSORQUANT_ABI
