// Block-scaled formats (quantizers/block.hpp) against an exact reference written from the
// OCP MX v1.0 definitions: the element grids listed from E, M and the bias (or the integer
// width), the shared exponent found by comparing with powers of two, and the rounding done
// in rationals (Boost.Multiprecision), ties to the even code, saturation at the largest
// magnitude.
#include <tensorquant/nn.hpp>
#include <tensorquant/quantizers/block.hpp>
#include <tensorquant/quantizers/nvfp4.hpp>
#include <tensorquant/train.hpp>
#include <tensorquant/xtensor.hpp>

#include <doctest/doctest.h>

#include <boost/multiprecision/cpp_int.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <vector>

namespace tq = tensorquant;
namespace nn = tensorquant::nn;
using rational = boost::multiprecision::cpp_rational;

namespace {

rational pow2(int e)
{
    rational r = 1;
    const rational two = e >= 0 ? rational(2) : rational(1, 2);
    for (int i = 0; i < std::abs(e); ++i) r *= two;
    return r;
}

rational exact(double v)
{
    int e = 0;
    const double f = std::frexp(v, &e); // v = f 2^e, f 53 bits
    return rational(boost::multiprecision::cpp_int(std::ldexp(f, 53))) * pow2(e - 53);
}

// Non-negative values of the element grid in increasing order, from the format's definition
// (index = code magnitude for minifloats, word for integers).
std::vector<rational> grid(tq::block_element const& e)
{
    std::vector<rational> g;
    if (e.integer) {
        const int top = (1 << (e.bits - 1)) - 1;
        for (int k = 0; k <= top; ++k) g.push_back(rational(k) * pow2(-(e.bits - 2)));
        return g;
    }
    const int E = e.format.exponent_bits, M = e.format.mantissa_bits, bias = e.format.bias;
    for (int m = 0; m < (1 << M); ++m) g.push_back(rational(m) * pow2(1 - bias - M)); // subnormals
    for (int ex = 1; ex < (1 << E); ++ex)
        for (int m = 0; m < (1 << M); ++m) {
            const bool top = ex == (1 << E) - 1;
            if (top && e.name == "e5m2") continue;                      // IEEE: infinities and NaNs
            if (top && e.name == "e4m3" && m == (1 << M) - 1) continue; // S.1111.111 is NaN
            g.push_back(rational((1 << M) + m) * pow2(ex - bias - M));
        }
    return g;
}

// The element rounding of an exact x: nearest grid value, ties to the even index, saturating.
rational round_to_grid(std::vector<rational> const& g, rational const& x)
{
    const rational a = x < 0 ? rational(-x) : x;
    if (a >= g.back()) return x < 0 ? rational(-g.back()) : g.back();
    const auto hi = std::upper_bound(g.begin(), g.end(), a); // a < *hi
    const auto lo = hi - 1;
    const rational dl = a - *lo, dh = *hi - a;
    rational r;
    if (dl < dh)
        r = *lo;
    else if (dh < dl)
        r = *hi;
    else
        r = ((lo - g.begin()) % 2 == 0) ? *lo : *hi;
    return x < 0 ? rational(-r) : r;
}

// floor(log2(a)) of a positive rational, by comparison with powers of two.
int floor_log2(rational const& a)
{
    int e = 0;
    while (pow2(e + 1) <= a) ++e;
    while (pow2(e) > a) --e;
    return e;
}

// The reference block: values of every element (NaN for a NaN scale), and the shared exponent.
struct reference_block
{
    std::vector<double> values;
    int shared = 0;
    bool nan = false;
};

template <class T>
reference_block reference(tq::block_element const& e, std::vector<rational> const& g, std::span<T const> v)
{
    reference_block r;
    rational amax = 0;
    for (T x : v) {
        if (!std::isfinite(x)) {
            r.nan = true;
            r.values.assign(v.size(), std::nan(""));
            return r;
        }
        amax = std::max(amax, exact(std::fabs(double(x))));
    }
    r.shared = amax == 0 ? -127 : std::clamp(floor_log2(amax) - e.emax, -127, 127);
    for (T x : v) {
        const rational q = round_to_grid(g, exact(double(x)) * pow2(-r.shared)) * pow2(r.shared);
        r.values.push_back(double(q) * (std::signbit(double(x)) && q == 0 ? -1.0 : 1.0));
    }
    return r;
}

bool same(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

template <class T>
int mismatches(tq::block_quantizer const& q, std::vector<rational> const& g, std::vector<T> const& in)
{
    std::vector<T> out(in.size());
    q.quantize(std::span<T const>(in), std::span<T>(out));
    int wrong = 0;
    for (std::size_t first = 0; first < in.size(); first += q.block()) {
        const std::size_t n = std::min(q.block(), in.size() - first);
        const auto block = std::span<T const>(in).subspan(first, n);
        const auto r = reference(q.format().element, g, block);
        const auto s = q.shared_exponent(block);
        if (r.nan != !s || (s && *s != r.shared)) ++wrong;
        for (std::size_t i = 0; i < n; ++i)
            if (!same(double(out[first + i]), r.values[i])) {
                if (wrong < 5)
                    MESSAGE(q.to_string() << " element " << first + i << " = " << double(in[first + i]) << ": got "
                                          << double(out[first + i]) << ", expected " << r.values[i]);
                ++wrong;
            }
    }
    return wrong;
}

std::vector<tq::block_quantizer> every_format()
{
    std::vector<tq::block_quantizer> qs;
    for (auto const& [name, e] : tq::block_formats::mx) qs.emplace_back(tq::block_format{e, 32});
    qs.emplace_back(tq::block_format{tq::block_elements::integer(4), 16});
    qs.emplace_back(tq::block_format{tq::block_elements::integer(6), 8});
    return qs;
}

} // namespace

TEST_CASE("every element code and midpoint under a spread of block scales equals the exact reference")
{
    std::size_t checked = 0;
    for (auto const& q : every_format()) {
        CAPTURE(q.to_string());
        const auto& e = q.format().element;
        const auto g = grid(e);
        REQUIRE(double(g.back()) == e.max);
        std::size_t format_checked = 0;
        // values relative to the scale: each code, each midpoint between neighbours, and the
        // float neighbours of both, positive and negative
        std::vector<double> relative;
        for (std::size_t i = 0; i < g.size(); ++i) {
            relative.push_back(double(g[i]));
            if (i + 1 < g.size()) relative.push_back(double((g[i] + g[i + 1]) / 2));
        }
        relative.push_back(e.max * 1.25); // beyond the largest magnitude: saturates
        for (int s : {-127, -126, -125, -100, -64, -20, -2, -1, 0, 1, 2, 7, 20, 50, 100, 127 - e.emax - 1}) {
            CAPTURE(s);
            std::vector<float> in;
            auto push_block = [&](std::vector<float> const& values) {
                // element 0 pins the block's maximum, so its shared exponent is s
                for (std::size_t first = 0; first < values.size(); first += q.block() - 1) {
                    in.push_back(float(e.max * std::ldexp(1.0, s)));
                    for (std::size_t i = first; i < std::min(values.size(), first + q.block() - 1); ++i)
                        in.push_back(values[i]);
                    while (in.size() % q.block()) in.push_back(0.0f);
                }
            };
            std::vector<float> values;
            for (double r : relative)
                for (double sign : {1.0, -1.0}) {
                    const float v = float(sign * std::ldexp(r, s));
                    if (std::fabs(double(v)) > e.max * std::ldexp(1.0, s) && r <= e.max) continue; // not float
                    values.push_back(v);
                    values.push_back(std::nextafter(v, 0.0f));
                    values.push_back(std::nextafter(v, v < 0 ? -INFINITY : INFINITY));
                }
            push_block(values);
            CHECK(mismatches(q, g, in) == 0);
            format_checked += values.size();
        }
        MESSAGE(q.to_string() << ": " << format_checked << " codes, midpoints and neighbours");
        checked += format_checked;
    }
    MESSAGE("codes, midpoints and their neighbours checked: " << checked);
}

TEST_CASE_TEMPLATE("random blocks of every format and block size equal the exact reference", T, float, double)
{
    std::mt19937_64 gen(42);
    std::size_t checked = 0;
    for (auto const& base : every_format())
        for (std::size_t block : {std::size_t(1), std::size_t(7), std::size_t(16), std::size_t(32)}) {
            const tq::block_quantizer q(tq::block_format{base.format().element, block});
            CAPTURE(q.to_string());
            const auto g = grid(q.format().element);
            std::vector<T> in(1000); // 1000 = 31 blocks of 32 and one of 8, ...: partial last blocks
            for (int trial = 0; trial < 20; ++trial) {
                std::uniform_int_distribution<int> magnitude(-60, 60);
                std::normal_distribution<double> d(0, 1);
                for (std::size_t i = 0; i < in.size(); ++i) {
                    // blocks of varied ranges, some elements far below the block maximum
                    const int e = magnitude(gen) / (i % 5 == 0 ? 1 : 4);
                    in[i] = T(std::ldexp(d(gen), e));
                }
                CHECK(mismatches(q, g, in) == 0);
                checked += in.size();
            }
        }
    MESSAGE("random elements checked: " << checked);
}

namespace {

// Random floats over the whole range (subnormals, zeros of both signs, the largest
// normals), a few infinities and NaNs, blocks spanning from 1 to 2^30 in magnitude.
std::vector<float> whole_range_floats(std::mt19937_64& gen, std::size_t n)
{
    std::vector<float> v(n);
    int top = int(gen() % 256);
    for (std::size_t i = 0; i < n; ++i) {
        if (i % 37 == 0) top = int(gen() % 256);
        const int field = std::max(0, top - int(gen() % 31));
        auto bits = std::uint32_t(gen()) & 0x807fffffu;
        bits |= std::uint32_t(std::min(field, 254)) << 23;
        v[i] = gen() % 8 == 0 ? 0.0f * (gen() % 2 ? 1.0f : -1.0f) : std::bit_cast<float>(bits);
        if (gen() % 997 == 0) v[i] = gen() % 2 ? INFINITY : NAN;
    }
    return v;
}

bool same_bits(double a, double b) { return same(a, b) && std::signbit(a) == std::signbit(b); }

} // namespace

TEST_CASE("float lanes equal the double path over the whole float range")
{
    // floats rounded to nearest even take a float kernel (detail::round_to_grid); doubles
    // the exact double one the references above check
    std::mt19937_64 gen(77);
    std::size_t checked = 0;
    for (auto const& base : every_format())
        for (std::size_t block : {std::size_t(1), std::size_t(5), std::size_t(16), std::size_t(32)}) {
            const tq::block_quantizer q(tq::block_format{base.format().element, block});
            CAPTURE(q.to_string());
            int wrong = 0;
            for (int trial = 0; trial < 200; ++trial) {
                // (every fifth run long enough for whole groups of blocks, whose maxima are
                // taken together: simd::transpose_max)
                const auto x = whole_range_floats(gen, 1 + gen() % (trial % 5 == 0 ? 1600 : 300));
                std::vector<double> xd(x.begin(), x.end()), yd(x.size());
                std::vector<float> y(x.size());
                q.quantize(std::span<float const>(x), std::span<float>(y));
                q.quantize(std::span<double const>(xd), std::span<double>(yd));
                for (std::size_t i = 0; i < x.size(); ++i)
                    if (!same_bits(y[i], yd[i])) {
                        if (wrong++ < 3) MESSAGE(x[i] << ": float " << y[i] << ", double " << yd[i]);
                    }
                checked += x.size();
            }
            CHECK(wrong == 0);
        }
    MESSAGE("float lanes checked against the double path: " << checked);
}

TEST_CASE("block formats give the same bits on 1 2 and 8 threads")
{
    std::mt19937_64 gen(8);
    std::normal_distribution<double> d(0, 1);
    std::vector<float> x(4110 * 3); // 3 lines of 4110 (strided) or one line
    for (auto& v : x) v = float(d(gen));
    for (std::string spec : {"mxfp4", "mxfp8_e4m3,stochastic", "bfp,4,7", "nvfp4", "nvfp4,stochastic"}) {
        CAPTURE(spec);
        const auto q = tq::parse_quantizer(spec, {3, 4});
        for (std::size_t stride : {std::size_t(0), std::size_t(3)}) {
            CAPTURE(stride);
            std::vector<float> one(x.size());
            for (unsigned threads : {1u, 2u, 8u}) {
                tq::apply_options o;
                o.threads = threads;
                o.min_elements_per_thread = 64;
                o.block_line = stride ? x.size() / stride : 0;
                o.block_stride = stride ? stride : 1;
                o.index_offset = 5;
                std::vector<float> y(x.size());
                tq::quantize(q, std::span<float const>(x), std::span<float>(y), o);
                if (threads == 1)
                    one = y;
                else
                    CHECK(
                        std::equal(y.begin(), y.end(), one.begin(), [](float a, float b) { return same_bits(a, b); }));
            }
        }
    }
}

TEST_CASE("special values in blocks")
{
    const auto q = tq::block_quantizer::parse("mxfp8_e4m3");
    const auto g = grid(q.format().element);
    SUBCASE("a block of zeros has the smallest scale and stays zero")
    {
        std::vector<float> in(32, 0.0f);
        in[3] = -0.0f;
        CHECK(q.shared_exponent(std::span<float const>(in)) == -127);
        std::vector<float> out(32);
        q.quantize(std::span<float const>(in), std::span<float>(out));
        CHECK(out[0] == 0.0f);
        CHECK(std::signbit(out[3]));
        CHECK(q.encode(std::span<float const>(in)).scales[0] == 0);
    }
    SUBCASE("a NaN or an infinity makes the block NaN and only that block")
    {
        for (float bad : {NAN, INFINITY, -INFINITY}) {
            std::vector<float> in(64, 1.0f);
            in[5] = bad;
            std::vector<float> out(64);
            q.quantize(std::span<float const>(in), std::span<float>(out));
            CHECK(std::all_of(out.begin(), out.begin() + 32, [](float v) { return std::isnan(v); }));
            CHECK(std::all_of(out.begin() + 32, out.end(), [](float v) { return v == 1.0f; }));
            const auto codes = q.encode(std::span<float const>(in));
            CHECK(codes.scales[0] == 0xff);
            CHECK(codes.scales[1] == 127 - 8 + 0); // 1.0: floor(log2 1) - 8
            CHECK(std::isnan(q.decode(codes)[0]));
        }
    }
    SUBCASE("one huge value flushes the small ones")
    {
        std::vector<float> in(32, 1.0f);
        in[0] = 1e30f;
        CHECK(mismatches(q, g, in) == 0);
        std::vector<float> out(32);
        q.quantize(std::span<float const>(in), std::span<float>(out));
        CHECK(q.shared_exponent(std::span<float const>(in)) == 99 - 8); // 2^99 <= 1e30 < 2^100
        CHECK(out[1] == 0.0f);
    }
    SUBCASE("subnormal inputs: the scale clamps at 2^-127")
    {
        std::vector<float> in(32, std::ldexp(1.0f, -140));
        in[1] = std::ldexp(1.0f, -149);
        CHECK(q.shared_exponent(std::span<float const>(in)) == -127);
        CHECK(mismatches(q, g, in) == 0);
    }
    SUBCASE("double inputs beyond the E8M0 range saturate at 2^127")
    {
        const auto q8 = tq::block_quantizer::parse("mxint8");
        std::vector<double> in(32, std::ldexp(1.0, 300));
        CHECK(q8.shared_exponent(std::span<double const>(in)) == 127);
        std::vector<double> out(32);
        q8.quantize(std::span<double const>(in), std::span<double>(out));
        CHECK(out[0] == 127.0 / 64 * std::ldexp(1.0, 127));
        CHECK(mismatches(q8, grid(q8.format().element), in) == 0);
    }
}

TEST_CASE("codes decode to the quantized values and bad codes are refused")
{
    std::mt19937_64 gen(7);
    std::normal_distribution<double> d(0, 3);
    std::vector<float> in(1000);
    for (auto& v : in) v = float(d(gen));
    in[17] = NAN;
    for (auto const& q : every_format()) {
        CAPTURE(q.to_string());
        std::vector<float> out(in.size());
        q.quantize(std::span<float const>(in), std::span<float>(out));
        const auto codes = q.encode(std::span<float const>(in));
        CHECK(codes.scales.size() == (in.size() + q.block() - 1) / q.block());
        const auto back = q.decode(codes);
        int wrong = 0;
        for (std::size_t i = 0; i < in.size(); ++i) wrong += !same(back[i], out[i]);
        CHECK(wrong == 0);
        for (std::size_t i = 0; i < in.size(); ++i) CHECK((codes.elements[i] >> q.format().element.bits) == 0);
        auto broken = codes;
        broken.scales.pop_back();
        CHECK_THROWS_AS(q.decode(broken), tq::format_error);
        if (q.format().element.bits < 8) {
            broken = codes;
            broken.elements[3] |= 0x80;
            CHECK_THROWS_AS(q.decode(broken), tq::format_error);
        }
    }
    // every code of every element format decodes to the reference grid
    for (auto const& q : every_format()) {
        const auto& e = q.format().element;
        const auto g = grid(e);
        for (unsigned code = 0; code < (1u << e.bits); ++code) {
            const double v = q.element_value(std::uint8_t(code));
            if (std::isnan(v)) {
                CHECK(e.has_nan);
                continue;
            }
            if (std::isinf(v)) { // e5m2's infinity codes decode, conversions saturate before them
                CHECK(e.name == "e5m2");
                continue;
            }
            CHECK(q.element_code(v) == code);
            if (e.integer && code == (1u << (e.bits - 1))) { // -2^(m-1): decoded, never produced
                CHECK(v == -std::ldexp(1.0, 1));
                continue;
            }
            const auto a = exact(std::fabs(v));
            CHECK(std::find(g.begin(), g.end(), a) != g.end());
        }
    }
}

TEST_CASE("stochastic element rounding is unbiased and depends only on element positions")
{
    auto q = tq::block_quantizer::parse("mxfp4,stochastic", tq::rng_key{9, 1});
    // 1.0 pins the scale (s = -2: max 6 = 1.5 2^2, so 1.0 scales to 4); 0.6 2^-2 scaled is 2.4,
    // between the grid values 2 and 3: rounds up with probability 0.4
    std::vector<float> in(32 * 4000);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = i % 32 == 0 ? 1.0f : 0.6f;
    std::vector<float> out(in.size());
    q.quantize(std::span<float const>(in), std::span<float>(out));
    std::size_t up = 0, n = 0;
    for (std::size_t i = 0; i < in.size(); ++i)
        if (i % 32) {
            REQUIRE((out[i] == 0.5f || out[i] == 0.75f));
            up += out[i] == 0.75f;
            ++n;
        }
    const double p = double(up) / double(n), sigma = std::sqrt(0.4 * 0.6 / double(n));
    MESSAGE("share rounded up " << p << " (expected 0.4, sigma " << sigma << ")");
    CHECK(std::fabs(p - 0.4) < 5 * sigma);
    // the SIMD lanes draw what one element at a time draws
    int wrong = 0;
    for (std::size_t i = 0; i < in.size(); ++i)
        wrong += out[i] != float(q.round_element(std::ldexp(double(in[i]), 2), i) * 0.25);
    CHECK(wrong == 0);
    // halves quantized separately at their offsets give the same bits
    std::vector<float> parts(in.size());
    const std::size_t half = in.size() / 2;
    q.quantize(std::span<float const>(in).first(half), std::span<float>(parts).first(half), 0);
    q.quantize(std::span<float const>(in).subspan(half), std::span<float>(parts).subspan(half), half);
    CHECK(std::equal(parts.begin(), parts.end(), out.begin()));
    // the same elements under another key round otherwise
    auto other = tq::block_quantizer::parse("mxfp4,stochastic", tq::rng_key{9, 2});
    std::vector<float> out2(in.size());
    other.quantize(std::span<float const>(in), std::span<float>(out2));
    CHECK(!std::equal(out2.begin(), out2.end(), out.begin()));
}

TEST_CASE("block format strings")
{
    for (std::string s : {"mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4", "mxint8", "mxfp4,block=16",
                          "mxfp8_e4m3,stochastic", "bfp,8,16", "bfp,4,32,stochastic"}) {
        CAPTURE(s);
        CHECK(tq::block_quantizer::parse(s).to_string() == s);
    }
    CHECK(tq::block_quantizer::parse("bfp,8,32").to_string() == "mxint8");
    CHECK(tq::block_quantizer::parse("mxfp4 , block=16 ").block() == 16);
    for (std::string bad : {"mxfp5", "mxfp4,block=0", "mxfp4,block=x", "bfp,1,16", "bfp,9,16", "bfp,8", "bfp,8,0",
                            "mxfp4,zero", "bfp,8,16,block=4", "mxfp4,block=2000000"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(tq::block_quantizer::parse(bad), tq::parse_error);
    }
}

TEST_CASE("blocks along an axis of a tensor")
{
    std::mt19937_64 gen(11);
    std::normal_distribution<double> d(0, 2);
    xt::xtensor<float, 3> x = xt::xtensor<float, 3>::from_shape({3, 45, 4}); // 45 = 32 + 13: partial blocks
    for (auto& v : x) v = float(std::ldexp(d(gen), int(gen() % 9) - 4));
    for (std::string spec : {"mxfp6_e2m3", "mxfp8_e5m2,stochastic", "bfp,6,8"}) {
        CAPTURE(spec);
        const auto q = tq::block_quantizer::parse(spec, tq::rng_key{3, 0});
        SUBCASE("the last axis: each row is a run of blocks")
        {
            auto y = x;
            q.quantize_inplace(y, 2);
            auto rows = x;
            for (std::size_t r = 0; r < rows.size() / 4; ++r)
                q.quantize_inplace(std::span<float>(rows.data() + 4 * r, 4), 4 * r);
            CHECK(std::equal(y.begin(), y.end(), rows.begin()));
        }
        SUBCASE("the middle axis: lines gathered, quantized and scattered")
        {
            auto y = x;
            q.quantize_inplace(y, 1);
            int wrong = 0;
            for (std::size_t a = 0; a < 3; ++a)
                for (std::size_t c = 0; c < 4; ++c) {
                    std::vector<float> line(45), out(45);
                    for (std::size_t j = 0; j < 45; ++j) line[j] = x(a, j, c);
                    if (q.rounding() == tq::rounding_mode::stochastic) {
                        // thresholds follow the flat index: quantize each element's block alone
                        for (std::size_t j = 0; j < 45; ++j) {
                            // the shared exponent of j's block, and the element rounding at j's flat index
                            const std::size_t first = j / 32 * 32, n = std::min<std::size_t>(32, 45 - first);
                            const int s = *q.shared_exponent(std::span<float const>(line).subspan(first, n));
                            const std::size_t flat = (a * 45 + j) * 4 + c;
                            out[j] = float(q.round_element(std::ldexp(double(line[j]), -s), flat) * std::ldexp(1.0, s));
                        }
                    } else {
                        q.quantize(std::span<float const>(line), std::span<float>(out));
                    }
                    for (std::size_t j = 0; j < 45; ++j)
                        wrong += std::bit_cast<std::uint32_t>(out[j]) != std::bit_cast<std::uint32_t>(y(a, j, c));
                }
            CHECK(wrong == 0);
        }
    }
    CHECK_THROWS_AS(tq::block_quantizer::parse("mxfp4").quantize_inplace(x, 3), tq::shape_error);
}

// ---- NVFP4 ------------------------------------------------------------------------------

namespace {

// Its definition step by step in float32 (quantizers/nvfp4.hpp), with the E4M3 and E2M1
// roundings done on the rational grids above.
std::vector<float> nvfp4_reference(std::vector<float> const& x, std::size_t block)
{
    static const auto e4m3 = grid(tq::block_elements::e4m3), e2m1 = grid(tq::block_elements::e2m1);
    float amax = 0;
    for (float v : x)
        if (std::isfinite(v)) amax = std::max(amax, std::fabs(v));
    float s = amax > 0 ? 2688.0f / amax : 1.0f;
    if (!std::isfinite(s)) s = std::numeric_limits<float>::max();
    std::vector<float> y(x.size());
    for (std::size_t first = 0; first < x.size(); first += block) {
        const std::size_t n = std::min(block, x.size() - first);
        float bmax = 0;
        bool finite = true;
        for (std::size_t j = 0; j < n; ++j) {
            finite = finite && std::isfinite(x[first + j]);
            bmax = std::max(bmax, std::fabs(x[first + j]));
        }
        const float d = finite ? float(double(round_to_grid(e4m3, exact(double(bmax / 6.0f * s))))) : 0.0f;
        for (std::size_t j = 0; j < n; ++j) {
            const float v = x[first + j];
            if (!finite) {
                y[first + j] = NAN;
                continue;
            }
            if (d == 0) {
                y[first + j] = std::copysign(0.0f, v);
                continue;
            }
            // the encode scale as Transformer Engine rounds it: 1 / (d (1 / s))
            const float scaled = v * std::min(1.0f / (d * (1.0f / s)), std::numeric_limits<float>::max());
            double q =
                std::isinf(scaled) ? std::copysign(6.0, scaled) : double(round_to_grid(e2m1, exact(double(scaled))));
            if (q == 0 && std::signbit(scaled)) q = -0.0;
            y[first + j] = float(q) * d * (1.0f / s); // and the decode scale 1 / s
        }
    }
    return y;
}

int nvfp4_mismatches(tq::nvfp4_quantizer const& q, std::vector<float> const& x)
{
    std::vector<float> out(x.size());
    q.quantize(std::span<float const>(x), std::span<float>(out));
    const auto ref = nvfp4_reference(x, q.block());
    int wrong = 0;
    for (std::size_t i = 0; i < x.size(); ++i)
        if (!(same(out[i], ref[i]) && std::signbit(out[i]) == std::signbit(ref[i]))) {
            if (wrong < 5) MESSAGE("element " << i << " = " << x[i] << ": got " << out[i] << ", expected " << ref[i]);
            ++wrong;
        }
    return wrong;
}

} // namespace

TEST_CASE("nvfp4 under every block scale code equals its definition")
{
    const auto q = tq::nvfp4_quantizer::parse("nvfp4");
    const auto e4m3 = grid(tq::block_elements::e4m3), e2m1 = grid(tq::block_elements::e2m1);
    std::size_t checked = 0;
    for (float tensor_amax : {2688.0f, 1.0f, 3e-30f, 1e30f})
        for (auto const& dr : e4m3) {
            // a block whose amax / 6 s_enc is the E4M3 value d (up to float rounding), then
            // every E2M1 value and midpoint times d, and their float neighbours
            const float s = 2688.0f / tensor_amax;
            const float d = float(double(dr));
            std::vector<float> x{tensor_amax};
            while (x.size() % 16) x.push_back(0.0f);
            std::vector<float> values;
            for (std::size_t i = 0; i < e2m1.size(); ++i) {
                values.push_back(float(double(e2m1[i])));
                if (i + 1 < e2m1.size()) values.push_back(float(double((e2m1[i] + e2m1[i + 1]) / 2)));
            }
            for (std::size_t first = 0; first < values.size(); first += 15) {
                x.push_back(6.0f * d / s); // pins the block's amax
                for (std::size_t i = first; i < std::min(values.size(), first + 15); ++i)
                    for (float sign : {1.0f, -1.0f}) {
                        const float v = sign * values[i] * d / s;
                        for (float w : {v, std::nextafter(v, 0.0f), std::nextafter(v, 2 * v)})
                            if (x.size() % 16) x.push_back(w);
                    }
                while (x.size() % 16) x.push_back(0.0f);
            }
            CHECK(nvfp4_mismatches(q, x) == 0);
            checked += x.size();
        }
    MESSAGE("nvfp4 elements checked: " << checked);
}

TEST_CASE("nvfp4 every block scale code in one tensor equals its definition")
{
    // The float kernel takes a group of whole blocks at once, its quotients from a table of
    // the block scales: one tensor holding a block per E4M3 code, each with every E2M1 value
    // and midpoint (and float neighbours), in place and out of place; tensor scales inside
    // [2^-100, 2^100] (the table) and outside (the general way).
    const auto q = tq::nvfp4_quantizer::parse("nvfp4");
    const auto e4m3 = grid(tq::block_elements::e4m3), e2m1 = grid(tq::block_elements::e2m1);
    std::vector<float> values;
    for (std::size_t i = 0; i < e2m1.size(); ++i) {
        values.push_back(float(double(e2m1[i])));
        if (i + 1 < e2m1.size()) values.push_back(float(double((e2m1[i] + e2m1[i + 1]) / 2)));
    }
    std::size_t checked = 0;
    for (float tensor_amax : {2688.0f, 1.0f, 3e-30f, 1e30f, 1e-20f, 5e-36f}) {
        const float s = 2688.0f / tensor_amax;
        std::vector<float> x{tensor_amax};
        while (x.size() % 16) x.push_back(0.0f);
        for (int pass = 0; pass < 2; ++pass) // the codes in order, then in reverse
            for (std::size_t c = 0; c < e4m3.size(); ++c) {
                const float d = float(double(e4m3[pass ? e4m3.size() - 1 - c : c]));
                if (!(d > 0)) continue;
                for (std::size_t first = 0; first < values.size(); first += 5) {
                    x.push_back(6.0f * d / s); // pins the block's amax
                    for (std::size_t i = first; i < std::min(values.size(), first + 5); ++i) {
                        const float v = (i % 2 ? -1.0f : 1.0f) * values[i] * d / s;
                        for (float w : {v, std::nextafter(v, 0.0f), std::nextafter(v, 2 * v)}) x.push_back(w);
                    }
                    while (x.size() % 16) x.push_back(-0.0f);
                }
            }
        x.resize(x.size() + 7, 1e-3f / s); // a partial last block
        CAPTURE(tensor_amax);
        CHECK(nvfp4_mismatches(q, x) == 0);
        std::vector<float> out(x.size()), in_place = x;
        q.quantize(std::span<float const>(x), std::span<float>(out));
        q.quantize(std::span<float const>(in_place), std::span<float>(in_place));
        CHECK(std::equal(out.begin(), out.end(), in_place.begin(), [](float a, float b) { return same_bits(a, b); }));
        checked += x.size();
    }
    MESSAGE("nvfp4 elements checked in tensors of every block scale: " << checked);
}

TEST_CASE("transpose_max gives every batch's largest lane in order")
{
    using ib = xsimd::batch<std::int32_t>;
    constexpr std::size_t N = ib::size;
    std::mt19937_64 gen(13);
    int wrong = 0;
    for (int trial = 0; trial < 2000; ++trial) {
        alignas(64) std::int32_t lanes[N * N];
        for (auto& v : lanes) v = std::int32_t(gen() % (trial % 2 ? 64 : 0x80000000u));
        ib m[N];
        for (std::size_t b = 0; b < N; ++b) m[b] = ib::load_aligned(lanes + b * N);
        alignas(64) std::int32_t out[N];
        tq::detail::simd::transpose_max(m).store_aligned(out);
        for (std::size_t b = 0; b < N; ++b) wrong += out[b] != *std::max_element(lanes + b * N, lanes + (b + 1) * N);
    }
    CHECK(wrong == 0);
}

namespace {

// n floats starting `offset` floats after a 64-byte boundary, the allocation ending with
// them (the SIMD kernels read such runs with shifted aligned loads, and must not read
// beyond them: AddressSanitizer would report it).
struct offset_floats
{
    struct aligned_delete
    {
        void operator()(float* p) const { ::operator delete(p, std::align_val_t(64)); }
    };
    std::unique_ptr<float, aligned_delete> storage;
    float* data;
    offset_floats(std::size_t n, std::size_t offset)
        : storage(static_cast<float*>(::operator new((n + offset) * sizeof(float), std::align_val_t(64)))),
          data(storage.get() + offset)
    {
        std::fill(storage.get(), data + n, 0.0f);
    }
};

} // namespace

TEST_CASE("simd helpers of the block kernels equal their definitions")
{
    namespace simd = tq::detail::simd;
    using fb = xsimd::batch<float>;
    using ib = xsimd::batch<std::int32_t, fb::arch_type>;
    constexpr std::size_t N = fb::size;
    std::mt19937_64 gen(17);
    alignas(64) float x[N], y[N], out[N];
    alignas(64) std::int32_t idx[N];
    alignas(64) float table[16];
    for (int trial = 0; trial < 500; ++trial) {
        for (std::size_t i = 0; i < N; ++i) {
            x[i] = std::ldexp(float(std::int64_t(gen() % 2001) - 1000) / 256.0f, int(gen() % 20) - 10);
            y[i] = trial % 2 ? 1.0f : std::ldexp(float(std::int64_t(gen() % 2001) - 1000) / 256.0f, int(gen() % 20));
            idx[i] = std::int32_t(gen());
        }
        if (trial % 7 == 0) x[0] = -0.0f;
        for (auto& t : table) t = float(gen() % 1000) - 500.0f;
        const fb xv = fb::load_aligned(x);
        tq::detail::unrolled<N>([&](auto lane) {
            constexpr std::size_t L = decltype(lane)::value;
            simd::broadcast_lane<L>(xv).store_aligned(out);
            CHECK(std::all_of(out, out + N, [&](float v) { return same_bits(v, x[L]); }));
        });
        simd::max_magnitude_signed(xv, fb::load_aligned(y)).store_aligned(out);
        for (std::size_t i = 0; i < N; ++i)
            CHECK(same_bits(out[i], std::copysign(std::max(std::fabs(x[i]), std::fabs(y[i])), x[i])));
        simd::lookup16(ib::load_aligned(idx), table).store_aligned(out);
        for (std::size_t i = 0; i < N; ++i) CHECK(same_bits(out[i], table[idx[i] & 15]));
    }
    // float_run: every batch of a run at every offset from a 64-byte boundary, by its shifted
    // loads where they are allowed and by unaligned ones
    for (std::size_t offset = 0; offset < 16; ++offset) {
        const std::size_t n = 6 * N;
        const offset_floats run_floats(n, offset);
        for (std::size_t i = 0; i < n; ++i) run_floats.data[i] = float(i);
        float const* p = run_floats.data;
        const simd::float_run<fb::arch_type> run(p);
        for (std::size_t j = 0; j + N <= n; j += N) {
            run.load<false>(j).store_aligned(out);
            CHECK(std::equal(out, out + N, p + j));
            if (j >= N && j + 2 * N <= n) {
                run.load<true>(j).store_aligned(out);
                CHECK(std::equal(out, out + N, p + j));
            }
        }
    }
}

namespace {

// Normal values of a varied range per stretch of 200, some zeros, now and then an
// infinity or a NaN: blocks of every kind, most of them in the kernels' common groups.
void fill_varied(std::mt19937_64& gen, float* v, std::size_t n)
{
    std::normal_distribution<float> d(0, 1);
    int range = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (i % 200 == 0) range = int(gen() % 80) - 40;
        v[i] = gen() % 40 == 0 ? 0.0f : std::ldexp(d(gen), range);
    }
    if (gen() % 4 == 0) v[gen() % n] = gen() % 2 ? NAN : -INFINITY;
}

} // namespace

TEST_CASE("block formats on runs at every offset from a cache line equal the double path")
{
    // the float kernels read whole groups of blocks with shifted loads except at the ends of a
    // run; the double path does not: every offset of input and output, in place too
    std::mt19937_64 gen(29);
    std::size_t checked = 0;
    std::vector<std::string> specs;
    for (auto const& [name, e] : tq::block_formats::mx) {
        specs.push_back(std::string(name));
        specs.push_back(std::string(name) + ",block=16");
    }
    for (std::string spec : {"bfp,8,16", "bfp,6,64", "bfp,4,7"}) specs.push_back(spec);
    for (auto const& spec : specs) {
        CAPTURE(spec);
        const auto q = tq::block_quantizer::parse(spec);
        int wrong = 0;
        for (std::size_t offset = 0; offset < 16; ++offset) {
            const std::size_t n = 1 + gen() % 3200;
            offset_floats in(n, offset), out(n, (offset * 7 + 3) % 16);
            fill_varied(gen, in.data, n);
            std::vector<double> xd(in.data, in.data + n), yd(n);
            q.quantize(std::span<float const>(in.data, n), std::span<float>(out.data, n));
            q.quantize(std::span<double const>(xd), std::span<double>(yd));
            q.quantize_inplace(std::span<float>(in.data, n));
            for (std::size_t i = 0; i < n; ++i)
                if (!same_bits(out.data[i], yd[i]) || !same_bits(in.data[i], yd[i])) {
                    if (wrong++ < 3)
                        MESSAGE("offset " << offset << " element " << i << " = " << xd[i] << ": float " << out.data[i]
                                          << ", in place " << in.data[i] << ", double " << yd[i]);
                }
            checked += n;
        }
        CHECK(wrong == 0);
    }
    MESSAGE("elements checked at every offset: " << checked);
}

TEST_CASE("nvfp4 on runs at every offset from a cache line equals its definition")
{
    std::mt19937_64 gen(37);
    std::size_t checked = 0;
    for (std::size_t block : {std::size_t(16), std::size_t(5), std::size_t(32)}) {
        CAPTURE(block);
        const tq::nvfp4_quantizer q(block);
        int wrong = 0;
        for (std::size_t offset = 0; offset < 16; ++offset) {
            const std::size_t n = 1 + gen() % 3200;
            offset_floats in(n, offset), out(n, (offset * 5 + 9) % 16);
            fill_varied(gen, in.data, n);
            const std::vector<float> x(in.data, in.data + n);
            const auto ref = nvfp4_reference(x, block);
            q.quantize(std::span<float const>(in.data, n), std::span<float>(out.data, n));
            q.quantize(std::span<float const>(in.data, n), std::span<float>(in.data, n));
            for (std::size_t i = 0; i < n; ++i)
                if (!same_bits(out.data[i], ref[i]) || !same_bits(in.data[i], ref[i])) {
                    if (wrong++ < 3)
                        MESSAGE("offset " << offset << " element " << i << " = " << x[i] << ": got " << out.data[i]
                                          << ", in place " << in.data[i] << ", expected " << ref[i]);
                }
            checked += n;
        }
        CHECK(wrong == 0);
    }
    MESSAGE("nvfp4 elements checked at every offset: " << checked);
}

TEST_CASE("nvfp4 block amax at the midpoints of the block scale grid")
{
    // the block scale's float ops (amax / 6, then times s_enc) decide these roundings
    const auto q = tq::nvfp4_quantizer::parse("nvfp4");
    const auto e4m3 = grid(tq::block_elements::e4m3);
    std::mt19937_64 gen(21);
    std::size_t checked = 0;
    for (int trial = 0; trial < 20; ++trial) {
        const float tensor_amax = float(std::ldexp(1.0 + double(gen() % 1000) / 1000, int(gen() % 20) - 10));
        const float s = 2688.0f / tensor_amax;
        std::vector<float> x{tensor_amax};
        while (x.size() % 16) x.push_back(0.0f);
        for (std::size_t i = 1; i + 1 < e4m3.size(); ++i) {
            float b = float(double((e4m3[i] + e4m3[i + 1]) / 2) * 6 / double(s));
            for (int k = 0; k < 3; ++k) b = std::nextafter(b, 0.0f);
            for (int k = 0; k < 7; ++k, b = std::nextafter(b, INFINITY)) {
                x.push_back(b);
                x.push_back(b * 0.3f);
                while (x.size() % 16) x.push_back(-b * 0.7f);
            }
        }
        CHECK(nvfp4_mismatches(q, x) == 0);
        checked += x.size();
    }
    MESSAGE("nvfp4 scale midpoints checked: " << checked);
}

TEST_CASE("nvfp4 random tensors codes and special values")
{
    std::mt19937_64 gen(5);
    std::normal_distribution<double> d(0, 1);
    for (std::size_t block : {std::size_t(16), std::size_t(5)}) {
        const tq::nvfp4_quantizer q(block);
        for (int trial = 0; trial < 50; ++trial) {
            std::vector<float> x(777); // partial last block
            const int range = int(gen() % 40) - 20;
            for (auto& v : x) v = float(std::ldexp(d(gen), range + int(gen() % 24) - 12));
            if (trial % 10 == 3) x[100] = NAN;
            CHECK(nvfp4_mismatches(q, x) == 0);
            std::vector<float> out(x.size());
            q.quantize(std::span<float const>(x), std::span<float>(out));
            const auto back = q.decode(q.encode(std::span<float const>(x)));
            int wrong = 0;
            for (std::size_t i = 0; i < x.size(); ++i) wrong += !same(back[i], out[i]);
            CHECK(wrong == 0);
        }
    }
    const auto q = tq::nvfp4_quantizer::parse("nvfp4");
    std::vector<float> zeros(40, 0.0f), out(40);
    q.quantize(std::span<float const>(zeros), std::span<float>(out));
    CHECK(std::all_of(out.begin(), out.end(), [](float v) { return v == 0.0f; }));
    // a block far below the tensor's amax: its scale rounds to 0 and it is zero
    std::vector<float> wide(32, 1e-9f);
    wide[20] = 1e9f;
    CHECK(nvfp4_mismatches(q, wide) == 0);
    q.quantize(std::span<float const>(wide), std::span<float>(out.data(), 32));
    CHECK(out[0] == 0.0f);
    auto codes = q.encode(std::span<float const>(wide));
    // its element codes are Transformer Engine's: x times the encode scale FLT_MAX, saturated
    // at 6 (code 7), under the block scale code 0
    CHECK(codes.scales[0] == 0);
    CHECK(codes.elements[0] == 7);
    CHECK(codes.elements[20] == 7);
    CHECK(codes.scales[1] == 0x7e);
    codes.scales[0] = 0x80;
    CHECK_THROWS_AS(q.decode(codes), tq::format_error);
    codes.scales.pop_back();
    CHECK_THROWS_AS(q.decode(codes), tq::format_error);
    // double magnitudes beyond float's range: the scales see FLT_MAX, the elements saturate
    std::vector<double> huge{1e300, -1e300, 1.0, 0.0}, hq(4);
    q.quantize(std::span<double const>(huge), std::span<double>(hq));
    CHECK(std::all_of(hq.begin(), hq.end(), [](double v) { return std::isfinite(v); }));
    CHECK(hq[0] == -hq[1]);
    CHECK(hq[0] > 1e38);
    for (std::string s : {"nvfp4", "nvfp4,block=32", "nvfp4,stochastic"})
        CHECK(tq::nvfp4_quantizer::parse(s).to_string() == s);
    for (std::string s : {"nvfp4,block=0", "nvfp4,zero", "nvfp5"})
        CHECK_THROWS_AS(tq::nvfp4_quantizer::parse(s), tq::parse_error);
}

// ---- in scope maps ----------------------------------------------------------------------

TEST_CASE("nvfp4 contiguous lines in float lanes equal strided lines")
{
    // contiguous float lines take the float kernel, strided ones the general path; two
    // equal columns keep the tensor scale of one
    std::mt19937_64 gen(31);
    std::size_t checked = 0;
    for (std::size_t block : {std::size_t(16), std::size_t(5), std::size_t(32)}) {
        const tq::nvfp4_quantizer q(block);
        int wrong = 0;
        for (int trial = 0; trial < 300; ++trial) {
            // (every fifth tensor long enough for whole groups of blocks)
            auto x = whole_range_floats(gen, 1 + gen() % (trial % 5 == 0 ? 1200 : 200));
            if (trial % 3 == 0) // a tensor below 2688 / FLT_MAX: s_enc and r_b saturate
                for (auto& v : x)
                    if (std::isfinite(v) && v != 0) v = std::ldexp(v, -std::max(0, std::ilogb(v) + 130));
            std::vector<float> y(x.size()), wide(2 * x.size()), wy(2 * x.size());
            for (std::size_t i = 0; i < x.size(); ++i) wide[2 * i] = wide[2 * i + 1] = x[i];
            q.quantize(std::span<float const>(x), std::span<float>(y));
            tq::apply_options o;
            o.block_line = x.size();
            o.block_stride = 2;
            q.quantize_bulk(wide.data(), wy.data(), wide.size(), o);
            for (std::size_t i = 0; i < x.size(); ++i)
                if (!same_bits(y[i], wy[2 * i])) {
                    if (wrong++ < 3) MESSAGE(x[i] << ": contiguous " << y[i] << ", strided " << wy[2 * i]);
                }
            if (trial % 3 == 0) CHECK(nvfp4_mismatches(q, x) == 0);
            checked += x.size();
        }
        CHECK(wrong == 0);
    }
    MESSAGE("nvfp4 elements checked contiguous against strided: " << checked);
    // a given tensor amax far below the elements: every block scale saturates at 448 and
    // every element at 6
    const tq::nvfp4_quantizer q;
    std::vector<float> x(40, 1e10f), y(40);
    x[3] = -1e30f;
    q.quantize(std::span<float const>(x), std::span<float>(y), 0, 1e-30f);
    const float s_enc = tq::nvfp4_quantizer::tensor_scale(1e-30f);
    for (std::size_t i = 0; i < x.size(); ++i) CHECK(y[i] == std::copysign(6.0f * 448.0f * (1.0f / s_enc), x[i]));
}

TEST_CASE("block formats parse as quantizers and round-trip")
{
    std::size_t count = 0;
    tq::detail::for_each_type(tq::block_quantizer_registry{}, [&](auto type) {
        for (std::string_view spec : decltype(type)::type::examples) {
            CAPTURE(spec);
            const auto q = tq::parse_quantizer(spec, {1, 2});
            CHECK(std::holds_alternative<tq::user_quantizer>(q.get()));
            CHECK(q.to_string() == spec);
            CHECK(tq::parse_quantizer(q.to_string()).to_string() == spec);
            ++count;
        }
    });
    CHECK(count == 13);
    CHECK_THROWS_WITH_AS(tq::parse_quantizer("mxfp5"), doctest::Contains("mxfp8_e4m3"), tq::parse_error);
    CHECK_THROWS_WITH_AS(tq::parse_quantizer("mxfp4,block=0"), doctest::Contains("block size"), tq::parse_error);
    // apply over a span: one line, blocks of consecutive elements
    std::vector<float> x(100), a(100), b(100);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(double(i)) * double(i));
    tq::quantize(tq::parse_quantizer("mxfp6_e3m2"), std::span<float const>(x), std::span<float>(a));
    tq::block_quantizer::parse("mxfp6_e3m2").quantize(std::span<float const>(x), std::span<float>(b));
    CHECK(a == b);
}

TEST_CASE("block formats as weight and extrinsic quantizers of a network")
{
    std::mt19937_64 gen(3);
    std::normal_distribution<double> d(0, 1);
    nn::tensor2<float> w = nn::tensor2<float>::from_shape({40, 6}); // IN = 40: a block of 32 and one of 8
    nn::tensor1<float> bias = nn::tensor1<float>::from_shape({6});
    nn::tensor4<float> x = nn::tensor4<float>::from_shape({3, 1, 1, 40});
    for (auto& v : w) v = float(std::ldexp(d(gen), int(gen() % 8) - 4));
    for (auto& v : bias) v = float(d(gen));
    for (auto& v : x) v = float(d(gen));
    for (std::string spec : {"mxfp4", "mxint8", "nvfp4,block=8", "bfp,6,16"}) {
        CAPTURE(spec);
        nn::network net("T");
        net.add("fc", nn::dense_layer{w, bias});
        net.set_quantization({}, {{"T", "mxfp8_e4m3"}}, {{"T", spec}});
        const auto y = net.forward(x);
        // by hand: weights in blocks along IN (axis 0 of [IN, OUT]), the bias in one line,
        // the outputs in blocks along their channels
        const auto q = tq::parse_quantizer(spec);
        nn::tensor2<float> wq = w;
        nn::tensor1<float> bq = bias;
        tq::apply_options along_in;
        along_in.block_line = 40;
        along_in.block_stride = 6;
        tq::quantize_inplace(q, std::span<float>(wq.data(), wq.size()), along_in);
        tq::quantize_inplace(q, std::span<float>(bq.data(), bq.size()));
        nn::network plain("T");
        plain.add("fc", nn::dense_layer{wq, bq});
        auto want = plain.forward(x);
        tq::block_quantizer::parse("mxfp8_e4m3").quantize_inplace(want, 1); // [N, OUT]: along OUT
        CHECK(std::equal(y.begin(), y.end(), want.begin()));
        // and the weights really ran in columns: a column quantized alone is the same
        if (spec != "nvfp4,block=8") { // (nvfp4's tensor scale belongs to the whole matrix)
            const auto bq1 = tq::block_quantizer::parse(spec);
            std::vector<float> col(40), out(40);
            for (std::size_t i = 0; i < 40; ++i) col[i] = w(i, 2);
            bq1.quantize(std::span<float const>(col), std::span<float>(out));
            int wrong = 0;
            for (std::size_t i = 0; i < 40; ++i) wrong += out[i] != wq(i, 2);
            CHECK(wrong == 0);
        }
    }
    // a datapath's input and weights only (a block dot product, test_block_dot.cpp); a
    // single block string in the intrinsic map points to the datapath form
    nn::datapath path;
    CHECK_NOTHROW(path.set("input", "mxfp8_e4m3"));
    CHECK_THROWS_WITH_AS(path.set("accumulator", "mxfp8_e4m3"), doctest::Contains("block format"), tq::config_error);
    CHECK(tq::is_block_format(tq::parse_quantizer("nvfp4")));
    CHECK(!tq::is_block_format(tq::parse_quantizer("fp8_e4m3")));
    nn::network net("T");
    net.add("fc", nn::dense_layer{w, bias});
    CHECK_THROWS_WITH_AS(net.set_quantization({{"T", "mxfp4"}}, {}, {}), doctest::Contains("\"weights\": \"mxfp4\""),
                         tq::config_error);
    std::vector<float> odd(10);
    tq::apply_options o;
    o.block_line = 3;
    CHECK_THROWS_AS(tq::quantize_inplace(tq::parse_quantizer("mxfp4"), std::span<float>(odd), o), tq::shape_error);
}

TEST_CASE("block formats on the tape: the straight-through estimator passes the gradient")
{
    using dtape = tq::train::tape<double>;
    const auto q = tq::parse_quantizer("mxfp4");
    dtape t;
    xt::xarray<double> xv = xt::xarray<double>::from_shape({4, 40}); // a parameter [K = 4, 40]
    for (std::size_t i = 0; i < xv.size(); ++i) xv.data()[i] = std::sin(double(i) * 0.7) * double(i % 9);
    const auto x = t.leaf(xv, true);
    const auto y = tq::train::quantize(t, x, q, tq::train::ste::pass, 0, true);
    // forward: each column of 4 is a block
    for (std::size_t c = 0; c < 40; ++c) {
        std::vector<double> col(4), out(4);
        for (std::size_t k = 0; k < 4; ++k) col[k] = xv(k, c);
        tq::block_quantizer::parse("mxfp4").quantize(std::span<double const>(col), std::span<double>(out));
        for (std::size_t k = 0; k < 4; ++k) CHECK(t.value(y)(k, c) == out[k]);
    }
    xt::xarray<double> total = xt::xarray<double>::from_shape({1});
    total(0) = xt::sum(t.value(y))();
    const auto loss = t.record(std::move(total),
                               [y](dtape& tp, dtape::var o) {
                                   auto& g = tp.grad(y);
                                   for (std::size_t i = 0; i < g.size(); ++i) g.data()[i] += 3 * tp.grad(o)(0);
                               },
                               {y});
    t.backward(loss);
    CHECK(xt::all(xt::equal(t.grad(x), 3.0)));
}
