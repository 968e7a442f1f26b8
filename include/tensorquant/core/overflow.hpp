// What a fixed-point format does with values beyond its range. A policy carries its
// behaviour: range(f) gives the words that exist, [lo, hi], and `modular` says what
// happens beyond them: false clamps to [lo, hi] (before rounding, so infinities become
// finite), true wraps modulo 2^W as an integer register does. The kernels, the exact
// arithmetic of the number type, encode() and the instrumentation all read these two, so
// a user-defined policy type works with fixed_point<W, F, R, O> and quantized<T, Q>
// without editing the library.
//
// The built-ins are one list, overflow::all, from which the runtime enum's names, parsing,
// printing and visit derive. Adding one: the tag, its enumerator, its place in the list.
#pragma once

#include "../config.hpp"

#include "error.hpp"
#include "fixed_format.hpp"
#include "type_list.hpp"

#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tensorquant::inline TENSORQUANT_ABI {

enum class overflow_mode : std::uint8_t { saturate, symmetric, wrap };

// The words of a format, as integers n of values n 2^-F.
struct word_range
{
    detail::int128 lo, hi;
};

namespace detail {
// Every word of W bits: [-2^(W-1), 2^(W-1) - 1], or [0, 2^W - 1] unsigned.
constexpr word_range all_words(fixed_format f) noexcept
{
    const int128 top = int128(1) << (f.is_signed ? f.width - 1 : f.width);
    return {f.is_signed ? -top : int128(0), top - 1};
}
} // namespace detail

namespace overflow {
// Clamp to [min, max] of the format (the paper's default).
struct saturate
{
    static constexpr std::string_view name = "saturate";
    static constexpr overflow_mode mode = overflow_mode::saturate;
    static constexpr bool modular = false;
    static constexpr word_range range(fixed_format f) noexcept { return detail::all_words(f); }
};
// Clamp to [-max, max]: the int8 symmetric schemes' [-127, 127].
struct symmetric
{
    static constexpr std::string_view name = "symmetric";
    static constexpr overflow_mode mode = overflow_mode::symmetric;
    static constexpr bool modular = false;
    static constexpr word_range range(fixed_format f) noexcept
    {
        const word_range r = detail::all_words(f);
        return {f.is_signed ? -r.hi : r.lo, r.hi};
    }
};
// Two's complement modulo 2^W, as an integer register overflows.
struct wrap
{
    static constexpr std::string_view name = "wrap";
    static constexpr overflow_mode mode = overflow_mode::wrap;
    static constexpr bool modular = true;
    static constexpr word_range range(fixed_format f) noexcept { return detail::all_words(f); }
};

using all = type_list<saturate, symmetric, wrap>;
} // namespace overflow

// A policy: a name, range(format) within the format's words, and modular. A modular
// policy's range must be every word (a residue modulo 2^W is one of them).
template <class O>
concept OverflowPolicy = requires(fixed_format f)
{
    {
        O::name
        } -> std::convertible_to<std::string_view>;
    {
        O::modular
        } -> std::convertible_to<bool>;
    {
        O::range(f)
        } -> std::same_as<word_range>;
};

namespace detail {

static_assert(modes_in_list_order(overflow::all{}), "overflow::all must list the policies in overflow_mode order");

// The word of an exact integer result n after policy O: clamped into O::range(f), or its
// two's complement residue modulo 2^W. N is a wide integer type (int128 or a bigint).
template <class O, class N>
constexpr int128 fit_word(N const& n, fixed_format f)
{
    if constexpr (O::modular) {
        const uint128 mask = f.width == 64 ? ~uint128(0) >> 64 : (uint128(1) << f.width) - 1;
        uint128 m;
        if constexpr (std::is_same_v<N, int128>)
            m = uint128(n) & mask;
        else
            m = static_cast<uint128>(static_cast<int128>(N(n & ((N(1) << f.width) - 1)))); // bigint residue
        const bool negative = f.is_signed && (m >> (f.width - 1)) & 1;
        return negative ? int128(m) - (int128(1) << f.width) : int128(m);
    } else {
        const word_range r = O::range(f);
        if (n < N(r.lo)) return r.lo;
        if (n > N(r.hi)) return r.hi;
        return static_cast<int128>(n);
    }
}

template <class F>
decltype(auto) visit_overflow(overflow_mode m, F&& f)
{
    return visit_by_mode(overflow::all{}, m, f,
                         [m] { throw format_error("unknown overflow mode " + std::to_string(static_cast<int>(m))); });
}

} // namespace detail

template <class O>
    requires requires { O::mode; }
constexpr overflow_mode overflow_mode_of() noexcept { return O::mode; }

constexpr std::string_view to_string(overflow_mode m) noexcept { return detail::name_of_mode(overflow::all{}, m); }

inline std::optional<overflow_mode> overflow_from_name(std::string_view n) noexcept
{
    return detail::mode_from_name<overflow_mode>(overflow::all{}, n);
}

} // namespace tensorquant::inline TENSORQUANT_ABI
