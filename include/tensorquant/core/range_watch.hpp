// Whether any fixed-point rounding met a value beyond its format's range.
//
// While a range_watch is alive on a thread, every fixed-point kernel made on that thread
// and every exact fixed-point operation of the number type run on it reports a value it
// had to clamp or wrap (checked before rounding, so a value that would round onto a bound
// counts too: the report may be conservative, never missing). The study uses it to prove
// grid points equal without running them: when nothing left the range of (W, F), a wider
// W with the same F and policy computes every step the same, so its results are the same
// bits.
//
// Kernels capture the watch when they are made, so work a kernel does on other threads
// (apply's thread pool) reports to the watch of the thread that made it.
#pragma once

#include "../config.hpp"

#include <atomic>
#include <type_traits>

namespace tensorquant::inline TENSORQUANT_ABI {

namespace detail {

struct range_flag
{
    std::atomic<bool> exceeded{false};

    void note() noexcept
    {
        if (!exceeded.load(std::memory_order_relaxed)) exceeded.store(true, std::memory_order_relaxed);
    }
};

inline thread_local range_flag* active_range_flag = nullptr;

// The watch a kernel made now reports to (none in constant evaluation).
constexpr range_flag* current_range_flag() noexcept
{
    if (std::is_constant_evaluated()) return nullptr;
    return active_range_flag;
}

} // namespace detail

// Watches the fixed-point roundings of this thread for its lifetime; nested watches also
// report to the enclosing one.
class range_watch
{
public:
    range_watch() noexcept : outer_(detail::active_range_flag) { detail::active_range_flag = &flag_; }
    ~range_watch()
    {
        detail::active_range_flag = outer_;
        if (outer_ && exceeded()) outer_->note();
    }
    range_watch(range_watch const&) = delete;
    range_watch& operator=(range_watch const&) = delete;

    // Some rounding since the watch began met a value beyond its format's range.
    bool exceeded() const noexcept { return flag_.exceeded.load(std::memory_order_relaxed); }

private:
    detail::range_flag flag_;
    detail::range_flag* outer_;
};

} // namespace tensorquant::inline TENSORQUANT_ABI
