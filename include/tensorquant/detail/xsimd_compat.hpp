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
