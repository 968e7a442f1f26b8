// Where the number type's stochastic rounding draws its thresholds: the innermost
// stochastic_scope of the calling thread. Each rounding operation takes the threshold at
// the scope's next position from the counter-based generator of its key, so a
// computation done in a fixed order gives the same bits whatever thread runs it; open one
// scope per independent piece of work (an image, a tile) at a position of its own.
#pragma once

#include "../config.hpp"

#include "../core/error.hpp"
#include "../core/random.hpp"

#include <concepts>
#include <cstdint>

namespace tensorquant::inline TENSORQUANT_ABI {

class stochastic_scope
{
public:
    explicit stochastic_scope(rng_key key, std::uint64_t position = 0) noexcept
        : rng_(key), position_(position), previous_(current_)
    {
        current_ = this;
    }
    stochastic_scope(stochastic_scope const&) = delete;
    stochastic_scope& operator=(stochastic_scope const&) = delete;
    ~stochastic_scope() { current_ = previous_; }

    // The position the next rounding uses.
    std::uint64_t position() const noexcept { return position_; }

    template <std::floating_point T>
    T next() noexcept
    {
        return rng_.uniform<T>(position_++);
    }

    static stochastic_scope& current()
    {
        if (!current_)
            throw format_error("stochastic rounding in the number type: no stochastic_scope is open on this thread to "
                               "give the random stream");
        return *current_;
    }

private:
    detail::counter_rng rng_;
    std::uint64_t position_;
    stochastic_scope* previous_;
    static inline thread_local stochastic_scope* current_ = nullptr;
};

namespace detail {
// The threshold u in [0, 1) as j / 2^32 (exact: the generator's thresholds are
// multiples of 2^-24 for float and 2^-32 for double).
template <std::floating_point T>
constexpr std::uint64_t threshold_bits(T u) noexcept
{
    return static_cast<std::uint64_t>(u * T(4294967296.0));
}

// The threshold of one rounding: 0 (unused) for a deterministic policy.
template <std::floating_point T, bool Stochastic>
constexpr T next_threshold()
{
    if constexpr (Stochastic)
        return stochastic_scope::current().next<T>();
    else
        return T(0);
}
} // namespace detail

} // namespace tensorquant::inline TENSORQUANT_ABI
