// TensorQuant's quantizer strings, as its users wrote them in JSON files, and spellings
// for every other built-in. Fields are comma-separated; spaces around them are ignored;
// names are lower case.
//
//   identity | none
//   <rounding>,W,F[,saturate|symmetric|wrap][,signed|unsigned]   fixed point
//       rounding: nearest (ties away, the paper's), nearest_even, nearest_up,
//       nearest_down, nearest_zero, zero, down, up, stochastic
//   sparse,T                                  keep |x| > T
//   binary | binary,m                         m = mean|x| (XNOR-Net) | fixed m
//   binary_stochastic[,m]                     BinaryConnect
//   ternary | ternary,T,m                     TWN | fixed threshold and magnitude
//   logarithmic[,floor|nearest[,e_min,e_max]]
//   minifloat,E,M[,bias][,option...]          bias defaults to 2^(E-1) - 1
//   fp16 | bf16 | fp8_e4m3 | fp8_e5m2[,option...]
//       options: nearest_even nearest zero stochastic | to_infinity saturate |
//                no_subnormals | finite (no infinities: top exponent holds numbers)
//   affine,scale,zero_point,qmin,qmax[,rounding]
//
// A malformed string throws parse_error quoting the string and saying what is wrong.
#pragma once

#include "core/error.hpp"
#include "quantizers/affine.hpp"
#include "quantizers/fixed_point.hpp"
#include "quantizers/logarithmic.hpp"
#include "quantizers/minifloat.hpp"
#include "quantizers/simple.hpp"

#include <cctype>
#include <charconv>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tensorquant {

// Any built-in quantizer, chosen at run time.
class any_quantizer
{
public:
    using variant_type = std::variant<identity, fixed_point_rt, sparse, binary, binary_mean, binary_stochastic, ternary,
                                      ternary_twn, logarithmic, minifloat, affine>;
    using dispatching_tag = void;

    any_quantizer() = default;
    template <class Q>
        requires std::is_constructible_v<variant_type, Q>
    any_quantizer(Q q) : q_(std::move(q))
    {
    }

    variant_type const& get() const noexcept { return q_; }

    // Calls fn with the typed kernel, or with the quantizer itself when it needs tensor
    // statistics first (binary_mean, ternary_twn).
    template <std::floating_point T, class Fn>
    decltype(auto) visit(Fn&& fn) const
    {
        return std::visit(
            [&](auto const& q) -> decltype(auto) {
                using Q = std::decay_t<decltype(q)>;
                if constexpr (DispatchingQuantizer<Q, T>) return q.template visit<T>(fn);
                else return fn(q);
            },
            q_);
    }

    // One element; a tensor-statistics quantizer sees a tensor of that one element.
    template <std::floating_point T>
    T operator()(T x, std::uint64_t i = 0) const
    {
        return visit<T>([&](auto const& k) -> T {
            using K = std::decay_t<decltype(k)>;
            if constexpr (TensorQuantizer<K, T>) return detail::call_at(k.prepare(std::span<T const>(&x, 1)), x, i);
            else return detail::call_at(k, x, i);
        });
    }

private:
    variant_type q_{identity{}};
};

namespace detail {

inline std::string_view trim(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

struct spec_reader
{
    std::string_view text;
    std::vector<std::string_view> fields;

    [[noreturn]] void fail(std::string const& why) const
    {
        throw parse_error("invalid quantizer \"" + std::string(text) + "\": " + why);
    }

    int integer(std::size_t k, char const* what) const
    {
        if (k >= fields.size()) fail(std::string("missing ") + what);
        int v = 0;
        auto f = fields[k];
        auto [p, ec] = std::from_chars(f.data(), f.data() + f.size(), v);
        if (ec != std::errc{} || p != f.data() + f.size())
            fail(std::string(what) + " must be an integer, got \"" + std::string(f) + "\"");
        return v;
    }
    double number(std::size_t k, char const* what) const
    {
        if (k >= fields.size()) fail(std::string("missing ") + what);
        std::string f(fields[k]);
        std::istringstream is(f);
        is.imbue(std::locale::classic());
        double v;
        if (!(is >> v) || !is.eof()) fail(std::string(what) + " must be a number, got \"" + f + "\"");
        return v;
    }
    void at_most(std::size_t n, char const* form) const
    {
        if (fields.size() > n)
            fail("unexpected field \"" + std::string(fields[n]) + "\"; the form is \"" + form + "\"");
    }
};

template <class Fn>
any_quantizer wrap_errors(spec_reader const& r, Fn&& fn)
{
    try {
        return fn();
    } catch (format_error const& e) {
        r.fail(e.what());
    }
}

} // namespace detail

// Parses a quantizer string; key seeds the stochastic ones.
inline any_quantizer parse_quantizer(std::string_view text, rng_key key = {})
{
    detail::spec_reader r{text, {}};
    std::string_view rest = text;
    while (true) {
        auto c = rest.find(',');
        r.fields.push_back(detail::trim(rest.substr(0, c)));
        if (c == std::string_view::npos) break;
        rest.remove_prefix(c + 1);
    }
    for (auto f : r.fields)
        if (f.empty()) r.fail("empty field");
    const std::string_view kind = r.fields[0];

    if (kind == "identity" || kind == "none") {
        r.at_most(1, "identity");
        return identity{};
    }
    if (auto mode = rounding_from_name(kind)) {
        const char* form = "rounding,W,F[,saturate|symmetric|wrap][,signed|unsigned]";
        if (r.fields.size() < 3) r.fail(std::string("fixed point needs word size and fractional bits, as \"") + form + "\"");
        r.at_most(5, form);
        fixed_format f{r.integer(1, "word size W"), r.integer(2, "fractional bits F"), true};
        overflow_mode o = overflow_mode::saturate;
        for (std::size_t k = 3; k < r.fields.size(); ++k) {
            auto t = r.fields[k];
            if (auto m = overflow_from_name(t)) o = *m;
            else if (t == "signed") f.is_signed = true;
            else if (t == "unsigned") f.is_signed = false;
            else r.fail("unknown option \"" + std::string(t) + "\"; expected saturate, symmetric, wrap, signed or unsigned");
        }
        return detail::wrap_errors(r, [&] { return any_quantizer(fixed_point_rt(f, *mode, o, key)); });
    }
    if (kind == "sparse") {
        r.at_most(2, "sparse,T");
        double t = r.number(1, "threshold T");
        return detail::wrap_errors(r, [&] { return any_quantizer(sparse(t)); });
    }
    if (kind == "binary") {
        r.at_most(2, "binary[,m]");
        if (r.fields.size() == 1) return binary_mean{};
        double m = r.number(1, "magnitude m");
        return detail::wrap_errors(r, [&] { return any_quantizer(binary(m)); });
    }
    if (kind == "binary_stochastic") {
        r.at_most(2, "binary_stochastic[,m]");
        double m = r.fields.size() == 2 ? r.number(1, "magnitude m") : 1.0;
        return detail::wrap_errors(r, [&] { return any_quantizer(binary_stochastic(m, key)); });
    }
    if (kind == "ternary") {
        r.at_most(3, "ternary[,T,m]");
        if (r.fields.size() == 1) return ternary_twn{};
        if (r.fields.size() != 3) r.fail("fixed ternary needs a threshold and a magnitude, as \"ternary,T,m\"");
        double t = r.number(1, "threshold T"), m = r.number(2, "magnitude m");
        return detail::wrap_errors(r, [&] { return any_quantizer(ternary(t, m)); });
    }
    if (kind == "logarithmic") {
        r.at_most(4, "logarithmic[,floor|nearest[,e_min,e_max]]");
        log_rounding lr = log_rounding::floor;
        if (r.fields.size() >= 2) {
            if (r.fields[1] == "floor") lr = log_rounding::floor;
            else if (r.fields[1] == "nearest") lr = log_rounding::nearest;
            else r.fail("unknown logarithmic rounding \"" + std::string(r.fields[1]) + "\"; expected floor or nearest");
        }
        if (r.fields.size() == 3) r.fail("give both e_min and e_max, as \"logarithmic,floor,-8,0\"");
        if (r.fields.size() == 4) {
            int lo = r.integer(2, "e_min"), hi = r.integer(3, "e_max");
            return detail::wrap_errors(r, [&] { return any_quantizer(logarithmic(lr, lo, hi)); });
        }
        return logarithmic(lr);
    }
    std::optional<minifloat_format> mf;
    std::size_t first_option = 1;
    if (kind == "fp16") mf = minifloats::fp16;
    else if (kind == "bf16") mf = minifloats::bf16;
    else if (kind == "fp8_e4m3") mf = minifloats::fp8_e4m3;
    else if (kind == "fp8_e5m2") mf = minifloats::fp8_e5m2;
    else if (kind == "minifloat") {
        if (r.fields.size() < 3) r.fail("minifloat needs exponent and mantissa bits, as \"minifloat,E,M[,bias][,option...]\"");
        minifloat_format f{r.integer(1, "exponent bits E"), r.integer(2, "mantissa bits M"), 0, true, true};
        if (f.exponent_bits < 1 || f.exponent_bits > 11) r.fail("exponent bits E must be in [1, 11]");
        f.bias = (1 << (f.exponent_bits - 1)) - 1;
        first_option = 3;
        if (r.fields.size() > 3 && (std::isdigit(static_cast<unsigned char>(r.fields[3][0])) || r.fields[3][0] == '-')) {
            f.bias = r.integer(3, "bias");
            first_option = 4;
        }
        mf = f;
    }
    if (mf) {
        rounding_mode rm = rounding_mode::nearest_even;
        minifloat_overflow o = minifloat_overflow::to_infinity;
        for (std::size_t k = first_option; k < r.fields.size(); ++k) {
            auto t = r.fields[k];
            if (auto m = rounding_from_name(t)) rm = *m;
            else if (t == "to_infinity") o = minifloat_overflow::to_infinity;
            else if (t == "saturate") o = minifloat_overflow::saturate;
            else if (t == "no_subnormals") mf->subnormals = false;
            else if (t == "finite") mf->ieee_specials = false;
            else r.fail("unknown minifloat option \"" + std::string(t) +
                        "\"; expected a rounding, to_infinity, saturate, no_subnormals or finite");
        }
        return detail::wrap_errors(r, [&] { return any_quantizer(minifloat(*mf, rm, o, key)); });
    }
    if (kind == "affine") {
        const char* form = "affine,scale,zero_point,qmin,qmax[,rounding]";
        if (r.fields.size() < 5) r.fail(std::string("affine needs scale, zero point, qmin and qmax, as \"") + form + "\"");
        r.at_most(6, form);
        double s = r.number(1, "scale");
        int z = r.integer(2, "zero point"), lo = r.integer(3, "qmin"), hi = r.integer(4, "qmax");
        rounding_mode rm = rounding_mode::nearest_even;
        if (r.fields.size() == 6) {
            auto m = rounding_from_name(r.fields[5]);
            if (!m) r.fail("unknown rounding \"" + std::string(r.fields[5]) + "\"");
            rm = *m;
        }
        return detail::wrap_errors(r, [&] { return any_quantizer(affine(s, z, lo, hi, rm, key)); });
    }
    r.fail("unknown quantizer \"" + std::string(kind) +
           "\"; expected identity, a rounding name (nearest, zero, down, stochastic, ...), sparse, binary, "
           "binary_stochastic, ternary, logarithmic, minifloat, fp16, bf16, fp8_e4m3, fp8_e5m2 or affine");
}

} // namespace tensorquant
