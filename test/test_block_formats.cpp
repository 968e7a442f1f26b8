// Block-scaled formats (quantizers/block.hpp) against an exact reference written from the
// OCP MX v1.0 definitions: the element grids listed from E, M and the bias (or the integer
// width), the shared exponent found by comparing with powers of two, and the rounding done
// in rationals (Boost.Multiprecision), ties to the even code, saturation at the largest
// magnitude.
#include <tensorquant/quantizers/block.hpp>
#include <tensorquant/xtensor.hpp>

#include <doctest/doctest.h>

#include <boost/multiprecision/cpp_int.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace tq = tensorquant;
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
            checked += values.size();
        }
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
