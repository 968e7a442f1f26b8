// Tensor statistics for the data-dependent quantizers. The summation order is fixed
// (16 interleaved double accumulators, then a fixed combination), so the result does not
// depend on SIMD width or thread count. Non-finite elements are left out: they are
// passed through (NaN) or saturated (inf) by the quantizers, not averaged.
#pragma once

#include "../config.hpp"

#include "xsimd_compat.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>

namespace tensorquant::inline TENSORQUANT_ABI::detail {

struct abs_sum
{
    double sum = 0; // of |x| 2^-exponent
    std::size_t count = 0;
    int exponent = 0;
    double mean() const noexcept { return count ? std::ldexp(sum / double(count), exponent) : 0.0; }
};

// The scale of the last-resort pass: sums of finite values scaled by 2^-64 cannot overflow.
inline constexpr int abs_sum_scale_exponent = 64;

// Sum and count of |x| over finite x with |x| > threshold (threshold < 0: every finite x).
// Lane j of 16 accumulates elements j, j + 16, ... in T over blocks of 8 elements, then
// adds the block sum to a double; the order is fixed, so every SIMD width gives the same
// result. The first try does not filter non-finite elements; if the sum comes out
// non-finite, the filtered pass runs (same order, so the same result as filtering always).
// If the finite values themselves overflow the sum (in a block of 8 in T, or in double),
// a last pass adds |x| 2^-64 instead (the comparisons still see |x|), so the mean of finite
// values is always finite.
template <class Arch, bool Filter, bool Threshold, bool Scaled = false, class T>
abs_sum sum_abs_pass(std::span<T const> x, T thr) noexcept
{
    constexpr T scale = Scaled ? T(0x1p-64) : T(1);
    constexpr std::size_t L = 16, block = 8 * L;
    alignas(64) double acc[L] = {};
    alignas(64) double cnt[L] = {};
    constexpr T big = std::numeric_limits<T>::max();
    auto keep = [&](auto const& a) {
        // NaN fails every compare; inf fails a <= big
        if constexpr (Filter && Threshold)
            return (a > decltype(a)(thr)) && (a <= decltype(a)(big));
        else if constexpr (Filter)
            return a <= decltype(a)(big);
        else
            return a > decltype(a)(thr);
    };
    const T* p = x.data();
    const std::size_t n = x.size();
    for (std::size_t b = 0; b < n; b += block) {
        alignas(64) T bsum[L] = {};
        alignas(64) T bcnt[L] = {};
        const std::size_t e = std::min(n, b + block);
        if (e - b == block) {
            using B = xsimd::batch<T, Arch>;
            constexpr std::size_t G = L / B::size; // batches per 16 lanes
            static_assert(L % B::size == 0);
            B s[G], c[G];
            for (std::size_t g = 0; g < G; ++g) s[g] = c[g] = B(T(0));
            for (std::size_t i = b; i < e; i += L)
                for (std::size_t g = 0; g < G; ++g) {
                    const B a = xsimd::abs(B::load_unaligned(p + i + g * B::size));
                    if constexpr (Filter || Threshold) {
                        const auto take = keep(a);
                        s[g] += xsimd::select(take, Scaled ? a * B(scale) : a, B(T(0)));
                        c[g] += xsimd::select(take, B(T(1)), B(T(0)));
                    } else {
                        s[g] += a;
                    }
                }
            for (std::size_t g = 0; g < G; ++g)
                s[g].store_aligned(bsum + g * B::size), c[g].store_aligned(bcnt + g * B::size);
            if constexpr (!Filter && !Threshold)
                for (std::size_t j = 0; j < L; ++j) bcnt[j] = T(8);
        } else {
            for (std::size_t i = b; i < e; ++i) {
                const T a = std::fabs(p[i]);
                bool take = true;
                if constexpr (Filter || Threshold) take = keep(a);
                bsum[(i - b) % L] += take ? a * scale : T(0);
                bcnt[(i - b) % L] += take ? T(1) : T(0);
            }
        }
        for (std::size_t j = 0; j < L; ++j) {
            acc[j] += double(bsum[j]);
            cnt[j] += double(bcnt[j]);
        }
    }
    for (std::size_t w = L / 2; w > 0; w /= 2)
        for (std::size_t j = 0; j < w; ++j) {
            acc[j] += acc[j + w];
            cnt[j] += cnt[j + w];
        }
    return {acc[0], static_cast<std::size_t>(cnt[0]), Scaled ? abs_sum_scale_exponent : 0};
}

template <class Arch = xsimd::default_arch, class T>
abs_sum sum_abs_above(std::span<T const> x, double threshold = -1.0) noexcept
{
    if (threshold < 0) {
        abs_sum r = sum_abs_pass<Arch, false, false>(x, T(0));
        if (std::isfinite(r.sum)) return r;
        r = sum_abs_pass<Arch, true, false>(x, T(0));
        return std::isfinite(r.sum) ? r : sum_abs_pass<Arch, true, false, true>(x, T(0));
    }
    const T thr = static_cast<T>(threshold);
    abs_sum r = sum_abs_pass<Arch, false, true>(x, thr);
    if (std::isfinite(r.sum)) return r;
    r = sum_abs_pass<Arch, true, true>(x, thr);
    return std::isfinite(r.sum) ? r : sum_abs_pass<Arch, true, true, true>(x, thr);
}

} // namespace tensorquant::inline TENSORQUANT_ABI::detail
