// A list of types, and the few operations the policy and quantizer registries need: every
// name, parser and runtime visit is a fold over one such list, so adding an entry to the
// list is all it takes to make a new policy known everywhere.
#pragma once

#include "../config.hpp"

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>
#include <type_traits>

namespace tensorquant::inline TENSORQUANT_ABI {

template <class... Ts>
struct type_list
{
    static constexpr std::size_t size = sizeof...(Ts);
};

namespace detail {

template <class T, class... Ts>
constexpr std::size_t index_in(type_list<Ts...>) noexcept
{
    std::size_t i = 0, found = sizeof...(Ts);
    ((std::is_same_v<T, Ts> ? (found = i, ++i) : ++i), ...);
    return found;
}

template <class T, class List>
inline constexpr bool list_contains_v = index_in<T>(List{}) < List::size;

// Calls fn(std::type_identity<T>{}) for each type T of the list, in order.
template <class... Ts, class Fn>
constexpr void for_each_type(type_list<Ts...>, Fn&& fn)
{
    (fn(std::type_identity<Ts>{}), ...);
}

// The name of each entry (its static member `name`), in list order.
template <class... Ts>
constexpr std::array<std::string_view, sizeof...(Ts)> names_of(type_list<Ts...>) noexcept
{
    return {Ts::name...};
}

// Calls fn(T{}) with the entry T whose `mode` equals m, and returns what fn returns;
// unknown() (which throws) is called when no entry has that mode.
template <class M, class Fn, class Unknown, class T, class... Rest>
decltype(auto) visit_by_mode(type_list<T, Rest...>, M m, Fn&& fn, Unknown&& unknown)
{
    if constexpr (sizeof...(Rest) == 0) {
        if (m != T::mode) unknown();
        return fn(T{});
    } else {
        if (m == T::mode) return fn(T{});
        return visit_by_mode(type_list<Rest...>{}, m, fn, unknown);
    }
}

// True when the entries' `mode` enumerators are 0, 1, 2, ... in list order.
template <class... Ts>
constexpr bool modes_in_list_order(type_list<Ts...>) noexcept
{
    int i = 0;
    return ((static_cast<int>(Ts::mode) == i++) && ...);
}

// The name of the entry whose mode is m ("unknown" if none).
template <class... Ts, class M>
constexpr std::string_view name_of_mode(type_list<Ts...>, M m) noexcept
{
    constexpr auto names = names_of(type_list<Ts...>{});
    const auto i = static_cast<std::size_t>(m);
    return i < names.size() ? names[i] : std::string_view("unknown");
}

template <class M, class... Ts>
constexpr std::optional<M> mode_from_name(type_list<Ts...>, std::string_view n) noexcept
{
    std::optional<M> r;
    (void)((Ts::name == n ? (r = Ts::mode, true) : false) || ...);
    return r;
}

} // namespace detail
} // namespace tensorquant::inline TENSORQUANT_ABI
