// The vectorised multiply-accumulate of a datapath (nn/datapath.hpp), shared by conv2d
// and dense: which formats it can run, the multiply-accumulate step for each kind of
// accumulator, and the output stage.
//
// Everything runs in doubles. Operands are floats (quantized to their formats), so every
// product a w is exact (48 significant bits at most). Then:
// - fixed-point accumulator (W <= 52): values are kept in units of 2^-F, where a sum of
//   two in-range words is exact; s + p is rounded once as s + round(p) (s is an integer,
//   and every rounding commutes with adding integers) and then saturated or wrapped
//   (a wrapped p first: sums modulo 2^W do not care);
// - minifloat accumulator (M <= 50, deterministic rounding): s + p is formed exactly as
//   a double and its error (TwoSum), rounded to odd (an inexact even result moves one
//   ulp towards the exact sum), then rounded to the format: rounding to odd with at
//   least two more bits than the target keeps every rounding of the target correct;
// - a product format rounds a w first, through a function pointer so the accumulator's
//   and the product's kernels do not multiply the instantiations.
//
// Stream blocks of a datapath's stochastic formats (each 2^32 positions): 0 the product
// roundings (index (row K + k) N + column, as the single-format path), 1 to 3 the inputs,
// weights and bias, 4 the accumulator's roundings after a product format (same index as
// block 0), 5 the output (its element index), and the activation's last block.
#pragma once

#include "../../config.hpp"

#include "../../apply.hpp"
#include "../../core/range_watch.hpp"
#include "../../detail/vector_ops.hpp"
#include "../../number/datapath.hpp"
#include "../datapath.hpp"
#include "../layers/activation.hpp"
#include "block_dot.hpp"
#include "gemm.hpp"
#include "intrinsic.hpp"

#include <cmath>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn::kernels {

inline constexpr std::uint64_t datapath_accumulator_offset = std::uint64_t(4) << 32;
inline constexpr std::uint64_t datapath_output_offset = std::uint64_t(5) << 32;

// The generic conv2d and dense on a datapath_of (number/datapath.hpp) round at the
// positions the vectorised ones use: one stochastic_scope of the layer's key per rounding.
template <class Dp, class T>
struct generic_datapath
{
    using input = quantized<T, typename Dp::input_format>;
    using weight = quantized<T, typename Dp::weights_format>;
    using accumulator = typename Dp::template accumulator<T>;
    using output = typename Dp::template output<T>;
    rng_key key;

    template <class Q, class Values>
    std::vector<Q> rounded(Values const& values, std::uint64_t offset) const
    {
        std::vector<Q> r;
        r.reserve(values.size());
        for (T v : values) {
            stochastic_scope at(key, offset + r.size());
            r.emplace_back(v);
        }
        return r;
    }
    template <class X>
    std::vector<input> inputs(X const& x) const
    {
        return rounded<input>(x, intrinsic_operand_offset(0));
    }
    template <class W>
    std::vector<weight> weights(W const& w) const
    {
        return rounded<weight>(w, intrinsic_operand_offset(1));
    }
    accumulator bias(T b, std::size_t channel) const
    {
        stochastic_scope at(key, intrinsic_operand_offset(2) + channel);
        return accumulator(b);
    }
    // index: (row K + k) N + column
    accumulator step(accumulator s, input a, weight w, std::uint64_t index) const
    {
        return Dp::step_at(s, a, w, key, index, index + datapath_accumulator_offset);
    }
    output finish(accumulator s, std::size_t element) const
    {
        stochastic_scope at(key, datapath_output_offset + element);
        return Dp::finish(s);
    }
};

namespace detail {

inline fixed_point_rt const* as_fixed(std::optional<any_quantizer> const& q) noexcept
{
    return q ? std::get_if<fixed_point_rt>(&q->get()) : nullptr;
}
inline minifloat const* as_minifloat(std::optional<any_quantizer> const& q) noexcept
{
    return q ? std::get_if<minifloat>(&q->get()) : nullptr;
}

// The values of a format are floats: what a layer's output can hold.
inline bool fits_float(any_quantizer const& q) noexcept
{
    if (auto const* f = std::get_if<fixed_point_rt>(&q.get())) return f->format().width <= 24;
    if (auto const* m = std::get_if<minifloat>(&q.get())) return tensorquant::detail::minifloat_fits<float>(m->format);
    return false;
}

// Bits of a fixed-point product format that holds every product of the two formats.
inline std::optional<fixed_format> exact_product_of(datapath const& d)
{
    if (auto const* p = as_fixed(d[datapath_role::product])) return p->format();
    if (d[datapath_role::product]) return std::nullopt;
    auto const *a = as_fixed(d[datapath_role::input]), *b = as_fixed(d[datapath_role::weights]);
    if (!a || !b) return std::nullopt;
    return fixed_format{a->format().width + b->format().width, a->format().frac + b->format().frac,
                        a->format().is_signed || b->format().is_signed};
}

// The kernels a product or accumulator format can have (fixed point or minifloat, in double).
template <class K>
struct is_datapath_kernel : std::false_type
{
};
template <class R, class O>
struct is_datapath_kernel<fixed_kernel<double, R, O>> : std::true_type
{
};
template <class R, tensorquant::detail::minifloat_path P>
struct is_datapath_kernel<tensorquant::detail::minifloat_kernel<double, R, P>> : std::true_type
{
};

} // namespace detail

// The accumulator the datapath runs with for sums of `terms` products: its own format, or
// for an exact one the fixed-point format that holds every such sum (inputs and weights,
// or the product, must then be fixed point); nullopt when there is none.
inline std::optional<any_quantizer> datapath_accumulator(datapath const& d, std::size_t terms)
{
    if (is_block_datapath(d)) return block_accumulator(d);
    if (d[datapath_role::accumulator]) return d[datapath_role::accumulator];
    const auto p = detail::exact_product_of(d);
    if (!p) return std::nullopt;
    int grow = 1; // sign bit of a sum of signed and unsigned terms
    while ((std::size_t(1) << (grow - 1)) < terms + 1 && grow < 64) ++grow;
    const int width = p->width + grow;
    if (width > 64) return std::nullopt;
    return any_quantizer(
        fixed_point_rt(fixed_format{width, p->frac, true}, rounding_mode::nearest_even, overflow_mode::saturate));
}

// Why a fixed-point accumulator of more than 52 bits cannot run ("" when it can): that
// runs on exact integer words (wide_products), which needs fixed-point operands, products
// and output, and deterministic rounding.
inline std::string wide_accumulator_problem(datapath const& d, fixed_point_rt const& acc)
{
    const std::string width = "a " + std::to_string(acc.format().width) + "-bit accumulator";
    auto deterministic = [](fixed_point_rt const* f) { return f && f->rounding() != rounding_mode::stochastic; };
    if (!detail::as_fixed(d[datapath_role::input]) || !detail::as_fixed(d[datapath_role::weights]))
        return width + " (wider than double holds) needs fixed-point input and weight formats";
    if (d[datapath_role::product] && !deterministic(detail::as_fixed(d[datapath_role::product])))
        return width + " (wider than double holds) needs a deterministic fixed-point product format or none";
    if (!deterministic(&acc)) return width + " (wider than double holds) cannot round stochastically";
    auto const* out = detail::as_fixed(d[datapath_role::output]);
    if (!deterministic(out) || out->format().width > 24)
        return width + " (wider than double holds) needs a deterministic fixed-point output of at most 24 bits";
    return "";
}

// Why the vectorised conv2d / dense cannot run datapath d on sums of `terms` products
// ("" when it can).
inline std::string datapath_problem(datapath const& d, std::size_t terms)
{
    const bool block = is_block_datapath(d);
    if (block)
        if (auto problem = block_datapath_problem(d); !problem.empty()) return problem;
    const auto acc = datapath_accumulator(d, terms);
    if (!acc)
        return "an exact accumulator needs fixed-point inputs and weights (or a fixed-point product) whose sums fit "
               "64 bits; give the datapath an accumulator format";
    if (auto const* f = std::get_if<fixed_point_rt>(&acc->get())) {
        if (f->format().width > 52)
            return block ? "a block dot product accumulates in at most 52 fixed-point bits"
                         : wide_accumulator_problem(d, *f);
    } else if (auto const* m = std::get_if<minifloat>(&acc->get())) {
        if (!tensorquant::detail::minifloat_fits<double>(m->format) || m->format.mantissa_bits > 50)
            return "a minifloat accumulator must have at most 50 mantissa bits and fit double";
        if (m->rounding == rounding_mode::stochastic)
            return "a stochastic minifloat accumulator is not supported by the vectorised datapath";
    } else {
        return "the accumulator must be fixed point or minifloat, not '" + acc->to_string() + "'";
    }
    if (auto const& p = d[datapath_role::product]) {
        if (auto const* f = detail::as_fixed(p); f && f->format().width > 53)
            return "a fixed-point product format holds at most 53 bits in double";
        if (auto const* m = detail::as_minifloat(p); m && !tensorquant::detail::minifloat_fits<double>(m->format))
            return "the product format does not fit double";
        if (!detail::as_fixed(p) && !detail::as_minifloat(p))
            return "the product format must be fixed point or minifloat, not '" + p->to_string() + "'";
    }
    if (auto const& o = d[datapath_role::output]) {
        const bool typed = detail::as_fixed(o) || detail::as_minifloat(o);
        if (typed && !detail::fits_float(*o)) return "the output format's values must all be floats";
        if (!typed && !detail::fits_float(*acc))
            return "output '" + o->to_string() + "' is applied to float values, but the accumulator's do not all fit " +
                   "float; give a fixed-point or minifloat output";
    } else if (!detail::fits_float(*acc)) {
        return "the accumulator's values do not all fit float; give the datapath an output format";
    }
    return "";
}

// The rounding of exact products into the product format (none: exact).
template <class Arch>
struct product_rounding
{
    using batch = xsimd::batch<double, Arch>;
    void const* kernel = nullptr;
    batch (*round)(void const*, batch const&, std::uint64_t) = nullptr;

    batch operator()(batch const& p, std::uint64_t index) const { return round(kernel, p, index); }
};

// Fixed-point accumulator: p = a w exact (or P(a w) with a product format) in the
// accumulator's units, then s + p rounded once and saturated or wrapped. When every p is
// an integer (integer_products) s + p is exact; otherwise the rounding sees s + p as
// t = trunc(s + p) and its remainder e (the policy's own inputs), with e rounded to odd
// at 2^-50 so that 1 + e stays exact: the same decision for every policy that compares
// e with 0, 1/2 or a stochastic threshold (a multiple of 2^-32).
template <class R, class O, class Arch = xsimd::default_arch>
struct fixed_accumulator_mac : intrinsic_mac<R, O, Arch>
{
    using base = intrinsic_mac<R, O, Arch>;
    using typename base::batch;
    product_rounding<Arch> product;
    bool integer_products = false;
    using output_type = double;
    double w_scale = 1, out_scale = 1; // weights are packed as values; a is scaled in the step
    fixed_format format{};             // the accumulator's (add_wide's exact words)
    double b_scale() const noexcept { return this->scale; }

    batch sum(batch const& acc, batch p, std::uint64_t index) const noexcept
    {
        using tensorquant::detail::vcopysign;
        using tensorquant::detail::vselect;
        using tensorquant::detail::vtrunc;
        constexpr double far = 0x1p52; // beyond it p is an integer and every sum out of range
        if constexpr (O::modular)
            p = vselect(xsimd::abs(p) >= batch(far), this->k.wrap(p, p), p); // an integer: s + p mod 2^W
        else
            p = xsimd::max(batch(-far), xsimd::min(batch(far), p));
        if (integer_products) return this->fit(acc + p);
        const batch tp = vtrunc(p);
        batch ep = p - tp; // exact, |ep| < 1, the sign of p
        const batch scaled = ep * batch(0x1p50);
        const batch ts = vtrunc(scaled);
        const auto even = vtrunc(ts * batch(0.5)) * batch(2.0) == ts;
        ep = vselect((scaled != ts) & even, ts + vcopysign(batch(1.0), scaled), ts) * batch(0x1p-50);
        const batch n = acc + tp; // exact: |acc| < 2^51, |tp| <= 2^52
        const auto borrow = ((n > batch(0.0)) & (ep < batch(0.0))) | ((n < batch(0.0)) & (ep > batch(0.0)));
        const batch one = vcopysign(batch(1.0), n);
        const batch t = vselect(borrow, n - one, n);
        const batch e = vselect(borrow, ep + one, ep);
        batch r;
        if constexpr (is_stochastic_rounding_v<R>)
            r = R::apply(t, e, this->k.rng.uniform(index, static_cast<batch const*>(nullptr)));
        else
            r = R::apply(t, e);
        return this->fit(r);
    }

    // s + p for a value p (a block dot product's block sum), rounded once.
    batch add(batch const& acc, batch const& p, std::uint64_t index) const noexcept
    {
        return sum(acc, p * batch(this->scale), index);
    }
    // s + (hi + lo) for a block sum wider than a double (block_dot.hpp), rounded once on
    // exact words, a stochastic policy with the thresholds add draws (lane i: index + i);
    // non-finite sums as add does.
    batch add_wide(batch const& acc, batch const& hi, batch const& lo, std::uint64_t index) const noexcept
    {
        constexpr std::size_t L = batch::size;
        alignas(64) double a[L], h[L], l[L], r[L];
        acc.store_aligned(a);
        hi.store_aligned(h);
        lo.store_aligned(l);
        add(acc, hi + lo, index).store_aligned(r);
        const tensorquant::detail::fixed_arith<R, O> ar(format);
        for (std::size_t i = 0; i < L; ++i) {
            if (!std::isfinite(h[i]) || !std::isfinite(l[i])) continue;
            std::uint64_t threshold = 0; // u 2^32: an integer, u a multiple of 2^-32
            if constexpr (is_stochastic_rounding_v<R>)
                threshold = std::uint64_t(this->k.rng.template uniform<double>(index + i) * 0x1p32);
            r[i] = detail::wide_fixed_sum(ar, a[i], h[i], l[i], threshold);
        }
        return batch::load_aligned(r);
    }
    template <class TA>
    batch step(batch const& acc, TA a, batch const& w, std::uint64_t index) const noexcept
    {
        if (product.round)
            return sum(acc, product(batch(static_cast<double>(a)) * w, index) * batch(this->scale),
                       index + datapath_accumulator_offset);
        return sum(acc, batch(static_cast<double>(a) * this->scale) * w, index);
    }
};

// Minifloat accumulator (a deterministic rounding K of the format in double).
template <class K, class Arch = xsimd::default_arch>
struct float_accumulator_mac
{
    static constexpr std::size_t rows_per_block = 4;
    using value_type = double;
    using arch = Arch;
    using batch = xsimd::batch<double, Arch>;
    K k;
    product_rounding<Arch> product;
    using output_type = double;
    double w_scale = 1, out_scale = 1;
    double b_scale() const noexcept { return 1; }

    // K(a + b), rounded once from the exact sum.
    batch round_sum(batch const& a, batch const& b) const noexcept
    {
        using tensorquant::detail::from_bits;
        using tensorquant::detail::to_bits;
        using tensorquant::detail::vselect;
        using IV = xsimd::batch<std::int64_t, Arch>;
        const batch s = a + b;
        const batch bb = s - a;
        const batch e = (a - (s - bb)) + (b - bb); // s + e = a + b exactly (s finite)
        const IV bs = to_bits(s), be = to_bits(e);
        constexpr std::int64_t exponent_mask = 0x7ff0000000000000, magnitude_mask = 0x7fffffffffffffff;
        const auto inexact = ((be & IV(magnitude_mask)) != IV(0)) & ((bs & IV(exponent_mask)) != IV(exponent_mask)) &
                             ((bs & IV(1)) == IV(0));
        // one ulp towards a + b: up in magnitude when e has s's sign
        const IV toward = vselect((bs ^ be) < IV(0), bs - IV(1), bs + IV(1));
        const batch odd = from_bits(vselect(inexact, toward, bs));
        return k.apply(odd, batch(0.0));
    }

    batch init(batch const&) const noexcept { return batch(0.0); }
    batch add(batch const& acc, batch const& p, std::uint64_t) const noexcept { return round_sum(acc, p); }
    // K(acc + hi + lo) from the exact sum (a block sum wider than a double, block_dot.hpp).
    batch add_wide(batch const& acc, batch const& hi, batch const& lo, std::uint64_t) const noexcept
    {
        constexpr std::size_t L = batch::size;
        alignas(64) double a[L], h[L], l[L];
        acc.store_aligned(a);
        hi.store_aligned(h);
        lo.store_aligned(l);
        for (std::size_t i = 0; i < L; ++i) a[i] = detail::wide_sum_to_odd(a[i], h[i], l[i]);
        return k.apply(batch::load_aligned(a), batch(0.0));
    }
    template <class TA>
    batch step(batch const& acc, TA a, batch const& w, std::uint64_t index) const noexcept
    {
        const batch p = batch(static_cast<double>(a)) * w;
        return round_sum(acc, product.round ? product(p, index) : p);
    }
    batch finish(batch const& acc, batch const& bias) const noexcept { return round_sum(acc, bias); }
};

// Whether every product is a whole number of the accumulator's units (fixed-point
// products, or operands, with at most its fractional bits): then every sum is exact.
inline bool integer_products(datapath const& d, fixed_format acc)
{
    const auto p = detail::exact_product_of(d);
    return p && p->frac <= acc.frac;
}

// Calls fn(mac) with the multiply-accumulate of datapath d (datapath_problem(d, terms)
// empty; keys already the layer's) for the accumulator acc = datapath_accumulator(d, terms).
// The mac's scale turns bias values into what it adds (units of a fixed accumulator).
template <class Arch, class Fn>
void visit_datapath(datapath const& d, any_quantizer const& acc, Fn&& fn)
{
    using batch = xsimd::batch<double, Arch>;
    // the product kernel lives here while fn runs; product_rounding points at it
    auto with_product = [&](auto&& next) {
        auto const& p = d[datapath_role::product];
        if (!p) return next(product_rounding<Arch>{});
        p->visit<double>([&](auto const& pk) {
            using PK = std::decay_t<decltype(pk)>;
            if constexpr (detail::is_datapath_kernel<PK>::value) {
                product_rounding<Arch> r{&pk, [](void const* kp, batch const& x, std::uint64_t i) {
                                             return tensorquant::detail::call_at(*static_cast<PK const*>(kp), x, i);
                                         }};
                next(r);
            }
        });
    };
    with_product([&](product_rounding<Arch> const& product) {
        if (auto const* f = std::get_if<fixed_point_rt>(&acc.get())) {
            tensorquant::detail::visit_rounding(f->rounding(), [&](auto r) {
                tensorquant::detail::visit_overflow(f->overflow(), [&](auto o) {
                    using R = decltype(r);
                    using O = decltype(o);
                    const fixed_kernel<double, R, O> k(f->format(), f->key());
                    const double scale = exp2i<double>(f->format().frac);
                    fn(fixed_accumulator_mac<R, O, Arch>{
                        {k, scale}, product, integer_products(d, f->format()), 1, 1, f->format()});
                });
            });
        } else {
            std::get<minifloat>(acc.get()).visit<double>([&](auto const& k) {
                using K = std::decay_t<decltype(k)>;
                if constexpr (detail::is_datapath_kernel<K>::value && requires { k(0.0); }) { // deterministic
                    fn(float_accumulator_mac<K, Arch>{k, product});
                }
            });
        }
    });
}

// A datapath whose every partial sum the float or double FPU computes exactly, or rounds
// exactly as the accumulator does: s = 0, s = fma(a, w, s) in order, then s + bias
// (weights and bias packed times w_scale and b_scale, results times out_scale).
template <class T, class Arch = xsimd::default_arch>
struct exact_float_mac
{
    // a step as short as the float one: the same tile (gemm.hpp's float_mac)
    static constexpr std::size_t rows_per_block = sizeof(xsimd::batch<T, Arch>) >= 64 ? 8 : 6;
    static constexpr std::size_t panels_per_block = 2;
    using value_type = T;
    using arch = Arch;
    using batch = xsimd::batch<T, Arch>;
    using output_type = T;
    double w_scale = 1, out_scale = 1, bias_scale = 1;
    double b_scale() const noexcept { return bias_scale; }

    batch init(batch const&) const noexcept { return batch(T(0)); }
    template <class TA>
    batch step(batch const& acc, TA a, batch const& w, std::uint64_t) const noexcept
    {
        return xsimd::fma(batch(static_cast<T>(a)), w, acc);
    }
    batch finish(batch const& acc, batch const& bias) const noexcept { return acc + bias; }
};

// The direct depthwise kernel (depthwise.hpp) runs the exact float step lane by lane; the
// fixed-point accumulator's step is not lane_step of the intrinsic one it derives from.
template <class T, class Arch>
auto lane_step(exact_float_mac<T, Arch> const&, xsimd::batch<T, Arch> const& acc, xsimd::batch<T, Arch> const& a,
               xsimd::batch<T, Arch> const& w) noexcept
{
    return xsimd::fma(a, w, acc);
}
template <class R, class O, class Arch>
void lane_step(fixed_accumulator_mac<R, O, Arch> const&, xsimd::batch<double, Arch> const&,
               xsimd::batch<double, Arch> const&, xsimd::batch<double, Arch> const&) = delete;

namespace detail {

// Significant bits and the exponents of the lowest bit and of the bound 2^top of the
// values of an operand format (a float when there is none).
struct operand_bits
{
    int bits, low, top;
};
inline operand_bits bits_of(std::optional<any_quantizer> const& q)
{
    if (auto const* f = as_fixed(q))
        return {f->format().width, -f->format().frac, f->format().width - f->format().frac};
    if (auto const* m = as_minifloat(q))
        return {m->format.mantissa_bits + 1, m->format.min_exponent() - m->format.mantissa_bits,
                m->format.max_exponent() + 1};
    return {24, -149, 128};
}

// Every product of the operand formats is exactly a float.
inline bool products_fit_float(datapath const& d)
{
    if (d[datapath_role::product]) return false;
    const auto a = bits_of(d[datapath_role::input]), b = bits_of(d[datapath_role::weights]);
    const bool typed = (as_fixed(d[datapath_role::input]) || as_minifloat(d[datapath_role::input])) &&
                       (as_fixed(d[datapath_role::weights]) || as_minifloat(d[datapath_role::weights]));
    return typed && a.bits + b.bits <= 24 && a.low + b.low >= -149 && a.top + b.top <= 127;
}

// The accumulator is IEEE binary32 (or binary64) with round to nearest even: its sums are
// the FPU's.
template <class T>
bool is_hardware_float(any_quantizer const& acc)
{
    auto const* m = std::get_if<minifloat>(&acc.get());
    if (!m) return false;
    const minifloat_format ieee =
        sizeof(T) == 4 ? minifloat_format{8, 23, 127, true, true} : minifloat_format{11, 52, 1023, true, true};
    return m->format == ieee && m->rounding == rounding_mode::nearest_even &&
           m->overflow == minifloat_overflow::to_infinity;
}

// Written so that the compiler vectorises them (a max instruction's operand order, no
// early exit): they scan every activation a datapath layer reads.
template <class T>
double max_abs(std::span<T const> v) noexcept
{
    T m = 0;
    for (T x : v) {
        const T a = std::fabs(x);
        m = a > m ? a : m; // NaN is skipped: the comparison is false
    }
    return double(m);
}

template <class T>
bool any_nan(std::span<T const> v) noexcept
{
    bool nan = false;
    for (T x : v) nan |= x != x;
    return nan;
}

} // namespace detail

// x with every element quantized by q when q is given (stream positions from offset);
// a block format runs along lines of block_line elements block_stride apart (apply_options).
template <class T, std::size_t N>
xt::xtensor<T, N> datapath_operand(std::optional<any_quantizer> const& q, xt::xtensor<T, N> const& x,
                                   std::uint64_t offset, std::size_t block_line = 0, std::size_t block_stride = 1)
{
    if (!q) return x;
    xt::xtensor<T, N> y = x;
    apply_options o;
    o.index_offset = offset;
    o.block_line = block_line;
    o.block_stride = block_stride;
    quantize_inplace(*q, std::span<T>(y.data(), y.size()), o);
    return y;
}

inline tensor4<float> datapath_activation(datapath const& d, tensor4<float> r, activation_fn const& act);

// The output stage and the fused activation: y (accumulator values) to the output format,
// then the activation rounded to it, as floats of the given shape.
template <class Y>
tensor4<float> datapath_output(datapath const& d, std::vector<Y> y, std::array<std::size_t, 4> const& shape,
                               activation_fn const& act)
{
    auto const& out = d[datapath_role::output];
    apply_options o;
    o.index_offset = datapath_output_offset;
    const bool typed = detail::as_fixed(out) || detail::as_minifloat(out);
    auto r = tensor4<float>::from_shape(shape);
    if (typed) {
        // in double whatever mac ran (the float fast paths too): stochastic thresholds are
        // those of double values, the same for every path; by pieces that stay in cache
        // (element i keeps stream position offset + i)
        constexpr std::size_t piece = 2048;
        std::vector<double> v(std::min(piece, y.size()));
        for (std::size_t i0 = 0; i0 < y.size(); i0 += piece) {
            const std::size_t n = std::min(piece, y.size() - i0);
            std::copy(y.begin() + std::ptrdiff_t(i0), y.begin() + std::ptrdiff_t(i0 + n), v.begin());
            apply_options po = o;
            po.index_offset = o.index_offset + i0;
            quantize_inplace(*out, std::span<double>(v.data(), n), po);
            std::copy(v.begin(), v.begin() + std::ptrdiff_t(n), r.data() + i0);
        }
    } else {
        std::copy(y.begin(), y.end(), r.data());
    }
    if (out && !typed) quantize_inplace(*out, std::span<float>(r.data(), r.size()), o);
    return datapath_activation(d, std::move(r), act);
}

// The fused activation of a datapath's outputs r (in the output format), rounded to it.
inline tensor4<float> datapath_activation(datapath const& d, tensor4<float> r, activation_fn const& act)
{
    auto const& out = d[datapath_role::output];
    if (act == activation::none) return r;
    if (!out) return activate_float(std::move(r), act);
    if (auto const* f = detail::as_fixed(out)) return activate_intrinsic(std::move(r), act, *f);
    apply_options ao;
    ao.index_offset = intrinsic_activation_offset;
    if (act == activation::leaky_relu) {
        // x Q(alpha) is exact in double (two floats), then rounded once
        double slope = act.alpha;
        apply_options so;
        so.index_offset = intrinsic_activation_offset - (std::uint64_t(1) << 32);
        quantize_inplace(*out, std::span<double>(&slope, 1), so);
        std::vector<double> v(r.begin(), r.end());
        for (auto& e : v) e = e < 0 ? e * slope : e;
        quantize_inplace(*out, std::span<double>(v), ao);
        std::copy(v.begin(), v.end(), r.data());
        return r;
    }
    if (act == activation::sigmoid) {
        sigmoid_rounded(*out, r, ao);
        return r;
    }
    // the others in float, rounded once to the output format
    r = activate_float(std::move(r), act);
    quantize_inplace(*out, std::span<float>(r.data(), r.size()), ao);
    return r;
}

// Under a range_watch a datapath reports conservatively (it is not analysed step by step).
inline void note_datapath_range() noexcept
{
    if (auto* w = tensorquant::detail::current_range_flag()) w->note();
}

// One rounding into a runtime fixed-point format on exact words: c + p 2^-pf.
using word_step =
    std::function<tensorquant::detail::int128(tensorquant::detail::int256 const&, int, tensorquant::detail::int128)>;
inline word_step make_word_step(fixed_point_rt const& q)
{
    return tensorquant::detail::visit_rounding(q.rounding(), [&](auto r) {
        return tensorquant::detail::visit_overflow(q.overflow(), [&](auto o) -> word_step {
            const tensorquant::detail::fixed_arith<decltype(r), decltype(o)> ar(q.format());
            return [ar](tensorquant::detail::int256 const& p, int pf, tensorquant::detail::int128 c) {
                return tensorquant::detail::mac_word(ar, p, pf, c);
            };
        });
    });
}

// The word of a value on the grid of 2^-frac.
inline tensorquant::detail::int128 word_of(double v, int frac) noexcept
{
    return static_cast<tensorquant::detail::int128>(std::ldexp(v, frac));
}

// A fixed-point accumulator wider than double holds: y[r ystride + j] for rows x K
// operands a (row-major) and weights w(kk, j), every step on exact integer words in the
// order of the vectorised path; bias holds the accumulator's words. Scalar.
template <class W>
void wide_products(datapath const& d, fixed_point_rt const& acc, float const* a, std::size_t rows, std::size_t K, W&& w,
                   std::size_t n, std::vector<tensorquant::detail::int128> const& bias, float* y, std::size_t ystride)
{
    using tensorquant::detail::int128;
    using tensorquant::detail::int256;
    const int fa = detail::as_fixed(d[datapath_role::input])->format().frac;
    const int fw = detail::as_fixed(d[datapath_role::weights])->format().frac;
    auto const* product = detail::as_fixed(d[datapath_role::product]);
    auto const& out = *detail::as_fixed(d[datapath_role::output]);
    const word_step to_product = product ? make_word_step(*product) : word_step{};
    const word_step to_acc = make_word_step(acc), to_out = make_word_step(out);
    const int fp = product ? product->format().frac : fa + fw, fc = acc.format().frac;
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t j = 0; j < n; ++j) {
            int128 s = 0;
            for (std::size_t kk = 0; kk < K; ++kk) {
                int256 p = int256(word_of(a[r * K + kk], fa)) * int256(word_of(w(kk, j), fw));
                if (product) p = to_product(p, fa + fw, 0);
                s = to_acc(p, fp, s);
            }
            s = to_acc(int256(bias[j]), fc, s);
            y[r * ystride + j] = static_cast<float>(std::ldexp(double(to_out(int256(s), fc, 0)), -out.format().frac));
        }
}

// Runs a datapath layer's products and output stage. xq and wq are the quantized
// operands, b the float bias; products(mac, bias, y) packs the weights (times
// mac.w_scale) with bias[j] and writes the mac's results to y (Mac::output_type). Fast
// paths, each the same bits as the general multiply-accumulate:
// - an IEEE binary32 accumulator (nearest even) whose operand formats multiply exactly
//   in float: float multiply-adds;
// - a fixed-point accumulator with whole products and no product format, when the
//   operands' magnitudes prove that no partial sum leaves its range (terms max|a| max|w|
//   + max|b| in units): the sums are exact integers, in float up to 2^24, else in double.
template <class Arch, class T, class Fn, class Wide>
tensor4<float> run_datapath(datapath const& d, std::size_t terms, std::span<T const> xq, std::span<T const> wq,
                            tensor1<T> const& b, std::size_t channels, std::array<std::size_t, 4> const& shape,
                            activation_fn const& act, Fn&& products, Wide&& wide)
{
    const any_quantizer acc = *datapath_accumulator(d, terms);
    std::size_t count = 1;
    for (auto e : shape) count *= e;
    if (auto const* f = std::get_if<fixed_point_rt>(&acc.get()); f && f->format().width > 52) {
        // wide(acc, bias words, y) runs wide_products over the layer's rows
        std::vector<tensorquant::detail::int128> words(channels, 0);
        const auto fmt = f->format();
        for (std::size_t j = 0; j < b.size(); ++j) {
            const std::uint64_t u = tensorquant::detail::visit_rounding(f->rounding(), [&](auto r) {
                return tensorquant::detail::visit_overflow(f->overflow(), [&](auto o) {
                    return tensorquant::detail::encode_fixed<double, decltype(r), decltype(o)>(fmt, double(b(j)), 0.0);
                });
            });
            // the W-bit word, sign-extended
            const bool negative = fmt.is_signed && fmt.width < 64 && ((u >> (fmt.width - 1)) & 1);
            words[j] = negative        ? tensorquant::detail::int128(u) - (tensorquant::detail::int128(1) << fmt.width)
                       : fmt.is_signed ? tensorquant::detail::int128(std::int64_t(u))
                                       : tensorquant::detail::int128(u);
        }
        auto y = tensor4<float>::from_shape(shape);
        wide(*f, words, y.data());
        note_datapath_range();
        return datapath_activation(d, std::move(y), act);
    }
    std::vector<double> bias(channels, -0.0);
    if (b.size()) {
        bias.assign(b.begin(), b.end());
        apply_options o;
        o.index_offset = intrinsic_operand_offset(2);
        quantize_inplace(acc, std::span<double>(bias), o);
    }
    auto run = [&](auto const& mac) {
        using Y = typename std::decay_t<decltype(mac)>::output_type;
        std::vector<double> scaled(bias);
        for (auto& e : scaled) e *= mac.b_scale();
        std::vector<Y> y(count);
        products(mac, scaled, y.data());
        if (mac.out_scale != 1)
            for (auto& e : y) e = Y(e * mac.out_scale); // a power of two
        note_datapath_range();
        return datapath_output(d, std::move(y), shape, act);
    };
    if (detail::is_hardware_float<float>(acc) && detail::products_fit_float(d))
        return run(exact_float_mac<float, Arch>{});
    if (auto const* f = std::get_if<fixed_point_rt>(&acc.get()); f && !d[datapath_role::product] &&
                                                                 integer_products(d, f->format()) &&
                                                                 !detail::any_nan(xq) && !detail::any_nan(wq)) {
        const double scale = exp2i<double>(f->format().frac);
        const word_range r =
            tensorquant::detail::visit_overflow(f->overflow(), [&](auto o) { return decltype(o)::range(f->format()); });
        const double bound = double(terms) * detail::max_abs(xq) * detail::max_abs(wq) * scale +
                             detail::max_abs(std::span<double const>(bias)) * scale;
        if (bound <= std::min(double(r.hi), -double(r.lo))) {
            if (bound <= 0x1p24) return run(exact_float_mac<float, Arch>{scale, 1 / scale, scale});
            if (bound <= 0x1p53) return run(exact_float_mac<double, Arch>{scale, 1 / scale, scale});
        }
    }
    tensor4<float> result;
    visit_datapath<Arch>(d, acc, [&](auto const& mac) { result = run(mac); });
    return result;
}

} // namespace tensorquant::inline TENSORQUANT_ABI::nn::kernels
