// A fixed-point format (W, F, signed): a two's complement (or unsigned) integer word of W
// bits, F of them fractional, resolution 2^-F. Which words exist is the overflow
// policy's to say (overflow.hpp); this header checks that a format can exist at all.
#pragma once

#include "../config.hpp"

#include "error.hpp"

#include <cstdint>
#include <limits>
#include <string>

namespace tensorquant::inline TENSORQUANT_ABI {

struct fixed_format
{
    int width = 8;
    int frac = 4;
    bool is_signed = true;
    friend constexpr bool operator==(fixed_format const&, fixed_format const&) = default;
};

namespace detail {

__extension__ typedef __int128 int128;
__extension__ typedef unsigned __int128 uint128;

inline constexpr int fixed_min_frac = -64;
inline constexpr int fixed_max_frac = 64;

constexpr bool fixed_format_exists(int width, int frac, bool is_signed) noexcept
{
    return width >= 1 && width <= 64 && frac >= fixed_min_frac && frac <= fixed_max_frac && (is_signed || width <= 63);
}

// Empty string when the format exists, otherwise what is wrong with it.
inline std::string fixed_format_problem(fixed_format f)
{
    if (f.width < 1 || f.width > 64) return "word size W=" + std::to_string(f.width) + " is outside [1, 64]";
    if (f.frac < fixed_min_frac || f.frac > fixed_max_frac)
        return "fractional bits F=" + std::to_string(f.frac) + " are outside [-64, 64]";
    if (!f.is_signed && f.width > 63)
        return "an unsigned word of W=" + std::to_string(f.width) + " bits is not supported (W <= 63)";
    return {};
}

inline std::string describe(fixed_format f)
{
    return std::string(f.is_signed ? "fixed point" : "unsigned fixed point") + " (W=" + std::to_string(f.width) +
           ", F=" + std::to_string(f.frac) + ")";
}

inline void check_fixed_format(fixed_format f)
{
    if (auto p = fixed_format_problem(f); !p.empty()) throw format_error(describe(f) + ": " + p);
}

template <class T>
inline void check_fixed_fits(fixed_format f)
{
    constexpr int digits = std::numeric_limits<T>::digits;
    if (f.width > digits)
        throw format_error(describe(f) + " needs " + std::to_string(f.width) + " significant bits but " +
                           (sizeof(T) == 4 ? "float" : "double") + " holds " + std::to_string(digits) +
                           " exactly: quantize into a wider type, or use encode() for the W-bit word");
}

} // namespace detail
} // namespace tensorquant::inline TENSORQUANT_ABI
