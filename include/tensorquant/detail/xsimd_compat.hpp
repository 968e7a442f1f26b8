// Every difference between xsimd 8 (Debian 12) and later releases lives here, so the
// rest of the library spells SIMD one way.
#pragma once

#include "../config.hpp"

#include <xsimd/xsimd.hpp>

#include <cstdint>
#include <type_traits>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

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
    if constexpr (requires { nontemporal::put(dst, r); }) nontemporal::put(dst, r);
    else x.store_aligned(dst);
}

inline void stream_fence() noexcept
{
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

} // namespace tensorquant::detail::simd
