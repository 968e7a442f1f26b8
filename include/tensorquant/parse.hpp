// TensorQuant's quantizer strings, as its users wrote them in JSON files, and spellings
// for every other built-in; any_quantizer, a quantizer chosen at run time.
//
// The grammar is the registry below: each built-in quantizer says which strings it
// accepts (accepts), reads them (parse), prints itself back (to_string) and gives
// examples; parse_quantizer asks each entry in turn. Fields are comma-separated, spaces
// around them ignored, names lower case:
//
//   identity | none
//   <rounding>,W,F[,saturate|symmetric|wrap][,signed|unsigned]   fixed point
//       rounding: nearest (ties away, the paper's), nearest_even, nearest_up,
//       nearest_down, nearest_zero, zero, down, up, stochastic
//   sparse,T                                  keep |x| > T
//   binary | binary,m                         m = mean|x| (XNOR-Net) | fixed m
//   binary_stochastic[,m]                     BinaryConnect
//   ternary | ternary,T,m | ternary_twn,f     TWN (T = 0.7 mean|x|, or f mean|x|) | fixed
//   logarithmic[,floor|nearest[,e_min,e_max]] a bound may be "none" (unbounded)
//   minifloat,E,M[,bias][,option...]          bias defaults to 2^(E-1) - 1
//   fp16 | bf16 | fp8_e4m3 | fp8_e5m2[,option...]
//       options: nearest_even nearest zero stochastic | to_infinity saturate |
//                subnormals no_subnormals | finite (no infinities) ieee
//   affine,scale,zero_point,qmin,qmax[,rounding][,divide]
//   block formats (block_quantizer_registry, held as user_quantizer):
//   mxfp8_e4m3 | mxfp8_e5m2 | mxfp6_e3m2 | mxfp6_e2m3 | mxfp4 | mxint8[,stochastic][,block=K]
//   bfp,M,K[,stochastic] | nvfp4[,stochastic][,block=K]
//
// A malformed string throws parse_error quoting the string and saying what is wrong.
// to_string(parse_quantizer(s)) gives the canonical spelling, which parses to the same
// quantizer.
#pragma once

#include "config.hpp"

#include "apply.hpp"
#include "core/error.hpp"
#include "core/spec.hpp"
#include "core/type_list.hpp"
#include "quantizers/affine.hpp"
#include "quantizers/block.hpp"
#include "quantizers/fixed_point.hpp"
#include "quantizers/logarithmic.hpp"
#include "quantizers/minifloat.hpp"
#include "quantizers/nvfp4.hpp"
#include "quantizers/simple.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <typeinfo>
#include <variant>

namespace tensorquant::inline TENSORQUANT_ABI {

// Every built-in quantizer with a string spelling. Adding one: its header (with form,
// examples, accepts, parse and to_string) and its place here.
using quantizer_registry = type_list<identity, fixed_point_rt, sparse, binary, binary_mean, binary_stochastic, ternary,
                                     ternary_twn, logarithmic, minifloat, affine>;

// A quantizer's own to_string() (built-ins), else its name() (user-defined ones may have
// one), else a generic description.
template <class Q>
std::string to_string(Q const& q) requires requires
{
    q.to_string();
} || requires { q.name(); } || std::is_class_v<Q>
{
    if constexpr (requires { q.to_string(); })
        return q.to_string();
    else if constexpr (requires { q.name(); })
        return std::string(q.name());
    else
        return "user-defined quantizer";
}

namespace detail {

template <class Q, class T>
concept QuantizerFor = Quantizer<Q, T>;

// A user-defined quantizer behind a virtual interface, so that it can sit in a runtime map
// beside the built-ins. Bulk calls run the user type's own typed loop (its SIMD overload
// included); element calls cost one virtual call.
struct erased_quantizer
{
    virtual ~erased_quantizer() = default;
    virtual void run(float const* in, float* out, std::size_t n, apply_options const& o) const = 0;
    virtual void run(double const* in, double* out, std::size_t n, apply_options const& o) const = 0;
    virtual std::string name() const = 0;
};

template <class Q>
struct erased_holder final : erased_quantizer
{
    Q q;
    explicit erased_holder(Q x) : q(std::move(x)) {}
    template <class T>
    void run_typed(T const* in, T* out, std::size_t n, apply_options const& o) const
    {
        if constexpr (Quantizer<Q, T>)
            resolve_and_run<xsimd::default_arch>(q, in, out, n, o);
        else
            throw format_error(name() + " does not quantize " + (sizeof(T) == 4 ? "float" : "double") +
                               " values (it is not a Quantizer for that type)");
    }
    void run(float const* in, float* out, std::size_t n, apply_options const& o) const override
    {
        run_typed(in, out, n, o);
    }
    void run(double const* in, double* out, std::size_t n, apply_options const& o) const override
    {
        run_typed(in, out, n, o);
    }
    std::string name() const override { return tensorquant::to_string(q); }
};

} // namespace detail

// Any user-defined quantizer (lambda, struct, compose(...), a compile-time format), held
// by value behind a shared, immutable pointer.
class user_quantizer
{
public:
    template <class Q>
        requires(Quantizer<Q, float> || Quantizer<Q, double>)
    explicit user_quantizer(Q q) : p_(std::make_shared<detail::erased_holder<Q> const>(std::move(q))) {}

    std::string name() const { return p_->name(); }

    // The bulk form resolve_and_run looks for.
    template <std::floating_point T>
    void quantize_bulk(T const* in, T* out, std::size_t n, apply_options const& o) const
    {
        p_->run(in, out, n, o);
    }
    template <std::floating_point T>
    T operator()(T x, std::uint64_t i = 0) const
    {
        apply_options o;
        o.index_offset = i;
        T y;
        p_->run(&x, &y, 1, o);
        return y;
    }

private:
    std::shared_ptr<detail::erased_quantizer const> p_;
};

namespace detail {
template <class... Qs>
std::variant<Qs..., user_quantizer> variant_of(type_list<Qs...>);
} // namespace detail

// Any quantizer chosen at run time: a built-in of the registry, or a user-defined one.
class any_quantizer
{
public:
    using variant_type = decltype(detail::variant_of(quantizer_registry{}));
    using dispatching_tag = void;

    any_quantizer() = default;
    template <class Q>
        requires std::is_constructible_v<variant_type, Q> any_quantizer(Q q) : q_(std::move(q)) {}

        variant_type const& get() const noexcept { return q_; }

        // Calls fn with the typed kernel, or with the quantizer itself when it needs tensor
        // statistics first (binary_mean, ternary_twn) or is user-defined (its bulk form).
        template <std::floating_point T, class Fn>
        decltype(auto) visit(Fn&& fn) const
        {
            return std::visit(
                [&](auto const& q) -> decltype(auto) {
                    using Q = std::decay_t<decltype(q)>;
                    if constexpr (DispatchingQuantizer<Q, T>)
                        return q.template visit<T>(fn);
                    else
                        return fn(q);
                },
                q_);
        }

        // One element; a tensor-statistics quantizer sees a tensor of that one element.
        template <std::floating_point T>
        T operator()(T x, std::uint64_t i = 0) const
        {
            return visit<T>([&](auto const& k) -> T {
                using K = std::decay_t<decltype(k)>;
                if constexpr (TensorQuantizer<K, T>)
                    return detail::call_at(k.prepare(std::span<T const>(&x, 1)), x, i);
                else
                    return detail::call_at(k, x, i);
            });
        }

        std::string to_string() const
        {
            return std::visit([](auto const& q) { return tensorquant::to_string(q); }, q_);
        }

    private:
        variant_type q_{identity{}};
};

// Block-scaled formats (they see blocks, not single elements): parsed like the built-ins,
// held in any_quantizer as a user_quantizer whose bulk form runs them over whole tensors.
using block_quantizer_registry = type_list<block_quantizer, nvfp4_quantizer>;

namespace detail {
template <class... Qs>
std::string registry_forms(type_list<Qs...>)
{
    std::string s;
    ((s += (s.empty() ? "" : ", ") + std::string(Qs::form)), ...);
    return s;
}

template <class Q, class... Rest>
any_quantizer parse_block_with(type_list<Q, Rest...>, spec_reader const& r, rng_key key)
{
    if (Q::accepts(r)) return any_quantizer(user_quantizer(Q::parse(r, key)));
    if constexpr (sizeof...(Rest) > 0)
        return parse_block_with(type_list<Rest...>{}, r, key);
    else
        r.fail("unknown quantizer \"" + std::string(r.kind()) + "\"; expected one of: " +
               registry_forms(quantizer_registry{}) + ", " + registry_forms(block_quantizer_registry{}));
}

template <class Q, class... Rest>
any_quantizer parse_with(type_list<Q, Rest...>, spec_reader const& r, rng_key key)
{
    if (Q::accepts(r)) return Q::parse(r, key);
    if constexpr (sizeof...(Rest) > 0)
        return parse_with(type_list<Rest...>{}, r, key);
    else
        return parse_block_with(block_quantizer_registry{}, r, key);
}
} // namespace detail

// Whether q is one of the block formats (block_quantizer_registry), which any_quantizer
// holds as a user_quantizer.
inline bool is_block_format(any_quantizer const& q)
{
    if (!std::holds_alternative<user_quantizer>(q.get())) return false;
    try {
        const std::string text = q.to_string(); // the reader keeps views into it
        const detail::spec_reader r(text);
        bool found = false;
        detail::for_each_type(block_quantizer_registry{},
                              [&](auto t) { found = found || decltype(t)::type::accepts(r); });
        return found;
    } catch (parse_error const&) { // a user-defined name that is no quantizer string
        return false;
    }
}

// Parses a quantizer string; key seeds the stochastic ones.
inline any_quantizer parse_quantizer(std::string_view text, rng_key key = {})
{
    const detail::spec_reader r(text);
    return detail::parse_with(quantizer_registry{}, r, key);
}

} // namespace tensorquant::inline TENSORQUANT_ABI
