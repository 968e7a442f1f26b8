// The kernels block formats share (quantizers/block.hpp, nvfp4.hpp): the lines a bulk run is
// cut into, their spread over threads, and nearest-even rounding of float lanes to an element
// grid in a few integer and float instructions.
#pragma once

#include "../config.hpp"

#include "../apply.hpp"
#include "../core/error.hpp"
#include "xsimd_compat.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::detail {

// The lines of a bulk run (apply_options::block_line, block_stride): the whole run is one
// line when block_line is 0. Named members, not a pair: clang 14 cannot capture structured
// bindings in lambdas.
struct block_lines
{
    std::size_t line, stride;
};
inline block_lines block_lines_of(std::size_t n, apply_options const& o, char const* who)
{
    const std::size_t line = o.block_line ? o.block_line : n, stride = o.block_line ? o.block_stride : 1;
    if (n && (stride == 0 || n % (line * stride) != 0))
        throw shape_error(std::string(who) + ": " + std::to_string(n) + " elements are not whole lines of " +
                          std::to_string(line) + " elements " + std::to_string(stride) + " apart");
    return {line, stride};
}

// fn(thread, offset, count, stride) over pieces of the lines of a run of n elements: count
// elements of one line from run offset `offset`, stride apart, a piece starting on a block
// boundary of its line. Pieces go to threads_for(n, o) threads; an element's result depends on its block alone, so the
// pieces and their threads never change a result.
template <class Fn>
void for_line_pieces(std::size_t n, block_lines const& l, std::size_t block, apply_options const& o, Fn&& fn)
{
    if (n == 0) return;
    const std::size_t lines = n / l.line;
    const unsigned threads = threads_for(n, o);
    // a line is cut only when there are fewer lines than threads
    const std::size_t cuts = lines >= threads ? 1 : (threads + lines - 1) / lines;
    const std::size_t blocks_per_line = (l.line + block - 1) / block;
    const std::size_t piece = std::max<std::size_t>(1, (blocks_per_line + cuts - 1) / cuts) * block;
    const std::size_t per_line = (l.line + piece - 1) / piece, pieces = lines * per_line;
    auto run = [&](unsigned t, std::size_t first, std::size_t last) {
        for (std::size_t p = first; p < last; ++p) {
            const std::size_t line = p / per_line, start = (p % per_line) * piece;
            const std::size_t offset = (line / l.stride) * l.line * l.stride + line % l.stride + start * l.stride;
            fn(t, offset, std::min(piece, l.line - start), l.stride);
        }
    };
    if (threads <= 1) {
        run(0, 0, pieces);
        return;
    }
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; ++t)
        pool.emplace_back([&, t] { run(t, pieces * t / threads, pieces * (t + 1) / threads); });
    run(0, 0, pieces / threads);
    for (auto& th : pool) th.join();
}

// An element grid for float lanes: magnitudes in binade e have quantum 2^(max(e, emin) - m)
// (a minifloat with m mantissa bits and smallest normal exponent emin; integer words with
// m fractional bits: emin 0), and saturate at max.
struct float_grid
{
    std::int32_t emin_bits; // (emin + 127) << 23: the exponent field of 2^emin
    std::int32_t shift;     // (23 - m) << 23
    float max;
    bool signed_zero; // minifloats keep -0; integer words have one zero, +0
    constexpr float_grid(int emin, int m, float largest, bool minus_zero = true) noexcept
        : emin_bits((emin + 127) << 23), shift((23 - m) << 23), max(largest), signed_zero(minus_zero)
    {}
};

// x rounded to the grid, ties to even, saturating: for a = |x| in binade e,
// C = 2^(max(e, emin) - m + 23) has a unit in the last place of exactly the quantum, and
// a < C keeps a + C in C's binade, so the one float addition a + C rounds a to the quantum
// with ties to even and subtracting C is exact. Holds for finite x with |x| < 2^(104 + m)
// (C finite) and grids with emin >= -126 (C's field from a's); the sign is x's, -0 where the grid has it.
inline float round_to_grid(float x, float_grid const& g) noexcept
{
    const auto bits = std::bit_cast<std::uint32_t>(x);
    const float a = std::bit_cast<float>(bits & 0x7fffffffu);
    const std::uint32_t e = std::max(bits & 0x7f800000u, std::uint32_t(g.emin_bits));
    const float c = std::bit_cast<float>(e + std::uint32_t(g.shift));
    const float r = std::min((a + c) - c, g.max);
    if (!g.signed_zero && r == 0) return 0.0f;
    return std::bit_cast<float>(std::bit_cast<std::uint32_t>(r) | (bits & 0x80000000u));
}
// The constants of round_to_grid in lanes, for the loops of a kernel (pinned in registers).
template <class A>
struct grid_lanes
{
    using fb = xsimd::batch<float, A>;
    using ib = xsimd::batch<std::int32_t, A>;
    fb sign, magnitude;
    ib exponent, shift;
    bool signed_zero;
    explicit grid_lanes(float_grid const& g) noexcept
        : sign(-0.0f), magnitude(simd::bit_cast<float>(ib(0x7fffffff))), exponent(0x7f800000), shift(g.shift),
          signed_zero(g.signed_zero)
    {
        simd::pin(sign);
        simd::pin(magnitude);
        simd::pin(exponent);
        simd::pin(shift);
    }
};
// The same in lanes, the grid's emin_bits and max given per lane (a block's grid in each).
// (Saturate false: for callers whose x rounds to at most the grid's max.)
template <bool Saturate = true, class A>
TENSORQUANT_ALWAYS_INLINE xsimd::batch<float, A>
round_to_grid(xsimd::batch<float, A> const& x, xsimd::batch<std::int32_t, A> const& emin_bits,
              xsimd::batch<float, A> const& max, grid_lanes<A> const& g) noexcept
{
    using fb = xsimd::batch<float, A>;
    const fb a = x & g.magnitude;
    const auto e = simd::bit_cast<std::int32_t>(a) & g.exponent;
    const fb c = simd::bit_cast<float>(xsimd::max(e, emin_bits) + g.shift);
    const fb r = Saturate ? xsimd::min((a + c) - c, max) : (a + c) - c;
    const fb y = r | (x & g.sign);
    return g.signed_zero ? y : xsimd::select(r == fb(0.0f), r, y);
}
template <bool Saturate = true, class A>
TENSORQUANT_ALWAYS_INLINE xsimd::batch<float, A> round_to_grid(xsimd::batch<float, A> const& x,
                                                               float_grid const& g) noexcept
{
    return round_to_grid<Saturate>(x, xsimd::batch<std::int32_t, A>(g.emin_bits), xsimd::batch<float, A>(g.max),
                                   grid_lanes<A>(g));
}

// The largest |v[j]| of n floats as its bit pattern (the bits of non-negative floats order
// as their values): at least 0x7f800000 when one is an infinity or a NaN; FiniteOnly: of
// the finite ones (0 when none is).
template <bool FiniteOnly = false>
inline std::uint32_t amax_bits(float const* v, std::size_t n) noexcept
{
    using fb = xsimd::batch<float>;
    using ib = xsimd::batch<std::int32_t, fb::arch_type>;
    constexpr std::size_t N = fb::size;
    // (the batches' end named, not j + N <= n: GCC 12 warns of a bogus overflow in the tail
    // loop when n is a known constant)
    const std::size_t whole = n - n % N;
    std::int32_t m = 0;
    if (whole) {
        ib mb(0);
        for (std::size_t j = 0; j < whole; j += N) {
            const ib a = simd::bit_cast<std::int32_t>(fb::load_unaligned(v + j)) & ib(0x7fffffff);
            mb = xsimd::max(mb, FiniteOnly ? xsimd::select(a < ib(0x7f800000), a, ib(0)) : a);
        }
        m = simd::reduce_max(mb);
    }
    for (std::size_t j = whole; j < n; ++j) {
        const auto a = std::int32_t(std::bit_cast<std::uint32_t>(v[j]) & 0x7fffffffu);
        if (!FiniteOnly || a < 0x7f800000) m = std::max(m, a);
    }
    return std::uint32_t(m);
}

// f(std::integral_constant<std::size_t, i>{}) for i < Count, unrolled: the block loops over
// a group's lanes, whose batches then stay in registers and whose lane indices are constants.
template <std::size_t Count, class F>
TENSORQUANT_ALWAYS_INLINE void unrolled(F&& f)
{
    [&]<std::size_t... I>(std::index_sequence<I...>) TENSORQUANT_INLINE_LAMBDA
    {
        (f(std::integral_constant<std::size_t, I>{}), ...);
    }
    (std::make_index_sequence<Count>{});
}

// The amax_bits of the N (the batch size) consecutive blocks of Block floats from run
// offset `first`, as lanes (lane b: block b); Block a multiple of N. Each block's batches are
// reduced to one batch, and the N batches to N lanes at once (simd::transpose_max).
template <std::size_t Block, bool Shifted, class A>
TENSORQUANT_ALWAYS_INLINE xsimd::batch<std::int32_t, A> group_amax_bits(simd::float_run<A> const& run,
                                                                        std::size_t first) noexcept
{
    using ib = xsimd::batch<std::int32_t, A>;
    constexpr std::size_t N = ib::size;
    static_assert(Block % N == 0);
    ib m[N];
    unrolled<N>([&](auto b) TENSORQUANT_INLINE_LAMBDA {
        ib mb(0);
        for (std::size_t j = 0; j < Block; j += N)
            mb = xsimd::max(mb, simd::bit_cast<std::int32_t>(run.template load<Shifted>(first + b * Block + j)) &
                                    ib(0x7fffffff));
        m[b] = mb;
    });
    return simd::transpose_max(m);
}

// Whether the group of N blocks from run offset `first` may be read with float_run's
// shifted loads (a misaligned run, the group and a batch on either side inside it).
template <std::size_t Block, class A>
bool shifted_group(simd::float_run<A> const& run, std::size_t first, std::size_t n) noexcept
{
    constexpr std::size_t N = xsimd::batch<float, A>::size;
    return run.shifted() && first >= N && first + N * Block + N <= n;
}

// maxima[b] = amax_bits of block b of the n floats at v (blocks of Block, the last may be
// partial); returns the largest of them.
// (Block: the block size when known at compile time, 0 otherwise.)
template <std::size_t Block>
std::uint32_t block_maxima(float const* v, std::size_t n, std::size_t runtime_block, std::int32_t* maxima) noexcept
{
    const std::size_t block = Block != 0 ? Block : runtime_block;
    using fb = xsimd::batch<float>;
    using ib = xsimd::batch<std::int32_t, fb::arch_type>;
    constexpr std::size_t N = fb::size;
    std::size_t first = 0, b = 0;
    ib lanes(0);
    if constexpr (Block != 0 && Block % N == 0) {
        const simd::float_run<fb::arch_type> run(v);
        for (; first + N * Block <= n; first += N * Block, b += N) {
            const ib group = group_amax_bits<Block, false>(run, first);
            group.store_unaligned(maxima + b);
            lanes = xsimd::max(lanes, group);
        }
    }
    std::int32_t m = simd::reduce_max(lanes);
    for (; first < n; first += block, ++b) {
        maxima[b] = std::int32_t(amax_bits(v + first, std::min(block, n - first)));
        m = std::max(m, maxima[b]);
    }
    return std::uint32_t(m);
}

} // namespace tensorquant::inline TENSORQUANT_ABI::detail
