// Every difference between xsimd 8 (Debian 12) and later releases lives here, so the
// rest of the library spells SIMD one way.
#pragma once

#include "../config.hpp"

// GCC 12's AVX-512 intrinsics (_mm512_min_pd, _mm512_srai_epi64 and others, through
// _mm512_undefined_*) warn "(may be) used uninitialized" wherever they are inlined (GCC bug
// 105593, fixed in 13).
// The warning is judged at the intrinsic header's lines, so it is silenced for those
// headers only, here where they are first included; a translation unit that includes
// <immintrin.h> or xsimd before tensorquant sees GCC's warning unchanged.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#if defined(__SSE2__)
#include <immintrin.h>
#endif
#include <xsimd/xsimd.hpp>
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic pop
#endif

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace tensorquant::inline TENSORQUANT_ABI::detail::simd {

#if XSIMD_VERSION_MAJOR < 10
// xsimd 8/9 take the destination batch type; 10+ take the destination element type.
template <class U, class T, class A>
inline xsimd::batch<U, A> bit_cast(xsimd::batch<T, A> const& x) noexcept
{
    return xsimd::bitwise_cast<xsimd::batch<U, A>>(x);
}
#else
template <class U, class T, class A>
inline xsimd::batch<U, A> bit_cast(xsimd::batch<T, A> const& x) noexcept
{
    return xsimd::bitwise_cast<U>(x);
}
#endif

template <class U, class T, class A>
inline xsimd::batch<U, A> convert(xsimd::batch<T, A> const& x) noexcept
{
    return xsimd::batch_cast<U>(x);
}

// a b + c rounded once where the instruction set has a fused multiply-add; xsimd 8
// computes its fma on AVX-512 as a product and a sum, so that one is spelled here.
// Without FMA (SSE2, AVX without FMA3) it is a product and a sum, each rounded.
template <class T, class A>
inline xsimd::batch<T, A> fma(xsimd::batch<T, A> const& a, xsimd::batch<T, A> const& b,
                              xsimd::batch<T, A> const& c) noexcept
{
#if defined(__AVX512F__)
    if constexpr (sizeof(typename xsimd::batch<T, A>::register_type) == 64) {
        if constexpr (std::is_same_v<T, float>)
            return _mm512_fmadd_ps(a, b, c);
        else if constexpr (std::is_same_v<T, double>)
            return _mm512_fmadd_pd(a, b, c);
    }
#endif
    return xsimd::fma(a, b, c);
}

// The largest lane of a batch of int32: one reduction instruction sequence where the
// architecture has one (a store and a loop otherwise).
template <class A>
inline std::int32_t reduce_max(xsimd::batch<std::int32_t, A> const& x) noexcept
{
    [[maybe_unused]] typename xsimd::batch<std::int32_t, A>::register_type r = x;
#if defined(__AVX512F__)
    if constexpr (sizeof(r) == 64)
        return _mm512_reduce_max_epi32(r);
    else
#endif
#if defined(__AVX2__)
        if constexpr (sizeof(r) == 32) {
        __m128i m = _mm_max_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        m = _mm_max_epi32(m, _mm_shuffle_epi32(m, 0x4e));
        m = _mm_max_epi32(m, _mm_shuffle_epi32(m, 0xb1));
        return _mm_cvtsi128_si32(m);
    } else
#endif
    {
        constexpr std::size_t N = xsimd::batch<std::int32_t, A>::size;
        alignas(64) std::int32_t lanes[N];
        x.store_aligned(lanes);
        std::int32_t m = lanes[0];
        for (std::size_t i = 1; i < N; ++i) m = lanes[i] > m ? lanes[i] : m;
        return m;
    }
}

// out[b] = the largest lane of m[b], b < N (the batch size): the N reductions at once, by
// unpacking pairs of batches and taking the larger of the halves (log2 N rounds of shuffles
// instead of N horizontal reductions). Lane order: out's lane b is m[b]'s maximum.
template <class A>
TENSORQUANT_ALWAYS_INLINE xsimd::batch<std::int32_t, A> transpose_max(xsimd::batch<std::int32_t, A> const* m) noexcept
{
    using ib = xsimd::batch<std::int32_t, A>;
    using reg = typename ib::register_type;
    constexpr std::size_t N = ib::size;
    constexpr std::size_t bytes = sizeof(reg);
    // the register widths with the integer shuffles and maxima below
    constexpr bool shuffles = N >= 4 && (false
#if defined(__SSE4_1__)
                                         || bytes == 16
#endif
#if defined(__AVX2__)
                                         || bytes == 32
#endif
#if defined(__AVX512F__)
                                         || bytes == 64
#endif
                                        );
    if constexpr (shuffles) {
        // Within each 128-bit lane: pairs (unpack 32-bit), then quadruples (unpack 64-bit),
        // so a 128-bit lane holds four batches' partial maxima, in order.
        reg quad[N / 4];
        for (std::size_t q = 0; q < N / 4; ++q) {
            reg pair[2];
            for (std::size_t h = 0; h < 2; ++h) {
                const reg a = m[4 * q + 2 * h], b = m[4 * q + 2 * h + 1];
                if constexpr (bytes == 64) {
#if defined(__AVX512F__)
                    pair[h] = _mm512_max_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
#endif
                } else if constexpr (bytes == 32) {
#if defined(__AVX2__)
                    pair[h] = _mm256_max_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
#endif
                } else {
#if defined(__SSE4_1__)
                    pair[h] = _mm_max_epi32(_mm_unpacklo_epi32(a, b), _mm_unpackhi_epi32(a, b));
#endif
                }
            }
            if constexpr (bytes == 64) {
#if defined(__AVX512F__)
                quad[q] =
                    _mm512_max_epi32(_mm512_unpacklo_epi64(pair[0], pair[1]), _mm512_unpackhi_epi64(pair[0], pair[1]));
#endif
            } else if constexpr (bytes == 32) {
#if defined(__AVX2__)
                quad[q] =
                    _mm256_max_epi32(_mm256_unpacklo_epi64(pair[0], pair[1]), _mm256_unpackhi_epi64(pair[0], pair[1]));
#endif
            } else {
#if defined(__SSE4_1__)
                quad[q] = _mm_max_epi32(_mm_unpacklo_epi64(pair[0], pair[1]), _mm_unpackhi_epi64(pair[0], pair[1]));
#endif
            }
        }
        // Across 128-bit lanes: the larger of each pair of lanes, twice for 512 bits.
        if constexpr (bytes == 64) {
#if defined(__AVX512F__)
            reg oct[2];
            for (std::size_t o = 0; o < 2; ++o)
                oct[o] = _mm512_max_epi32(_mm512_shuffle_i32x4(quad[2 * o], quad[2 * o + 1], 0x88),
                                          _mm512_shuffle_i32x4(quad[2 * o], quad[2 * o + 1], 0xdd));
            return ib(_mm512_max_epi32(_mm512_shuffle_i32x4(oct[0], oct[1], 0x88),
                                       _mm512_shuffle_i32x4(oct[0], oct[1], 0xdd)));
#endif
        } else if constexpr (bytes == 32) {
#if defined(__AVX2__)
            return ib(_mm256_max_epi32(_mm256_permute2x128_si256(quad[0], quad[1], 0x20),
                                       _mm256_permute2x128_si256(quad[0], quad[1], 0x31)));
#endif
        } else {
            return ib(quad[0]);
        }
    } else {
        alignas(64) std::int32_t lanes[N];
        for (std::size_t b = 0; b < N; ++b) lanes[b] = reduce_max(m[b]);
        return ib::load_aligned(lanes);
    }
}

// x made opaque to the compiler: a constant batch built once before an unrolled kernel
// loop stays in its register, where GCC would otherwise rebuild it (an integer move and a
// broadcast) at every use in a long loop body.
template <class T, class A>
TENSORQUANT_ALWAYS_INLINE void pin(xsimd::batch<T, A>& x) noexcept
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && defined(__SSE2__)
    typename xsimd::batch<T, A>::register_type r = x;
    asm("" : "+v"(r));
    x = xsimd::batch<T, A>(r);
#else
    (void)x;
#endif
}

// Lane L of x in every lane: one permute where the architecture has a variable one (a
// store and a broadcast otherwise).
template <std::size_t L, class T, class A>
TENSORQUANT_ALWAYS_INLINE xsimd::batch<T, A> broadcast_lane(xsimd::batch<T, A> const& x) noexcept
{
    using ib = xsimd::batch<std::int32_t, A>;
    static_assert(sizeof(T) == 4 && L < ib::size);
    [[maybe_unused]] const typename ib::register_type r = bit_cast<std::int32_t>(x);
#if defined(__AVX512F__)
    if constexpr (sizeof(r) == 64)
        return bit_cast<T>(ib(_mm512_permutexvar_epi32(_mm512_set1_epi32(int(L)), r)));
    else
#endif
#if defined(__AVX2__)
        if constexpr (sizeof(r) == 32)
        return bit_cast<T>(ib(_mm256_permutevar8x32_epi32(r, _mm256_set1_epi32(int(L)))));
    else
#endif
#if defined(__SSE2__)
        if constexpr (sizeof(r) == 16)
        return bit_cast<T>(ib(_mm_shuffle_epi32(r, int(L * 0x55))));
    else
#endif
    {
        alignas(64) T lanes[ib::size];
        x.store_aligned(lanes);
        return xsimd::batch<T, A>(lanes[L]);
    }
}

// copysign(max(|x|, |y|), x) of finite lanes: one instruction with AVX512DQ (vrangeps, sign
// control 00: the first operand's).
template <class A>
TENSORQUANT_ALWAYS_INLINE xsimd::batch<float, A> max_magnitude_signed(xsimd::batch<float, A> const& x,
                                                                      xsimd::batch<float, A> const& y) noexcept
{
#if defined(__AVX512DQ__)
    if constexpr (sizeof(typename xsimd::batch<float, A>::register_type) == 64)
        return xsimd::batch<float, A>(_mm512_range_ps(x, y, 0x3));
    else
#endif
    {
        const xsimd::batch<float, A> sign(-0.0f);
        return xsimd::max(xsimd::abs(x), xsimd::abs(y)) | (x & sign);
    }
}

// table[idx mod 16] in each lane, for a 64-byte aligned table of 16 floats: one permute with
// AVX-512, two and a blend with AVX2, one load per lane otherwise.
template <class A>
TENSORQUANT_ALWAYS_INLINE xsimd::batch<float, A> lookup16(xsimd::batch<std::int32_t, A> const& idx,
                                                          float const* table) noexcept
{
    using fb = xsimd::batch<float, A>;
    using ib = xsimd::batch<std::int32_t, A>;
    [[maybe_unused]] const typename ib::register_type r = idx;
#if defined(__AVX512F__)
    if constexpr (sizeof(r) == 64)
        return fb(_mm512_permutexvar_ps(r, _mm512_load_ps(table)));
    else
#endif
#if defined(__AVX2__)
        if constexpr (sizeof(r) == 32) {
        const fb low(_mm256_permutevar8x32_ps(_mm256_load_ps(table), r));
        const fb high(_mm256_permutevar8x32_ps(_mm256_load_ps(table + 8), r));
        return bit_cast<float>(
            xsimd::select((idx & ib(8)) != ib(0), bit_cast<std::int32_t>(high), bit_cast<std::int32_t>(low)));
    } else
#endif
    {
        alignas(64) std::int32_t lanes[ib::size];
        alignas(64) float values[ib::size];
        idx.store_aligned(lanes);
        for (std::size_t i = 0; i < ib::size; ++i) values[i] = table[lanes[i] & 15];
        return fb::load_aligned(values);
    }
}

// The batches of a run of floats at p: p + j for j a multiple of the batch size. A 64-byte
// load that is not 64-byte aligned spans two cache lines and costs about twice an aligned
// one, so with AVX-512 and a misaligned p, load<true> takes the two aligned batches around
// p + j and one two-source permute; elsewhere (and load<false>) it is an unaligned load.
// load<true> reads p + j - N to p + j + 2N: only for j >= N and j + 2N <= the run's length.
template <class A>
class float_run
{
public:
    using batch = xsimd::batch<float, A>;
    static constexpr std::size_t N = batch::size;

    explicit float_run(float const* p) noexcept : p_(p)
    {
#if defined(__AVX512F__)
        if constexpr (N == 16) {
            offset_ = (reinterpret_cast<std::uintptr_t>(p) % 64) / sizeof(float);
            shifted_ = offset_ != 0 && reinterpret_cast<std::uintptr_t>(p) % sizeof(float) == 0;
            lanes_ = _mm512_add_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                      _mm512_set1_epi32(int(offset_)));
        }
#endif
    }
    // whether load<true> differs from an unaligned load
    bool shifted() const noexcept { return shifted_; }

    template <bool Shifted>
    TENSORQUANT_ALWAYS_INLINE batch load(std::size_t j) const noexcept
    {
#if defined(__AVX512F__)
        if constexpr (Shifted && N == 16) {
            float const* low = p_ + (j - offset_); // 64-byte aligned, at most N before p + j
            return batch(_mm512_permutex2var_ps(_mm512_load_ps(low), lanes_, _mm512_load_ps(low + N)));
        } else
#endif
            return batch::load_unaligned(p_ + j);
    }

private:
    float const* p_;
    bool shifted_ = false;
#if defined(__AVX512F__)
    std::size_t offset_ = 0; // p's distance in floats from the 64-byte boundary below it
    __m512i lanes_{};
#endif
};

namespace nontemporal {
#if defined(__SSE2__)
inline void put(float* p, __m128 r) noexcept { _mm_stream_ps(p, r); }
inline void put(double* p, __m128d r) noexcept { _mm_stream_pd(p, r); }
#endif
#if defined(__AVX__)
inline void put(float* p, __m256 r) noexcept { _mm256_stream_ps(p, r); }
inline void put(double* p, __m256d r) noexcept { _mm256_stream_pd(p, r); }
#endif
#if defined(__AVX512F__)
inline void put(float* p, __m512 r) noexcept { _mm512_stream_ps(p, r); }
inline void put(double* p, __m512d r) noexcept { _mm512_stream_pd(p, r); }
#endif
} // namespace nontemporal

// Non-temporal stores keep large outputs from evicting the input from cache and skip
// the read-for-ownership; used only for big, aligned, out-of-place writes. dst must be
// aligned to the batch.
template <class T, class A>
inline void store_stream(T* dst, xsimd::batch<T, A> const& x) noexcept
{
    typename xsimd::batch<T, A>::register_type r = x;
    if constexpr (requires { nontemporal::put(dst, r); })
        nontemporal::put(dst, r);
    else
        x.store_aligned(dst);
}

inline void stream_fence() noexcept
{
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

} // namespace tensorquant::inline TENSORQUANT_ABI::detail::simd
