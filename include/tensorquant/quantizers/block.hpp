// Block-scaled formats: k consecutive elements share one power-of-two scale (OCP
// Microscaling Formats (MX) v1.0: MXFP8 E4M3 / E5M2, MXFP6 E3M2 / E2M3, MXFP4 E2M1 and
// MXINT8 with an E8M0 scale; block floating point bfp(m, k) with an 8-bit shared exponent
// and m-bit sign-magnitude mantissas).
//
// For a block V (docs/reference.md §1.2), as the MX specification's conversion:
//   s = floor(log2(max_i |V_i|)) - emax_elem, clamped to the E8M0 range [-127, 127];
//   P_i = the element format's rounding of V_i / 2^s, saturating at its largest magnitude;
//   the block's values are P_i 2^s.
// - emax_elem is the exponent of the element format's largest normal (E4M3 8, E5M2 15,
//   E3M2 4, E2M3 2, E2M1 2); integer elements (MXINT8, bfp) are m-bit two's complement
//   words with m - 2 fractional bits (MXINT8's implicit 2^-6), emax 0, saturating
//   symmetrically at +-(2^(m-1) - 1) 2^-(m-2): the code -2^(m-1) decodes but is not produced.
// - Rounding: nearest_even (the specification's) or stochastic (one threshold per element,
//   at its index in the tensor, from the counter-based generator of the key).
// - Choices the specification leaves open: a block of zeros has s = -127 (scale code 0);
//   a block holding a NaN or an infinity gets the NaN scale (code 0xFF) and all its values
//   are NaN; a block whose s would exceed 127 (double inputs beyond float's range) keeps
//   s = 127 and saturates; subnormal inputs are values like any other.
// - The last block of a run of n elements holds n mod k elements when k does not divide n:
//   it is a block of fewer elements, with a scale of its own.
// Everything is exact: V_i 2^-s and P_i 2^s are products by powers of two in double, and
// the element rounding is the minifloat or fixed-point kernel of the library.
#pragma once

#include "../config.hpp"

#include "../apply.hpp"
#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../core/rounding.hpp"
#include "../core/spec.hpp"
#include "../detail/block_kernels.hpp"
#include "fixed_point.hpp"
#include "minifloat.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI {

// The elements of a block format: a minifloat without infinities (saturating), or an
// integer word with an implicit scale.
struct block_element
{
    std::string_view name; // as in the format's string: "e4m3", "int8", ...
    bool integer = false;
    minifloat_format format{}; // minifloat elements
    int bits = 8;              // width of a code
    double max = 0;            // largest magnitude
    int emax = 0;              // exponent of the largest normal (0 for integers)
    bool has_nan = false;      // a NaN code exists (E4M3 S.1111.111, E5M2 S.11111.11)
};

namespace block_elements {
inline constexpr block_element e4m3{"e4m3", false, {4, 3, 7, true, false}, 8, 448, 8, true};
inline constexpr block_element e5m2{"e5m2", false, {5, 2, 15, true, true}, 8, 57344, 15, true};
inline constexpr block_element e3m2{"e3m2", false, {3, 2, 3, true, false}, 6, 28, 4, false};
inline constexpr block_element e2m3{"e2m3", false, {2, 3, 1, true, false}, 6, 7.5, 2, false};
inline constexpr block_element e2m1{"e2m1", false, {2, 1, 1, true, false}, 4, 6, 2, false};
// integer words of m <= 8 bits: m - 2 fractional bits
constexpr block_element integer(int m) noexcept
{
    return {"int", true, {}, m, double((std::int64_t(1) << (m - 1)) - 1) / double(std::int64_t(1) << (m - 2)),
            0,     false};
}
} // namespace block_elements

struct block_format
{
    block_element element = block_elements::e4m3;
    std::size_t block = 32;

    friend bool operator==(block_format const& a, block_format const& b) noexcept
    {
        return a.element.name == b.element.name && a.element.bits == b.element.bits && a.block == b.block;
    }
};

// The named formats of the MX specification (block 32).
namespace block_formats {
inline constexpr std::array<std::pair<std::string_view, block_element>, 6> mx{{{"mxfp8_e4m3", block_elements::e4m3},
                                                                               {"mxfp8_e5m2", block_elements::e5m2},
                                                                               {"mxfp6_e3m2", block_elements::e3m2},
                                                                               {"mxfp6_e2m3", block_elements::e2m3},
                                                                               {"mxfp4", block_elements::e2m1},
                                                                               {"mxint8", block_elements::integer(8)}}};
} // namespace block_formats

// Packed codes of a tensor in a block format: one E8M0 scale per block (biased exponent,
// 0xFF = NaN) and one element code per element in the low bits of a byte (sign, exponent
// and mantissa bits; two's complement for integer elements).
struct block_codes
{
    std::size_t size = 0; // elements
    std::vector<std::uint8_t> scales;
    std::vector<std::uint8_t> elements;
};

namespace detail {

inline constexpr int e8m0_min = -127, e8m0_max = 127;
inline constexpr std::uint8_t e8m0_nan = 0xff;

// floor(log2(m)) of a positive finite m, exactly.
inline int floor_log2(double m) noexcept
{
    const auto bits = std::bit_cast<std::uint64_t>(m);
    const int biased = int(bits >> 52) & 0x7ff;
    if (biased == 0) return -1075 + int(std::bit_width(bits)); // subnormal: its leading bit
    return biased - 1023;
}

// The minifloat that rounds scaled elements: the element's grid with one more exponent bit
// (the same values up to its largest magnitude, and room above it), whose results above
// the largest magnitude are then clamped to it (saturation) by the caller.
inline minifloat_format rounding_grid(block_element const& e) noexcept
{
    return {e.format.exponent_bits + 1, e.format.mantissa_bits, e.format.bias, true, true};
}

inline std::string check_block_format(block_format const& f)
{
    if (f.block == 0) return "the block size must be positive";
    if (f.block > (std::size_t(1) << 20)) return "the block size must be at most 2^20";
    if (f.element.integer && (f.element.bits < 2 || f.element.bits > 8))
        return "integer elements need 2 to 8 bits (a code is a byte), got " + std::to_string(f.element.bits);
    return "";
}

// The options after a block format's name from field `first` on: nearest_even or
// stochastic, and block=K (K >= 1) where the form has it.
struct block_options
{
    rounding_mode rounding = rounding_mode::nearest_even;
    std::optional<std::size_t> block;
};
inline block_options read_block_options(spec_reader const& r, std::size_t first, bool block_allowed,
                                        std::string_view form)
{
    block_options o;
    for (std::size_t i = first; i < r.size(); ++i) {
        const std::string_view t = r[i];
        if (t == "stochastic")
            o.rounding = rounding_mode::stochastic;
        else if (t == "nearest_even")
            o.rounding = rounding_mode::nearest_even;
        else if (block_allowed && t.starts_with("block=")) {
            const int b = spec_reader(t.substr(6)).integer(0, "block size");
            if (b < 1) r.fail("the block size must be positive, got " + std::string(t.substr(6)));
            o.block = std::size_t(b);
        } else
            r.fail("unexpected field \"" + std::string(t) + "\"; the form is \"" + std::string(form) + "\"");
    }
    return o;
}

} // namespace detail

// A block-scaled quantizer: format, element rounding (nearest_even or stochastic) and the
// key of its stochastic streams.
class block_quantizer
{
public:
    static constexpr std::string_view form = "mxfp8_e4m3|mxfp8_e5m2|mxfp6_e3m2|mxfp6_e2m3|mxfp4|mxint8[,stochastic]"
                                             "[,block=K] | bfp,M,K[,stochastic]";

    static constexpr std::array<std::string_view, 10> examples{"mxfp8_e4m3",     "mxfp8_e5m2",
                                                               "mxfp6_e3m2",     "mxfp6_e2m3",
                                                               "mxfp4",          "mxint8",
                                                               "mxfp4,block=16", "mxfp8_e4m3,stochastic",
                                                               "bfp,8,16",       "bfp,4,32,stochastic"};

    explicit block_quantizer(block_format f = {}, rounding_mode r = rounding_mode::nearest_even, rng_key key = {})
        : format_(f), rounding_(r), key_(key)
    {
        if (const auto problem = detail::check_block_format(f); !problem.empty())
            throw format_error("block format: " + problem);
        if (r != rounding_mode::nearest_even && r != rounding_mode::stochastic)
            throw format_error("block format: elements round nearest_even or stochastic, not " +
                               std::string(tensorquant::to_string(r)));
    }

    block_format const& format() const noexcept { return format_; }
    std::size_t block() const noexcept { return format_.block; }
    rounding_mode rounding() const noexcept { return rounding_; }
    rng_key key() const noexcept { return key_; }

    // The shared exponent s of a block (nullopt: the NaN scale).
    template <std::floating_point T>
    std::optional<int> shared_exponent(std::span<T const> v) const noexcept
    {
        double amax = 0;
        for (T x : v) {
            if (!std::isfinite(x)) return std::nullopt;
            amax = std::max(amax, std::fabs(double(x)));
        }
        return shared_exponent_of(amax);
    }

    // out = the block-quantized in, blocks of k consecutive elements (the last may be
    // partial); element i draws stochastic threshold index_offset + i. in and out may be
    // the same span.
    template <std::floating_point T>
    void quantize(std::span<T const> in, std::span<T> out, std::uint64_t index_offset = 0) const
    {
        if (in.size() != out.size())
            throw shape_error("block quantize: " + std::to_string(in.size()) + " inputs and " +
                              std::to_string(out.size()) + " outputs");
        apply_options o;
        o.index_offset = index_offset;
        quantize_bulk(in.data(), out.data(), in.size(), o);
    }
    template <std::floating_point T>
    void quantize_inplace(std::span<T> v, std::uint64_t index_offset = 0) const
    {
        quantize(std::span<T const>(v.data(), v.size()), v, index_offset);
    }

    // The bulk form apply uses (and so scope maps, held as a user_quantizer): the run of n
    // elements in lines of o.block_line elements o.block_stride apart (0: one line), each
    // cut into blocks from its first element; element j draws threshold o.index_offset + j.
    // Spread over o.threads threads in whole blocks (the same results on any count).
    template <std::floating_point T>
    void quantize_bulk(T const* in, T* out, std::size_t n, apply_options const& o) const
    {
        const detail::block_lines lines = detail::block_lines_of(n, o, "block quantize");
        if constexpr (std::is_same_v<T, float>)
            if (rounding_ == rounding_mode::nearest_even && lines.stride == 1) {
                const detail::float_grid grid = float_grid();
                detail::for_line_pieces(n, lines, format_.block, o,
                                        [&](unsigned, std::size_t offset, std::size_t count, std::size_t) {
                                            quantize_line_nearest(in + offset, out + offset, count, grid);
                                        });
                return;
            }
        with_elements([&](auto const& round) {
            std::vector<std::vector<double>> scaled(detail::threads_for(n, o)); // a buffer per thread
            detail::for_line_pieces(n, lines, format_.block, o,
                                    [&](unsigned t, std::size_t offset, std::size_t count, std::size_t stride) {
                                        auto& buffer = scaled[t]; // one block's V 2^-s
                                        buffer.resize(std::min(count, format_.block));
                                        quantize_line(round, in + offset, out + offset, count, stride,
                                                      o.index_offset + offset, buffer.data());
                                    });
        });
    }
    // One element: a block of one.
    template <std::floating_point T>
    T operator()(T x, std::uint64_t i = 0) const
    {
        T y;
        apply_options o;
        o.index_offset = i;
        quantize_bulk(&x, &y, 1, o);
        return y;
    }

    // x (a row-major contiguous tensor: an xtensor container) quantized in place in blocks
    // along `axis`: each line along the axis is cut into blocks from its first element (the
    // last of a line may be partial); every element draws threshold index_offset + its
    // flat index.
    template <class Tensor>
        requires requires(Tensor& t)
        {
            t.shape();
            t.data();
            t.size();
        }
    void quantize_inplace(Tensor& x, std::size_t axis, std::uint64_t index_offset = 0) const
    {
        using T = std::remove_cvref_t<decltype(*x.data())>;
        static_assert(std::is_floating_point_v<T>, "block quantize: a tensor of float or double");
        const auto& shape = x.shape();
        const std::size_t rank = std::size(shape);
        if (axis >= rank)
            throw shape_error("block quantize: axis " + std::to_string(axis) + " of a tensor of rank " +
                              std::to_string(rank));
        std::size_t inner = 1;
        for (std::size_t d = axis + 1; d < rank; ++d) inner *= shape[d];
        if (x.size() == 0) return;
        apply_options o; // lines along the axis: shape[axis] elements, inner apart
        o.index_offset = index_offset;
        o.block_line = shape[axis];
        o.block_stride = inner;
        quantize_bulk(x.data(), x.data(), x.size(), o);
    }

    // The element rounding of finite scaled values x[j] = V_j 2^-s in place, threshold
    // index + j stride.
    void round_elements(std::span<double> x, std::uint64_t index = 0, std::size_t stride = 1) const
    {
        with_elements([&](auto const& round) { round_run(round, x.data(), x.size(), index, stride); });
    }
    double round_element(double x, std::uint64_t i = 0) const
    {
        round_elements(std::span<double>(&x, 1), i);
        return x;
    }

    // The codes of in: a scale per block and a code per element.
    template <std::floating_point T>
    block_codes encode(std::span<T const> in, std::uint64_t index_offset = 0) const
    {
        block_codes c;
        c.size = in.size();
        c.scales.reserve((in.size() + format_.block - 1) / format_.block);
        c.elements.resize(in.size());
        std::vector<T> q(in.size());
        quantize(in, std::span<T>(q), index_offset);
        for (std::size_t first = 0; first < in.size(); first += format_.block) {
            const std::size_t n = std::min(format_.block, in.size() - first);
            const auto s = shared_exponent(in.subspan(first, n));
            c.scales.push_back(s ? std::uint8_t(*s + 127) : detail::e8m0_nan);
            for (std::size_t i = 0; i < n; ++i)
                c.elements[first + i] = s ? element_code(std::ldexp(double(q[first + i]), -*s)) : nan_code();
        }
        return c;
    }

    // The values of codes (a NaN scale makes its block NaN); throws format_error when the
    // codes are not of this format (sizes, NaN element codes of formats without them,
    // bits above the element width).
    template <std::floating_point T = float>
    std::vector<T> decode(block_codes const& c) const
    {
        const std::size_t blocks = (c.size + format_.block - 1) / format_.block;
        if (c.elements.size() != c.size || c.scales.size() != blocks)
            throw format_error("block decode: " + std::to_string(c.size) + " elements need " + std::to_string(c.size) +
                               " element codes and " + std::to_string(blocks) + " scales, got " +
                               std::to_string(c.elements.size()) + " and " + std::to_string(c.scales.size()));
        std::vector<T> v(c.size);
        for (std::size_t i = 0; i < c.size; ++i) {
            const std::uint8_t scale = c.scales[i / format_.block];
            const double e = element_value(c.elements[i]);
            v[i] = scale == detail::e8m0_nan ? std::numeric_limits<T>::quiet_NaN() : T(std::ldexp(e, int(scale) - 127));
        }
        return v;
    }

    // The value of an element code (NaN for a NaN code); throws format_error for a code
    // with bits above the element width.
    double element_value(std::uint8_t code) const
    {
        const block_element& e = format_.element;
        if (e.bits < 8 && (code >> e.bits) != 0)
            throw format_error("block decode: element code " + std::to_string(code) + " has more than " +
                               std::to_string(e.bits) + " bits");
        if (e.integer) {
            const int word = (code & (1u << (e.bits - 1))) ? int(code) - (1 << e.bits) : int(code);
            return std::ldexp(double(word), -(e.bits - 2));
        }
        const int m = e.format.mantissa_bits;
        const bool negative = (code >> (e.bits - 1)) & 1;
        const int exponent = (code >> m) & ((1 << e.format.exponent_bits) - 1);
        const int mantissa = code & ((1 << m) - 1);
        if (e.has_nan && code == (negative ? nan_code() | (1u << (e.bits - 1)) : nan_code()))
            return std::numeric_limits<double>::quiet_NaN();
        if (e.has_nan && e.format.ieee_specials && exponent == (1 << e.format.exponent_bits) - 1)
            return mantissa ? std::numeric_limits<double>::quiet_NaN()
                            : (negative ? -1.0 : 1.0) * std::numeric_limits<double>::infinity();
        const double magnitude = exponent == 0 ? std::ldexp(double(mantissa), 1 - e.format.bias - m)
                                               : std::ldexp(double(mantissa + (1 << m)), exponent - e.format.bias - m);
        return negative ? -magnitude : magnitude;
    }

    // The code of an element value (a value of the element grid, NaN: the NaN code).
    std::uint8_t element_code(double v) const noexcept
    {
        const block_element& e = format_.element;
        if (std::isnan(v)) return nan_code();
        if (e.integer) {
            const auto word = std::int64_t(std::ldexp(v, e.bits - 2));
            return std::uint8_t(std::uint64_t(word) & ((std::uint64_t(1) << e.bits) - 1));
        }
        const int m = e.format.mantissa_bits;
        const std::uint8_t sign = std::signbit(v) ? std::uint8_t(1u << (e.bits - 1)) : 0;
        const double a = std::fabs(v);
        if (a == 0) return sign;
        const int min_normal = 1 - e.format.bias;
        const int exponent = std::max(detail::floor_log2(a), min_normal);
        const auto significand = std::uint32_t(std::ldexp(a, m - exponent)); // with the leading 1 when normal
        const std::uint32_t biased = a < std::ldexp(1.0, min_normal) ? 0u : std::uint32_t(exponent + e.format.bias);
        return std::uint8_t(sign | (biased << m) | (significand & ((1u << m) - 1)));
    }

    std::string to_string() const
    {
        std::string s;
        if (format_.element.integer && !(format_.element.bits == 8 && format_.block == 32))
            s = "bfp," + std::to_string(format_.element.bits) + "," + std::to_string(format_.block);
        else {
            for (auto const& [name, e] : block_formats::mx)
                if (e.name == format_.element.name && e.bits == format_.element.bits) s = std::string(name);
            if (format_.block != 32) s += ",block=" + std::to_string(format_.block);
        }
        if (rounding_ == rounding_mode::stochastic) s += ",stochastic";
        return s;
    }

    static bool accepts(detail::spec_reader const& r)
    {
        if (r.kind() == "bfp") return true;
        for (auto const& f : block_formats::mx)
            if (r.kind() == f.first) return true;
        return false;
    }
    static block_quantizer parse(detail::spec_reader const& r, rng_key key = {})
    {
        block_format f;
        std::size_t next = 1;
        if (r.kind() == "bfp") {
            const int m = r.integer(1, "mantissa bits");
            const int k = r.integer(2, "block size");
            if (m < 2 || m > 8) r.fail("bfp needs 2 to 8 mantissa bits (sign included), got " + std::to_string(m));
            if (k < 1) r.fail("the block size must be positive, got " + std::to_string(k));
            f.element = block_elements::integer(m);
            f.block = std::size_t(k);
            next = 3;
        } else {
            for (auto const& [name, e] : block_formats::mx)
                if (r.kind() == name) f.element = e;
        }
        const auto options = detail::read_block_options(r, next, r.kind() != "bfp", form);
        if (options.block) f.block = *options.block;
        return r.build([&] { return block_quantizer(f, options.rounding, key); });
    }
    static block_quantizer parse(std::string_view text, rng_key key = {})
    {
        const detail::spec_reader r(text);
        if (!accepts(r)) r.fail("not a block format; the form is \"" + std::string(form) + "\"");
        return parse(r, key);
    }

private:
    // fn(round) with round(x, i) the element rounding of a scaled value x, a double or a
    // batch of them (thresholds i, i + 1, ...: the same as one element at a time).
    template <class Fn>
    void with_elements(Fn&& fn) const
    {
        const block_element& e = format_.element;
        if (e.integer) {
            const fixed_point_rt q(fixed_format{e.bits, e.bits - 2, true}, rounding_, overflow_mode::symmetric, key_);
            q.visit<double>(
                [&](auto const& k) { fn([&](auto const& x, std::uint64_t i) { return detail::call_at(k, x, i); }); });
        } else {
            const minifloat q(detail::rounding_grid(e), rounding_, minifloat_overflow::saturate, key_);
            const double max = e.max;
            q.visit<double>([&](auto const& k) {
                fn([&](auto const& x, std::uint64_t i) {
                    const auto y = detail::call_at(k, x, i);
                    if constexpr (std::is_same_v<std::decay_t<decltype(x)>, double>)
                        return std::fabs(y) > max ? std::copysign(max, y) : y;
                    else // finite: min and max keep -0
                        return xsimd::min(xsimd::max(y, decltype(y)(-max)), decltype(y)(max));
                });
            });
        }
    }
    // The element grid of float lanes (detail::round_to_grid): exact for scaled values,
    // which are below 2^(emax + 1).
    detail::float_grid float_grid() const noexcept
    {
        const block_element& e = format_.element;
        return e.integer ? detail::float_grid(0, e.bits - 2, float(e.max), false)
                         : detail::float_grid(1 - e.format.bias, e.format.mantissa_bits, float(e.max));
    }
    // quantize_line for contiguous floats rounded to nearest even, in float lanes: V 2^-s is
    // exact (or, below float's normal range, far below half the element's smallest step,
    // so it rounds to 0 as the exact value does), the grid rounding is exact, and P 2^s is
    // a float (below 1.75 2^127, with at most 9 significant bits above 2^-149). The same
    // results as the double path, bit for bit.
    // Groups of N whole blocks (N the batch size) take their maxima and their block grids in
    // lanes, when every block of the group is finite and on its grid directly (block_at's
    // first case); other blocks go one at a time.
    // (Block is the block size when known at compile time, 0 otherwise: MX's 32 and 16 get
    // their loops unrolled.)
    template <std::size_t Block>
    static void quantize_line_nearest(float const* in, float* out, std::size_t n, detail::float_grid const& grid,
                                      std::size_t runtime_block, int emax) noexcept
    {
        const std::size_t block = Block != 0 ? Block : runtime_block;
        using batch = xsimd::batch<float>;
        constexpr std::size_t N = batch::size;
        // one block of count elements from `first`, its amax_bits given
        auto block_at = [&](std::size_t first, std::size_t count, std::uint32_t amax) {
            float const* v = in + first;
            float* w = out + first;
            if (amax >= 0x7f800000u) { // an infinity or a NaN: the NaN scale
                std::fill(w, w + count, std::numeric_limits<float>::quiet_NaN());
                return;
            }
            // s from amax's exponent field (a subnormal or zero amax clamps to -127), 2^-s
            // and 2^s from theirs (2^-127 the one subnormal)
            const int field = int(amax >> 23);
            const int s =
                field == 0 ? detail::e8m0_min : std::clamp(field - 127 - emax, detail::e8m0_min, detail::e8m0_max);
            constexpr std::uint32_t two_to_minus_127 = 0x00400000u;
            const float down = std::bit_cast<float>(s == 127 ? two_to_minus_127 : std::uint32_t(127 - s) << 23);
            const float up = std::bit_cast<float>(s == -127 ? two_to_minus_127 : std::uint32_t(127 + s) << 23);
            const std::size_t whole = count - count % N; // (named: see detail::amax_bits)
            const int emin_field = (grid.emin_bits >> 23) + s, top_field = field + (grid.shift >> 23);
            if (emin_field >= 1 && top_field <= 254) {
                // V on the block's grid directly (the grid scaled by 2^s, the same values):
                // its C stays normal and finite
                detail::float_grid block_grid = grid;
                block_grid.emin_bits = emin_field << 23;
                block_grid.max = grid.max * up;
                for (std::size_t j = 0; j < whole; j += N)
                    detail::round_to_grid(batch::load_unaligned(v + j), block_grid).store_unaligned(w + j);
                for (std::size_t j = whole; j < count; ++j) w[j] = detail::round_to_grid(v[j], block_grid);
                return;
            }
            for (std::size_t j = 0; j < whole; j += N)
                (detail::round_to_grid(batch::load_unaligned(v + j) * batch(down), grid) * batch(up))
                    .store_unaligned(w + j);
            for (std::size_t j = whole; j < count; ++j) w[j] = detail::round_to_grid(v[j] * down, grid) * up;
        };
        std::size_t first = 0;
        if constexpr (Block != 0 && Block % N == 0) {
            // N whole blocks at a time: their maxima, and then their grids, in lanes
            using ib = xsimd::batch<std::int32_t, batch::arch_type>;
            const detail::simd::float_run<batch::arch_type> run(in);
            const int grid_emin_field = grid.emin_bits >> 23, shift_field = grid.shift >> 23;
            auto group = [&](auto shifted_loads, std::size_t const at) {
                constexpr bool shifted = decltype(shifted_loads)::value;
                // copies the compiler keeps in registers: the intrinsics' stores may alias
                // anything in memory, the enclosing function's objects included
                const detail::simd::float_run<batch::arch_type> loads = run;
                const detail::float_grid g = grid;
                float* const o = out;
                const ib amax = detail::group_amax_bits<Block, shifted>(loads, at);
                const ib field = amax >> 23;
                const ib s = xsimd::select(
                    field == ib(0), ib(detail::e8m0_min),
                    xsimd::min(xsimd::max(field - ib(127 + emax), ib(detail::e8m0_min)), ib(detail::e8m0_max)));
                const ib emin_field = ib(grid_emin_field) + s;
                // every block finite and on its grid directly, as in block_at (then s >= -126: 2^s normal)
                if (!(xsimd::all(amax < ib(0x7f800000)) && xsimd::all(emin_field >= ib(1)) &&
                      xsimd::all(field + ib(shift_field) <= ib(254)))) {
                    alignas(64) std::int32_t lanes[N];
                    amax.store_aligned(lanes);
                    for (std::size_t b = 0; b < N; ++b) block_at(at + b * Block, Block, std::uint32_t(lanes[b]));
                    return;
                }
                const ib emin_bits = emin_field << 23;
                const batch max = batch(g.max) * detail::simd::bit_cast<float>((s + ib(127)) << 23);
                const detail::grid_lanes<batch::arch_type> constants(g);
                detail::unrolled<N>([&](auto lane) TENSORQUANT_INLINE_LAMBDA {
                    constexpr std::size_t b = decltype(lane)::value;
                    const ib block_emin = detail::simd::broadcast_lane<b>(emin_bits);
                    const batch block_max = detail::simd::broadcast_lane<b>(max);
                    for (std::size_t j = 0; j < Block; j += N) {
                        const std::size_t i = at + b * Block + j;
                        detail::round_to_grid(loads.template load<shifted>(i), block_emin, block_max, constants)
                            .store_unaligned(o + i);
                    }
                });
            };
            for (; first + N * Block <= n; first += N * Block) {
                if (detail::shifted_group<Block>(run, first, n))
                    group(std::true_type{}, first);
                else
                    group(std::false_type{}, first);
            }
        }
        for (; first < n; first += block) {
            const std::size_t count = std::min(block, n - first);
            block_at(first, count, detail::amax_bits(in + first, count));
        }
    }
    void quantize_line_nearest(float const* in, float* out, std::size_t n,
                               detail::float_grid const& grid) const noexcept
    {
        const int emax = format_.element.emax;
        if (format_.block == 32)
            quantize_line_nearest<32>(in, out, n, grid, 32, emax);
        else if (format_.block == 16)
            quantize_line_nearest<16>(in, out, n, grid, 16, emax);
        else
            quantize_line_nearest<0>(in, out, n, grid, format_.block, emax);
    }
    // The blocks of one line: elements in[j stride], j < n, threshold index_offset + j stride
    // (scaled: room for one block). A block is read whole before it is written: in may be out.
    template <class Round, class T>
    void quantize_line(Round const& round, T const* in, T* out, std::size_t n, std::size_t stride,
                       std::uint64_t index_offset, double* scaled) const
    {
        for (std::size_t first = 0; first < n; first += format_.block) {
            const std::size_t count = std::min(format_.block, n - first);
            double amax = 0;
            bool finite = true;
            std::size_t j1 = 0;
            if (stride == 1) { // SIMD maximum of |V|, and whether any is NaN or infinite
                using batch = xsimd::batch<T>;
                batch m(T(0));
                auto bad = m != m;
                for (; j1 + batch::size <= count; j1 += batch::size) {
                    const batch a = xsimd::abs(batch::load_unaligned(in + first + j1));
                    bad = bad | !(a <= batch(std::numeric_limits<T>::max()));
                    m = xsimd::max(m, a);
                }
                alignas(64) T lanes[batch::size];
                m.store_aligned(lanes);
                for (T a : lanes) amax = std::max(amax, double(a));
                finite = !xsimd::any(bad);
            }
            for (std::size_t j = j1; j < count; ++j) {
                const double a = std::fabs(double(in[(first + j) * stride]));
                finite &= a <= std::numeric_limits<double>::max(); // false for NaN too
                amax = a > amax ? a : amax;
            }
            if (!finite) {
                for (std::size_t j = 0; j < count; ++j) out[(first + j) * stride] = std::numeric_limits<T>::quiet_NaN();
                continue;
            }
            const int s = shared_exponent_of(amax);
            const double down = detail::exp2i<double>(-s), up = detail::exp2i<double>(s);
            auto scale_and_round = [&](std::size_t step) { // step a constant 1: loops the compiler vectorises
                for (std::size_t j = 0; j < count; ++j) scaled[j] = double(in[(first + j) * step]) * down;
                round_run(round, scaled, count, index_offset + first * step, step);
                for (std::size_t j = 0; j < count; ++j) out[(first + j) * step] = T(scaled[j] * up);
            };
            if (stride == 1)
                scale_and_round(1);
            else
                scale_and_round(stride);
        }
    }
    // x[j] = round(x[j]) for j < n with thresholds index + j step; SIMD lanes where the
    // thresholds are consecutive.
    template <class Round>
    static void round_run(Round const& round, double* x, std::size_t n, std::uint64_t index, std::size_t step)
    {
        std::size_t j = 0;
        if (step == 1) {
            using batch = xsimd::batch<double>;
            for (; j + batch::size <= n; j += batch::size)
                round(batch::load_unaligned(x + j), index + j).store_unaligned(x + j);
        }
        for (; j < n; ++j) x[j] = round(x[j], index + j * step);
    }
    int shared_exponent_of(double amax) const noexcept { return shared_exponent_of(amax, format_.element.emax); }
    static int shared_exponent_of(double amax, int emax) noexcept
    {
        if (amax == 0) return detail::e8m0_min;
        return std::clamp(detail::floor_log2(amax) - emax, detail::e8m0_min, detail::e8m0_max);
    }
    std::uint8_t nan_code() const noexcept
    {
        // E4M3 S.1111.111, E5M2 S.11111.11; formats without NaN codes: 0 (the scale says NaN)
        return format_.element.has_nan ? std::uint8_t((1u << (format_.element.bits - 1)) - 1) : 0;
    }

    block_format format_;
    rounding_mode rounding_;
    rng_key key_;
};

} // namespace tensorquant::inline TENSORQUANT_ABI
