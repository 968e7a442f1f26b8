// Counter-based random numbers for stochastic rounding: the threshold of element i is a
// pure function of (seed, stream, i), so a tensor is the same on any thread count and
// any SIMD width. The generator is two rounds of a 32-bit integer hash (xor-shift-
// multiply) keyed by (seed, stream, i >> 32); the low 32 bits of i are the counter.
#pragma once

#include "../config.hpp"

#include "../detail/vector_ops.hpp"

#include <array>
#include <cstdint>

namespace tensorquant::inline TENSORQUANT_ABI {

struct rng_key
{
    std::uint64_t seed = 0;
    std::uint64_t stream = 0;
    friend constexpr bool operator==(rng_key const&, rng_key const&) = default;
};

namespace detail {

constexpr std::uint64_t mix64(std::uint64_t z) noexcept
{
    // splitmix64 finaliser: derives well-spread 32-bit keys from (seed, stream, block).
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// splitmix64 as a sequence: the one seeded generator of the library's other random
// choices (shuffling, parameter initialisation); mix64 is its output function.
struct splitmix64
{
    std::uint64_t state = 0;
    constexpr std::uint64_t next() noexcept
    {
        const std::uint64_t z = mix64(state);
        state += 0x9e3779b97f4a7c15ull;
        return z;
    }
    // Uniform in [0, 1) on a grid of 2^-53.
    constexpr double uniform() noexcept { return double(next() >> 11) * 0x1p-53; }
};

// Keys of one block of 2^32 counters. The counter plus a is hashed half-way, xored with
// b and hashed again: b enters after a non-linear step, so different keys are different
// functions of the counter, not shifted copies of one sequence.
struct block_keys
{
    std::uint32_t a;
    std::uint32_t b;
};

constexpr block_keys make_block_keys(rng_key k, std::uint32_t block) noexcept
{
    std::uint64_t z = mix64(k.seed ^ mix64(k.stream ^ mix64(block)));
    return {static_cast<std::uint32_t>(z), static_cast<std::uint32_t>(z >> 32)};
}

// U is uint32_t, uint64_t holding a 32-bit value, or a batch of either (64-bit lanes
// are masked back to 32 bits after each product).
template <class U>
constexpr U low32(U v) noexcept
{
    using E = value_type_t<U>;
    if constexpr (sizeof(E) == 8)
        return U(v & U(E(0xffffffffu)));
    else
        return v;
}

// Two multiply-xor-shift rounds (the constants of Wellons' lowbias32 hash) over
// s = counter + a (mod 2^32). Floats take the top 24 bits, which the last product has
// mixed well, so they skip the final xor-shift that only spreads high bits downwards.
template <bool TopBitsOnly, class U>
constexpr U random_bits_of_sum(std::uint32_t b, U s) noexcept
{
    using E = value_type_t<U>;
    U x = low32(s * U(E(0x7feb352du))); // the low 32 bits of a product need only those of s
    x = (x ^ (x >> 15)) ^ U(E(b));
    x = low32(x * U(E(0x846ca68bu)));
    if constexpr (TopBitsOnly)
        return x;
    else
        return x ^ (x >> 16);
}

// Uniform threshold in [0, 1) on a grid of 2^-24 (float) or 2^-32 (double); the
// conversion and the scaling are exact.
template <class T>
constexpr T uniform_from_bits(std::uint32_t bits) noexcept
{
    if constexpr (sizeof(T) == 4)
        return static_cast<T>(static_cast<std::int32_t>(bits >> 8)) * T(0x1p-24);
    else
        return static_cast<T>(bits) * T(0x1p-32);
}

template <class T, std::size_t N>
struct iota_table
{
    alignas(64) std::array<T, N> v;
    constexpr iota_table() : v{}
    {
        for (std::size_t i = 0; i < N; ++i) v[i] = T(i);
    }
};

// The generator of one (seed, stream): keys of the first block are kept, so the common
// case (fewer than 2^32 elements) derives no keys per call.
struct counter_rng
{
    rng_key key{};
    block_keys block0 = make_block_keys({}, 0);

    constexpr counter_rng() = default;
    constexpr counter_rng(rng_key k) noexcept : key(k), block0(make_block_keys(k, 0)) {}

    constexpr block_keys keys(std::uint64_t index) const noexcept
    {
        const auto block = static_cast<std::uint32_t>(index >> 32);
        return block == 0 ? block0 : make_block_keys(key, block);
    }

    template <class T>
    constexpr T uniform(std::uint64_t index) const noexcept
    {
        const block_keys k = keys(index);
        return uniform_from_bits<T>(random_bits_of_sum<sizeof(T) == 4>(k.b, static_cast<std::uint32_t>(index) + k.a));
    }

    // Thresholds for lanes index .. index + size - 1.
    template <class T, class A>
    xsimd::batch<T, A> uniform(std::uint64_t index, xsimd::batch<T, A> const* tag) const noexcept
    {
        using B = xsimd::batch<T, A>;
        constexpr std::size_t N = B::size;
        using UI = uint_for<T>;
        using UB = xsimd::batch<UI, A>;
        const auto lo = static_cast<std::uint32_t>(index);
        if (lo > 0xffffffffu - (N - 1)) [[unlikely]]
            return uniform_elsewhere(index, tag); // lanes straddle two blocks
        static constexpr iota_table<UI, N> iota{};
        const block_keys k = keys(index);
        // lane j hashes (lo + j) + a: the key add folds into the broadcast
        const UB sums = UB(UI(std::uint32_t(lo + k.a))) + UB::load_aligned(iota.v.data());
        const UB bits = random_bits_of_sum<sizeof(T) == 4>(k.b, sums);
        if constexpr (sizeof(T) == 4)
            return simd::convert<T>(simd::bit_cast<std::int32_t>(bits >> 8)) * B(T(0x1p-24));
        else
            return simd::convert<T>(simd::bit_cast<std::int64_t>(bits)) * B(T(0x1p-32));
    }

private:
    // Lanes straddling a block boundary: rare, kept out of the hot loop.
    template <class T, class A>
    [[gnu::noinline, gnu::cold]] xsimd::batch<T, A> uniform_elsewhere(std::uint64_t index,
                                                                      xsimd::batch<T, A> const*) const noexcept
    {
        using B = xsimd::batch<T, A>;
        alignas(64) std::array<T, B::size> u;
        for (std::size_t j = 0; j < B::size; ++j) u[j] = uniform<T>(index + j);
        return B::load_aligned(u.data());
    }
};

template <class T>
constexpr T uniform_at(rng_key key, std::uint64_t index) noexcept
{
    return counter_rng(key).uniform<T>(index);
}

} // namespace detail

using detail::splitmix64;
} // namespace tensorquant::inline TENSORQUANT_ABI
