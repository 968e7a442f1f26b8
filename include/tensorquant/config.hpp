// Build-wide requirements, version, and the ABI namespace.
#pragma once

#if __cplusplus < 202002L && !(defined(_MSVC_LANG) && _MSVC_LANG >= 202002L)
#error "tensorquant needs C++20 (compile with -std=c++20 or later)"
#endif

#define TENSORQUANT_VERSION_MAJOR 0
#define TENSORQUANT_VERSION_MINOR 1
#define TENSORQUANT_VERSION_PATCH 0

// Every kernel relies on IEEE-754 semantics (signed zeros, NaN compares, no
// reassociation, round-to-nearest as the FPU's mode): -ffast-math would make results
// silently wrong, so it is refused.
#if defined(__FAST_MATH__)
#error "tensorquant needs IEEE arithmetic: do not compile it with -ffast-math (or -Ofast)"
#endif

// For small SIMD helpers whose arguments must stay in registers (an array of batches
// passed by pointer goes through memory unless the call is inlined).
// TENSORQUANT_INLINE_LAMBDA goes after a lambda's parameter list, for lambdas called from
// unrolled kernel loops.
#if defined(__GNUC__)
#define TENSORQUANT_ALWAYS_INLINE [[gnu::always_inline]] inline
#define TENSORQUANT_INLINE_LAMBDA __attribute__((always_inline))
#else
#define TENSORQUANT_ALWAYS_INLINE inline
#define TENSORQUANT_INLINE_LAMBDA
#endif

// Everything is declared in tensorquant::inline TENSORQUANT_ABI, a namespace named after
// the instruction sets the translation unit is compiled for. The SIMD kernels depend on
// them, so two translation units built with different -m flags get different symbols
// instead of one symbol with two bodies (an ODR violation); the inline namespace is
// invisible in user code.
#define TENSORQUANT_ABI_CAT2(a, b) a##b
#define TENSORQUANT_ABI_CAT(a, b) TENSORQUANT_ABI_CAT2(a, b)
#if defined(__AVX512BW__)
#define TENSORQUANT_ABI_X86 _avx512bw
#elif defined(__AVX512F__)
#define TENSORQUANT_ABI_X86 _avx512f
#elif defined(__AVX2__) && defined(__FMA__)
#define TENSORQUANT_ABI_X86 _avx2fma
#elif defined(__AVX2__)
#define TENSORQUANT_ABI_X86 _avx2
#elif defined(__AVX__) && defined(__FMA__)
#define TENSORQUANT_ABI_X86 _avxfma
#elif defined(__AVX__)
#define TENSORQUANT_ABI_X86 _avx
#elif defined(__SSE4_2__)
#define TENSORQUANT_ABI_X86 _sse42
#elif defined(__SSE4_1__)
#define TENSORQUANT_ABI_X86 _sse41
#elif defined(__SSSE3__)
#define TENSORQUANT_ABI_X86 _ssse3
#elif defined(__SSE3__)
#define TENSORQUANT_ABI_X86 _sse3
#elif defined(__SSE2__)
#define TENSORQUANT_ABI_X86 _sse2
#elif defined(__ARM_NEON)
#define TENSORQUANT_ABI_X86 _neon
#else
#define TENSORQUANT_ABI_X86 _scalar
#endif
#define TENSORQUANT_ABI TENSORQUANT_ABI_CAT(abi, TENSORQUANT_ABI_X86)
