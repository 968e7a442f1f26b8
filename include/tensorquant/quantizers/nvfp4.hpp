// NVFP4: E2M1 elements in blocks of 16 with an FP8 E4M3 scale per block and an FP32 scale
// per tensor, the two-level scheme of NVIDIA's NVFP4 ("Pretraining Large Language Models
// with NVFP4", arXiv 2509.25149), with the float operations of Transformer Engine's NVFP4
// quantizer and its PyTorch reference (so its element codes and block scales are TE's):
//   s_enc = 448 * 6 / amax(tensor)                         (float32; amax 0 gives 1)
//   s_dec = 1 / s_enc                                      (float32)
//   d_b   = E4M3(amax(block b) / 6 * s_enc)                (float32 ops, E4M3 ties to even,
//                                                           saturating at 448)
//   r_b   = 1 / (d_b * s_dec)                              (float32 ops: the block's
//                                                           encode scale)
//   q_i   = E2M1(x_i * r_b)                                (the product in T; ties to even
//                                                           or stochastic, saturating at 6)
//   y_i   = (q_i * d_b) * s_dec                            (in T; q_i d_b is exact)
// Every step is one IEEE operation in the stated type, so the result is defined to the bit.
// Choices: a block whose d_b rounds to 0 is all zeros; non-finite elements are left out of
// the tensor's amax and make their block NaN; an s_enc beyond float's range (amax below
// 2688 / FLT_MAX) is FLT_MAX, so is an r_b beyond it (then x_i r_b may be infinite and
// saturates: a zero stays zero), and a (double) amax beyond float's range counts as
// FLT_MAX.
// The tensor is what one call sees (or give its amax).
#pragma once

#include "../config.hpp"

#include "block.hpp"
#include "minifloat.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI {

// NVFP4 codes: the tensor scale, one E4M3 code per block and one E2M1 code per element.
struct nvfp4_codes
{
    std::size_t size = 0;
    float tensor_scale = 1; // s_enc
    std::vector<std::uint8_t> scales;
    std::vector<std::uint8_t> elements;
};

class nvfp4_quantizer
{
public:
    static constexpr std::string_view form = "nvfp4[,stochastic][,block=K]";
    static constexpr std::array<std::string_view, 3> examples{"nvfp4", "nvfp4,block=32", "nvfp4,stochastic"};

    explicit nvfp4_quantizer(std::size_t block = 16, rounding_mode r = rounding_mode::nearest_even, rng_key key = {})
        : elements_(block_format{block_elements::e2m1, std::max<std::size_t>(block, 1)}, r, key), block_(block)
    {
        if (block == 0) throw format_error("nvfp4: the block size must be positive");
    }

    std::size_t block() const noexcept { return block_; }
    rounding_mode rounding() const noexcept { return elements_.rounding(); }

    // s_dec, the tensor's decode scale.
    static float tensor_decode_scale(float s_enc) noexcept { return 1.0f / s_enc; }
    // s_enc of a tensor whose finite elements have largest magnitude amax.
    static float tensor_scale(float amax) noexcept
    {
        if (!(amax > 0)) return 1.0f;
        const float s = 448.0f * 6.0f / amax;
        return std::isfinite(s) ? s : std::numeric_limits<float>::max();
    }
    template <std::floating_point T>
    static float tensor_amax(std::span<T const> v) noexcept
    {
        if constexpr (std::is_same_v<T, float>)
            return std::bit_cast<float>(detail::amax_bits<true>(v.data(), v.size()));
        T m = 0;
        for (T x : v)
            if (std::isfinite(x)) m = std::max(m, std::fabs(x));
        return to_float(m);
    }
    // A magnitude as the float the scales are computed from (beyond float's range: FLT_MAX).
    template <std::floating_point T>
    static float to_float(T m) noexcept
    {
        return m > T(std::numeric_limits<float>::max()) ? std::numeric_limits<float>::max() : float(m);
    }
    // d_b, the block's decoded E4M3 scale.
    // (E4M3 rounding as detail::round_to_grid, ties to even, saturating at 448.)
    static float block_scale(float block_amax, float s_enc) noexcept
    {
        const float v = block_amax / 6.0f * s_enc;
        if (!(std::fabs(v) < 448.0f)) return std::isnan(v) ? v : std::copysign(448.0f, v);
        return detail::round_to_grid(v, e4m3_grid);
    }

    // out = in in NVFP4 with blocks of consecutive elements (the last may be partial) and
    // the tensor scale of in (or of tensor_amax when given); element i draws stochastic
    // threshold index_offset + i.
    template <std::floating_point T>
    void quantize(std::span<T const> in, std::span<T> out, std::uint64_t index_offset = 0,
                  std::optional<float> amax = std::nullopt) const
    {
        if (in.size() != out.size())
            throw shape_error("nvfp4 quantize: " + std::to_string(in.size()) + " inputs and " +
                              std::to_string(out.size()) + " outputs");
        apply_options o;
        o.index_offset = index_offset;
        run(in.data(), out.data(), in.size(), o, amax);
    }
    // The bulk form apply uses (as block_quantizer's: lines of o.block_line elements
    // o.block_stride apart, 0: one line), with the tensor scale of the whole run.
    template <std::floating_point T>
    void quantize_bulk(T const* in, T* out, std::size_t n, apply_options const& o) const
    {
        run(in, out, n, o, std::nullopt);
    }
    // One element: a tensor of one.
    template <std::floating_point T>
    T operator()(T x, std::uint64_t i = 0) const
    {
        T y;
        apply_options o;
        o.index_offset = i;
        run(&x, &y, 1, o, std::nullopt);
        return y;
    }

    template <std::floating_point T>
    nvfp4_codes encode(std::span<T const> in, std::uint64_t index_offset = 0,
                       std::optional<float> amax = std::nullopt) const
    {
        nvfp4_codes c;
        c.size = in.size();
        c.tensor_scale = tensor_scale(amax ? *amax : tensor_amax(in));
        c.elements.resize(in.size());
        c.scales.assign((in.size() + block_ - 1) / block_, 0);
        static const block_quantizer e4m3_codes(block_format{block_elements::e4m3, 1});
        for_each_block(in.data(), in.size(), 1, c.tensor_scale, index_offset, [&](std::size_t i, float d, double q) {
            c.scales[i / block_] = std::isnan(q) ? 0x7f : e4m3_codes.element_code(d);
            c.elements[i] = std::isnan(q) ? 0 : elements_.element_code(q);
        });
        return c;
    }

    template <std::floating_point T = float>
    std::vector<T> decode(nvfp4_codes const& c) const
    {
        const std::size_t blocks = (c.size + block_ - 1) / block_;
        if (c.elements.size() != c.size || c.scales.size() != blocks)
            throw format_error("nvfp4 decode: " + std::to_string(c.size) + " elements need " + std::to_string(c.size) +
                               " element codes and " + std::to_string(blocks) + " scales, got " +
                               std::to_string(c.elements.size()) + " and " + std::to_string(c.scales.size()));
        if (!(c.tensor_scale > 0) || !std::isfinite(c.tensor_scale))
            throw format_error("nvfp4 decode: the tensor scale must be positive and finite");
        static const block_quantizer e4m3_codes(block_format{block_elements::e4m3, 1});
        std::vector<T> v(c.size);
        for (std::size_t i = 0; i < c.size; ++i) {
            const std::uint8_t sc = c.scales[i / block_];
            if (sc & 0x80) throw format_error("nvfp4 decode: block scale code " + std::to_string(sc) + " is negative");
            const double d = e4m3_codes.element_value(sc);
            const double q = elements_.element_value(c.elements[i]);
            v[i] = std::isnan(d) ? std::numeric_limits<T>::quiet_NaN() : decoded<T>(q, float(d), c.tensor_scale);
        }
        return v;
    }

    std::string to_string() const
    {
        std::string s = "nvfp4";
        if (block_ != 16) s += ",block=" + std::to_string(block_);
        if (rounding() == rounding_mode::stochastic) s += ",stochastic";
        return s;
    }
    static bool accepts(detail::spec_reader const& r) { return r.kind() == "nvfp4"; }
    static nvfp4_quantizer parse(std::string_view text, rng_key key = {})
    {
        const detail::spec_reader r(text);
        if (!accepts(r)) r.fail("not nvfp4; the form is \"" + std::string(form) + "\"");
        return parse(r, key);
    }
    static nvfp4_quantizer parse(detail::spec_reader const& r, rng_key key = {})
    {
        const auto options = detail::read_block_options(r, 1, true, form);
        return r.build([&] { return nvfp4_quantizer(options.block.value_or(16), options.rounding, key); });
    }

private:
    static constexpr detail::float_grid e4m3_grid{-6, 3, 448.0f}, e2m1_grid{0, 1, 6.0f};

    template <class T>
    void run(T const* in, T* out, std::size_t n, apply_options const& o, std::optional<float> amax) const
    {
        const detail::block_lines lines = detail::block_lines_of(n, o, "nvfp4 quantize");
        if constexpr (std::is_same_v<T, float>)
            if (rounding() == rounding_mode::nearest_even && lines.stride == 1) {
                // One contiguous line: the blocks' maxima in one pass, which also gives the
                // tensor's (when no block holds an infinity or a NaN), so the line is read
                // twice, not three times.
                std::unique_ptr<std::int32_t[]> maxima; // not value-initialised: every entry is written
                float tensor = amax ? *amax : 0.0f;
                if (lines.line == n && n) {
                    maxima.reset(new std::int32_t[(n + block_ - 1) / block_]);
                    const std::uint32_t all = block_ == 16 ? detail::block_maxima<16>(in, n, 16, maxima.get())
                                                           : detail::block_maxima<0>(in, n, block_, maxima.get());
                    if (!amax) tensor = all < 0x7f800000u ? std::bit_cast<float>(all) : tensor_amax(std::span(in, n));
                } else if (!amax) {
                    tensor = tensor_amax(std::span(in, n));
                }
                // the tensor scale first: then each block is read before it is written, so in may be out
                const float s_enc = tensor_scale(tensor);
                detail::for_line_pieces(n, lines, block_, o,
                                        [&](unsigned, std::size_t offset, std::size_t count, std::size_t) {
                                            run_nearest(in + offset, out + offset, count, s_enc,
                                                        maxima ? maxima.get() + offset / block_ : nullptr);
                                        });
                return;
            }
        // the tensor scale first: then each block is read before it is written, so in may be out
        const float s_enc = tensor_scale(amax ? *amax : tensor_amax(std::span<T const>(in, n)));
        detail::for_line_pieces(
            n, lines, block_, o, [&](unsigned, std::size_t offset, std::size_t count, std::size_t stride) {
                for_each_block(in + offset, count, stride, s_enc, o.index_offset + offset,
                               [&](std::size_t j, float d, double q) { out[offset + j] = decoded<T>(q, d, s_enc); });
            });
    }
    // r_b = 1 / (d_b s_dec), s_dec = 1 / s_enc, as Transformer Engine rounds it, FLT_MAX where
    // it is beyond float's range (so for a zero block, whose elements then keep their codes
    // and decode to +-0).
    template <class F>
    TENSORQUANT_ALWAYS_INLINE static F element_scale(F const& db, float s_enc) noexcept
    {
        const F r = F(1.0f) / (db * F(tensor_decode_scale(s_enc)));
        if constexpr (std::is_same_v<F, float>)
            return std::min(r, std::numeric_limits<float>::max());
        else
            return xsimd::min(r, F(std::numeric_limits<float>::max()));
    }
    template <class T>
    static T decoded(double q, float d, float s_enc) noexcept
    {
        return std::isnan(q) ? std::numeric_limits<T>::quiet_NaN() : T(T(T(q) * T(d)) * T(tensor_decode_scale(s_enc)));
    }

    // run for contiguous floats rounded to nearest even, in float lanes: the same operations
    // as for_each_block (E2M1 of the float x r is the grid rounding, exact), the scales of a
    // group of N blocks (N the batch size) at once, a block whose r_b is huge going
    // the general way.
    // (Block: the block size when known at compile time, 0 otherwise; NVFP4's 16 gets its
    // loops unrolled.)
    // (maxima: the blocks' amax_bits when known, else null.)
    void run_nearest(float const* in, float* out, std::size_t n, float s_enc, std::int32_t const* maxima) const
    {
        if (block_ == 16)
            run_nearest<16>(in, out, n, s_enc, 16, maxima);
        else
            run_nearest<0>(in, out, n, s_enc, block_, maxima);
    }
    // For the block scales d_b (E4M3, 0 or in [2^-9, 448]), indexed by index(d_b) (a float
    // with at most four significant bits is told apart by its exponent and its top three
    // mantissa bits): r = element_scale(d_b), and a row of the results P d_b s_dec for the E2M1
    // magnitudes P, at the lanes element_lanes gives them (27 vector divisions in all).
    // Used by common groups only: there d_b is 0 or normal and s_enc in [2^-100, 2^100], so
    // u = d_b s_dec and 1.5 d_b s_dec are normal and their products by 2^-1 to 2^2 exact:
    // every E2M1 P is 2^k or 1.5 2^k, and P d_b s_dec rounded is 2^k times u or times
    // 1.5 d_b s_dec rounded (1.5 d_b is exact).
    struct scale_rows
    {
        static constexpr std::size_t size = 144;                    // indices 0 (d_b = 0) to 143 (448)
        static constexpr std::int32_t first_field = (118 << 3) - 1; // 2^-9 has index 1
        alignas(64) float row[size][16];
        alignas(64) float r[size];

        template <class A>
        static xsimd::batch<std::int32_t, A> index(xsimd::batch<float, A> const& db) noexcept
        {
            using ib = xsimd::batch<std::int32_t, A>;
            return xsimd::max((detail::simd::bit_cast<std::int32_t>(db) >> 20) - ib(first_field), ib(0));
        }
        static float scale(std::size_t i) noexcept
        {
            return i == 0 ? 0.0f : std::bit_cast<float>((std::int32_t(i) + first_field) << 20);
        }
        explicit scale_rows(float s_enc) noexcept
        {
            const float s_dec = tensor_decode_scale(s_enc);
            using batch = xsimd::batch<float>;
            using ibatch = xsimd::batch<std::int32_t, batch::arch_type>;
            constexpr std::size_t N = batch::size;
            static_assert(size % N == 0 && 16 % N == 0);
            // a row's lanes: 4 + n holds the E2M1 value n / 2 (n <= 4), 8 + n the value n and
            // 12 + n the value 2 n (n = 2, 3, 4 and 2, 3): multiples of u, or of 1.5 u
            alignas(64) static constexpr float of_unit[16] = {0, 0, 0, 0, 0, 0.5f, 1, 0, 2, 0, 2, 0, 4, 0, 4, 0};
            alignas(64) static constexpr float of_unit_and_half[16] = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 4};
            alignas(64) std::int32_t lane[N];
            alignas(64) float unit[size], unit_and_half[size];
            for (std::size_t i = 0; i < N; ++i) lane[i] = std::int32_t(i);
            for (std::size_t i = 0; i < size; i += N) {
                const ibatch k = ibatch::load_aligned(lane) + ibatch(std::int32_t(i));
                const batch db = detail::simd::bit_cast<float>(
                    xsimd::select(k == ibatch(0), ibatch(0), (k + ibatch(first_field)) << 20));
                // (a zero block's values are +-0 whatever r: 0 keeps x r in element_lanes' range)
                xsimd::select(db > batch(0.0f), element_scale(db, s_enc), batch(0.0f)).store_aligned(r + i);
                (db * batch(s_dec)).store_aligned(unit + i);
                ((db * batch(1.5f)) * batch(s_dec)).store_aligned(unit_and_half + i);
            }
            for (std::size_t i = 0; i < size; ++i)
                for (std::size_t k = 0; k < 16; k += N) {
                    const batch half = batch::load_aligned(of_unit_and_half + k);
                    xsimd::select(half != batch(0.0f), batch(unit_and_half[i]) * half,
                                  batch(unit[i]) * batch::load_aligned(of_unit + k))
                        .store_aligned(row[i] + k);
                }
        }
    };
    // The row lane of each element x r (finite, |x r| < 7) and its rounded E2M1 value: with
    // E = max(floor(log2 |x r|), 0), the one rounding of S = 2^(E + 22) + |x r| (a fused
    // multiply-add, signs alike) is E2M1's, ties to even: S's unit in the last place is
    // E2M1's quantum 2^(E - 1) in binade E, and S = 2^(E + 22) + n 2^(E - 1) with n the even
    // one at a tie, as the code of n 2^(E - 1) is n + 2 E. S's bits are
    // those of 2^(E + 22) plus n, so S's bits plus S's bits shifted right by 21 end in the
    // four bits 4 E + 4 + n: lanes 4 to 8 (E = 0, n <= 4), 10 to 12 (E = 1) and 14, 15 (E = 2).
    template <class A>
    TENSORQUANT_ALWAYS_INLINE static xsimd::batch<std::int32_t, A>
    element_lanes(xsimd::batch<float, A> const& xr) noexcept
    {
        using fb = xsimd::batch<float, A>;
        using ib = xsimd::batch<std::int32_t, A>;
        const fb binade = detail::simd::bit_cast<float>( // +-2^E, x r's sign
            detail::simd::bit_cast<std::int32_t>(detail::simd::max_magnitude_signed(xr, fb(1.0f))) &
            ib(std::int32_t(0xff800000u)));
        const ib s = detail::simd::bit_cast<std::int32_t>(xsimd::fma(binade, fb(0x1p22f), xr));
        return s + (s >> 21);
    }

    template <std::size_t Block>
    void run_nearest(float const* in, float* out, std::size_t n, float s_enc, std::size_t runtime_block,
                     std::int32_t const* maxima) const
    {
        const std::size_t block = Block != 0 ? Block : runtime_block;
        using batch = xsimd::batch<float>;
        using ib = xsimd::batch<std::int32_t, batch::arch_type>;
        constexpr std::size_t N = batch::size;
        const float s_dec = tensor_decode_scale(s_enc);
        // A common group: N whole blocks, all finite, t = amax / 6 s_enc <= 448 and d_b 0 or
        // normal, and s_enc in [2^-100, 2^100]. There an element's |x r| < 6 (15 / 14) (1 + 2^-20)
        // < 7 (d_b is within 1/15 of t, r within three roundings of s_enc / d_b), which rounds
        // to at most 6 (none saturates), and its result is a lane of its block's row
        // (scale_rows): no division per element or per block.
        const bool tables = s_enc >= 0x1p-100f && s_enc <= 0x1p100f && n >= N * block;
        std::optional<scale_rows> rows;
        if (tables) rows.emplace(s_enc);
        struct group_scales
        {
            alignas(64) std::int32_t amax[N], index[N];
            alignas(64) float d[N], r[N];
            std::size_t blocks;
            bool common;
        };
        auto scales_of = [&](std::size_t group, group_scales& g) TENSORQUANT_INLINE_LAMBDA {
            g.blocks = std::min(N, (n - group + block - 1) / block);
            const bool whole = g.blocks == N && group + N * block <= n;
            if (maxima && whole)
                ib::load_unaligned(maxima + group / block).store_aligned(g.amax);
            else if (maxima) {
                std::copy_n(maxima + group / block, g.blocks, g.amax);
                std::fill(g.amax + g.blocks, g.amax + N, 0);
            } else // (several lines: their groups are few)
                for (std::size_t b = 0; b < N; ++b) {
                    const std::size_t first = group + b * block;
                    g.amax[b] =
                        b < g.blocks ? std::int32_t(detail::amax_bits(in + first, std::min(block, n - first))) : 0;
                }
            // block_scale in lanes (a NaN block's lanes are not used; the min keeps a block
            // beyond a given tensor amax in round_to_grid's range)
            const ib amax_lanes = ib::load_aligned(g.amax);
            const batch t = detail::simd::bit_cast<float>(amax_lanes) / batch(6.0f) * batch(s_enc);
            const batch db = detail::round_to_grid(xsimd::min(t, batch(448.0f)), e4m3_grid);
            g.common = whole && tables && xsimd::all(amax_lanes < ib(0x7f800000)) && xsimd::all(t <= batch(448.0f)) &&
                       xsimd::all((db >= batch(0x1p-6f)) | (db == batch(0.0f)));
            if (g.common) {
                scale_rows::index(db).store_aligned(g.index);
                return;
            }
            // (r = 0 for a zero block here too: its values are +-0, and x r stays finite)
            xsimd::select(db > batch(0.0f), element_scale(db, s_enc), batch(0.0f)).store_aligned(g.r);
            db.store_aligned(g.d);
        };
        // one block of a common group: its result lanes, x r's sign (unaligned loads: the
        // lookups need the shuffle unit that float_run's shifted loads would also take,
        // which measured slower)
        auto common_block = [&](std::size_t first, std::size_t i) TENSORQUANT_INLINE_LAMBDA {
            const batch r(rows->r[i]);
            float const* row = rows->row[i];
            std::size_t j = 0;
            for (; j + N <= block; j += N) {
                const batch xr = batch::load_unaligned(in + first + j) * r;
                (detail::simd::lookup16(element_lanes(xr), row) | (xr & batch(-0.0f))).store_unaligned(out + first + j);
            }
            for (; j < block; ++j) { // (runtime block sizes only)
                const float db = scale_rows::scale(i);
                out[first + j] = (detail::round_to_grid(in[first + j] * rows->r[i], e2m1_grid) * db) * s_dec;
            }
        };
        // the next group's scales are computed before this group's elements, so the two
        // overlap (in may be out: a group's input is read before any of it is written)
        group_scales scales[2];
        if (n) scales_of(0, scales[0]);
        for (std::size_t group = 0, k = 0; group < n; group += N * block, k ^= 1) {
            if (group + N * block < n) scales_of(group + N * block, scales[k ^ 1]);
            group_scales const& g = scales[k];
            if (g.common) {
                if constexpr (Block != 0 && Block % N == 0)
                    detail::unrolled<N>([&](auto lane) TENSORQUANT_INLINE_LAMBDA {
                        constexpr std::size_t b = decltype(lane)::value;
                        common_block(group + b * Block, std::size_t(g.index[b]));
                    });
                else
                    for (std::size_t b = 0; b < N; ++b) common_block(group + b * block, std::size_t(g.index[b]));
                continue;
            }
            for (std::size_t b = 0; b < g.blocks; ++b) {
                const std::size_t first = group + b * block, count = std::min(block, n - first);
                float const* v = in + first;
                float* w = out + first;
                if (std::uint32_t(g.amax[b]) >= 0x7f800000u) { // an infinity or a NaN: a NaN block
                    std::fill(w, w + count, std::numeric_limits<float>::quiet_NaN());
                    continue;
                }
                if (!(g.r[b] < 0x1p100f)) { // x r might leave round_to_grid's range
                    for_each_block(v, count, 1, s_enc, 0,
                                   [&](std::size_t j, float db_, double q) { w[j] = decoded<float>(q, db_, s_enc); });
                    continue;
                }
                std::size_t j = 0;
                for (; j + N <= count; j += N)
                    ((detail::round_to_grid(batch::load_unaligned(v + j) * batch(g.r[b]), e2m1_grid) * batch(g.d[b])) *
                     batch(s_dec))
                        .store_unaligned(w + j);
                for (; j < count; ++j) w[j] = (detail::round_to_grid(v[j] * g.r[b], e2m1_grid) * g.d[b]) * s_dec;
            }
        }
    }

    // fn(offset, d_b, q_i) for the elements v[j stride], j < n, of one line (offset j stride;
    // q_i NaN: the block holds a NaN or an infinity); thresholds index_offset + j stride. The
    // line's scaled elements are rounded in one run; fn runs after the whole line is read.
    template <class T, class Fn>
    void for_each_block(T const* v, std::size_t n, std::size_t stride, float s_enc, std::uint64_t index_offset,
                        Fn&& fn) const
    {
        std::vector<double> q(n);
        std::vector<float> d((n + block_ - 1) / block_);
        for (std::size_t first = 0; first < n; first += block_) {
            const std::size_t count = std::min(block_, n - first);
            T amax = 0;
            bool finite = true;
            for (std::size_t j = first; j < first + count; ++j) {
                finite = finite && std::isfinite(v[j * stride]);
                amax = std::max(amax, std::fabs(v[j * stride]));
            }
            const float db = finite ? block_scale(to_float(amax), s_enc) : 0.0f;
            const float r = element_scale(db, s_enc);
            d[first / block_] = finite ? db : std::numeric_limits<float>::quiet_NaN(); // NaN: a NaN block
            for (std::size_t j = first; j < first + count; ++j) {
                const T x = v[j * stride];
                // the rounding sees finite values only
                q[j] = finite ? double(T(x * T(r))) : std::copysign(0.0, double(x));
            }
        }
        elements_.round_elements(std::span<double>(q), index_offset, stride);
        for (std::size_t j = 0; j < n; ++j) {
            const float db = d[j / block_];
            fn(j * stride, db, std::isnan(db) ? std::nan("") : q[j]);
        }
    }

    block_quantizer elements_; // E2M1, saturating at 6
    std::size_t block_;
};

} // namespace tensorquant::inline TENSORQUANT_ABI
