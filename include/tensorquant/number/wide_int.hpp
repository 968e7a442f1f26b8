// A 256-bit two's complement integer: the exact intermediates of the number type beyond
// __int128 (products shifted by up to 64 bits, quotients with a 64-bit shift, square
// roots of 192-bit radicands) need at most 200 bits. Written here rather than taken from
// Boost.Multiprecision because the core headers must compile fast; the tests compare every
// operation with Boost.Multiprecision as an independent reference.
#pragma once

#include "../config.hpp"
#include "../core/fixed_format.hpp"

#include <array>
#include <bit>
#include <cstdint>
#include <utility>

namespace tensorquant::inline TENSORQUANT_ABI::detail {

class int256
{
public:
    using limb = std::uint64_t;
    static constexpr int limbs = 4;

    constexpr int256() noexcept = default;
    constexpr int256(int128 v) noexcept // NOLINT: implicit, like the built-in widening
        : l_{limb(uint128(v)), limb(uint128(v) >> 64), v < 0 ? ~limb(0) : 0, v < 0 ? ~limb(0) : 0}
    {}
    constexpr int256(int v) noexcept : int256(int128(v)) {}
    constexpr int256(std::int64_t v) noexcept : int256(int128(v)) {}

    // The low 128 bits (exact when the value fits).
    constexpr explicit operator int128() const noexcept { return int128((uint128(l_[1]) << 64) | l_[0]); }

    constexpr bool negative() const noexcept { return (l_[3] >> 63) != 0; }

    friend constexpr bool operator==(int256 const& a, int256 const& b) noexcept { return a.l_ == b.l_; }
    friend constexpr bool operator<(int256 const& a, int256 const& b) noexcept
    {
        if (a.negative() != b.negative()) return a.negative();
        for (int i = limbs - 1; i >= 0; --i)
            if (a.l_[i] != b.l_[i]) return a.l_[i] < b.l_[i];
        return false;
    }
    friend constexpr bool operator>(int256 const& a, int256 const& b) noexcept { return b < a; }
    friend constexpr bool operator<=(int256 const& a, int256 const& b) noexcept { return !(b < a); }
    friend constexpr bool operator>=(int256 const& a, int256 const& b) noexcept { return !(a < b); }

    friend constexpr int256 operator+(int256 const& a, int256 const& b) noexcept
    {
        int256 r;
        limb carry = 0;
        for (int i = 0; i < limbs; ++i) {
            const uint128 s = uint128(a.l_[i]) + b.l_[i] + carry;
            r.l_[i] = limb(s);
            carry = limb(s >> 64);
        }
        return r;
    }
    friend constexpr int256 operator-(int256 const& a) noexcept
    {
        int256 r;
        for (int i = 0; i < limbs; ++i) r.l_[i] = ~a.l_[i];
        return r + int256(1);
    }
    friend constexpr int256 operator-(int256 const& a, int256 const& b) noexcept { return a + -b; }

    friend constexpr int256 operator<<(int256 const& a, int s) noexcept
    {
        int256 r;
        const int whole = s / 64, bits = s % 64;
        for (int i = limbs - 1; i >= 0; --i) {
            const int from = i - whole;
            if (from < 0) continue;
            limb v = a.l_[from] << bits;
            if (bits && from > 0) v |= a.l_[from - 1] >> (64 - bits);
            r.l_[i] = v;
        }
        return r;
    }
    // Arithmetic shift (floor division by 2^s).
    friend constexpr int256 operator>>(int256 const& a, int s) noexcept
    {
        const limb fill = a.negative() ? ~limb(0) : 0;
        int256 r;
        const int whole = s / 64, bits = s % 64;
        for (int i = 0; i < limbs; ++i) {
            const int from = i + whole;
            const limb lo = from < limbs ? a.l_[from] : fill;
            const limb hi = from + 1 < limbs ? a.l_[from + 1] : fill;
            r.l_[i] = bits ? (lo >> bits) | (hi << (64 - bits)) : lo;
        }
        return r;
    }
    friend constexpr int256 operator&(int256 const& a, int256 const& b) noexcept
    {
        int256 r;
        for (int i = 0; i < limbs; ++i) r.l_[i] = a.l_[i] & b.l_[i];
        return r;
    }

    // Products and quotients of magnitudes; the results must fit 255 bits.
    friend constexpr int256 operator*(int256 const& a, int256 const& b) noexcept
    {
        const bool neg = a.negative() != b.negative();
        const int256 x = a.magnitude(), y = b.magnitude();
        int256 r;
        for (int i = 0; i < limbs; ++i) {
            limb carry = 0;
            for (int j = 0; i + j < limbs; ++j) {
                const uint128 p = uint128(x.l_[i]) * y.l_[j] + r.l_[i + j] + carry;
                r.l_[i + j] = limb(p);
                carry = limb(p >> 64);
            }
        }
        return neg ? -r : r;
    }
    // Truncating division (toward zero), b != 0.
    friend constexpr int256 operator/(int256 const& a, int256 const& b) noexcept
    {
        const bool neg = a.negative() != b.negative();
        const int256 q = divide_magnitudes(a.magnitude(), b.magnitude()).first;
        return neg ? -q : q;
    }

    // floor(sqrt(a)) for a >= 0.
    friend constexpr int256 isqrt(int256 const& a) noexcept
    {
        // bit by bit, from the highest even bit down
        int256 rem = a, root = 0;
        int top = a.bit_length();
        int256 bit = int256(1) << (top & ~1);
        while (bit > rem && !(bit == int256(0))) bit = bit >> 2;
        while (!(bit == int256(0))) {
            if (rem >= root + bit) {
                rem = rem - (root + bit);
                root = (root >> 1) + bit;
            } else {
                root = root >> 1;
            }
            bit = bit >> 2;
        }
        return root;
    }

    constexpr int bit_length() const noexcept // of the magnitude
    {
        const int256 m = magnitude();
        for (int i = limbs - 1; i >= 0; --i)
            if (m.l_[i]) return 64 * i + 64 - std::countl_zero(m.l_[i]);
        return 0;
    }

private:
    constexpr int256 magnitude() const noexcept { return negative() ? -*this : *this; }

    // (quotient, remainder) of non-negative a / b, b > 0, by shift and subtract.
    static constexpr std::pair<int256, int256> divide_magnitudes(int256 const& a, int256 const& b) noexcept
    {
        int256 q = 0, r = 0;
        for (int i = a.bit_length() - 1; i >= 0; --i) {
            r = r << 1;
            r.l_[0] |= (a.l_[i / 64] >> (i % 64)) & 1;
            if (r >= b) {
                r = r - b;
                q.l_[i / 64] |= limb(1) << (i % 64);
            }
        }
        return {q, r};
    }

    std::array<limb, limbs> l_{};
};

} // namespace tensorquant::inline TENSORQUANT_ABI::detail
