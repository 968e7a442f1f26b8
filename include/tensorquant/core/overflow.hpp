// What a format does with values beyond its range.
#pragma once

#include <cstdint>
#include <string_view>
#include <type_traits>

namespace tensorquant {

namespace overflow {
// Clamp to [min, max] of the format (the paper's default).
struct saturate { static constexpr std::string_view name = "saturate"; };
// Clamp to [-max, max]: the int8 symmetric schemes' [-127, 127].
struct symmetric { static constexpr std::string_view name = "symmetric"; };
// Two's complement modulo 2^W, as an integer register overflows.
struct wrap { static constexpr std::string_view name = "wrap"; };
} // namespace overflow

enum class overflow_mode : std::uint8_t { saturate, symmetric, wrap };

template <class O>
concept OverflowPolicy = std::is_same_v<O, overflow::saturate> || std::is_same_v<O, overflow::symmetric> ||
                         std::is_same_v<O, overflow::wrap>;

template <class O>
constexpr overflow_mode overflow_mode_of() noexcept
{
    if constexpr (std::is_same_v<O, overflow::saturate>) return overflow_mode::saturate;
    else if constexpr (std::is_same_v<O, overflow::symmetric>) return overflow_mode::symmetric;
    else return overflow_mode::wrap;
}

constexpr std::string_view to_string(overflow_mode m) noexcept
{
    constexpr std::string_view names[] = {"saturate", "symmetric", "wrap"};
    return names[static_cast<int>(m)];
}

namespace detail {
template <class F>
decltype(auto) visit_overflow(overflow_mode m, F&& f)
{
    switch (m) {
    case overflow_mode::saturate: return f(overflow::saturate{});
    case overflow_mode::symmetric: return f(overflow::symmetric{});
    case overflow_mode::wrap: break;
    }
    return f(overflow::wrap{});
}
} // namespace detail

} // namespace tensorquant
