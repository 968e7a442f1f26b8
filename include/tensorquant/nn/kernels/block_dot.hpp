// The hardware-style dot product of block-scaled operands (OCP MX v1.0 section 6.2, Dot
// and DotGeneral): the intrinsic path of dense and conv2d when a datapath's input and
// weights are MX or BFP formats of the same block size k. Both operands are cut into
// blocks of k along the reduction axis (a dense layer's input rows, a convolution's
// patches, the weights' columns [K, OUT]; the last block of K mod k elements is a block
// of its own); for output j and the blocks b = 0, 1, ... in order:
//
//   d_b = X^a_b X^w_b sum over i in b of P^a_i P^w_i      (exact)
//   s_0 = 0, s_(b+1) = Q_accumulator(s_b + d_b)          (each sum exact, rounded once)
//   y_j = Q_output(Q_accumulator(s_B + Q_accumulator(bias_j)))
//
// The accumulator is FP32 (round to nearest even) when the datapath names none, or any
// minifloat or fixed-point accumulator the datapath takes. Operands arrive as their block
// values X P, so d_b is the exact sum of the products of those values (each exact in
// double): in units of X^a X^w 2^(lsb_a + lsb_w) every product is an integer, and their
// partial sums stay below 2^block_sum_bits units. While that is at most 53 bits (E4M3 x
// E4M3 in blocks of 32 needs 41, every pair of the other MX and BFP elements less) the sum
// runs in double. Wider sums (E5M2: 69 bits in blocks of 32) are kept exactly as a pair
// hi + lo of doubles (hi + p split exactly by Knuth's two-sum, the parts of lo integers of
// fewer than 53 bits in those units), and the accumulator step adds the pair exactly in
// integers (a stochastic fixed-point accumulator compares the exact remainder with the
// threshold its narrow step would draw).
#pragma once

#include "../../config.hpp"

#include "../../apply.hpp"
#include "../../number/datapath.hpp"
#include "../../number/minifloat_arith.hpp"
#include "../../parse.hpp"
#include "../../quantizers/block.hpp"
#include "../datapath.hpp"
#include "gemm.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn::kernels {

// The MX or BFP format of a role (nullopt for element formats, NVFP4 and absent roles).
inline std::optional<block_format> power_of_two_block_format(std::optional<any_quantizer> const& q)
{
    if (!q || !is_block_format(*q)) return std::nullopt;
    const std::string text = q->to_string(); // the reader keeps views into it
    const tensorquant::detail::spec_reader r(text);
    if (!block_quantizer::accepts(r)) return std::nullopt;
    return block_quantizer::parse(r).format();
}

// A block-scaled datapath: its input or its weights are a block format.
inline bool is_block_datapath(datapath const& d)
{
    return (d[datapath_role::input] && is_block_format(*d[datapath_role::input])) ||
           (d[datapath_role::weights] && is_block_format(*d[datapath_role::weights]));
}

// The exponent of an element's last place, and the bits of a block's sum of products in
// units of the product of the two last places (times the two scales).
inline int last_place(block_element const& e) noexcept
{
    return e.integer ? -(e.bits - 2) : e.format.min_exponent() - e.format.mantissa_bits;
}
inline int block_sum_bits(block_element const& a, block_element const& w, std::size_t k) noexcept
{
    const double units = std::ldexp(a.max * w.max * double(k), -(last_place(a) + last_place(w)));
    int bits = 0;
    while (bits < 1100 && std::ldexp(1.0, bits) < units) ++bits;
    return bits;
}

// The accumulator of a block-scaled datapath: its own, or FP32.
inline any_quantizer block_accumulator(datapath const& d)
{
    if (auto const& a = d[datapath_role::accumulator]) return *a;
    return any_quantizer(minifloat(minifloat_format{8, 23, 127, true, true}));
}

// How a block-scaled datapath runs: its block size, and whether a block's sum needs more
// than double's 53 bits (the exact pair hi + lo).
struct block_dot_plan
{
    std::size_t block;
    bool wide;
};
inline std::optional<block_dot_plan> block_dot_plan_of(datapath const& d)
{
    const auto a = power_of_two_block_format(d[datapath_role::input]);
    const auto w = power_of_two_block_format(d[datapath_role::weights]);
    if (!a || !w) return std::nullopt;
    return block_dot_plan{a->block, block_sum_bits(a->element, w->element, a->block) > 53};
}

// Why a block-scaled datapath cannot run ("" when it can); the accumulator and output are
// checked as for every datapath (datapath_problem).
inline std::string block_datapath_problem(datapath const& d)
{
    const auto a = power_of_two_block_format(d[datapath_role::input]);
    const auto w = power_of_two_block_format(d[datapath_role::weights]);
    if (!a || !w)
        return "a block-scaled dot product needs MX or BFP formats (power-of-two block scales) as both input and "
               "weights, got input '" +
               d.spec(datapath_role::input) + "' and weights '" + d.spec(datapath_role::weights) + "'";
    if (a->block != w->block)
        return "the input's blocks (" + std::to_string(a->block) + ") and the weights' (" + std::to_string(w->block) +
               ") differ; a block dot product multiplies blocks of the same size";
    if (d[datapath_role::product]) return "a block dot product sums its products exactly; give no product format";
    const int bits = block_sum_bits(a->element, w->element, a->block);
    if (bits <= 53) return "";
    const std::string sum = "the exact sum of a block of " + std::string(a->element.name) + " x " +
                            std::string(w->element.name) + " products needs " + std::to_string(bits) + " bits";
    // lo gathers at most k two-sum errors of 2^(bits - 54) units each, and must stay exact
    if (bits + int(std::bit_width(a->block)) > 105) return sum + ", more than the exact pair of doubles holds";
    return "";
}

namespace detail {

using exact_float = tensorquant::detail::exact_float;
using exact_arith = tensorquant::detail::minifloat_arith<double, tensorquant::rounding::nearest_even>; // its exact sums

// hi + lo exactly (finite, hi + lo != 0), without trailing zero bits: the pair spans at
// most block_sum_bits + 1 bits (lo's last place is at least the units'), within what
// exact_sum keeps.
inline exact_float exact_pair(double hi, double lo) noexcept
{
    exact_float r = lo == 0   ? exact_arith::decode(hi)
                    : hi == 0 ? exact_arith::decode(lo)
                              : exact_arith::exact_sum(exact_arith::decode(hi), exact_arith::decode(lo));
    const auto low = std::uint64_t(r.sig);
    const int tz = low ? std::countr_zero(low) : 64 + std::countr_zero(std::uint64_t(r.sig >> 64));
    r.sig >>= tz;
    r.exp += tz;
    return r;
}

// v rounded to odd at 53 bits, as a double (v.sig != 0): every rounding to at most 51
// bits (the accumulators', datapath_problem) of it is that of v.
inline double to_odd(exact_float v) noexcept
{
    using tensorquant::detail::uint128;
    int length = tensorquant::detail::bit_length(v.sig);
    bool inexact = v.sticky;
    if (inexact && length < 53) { // room for the sticky bit below the value's bits
        v.sig <<= 53 - length;
        v.exp -= 53 - length;
        length = 53;
    }
    if (length > 53) {
        const int s = length - 53;
        inexact = inexact || (v.sig & ((uint128(1) << s) - 1)) != 0;
        v.sig >>= s;
        v.exp += s;
    }
    if (inexact) v.sig |= 1;
    const double m = std::ldexp(double(std::uint64_t(v.sig)), v.exp);
    return v.negative ? -m : m;
}

// acc + (hi + lo) rounded to odd at 53 bits (IEEE double's result for non-finite terms, an
// exact +0 for x - x, acc itself for a zero block).
inline double wide_sum_to_odd(double acc, double hi, double lo) noexcept
{
    // a double sum of two doubles is 0 only when the exact one is: a zero block
    if (!std::isfinite(acc) || !std::isfinite(hi) || !std::isfinite(lo) || hi + lo == 0) return acc + (hi + lo);
    const exact_float d = exact_pair(hi, lo);
    if (acc == 0) return to_odd(d);
    const exact_float r = exact_arith::exact_sum(exact_arith::decode(acc), d);
    if (r.sig == 0 && !r.sticky) return 0.0;
    return to_odd(r);
}

// The word of c + (hi + lo) in a fixed-point format, c a word, hi and lo finite values:
// fixed_arith's exact rounding (a stochastic R rounds the magnitude up when its fraction
// exceeds threshold 2^-32), the pair's exponent kept within its int256 shifts (a value
// beyond 2^128 units saturates or wraps to 0 mod 2^W as the exact one does; one below
// 2^-160 units rounds as any nonzero value below 2^-32 units of its sign).
template <class R, class O>
double wide_fixed_sum(tensorquant::detail::fixed_arith<R, O> const& ar, double c, double hi, double lo,
                      std::uint64_t threshold = 0)
{
    using tensorquant::detail::int128;
    using tensorquant::detail::int256;
    const int128 word = int128(c);
    if (hi + lo == 0) return c; // exactly 0 (see wide_sum_to_odd)
    const exact_float d = exact_pair(hi, lo);
    int256 p = int256(int128(d.sig));
    if (d.negative) p = -p;
    int pf = -d.exp; // the value is p 2^-pf
    const int shift = ar.format.frac - pf;
    if (shift > 128) {
        if constexpr (O::modular) return c; // p 2^shift is a multiple of 2^W
        p = d.negative ? int256(-1) : int256(1);
        pf = ar.format.frac - 128;
    } else if (shift < -160) {
        p = d.negative ? int256(-1) : int256(1);
        pf = ar.format.frac + 160;
    }
    return double(tensorquant::detail::mac_word(ar, p, pf, word, threshold));
}

} // namespace detail

// C[m x N] = the block dot products of A's rows (block-quantized along k) and B's
// columns, accumulated by mac.add(s, d_b, index) block by block from mac.init (Wide:
// mac.add_wide(s, hi, lo, index) with d_b = hi + lo), then mac.finish(s, bias). index of
// block b of row r (stochastic accumulators): (r B + b) N + column, B the blocks per row,
// rows counted from first_row.
template <std::size_t MR, bool Wide, class Mac, class TA, class TC>
void block_gemm_rows(Mac const& mac, TA const* a, std::size_t rows, std::size_t first_row,
                     packed_panels<typename Mac::value_type, typename Mac::arch> const& b, std::size_t block, TC* c)
{
    using B = typename Mac::batch;
    constexpr std::size_t L = B::size;
    const std::size_t K = b.k, N = b.n, blocks = (K + block - 1) / block;
    alignas(64) typename Mac::value_type tmp[L];
    for (std::size_t r0 = 0; r0 + MR <= rows; r0 += MR)
        for (std::size_t p = 0; p < b.panels; ++p) {
            B acc[MR];
            for (std::size_t i = 0; i < MR; ++i) acc[i] = mac.init(B::load_aligned(&b.bias[p * L]));
            const auto* bp = &b.data[p * K * L];
            for (std::size_t blk = 0; blk < blocks; ++blk) {
                const std::size_t first = blk * block, last = std::min(K, first + block);
                B sum[MR], low[MR]; // exact: see block_sum_bits (Wide: sum + low)
                for (std::size_t i = 0; i < MR; ++i) sum[i] = low[i] = B(0.0);
                for (std::size_t kk = first; kk < last; ++kk) {
                    const B w = B::load_aligned(bp + kk * L);
                    for (std::size_t i = 0; i < MR; ++i) {
                        const B x(static_cast<double>(a[(r0 + i) * K + kk]));
                        if constexpr (Wide) { // two-sum: s + e = sum + x w exactly
                            const B q = x * w, s = sum[i] + q, v = s - sum[i];
                            low[i] = low[i] + ((sum[i] - (s - v)) + (q - v));
                            sum[i] = s;
                        } else {
                            sum[i] = xsimd::fma(x, w, sum[i]);
                        }
                    }
                }
                for (std::size_t i = 0; i < MR; ++i) {
                    const std::uint64_t index = ((first_row + r0 + i) * blocks + blk) * N + p * L;
                    if constexpr (Wide)
                        acc[i] = mac.add_wide(acc[i], sum[i], low[i], index);
                    else
                        acc[i] = mac.add(acc[i], sum[i], index);
                }
            }
            for (std::size_t i = 0; i < MR; ++i) {
                const B out = mac.finish(acc[i], B::load_aligned(&b.bias[p * L]));
                out.store_aligned(tmp);
                const std::size_t width = std::min(L, N - p * L);
                std::copy(tmp, tmp + width, c + (r0 + i) * N + p * L);
            }
        }
}

// The multiply-accumulates that can run a block dot product (kernels/datapath.hpp's
// fixed-point and minifloat accumulators).
template <class Mac>
concept BlockAccumulator = requires(Mac const& m, typename Mac::batch b)
{
    {
        m.add(b, b, std::uint64_t{})
        } -> std::same_as<typename Mac::batch>;
    {
        m.add_wide(b, b, b, std::uint64_t{})
        } -> std::same_as<typename Mac::batch>;
};

template <class Mac, class TA, class TC>
void block_gemm(Mac const& mac, TA const* a, std::size_t m,
                packed_panels<typename Mac::value_type, typename Mac::arch> const& b, block_dot_plan plan, TC* c,
                std::size_t first_row = 0)
{
    // eight rows: eight independent chains of block sums cover the FMA latency (a block
    // ends in one long accumulator step per row)
    constexpr std::size_t MR = 8;
    const std::size_t full = m / MR * MR;
    auto run = [&](auto wide) {
        constexpr bool Wide = decltype(wide)::value;
        block_gemm_rows<MR, Wide>(mac, a, full, first_row, b, plan.block, c);
        if (full < m)
            block_gemm_rows<1, Wide>(mac, a + full * b.k, m - full, first_row + full, b, plan.block, c + full * b.n);
    };
    if (plan.wide)
        run(std::true_type{});
    else
        run(std::false_type{});
}

// The block dot products of a convolution: each patch row (im2col) of image img, group
// grp is block-quantized by `input` along its K elements (stream positions offset +
// row K + column, rows counted over the batch group by group, as conv_products), then
// multiplied with the packed weights of its group.
template <class Mac, class Pack, class VY>
void block_conv_products(Mac const& mac, float const* x, conv_geometry const& g, Pack const& pack,
                         any_quantizer const& input, block_dot_plan plan, std::uint64_t offset, VY* y)
{
    const std::size_t rows = g.oh * g.ow, K = g.k();
    std::vector<float> col(rows * K);
    std::vector<VY> out(g.groups > 1 ? rows * g.ocg : 0);
    apply_options o;
    o.block_line = K;
    for (std::size_t img = 0; img < g.n; ++img)
        for (std::size_t grp = 0; grp < std::size_t(g.groups); ++grp) {
            im2col(x, g, img, grp, col.data());
            const std::size_t first_row = (grp * g.n + img) * rows;
            o.index_offset = offset + first_row * K;
            quantize_inplace(input, std::span<float>(col), o);
            VY* dst = y + img * rows * g.oc;
            if (g.groups == 1) {
                block_gemm(mac, col.data(), rows, pack[grp], plan, dst, first_row);
            } else {
                block_gemm(mac, col.data(), rows, pack[grp], plan, out.data(), first_row);
                for (std::size_t r = 0; r < rows; ++r)
                    std::copy(&out[r * g.ocg], &out[r * g.ocg] + g.ocg, dst + r * g.oc + grp * g.ocg);
            }
        }
}

} // namespace tensorquant::inline TENSORQUANT_ABI::nn::kernels
