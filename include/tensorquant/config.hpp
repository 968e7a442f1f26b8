// Build-wide requirements and version.
#pragma once

#define TENSORQUANT_VERSION_MAJOR 0
#define TENSORQUANT_VERSION_MINOR 1
#define TENSORQUANT_VERSION_PATCH 0

// Every kernel relies on IEEE-754 semantics (signed zeros, NaN compares, no
// reassociation, round-to-nearest as the FPU's mode): -ffast-math would make results
// silently wrong, so it is refused.
#if defined(__FAST_MATH__)
#error "tensorquant needs IEEE arithmetic: do not compile it with -ffast-math (or -Ofast)"
#endif
