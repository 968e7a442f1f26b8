// The block dot product (nn/kernels/block_dot.hpp) of dense and conv2d under MX and BFP
// datapaths against a scalar reference written from the definition: each operand vector
// (a dense input row, a convolution patch gathered by index, a weight column) is
// block-quantized on its own, each block's sum of products is formed exactly in
// integers, and the accumulator's roundings are rational ones (Boost.Multiprecision).
#include "reference.hpp"

#include <tensorquant/nn.hpp>

#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace tq = tensorquant;
namespace nn = tensorquant::nn;
using tqtest::big;

namespace {

// Exact values as integers in units of 2^-unit_exp (every double product lies on it).
constexpr int unit_exp = 1200;

big exact_units(double v)
{
    if (v == 0) return 0;
    const auto e = tqtest::exact(v);
    return e.mant << (e.exp + unit_exp);
}

// z 2^-unit_exp rounded to nearest even into a float format of M mantissa bits and
// exponents [e_min, e_max], overflowing to infinity (IEEE 754 addition's rule).
double round_float_format(big const& z, int M, int e_min, int e_max)
{
    if (z == 0) return 0.0;
    const bool negative = z < 0;
    const big a = negative ? big(-z) : z;
    const int lead = int(boost::multiprecision::msb(a)) - unit_exp;
    const int q = std::max(lead, e_min) - M; // exponent of the last place
    const int shift = q + unit_exp;
    big t = a >> shift;
    const big rem = a - (t << shift), half = big(1) << (shift - 1);
    if (rem > half || (rem == half && (t & 1) != 0)) ++t;
    const double y = std::ldexp(double(t), q);
    const double r = y >= std::ldexp(1.0, e_max + 1) ? HUGE_VAL : y;
    return negative ? -r : r;
}

// The accumulator's rounding of an exact value: fp32, bf16, or a fixed-point format.
struct accumulator_ref
{
    std::string spec; // as the datapath names it ("" for the default, FP32)
    int M = 23, e_min = -126, e_max = 127;
    std::optional<tq::fixed_point_rt> fixed;
    tq::rng_key key{}; // a stochastic accumulator's

    // z rounded (a stochastic fixed point with the threshold at stream position index); an
    // overflow to infinity sets infinity (which then absorbs every finite sum)
    big round(big const& z, double& infinity, std::uint64_t index = 0) const
    {
        if (!fixed) {
            const double y = round_float_format(z, M, e_min, e_max);
            if (std::isinf(y)) infinity = y;
            return std::isinf(y) ? big(0) : exact_units(y);
        }
        const auto f = fixed->format();
        // the threshold u = bits 2^-32 of the accumulator's stream
        const auto bits = std::uint64_t(tq::detail::uniform_at<double>(key, index) * 0x1p32);
        const big q = tqtest::limit_ref(
            fixed->overflow(), f, tqtest::round_rational(fixed->rounding(), z << f.frac, big(1) << unit_exp, bits, 32));
        return q << (unit_exp - f.frac);
    }
    float value(big const& s) const // s is a value of the format
    {
        if (s == 0) return 0.0f;
        const int e = int(boost::multiprecision::msb(s < 0 ? big(-s) : s));
        const int drop = std::max(0, e - 60); // keep 61 bits: exact for every format here
        return float(std::ldexp(double(s >> drop), drop - unit_exp));
    }
};

accumulator_ref fp32() { return {}; }
accumulator_ref bf16() { return {"minifloat,8,7", 7, -126, 127, std::nullopt}; }
accumulator_ref fixed_acc(std::string const& s, tq::rng_key key = {})
{
    accumulator_ref r;
    r.spec = s;
    r.fixed = std::get<tq::fixed_point_rt>(tq::parse_quantizer(s).get());
    r.key = key;
    return r;
}

// The block values of one operand vector.
std::vector<float> block_quantized(std::string const& format, std::vector<float> v)
{
    tq::block_quantizer::parse(format).quantize_inplace(std::span<float>(v));
    return v;
}

// One output: the blocks of a and w (block values), accumulated as the definition says.
// (Output column j of `columns` in row `row`: its block b draws a stochastic accumulator's
// threshold at (row B + b) columns + j, B the blocks of a row.)
float reference_dot(std::vector<float> const& a, std::vector<float> const& w, float bias, std::size_t k,
                    accumulator_ref const& acc, std::size_t row = 0, std::size_t j = 0, std::size_t columns = 1)
{
    big s = 0;
    bool nan = false;
    double infinity = 0; // the accumulator overflowed to it
    const std::size_t blocks = (a.size() + k - 1) / k;
    for (std::size_t first = 0; first < a.size(); first += k) {
        big d = 0;
        for (std::size_t i = first; i < std::min(a.size(), first + k); ++i) {
            nan = nan || std::isnan(a[i]) || std::isnan(w[i]);
            if (!nan) d += exact_units(double(a[i]) * double(w[i])); // a float product is exact in double
        }
        if (!nan && infinity == 0) s = acc.round(s + d, infinity, (row * blocks + first / k) * columns + j);
    }
    if (nan) return std::numeric_limits<float>::quiet_NaN();
    if (infinity == 0) s = acc.round(s + acc.round(exact_units(bias), infinity), infinity);
    return infinity != 0 ? float(infinity) : acc.value(s);
}

nn::datapath block_path(std::string const& format, accumulator_ref const& acc, std::string const& weights = "")
{
    nn::datapath d;
    d.set("input", format);
    d.set("weights", weights.empty() ? format : weights);
    if (!acc.spec.empty()) d.set("accumulator", acc.spec, acc.key);
    return d;
}

// Values over a wide range of magnitudes, so that blocks get very different scales.
float random_value(std::mt19937_64& gen)
{
    std::uniform_real_distribution<double> m(-1, 1);
    std::uniform_int_distribution<int> e(-24, 24);
    return float(std::ldexp(m(gen), e(gen)));
}

int mismatches(std::vector<float> const& expected, nn::tensor4<float> const& y)
{
    int wrong = 0;
    for (std::size_t i = 0; i < expected.size(); ++i)
        if (!tqtest::same_bits(expected[i], y.data()[i])) {
            if (wrong < 5) MESSAGE("element " << i << ": reference " << expected[i] << ", kernel " << y.data()[i]);
            ++wrong;
        }
    return wrong;
}

// mxfp8_e5m2: block sums of 69 bits, the exact pair of doubles (block_dot.hpp)
const std::vector<std::string> block_formats{"mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3",    "mxfp4",
                                             "mxint8",     "bfp,8,16",   "bfp,4,8",    "mxfp4,block=16"};

std::size_t block_of(std::string const& format) { return tq::block_quantizer::parse(format).block(); }

// Mismatches of a random dense layer of n rows, in inputs and out outputs against the
// reference; outputs counts them.
int dense_mismatches(std::mt19937_64& gen, std::string const& input, std::string const& weights,
                     accumulator_ref const& acc, std::size_t n, std::size_t in, std::size_t out, std::size_t& outputs)
{
    nn::tensor2<float> x = nn::tensor2<float>::from_shape({n, in}), w = nn::tensor2<float>::from_shape({in, out});
    nn::tensor1<float> b = nn::tensor1<float>::from_shape({out});
    for (auto& v : x) v = random_value(gen);
    for (auto& v : w) v = random_value(gen);
    for (auto& v : b) v = random_value(gen);
    const auto y = nn::dense_datapath(x, w, b, block_path(input, acc, weights));
    std::vector<float> expected;
    for (std::size_t r = 0; r < n; ++r) {
        const auto a = block_quantized(input, std::vector<float>(&x(r, 0), &x(r, 0) + in));
        for (std::size_t j = 0; j < out; ++j) {
            std::vector<float> column(in);
            for (std::size_t i = 0; i < in; ++i) column[i] = w(i, j);
            expected.push_back(
                reference_dot(a, block_quantized(weights, column), b(j), block_of(input), acc, r, j, out));
        }
    }
    outputs += expected.size();
    return mismatches(expected, y);
}

} // namespace

TEST_CASE("dense block dot products equal the scalar reference")
{
    std::mt19937_64 gen(7);
    std::size_t outputs = 0;
    for (auto const& acc : {fp32(), bf16(), fixed_acc("nearest,24,10"), fixed_acc("zero,20,6,wrap")})
        for (auto const& format : block_formats)
            for (std::size_t in : {5, 32, 70}) {
                CAPTURE(format);
                CAPTURE(acc.spec);
                CAPTURE(in);
                CHECK(dense_mismatches(gen, format, format, acc, 3, in, 11, outputs) == 0);
            }
    MESSAGE(outputs << " dense outputs");
}

TEST_CASE("dense block dot products of two element formats equal the scalar reference")
{
    std::mt19937_64 gen(13);
    struct pair
    {
        std::string input, weights;
    };
    std::size_t outputs = 0;
    for (auto const& acc : {fp32(), bf16(), fixed_acc("nearest,24,10"), fixed_acc("zero,20,6,wrap")})
        for (auto const& formats : {pair{"mxfp8_e4m3", "mxfp8_e5m2"}, pair{"mxfp8_e5m2", "mxfp4"},
                                    pair{"mxint8", "mxfp8_e5m2"}, pair{"mxfp6_e2m3", "mxfp8_e4m3"}})
            for (std::size_t in : {7, 64, 97}) {
                CAPTURE(formats.input); // not a structured binding: clang 14 cannot capture those
                CAPTURE(formats.weights);
                CAPTURE(acc.spec);
                CAPTURE(in);
                // 9 rows: the kernel's 8-row and single-row paths
                CHECK(dense_mismatches(gen, formats.input, formats.weights, acc, 9, in, 5, outputs) == 0);
            }
    MESSAGE(outputs << " dense outputs of mixed formats");
}

TEST_CASE("conv2d block dot products equal the scalar reference")
{
    std::mt19937_64 gen(11);
    struct geometry
    {
        int stride, groups;
        bool same;
    };
    std::size_t outputs = 0;
    for (auto const& acc : {fp32(), fixed_acc("nearest,24,10")})
        for (auto const& format :
             {std::string("mxfp8_e4m3"), std::string("mxfp8_e5m2"), std::string("mxfp4"), std::string("bfp,6,8")})
            for (auto const geo :
                 {geometry{1, 1, false}, geometry{2, 1, false}, geometry{1, 2, false}, geometry{1, 1, true}}) {
                CAPTURE(format);
                CAPTURE(geo.stride);
                CAPTURE(geo.groups);
                CAPTURE(geo.same);
                const std::size_t n = 2, h = 7, c = 4, kh = 3, oc = 6, cg = c / std::size_t(geo.groups);
                auto x = nn::tensor4<float>::from_shape({n, h, h, c});
                auto w = nn::tensor4<float>::from_shape({kh, kh, cg, oc});
                auto b = nn::tensor1<float>::from_shape({oc});
                for (auto& v : x) v = random_value(gen);
                for (auto& v : w) v = random_value(gen);
                for (auto& v : b) v = random_value(gen);
                nn::window_options o;
                o.stride = {geo.stride, geo.stride};
                o.groups = geo.groups;
                if (geo.same) o.padding = nn::padding_mode::same;
                const auto y = nn::conv2d_datapath(x, w, b, o, block_path(format, acc));
                const std::size_t pad = geo.same ? 1 : 0, s = std::size_t(geo.stride);
                const std::size_t oh = geo.same ? h : (h - kh) / s + 1, ocg = oc / std::size_t(geo.groups);
                REQUIRE(y.shape(1) == oh);
                std::vector<float> expected;
                for (std::size_t img = 0; img < n; ++img)
                    for (std::size_t oy = 0; oy < oh; ++oy)
                        for (std::size_t ox = 0; ox < oh; ++ox)
                            for (std::size_t o_c = 0; o_c < oc; ++o_c) {
                                const std::size_t grp = o_c / ocg;
                                std::vector<float> patch, column;
                                for (std::size_t i = 0; i < kh; ++i)
                                    for (std::size_t j = 0; j < kh; ++j)
                                        for (std::size_t ic = 0; ic < cg; ++ic) {
                                            const auto iy = std::ptrdiff_t(oy * s + i) - std::ptrdiff_t(pad);
                                            const auto ix = std::ptrdiff_t(ox * s + j) - std::ptrdiff_t(pad);
                                            const bool inside =
                                                iy >= 0 && ix >= 0 && iy < std::ptrdiff_t(h) && ix < std::ptrdiff_t(h);
                                            patch.push_back(
                                                inside ? x(img, std::size_t(iy), std::size_t(ix), grp * cg + ic)
                                                       : 0.0f);
                                            column.push_back(w(i, j, ic, o_c));
                                        }
                                expected.push_back(reference_dot(block_quantized(format, patch),
                                                                 block_quantized(format, column), b(o_c),
                                                                 block_of(format), acc));
                            }
                CHECK(mismatches(expected, y) == 0);
                outputs += expected.size();
            }
    MESSAGE(outputs << " conv2d outputs");
}

TEST_CASE("block dot products of special blocks")
{
    const std::size_t in = 64, out = 3;
    nn::tensor2<float> x = nn::tensor2<float>::from_shape({5, in}), w = nn::tensor2<float>::from_shape({in, out});
    nn::tensor1<float> b = {0.5f, -0.25f, 0.0f};
    std::mt19937_64 gen(3);
    for (auto& v : w) v = random_value(gen);
    for (auto& v : x) v = 0.0f; // row 0: zero blocks
    for (std::size_t i = 0; i < in; ++i) x(1, i) = random_value(gen);
    x(1, 40) = std::numeric_limits<float>::quiet_NaN(); // row 1: a NaN in the second block
    x(2, 3) = 3e38f;                                    // row 2: one huge value, the rest zero
    for (std::size_t i = 0; i < in; ++i) x(3, i) = std::ldexp(1.0f, -140) * float(i % 7); // subnormal inputs
    for (std::size_t i = 0; i < in; ++i) x(4, i) = std::ldexp(1.0f, -149) * float(i % 3); // the smallest floats
    const std::vector<std::string> formats{"mxfp8_e4m3", "mxfp8_e5m2"};
    SUBCASE("a zero block adds nothing: the bias")
    {
        for (auto const& format : formats) {
            const auto y = nn::dense_datapath(x, w, b, block_path(format, fp32()));
            for (std::size_t j = 0; j < out; ++j) CHECK(y(0, 0, 0, j) == b(j));
        }
    }
    SUBCASE("a NaN makes its block's scale NaN and so the row's outputs")
    {
        for (auto const& format : formats) {
            const auto y = nn::dense_datapath(x, w, b, block_path(format, fp32()));
            for (std::size_t j = 0; j < out; ++j) CHECK(std::isnan(y(1, 0, 0, j)));
        }
    }
    SUBCASE("the huge value and the tiny ones give the reference's results")
    {
        // FP32 overflows to infinity; a fixed-point accumulator saturates, or wraps to a
        // multiple of 2^W; the tiny sums round as the exact ones
        for (auto const& format : formats)
            for (auto const& acc : {fp32(), fixed_acc("nearest,24,10"), fixed_acc("zero,20,6,wrap")}) {
                const auto y = nn::dense_datapath(x, w, b, block_path(format, acc));
                for (std::size_t r : {2, 3, 4})
                    for (std::size_t j = 0; j < out; ++j) {
                        std::vector<float> column(in);
                        for (std::size_t i = 0; i < in; ++i) column[i] = w(i, j);
                        const auto a = block_quantized(format, std::vector<float>(&x(r, 0), &x(r, 0) + in));
                        const float expected = reference_dot(a, block_quantized(format, column), b(j), 32, acc);
                        CAPTURE(format);
                        CAPTURE(acc.spec);
                        CAPTURE(r);
                        CAPTURE(j);
                        CHECK(tqtest::same_bits(y(r, 0, 0, j), expected));
                    }
            }
    }
}

TEST_CASE("E5M2 block sums beyond 53 bits round as the exact sums")
{
    // Each block sums 2^30 + 2^6 +- 2^-32 (column 0) or 2^10 + 2^-11 +- 2^-52 (column 1):
    // 63 bits, and a tie of FP32 (2^6 is half its last place at 2^30) or of 10 fractional
    // bits that only the smallest product breaks (E5M2 elements from 2^15 down to 2^-16).
    nn::tensor2<float> x = nn::tensor2<float>::from_shape({2, 3}), w = nn::tensor2<float>::from_shape({3, 2});
    for (std::size_t r = 0; r < 2; ++r) {
        x(r, 0) = x(r, 1) = 1.0f;
        x(r, 2) = r == 0 ? 0x1p-31f : -0x1p-31f;
    }
    const float column0[] = {0x1p30f, 0x1p6f, 0x1p-1f}, column1[] = {0x1p10f, 0x1p-11f, 0x1p-21f};
    for (std::size_t i = 0; i < 3; ++i) {
        w(i, 0) = column0[i];
        w(i, 1) = column1[i];
    }
    const nn::tensor1<float> no_bias;
    for (auto const& acc : {fp32(), fixed_acc("nearest,24,10"), fixed_acc("nearest_even,24,10"),
                            fixed_acc("down,24,10"), fixed_acc("zero,20,6,wrap")}) {
        CAPTURE(acc.spec);
        const auto y = nn::dense_datapath(x, w, no_bias, block_path("mxfp8_e5m2", acc));
        std::vector<float> expected;
        for (std::size_t r = 0; r < 2; ++r)
            for (std::size_t j = 0; j < 2; ++j) {
                const auto a = block_quantized("mxfp8_e5m2", std::vector<float>(&x(r, 0), &x(r, 0) + 3));
                const auto c = block_quantized("mxfp8_e5m2", {w(0, j), w(1, j), w(2, j)});
                REQUIRE(a[2] == x(r, 2)); // the products are the ones intended
                REQUIRE(c[2] == w(2, j));
                expected.push_back(reference_dot(a, c, 0.0f, 32, acc));
            }
        CHECK(mismatches(expected, y) == 0);
        if (acc.spec.empty()) {
            CHECK(y(0, 0, 0, 0) == 0x1p30f + 0x1p7f); // the tie broken upwards
            CHECK(y(1, 0, 0, 0) == 0x1p30f);
        }
        if (acc.spec == "nearest,24,10") {
            CHECK(y(0, 0, 0, 1) == 0x1p10f + 0x1p-10f);
            CHECK(y(1, 0, 0, 1) == 0x1p10f); // below the tie
        }
    }
}

TEST_CASE("stochastic fixed-point accumulators round block sums at their stream positions")
{
    // A stochastic accumulator draws the threshold of block b of output (row, j) at
    // (row B + b) N + j: block sums that fit a double (E4M3, MXFP4) and the exact pairs of
    // E5M2 alike, saturating and wrapping. No bias: its rounding draws elsewhere.
    std::mt19937_64 gen(23);
    std::size_t outputs = 0;
    for (std::string spec : {"stochastic,24,10", "stochastic,16,4", "stochastic,20,6,wrap"})
        for (auto const& format : {std::string("mxfp8_e4m3"), std::string("mxfp8_e5m2"), std::string("mxfp4")})
            for (std::size_t in : {5, 32, 70}) {
                CAPTURE(spec);
                CAPTURE(format);
                CAPTURE(in);
                const auto acc = fixed_acc(spec, {11, std::uint64_t(in)});
                const std::size_t n = 9, out = 11; // the 8-row and single-row paths
                nn::tensor2<float> x = nn::tensor2<float>::from_shape({n, in}),
                                   w = nn::tensor2<float>::from_shape({in, out});
                // sums mostly inside the formats' ranges, with bits below their last places;
                // a few large values saturate or wrap
                std::uniform_real_distribution<double> m(-1, 1);
                std::uniform_int_distribution<int> e(-12, -2); // MXFP4 products then below 2^-10
                auto value = [&] { return float(std::ldexp(m(gen), e(gen) + (gen() % 16 == 0 ? 10 : 0))); };
                for (auto& v : x) v = value();
                for (auto& v : w) v = value();
                const auto y = nn::dense_datapath(x, w, nn::tensor1<float>{}, block_path(format, acc));
                std::vector<float> expected, deterministic;
                for (std::size_t r = 0; r < n; ++r) {
                    const auto a = block_quantized(format, std::vector<float>(&x(r, 0), &x(r, 0) + in));
                    for (std::size_t j = 0; j < out; ++j) {
                        std::vector<float> column(in);
                        for (std::size_t i = 0; i < in; ++i) column[i] = w(i, j);
                        const auto c = block_quantized(format, column);
                        expected.push_back(reference_dot(a, c, 0.0f, 32, acc, r, j, out));
                        deterministic.push_back(reference_dot(a, c, 0.0f, 32, fixed_acc("down,24,10")));
                    }
                }
                CHECK(mismatches(expected, y) == 0);
                CHECK(expected != deterministic); // the thresholds matter: some sums rounded up
                outputs += expected.size();
            }
    MESSAGE(outputs << " outputs of stochastic accumulators");
    // the same threshold decides a tie of a wide sum: 2^10 + 2^-11 + 2^-52 in 10 fractional
    // bits is 2^-1 + 2^-42 units above 2^10, rounded up for thresholds below that
    nn::tensor2<float> x = nn::tensor2<float>::from_shape({1, 3}), w = nn::tensor2<float>::from_shape({3, 64});
    x(0, 0) = x(0, 1) = 1.0f;
    x(0, 2) = 0x1p-31f;
    for (std::size_t j = 0; j < 64; ++j) {
        w(0, j) = 0x1p10f;
        w(1, j) = 0x1p-11f;
        w(2, j) = 0x1p-21f;
    }
    const auto acc = fixed_acc("stochastic,24,10", {5, 6});
    const auto y = nn::dense_datapath(x, w, nn::tensor1<float>{}, block_path("mxfp8_e5m2", acc));
    int up = 0;
    for (std::size_t j = 0; j < 64; ++j) {
        const double u = tq::detail::uniform_at<double>(acc.key, j);
        const float expected = u < 0.5 + 0x1p-42 ? 0x1p10f + 0x1p-10f : 0x1p10f;
        CHECK(y(0, 0, 0, j) == expected);
        up += y(0, 0, 0, j) != 0x1p10f;
    }
    CHECK(up > 16); // about half of 64
    CHECK(up < 48);
}

TEST_CASE("block datapaths that cannot run are refused with the reason")
{
    nn::tensor2<float> x = nn::tensor2<float>::from_shape({1, 32}), w = nn::tensor2<float>::from_shape({32, 2});
    x.fill(1.0f);
    w.fill(1.0f);
    const nn::tensor1<float> b;
    auto refused = [&](nn::datapath const& d, std::string const& why) {
        CAPTURE(why);
        try {
            (void)nn::dense_datapath(x, w, b, d);
            FAIL("accepted " << d.to_string());
        } catch (tq::format_error const& e) {
            CHECK(std::string(e.what()).find(why) != std::string::npos);
        }
    };
    refused(block_path("mxfp4", fp32(), "mxfp4,block=16"), "differ");
    refused(block_path("nvfp4", fp32()), "power-of-two block scales");
    nn::datapath half;
    half.set("input", "mxfp8_e4m3");
    half.set("weights", "fp8_e4m3");
    refused(half, "as both input and weights");
    nn::datapath with_product = block_path("mxfp4", fp32());
    with_product.set("product", "fp16");
    refused(with_product, "no product format");
    refused(block_path("mxfp4", fixed_acc("nearest,60,20")), "at most 52");
    nn::datapath d;
    CHECK_THROWS_AS(d.set("accumulator", "mxfp8_e4m3"), tq::config_error);
    CHECK_THROWS_AS(d.set("output", "mxint8"), tq::config_error);
}

TEST_CASE("an MX datapath in the intrinsic map runs LeNet-5 and keeps each layer's streams")
{
    auto net = nn::lenet5(1);
    auto x = nn::tensor4<float>::from_shape({2, 28, 28, 1});
    std::mt19937_64 gen(5);
    std::uniform_real_distribution<float> u(0, 1);
    for (auto& v : x) v = u(gen);
    const auto reference = net.forward(x);
    net.set_quantization(
        nn::scope_map::from_json(R"({"LeNet": {"input": "mxfp8_e4m3", "weights": "mxfp8_e4m3"}})", "test map"), {}, {});
    const auto y = net.forward(x);
    REQUIRE(y.shape() == reference.shape());
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
        diff += std::fabs(double(y.data()[i]) - double(reference.data()[i]));
        norm += std::fabs(double(reference.data()[i]));
    }
    CHECK(diff > 0);            // rounded
    CHECK(diff < 0.3 * norm);   // but close (an untrained network: 12%)
    CHECK(net.forward(x) == y); // deterministic

    nn::datapath d;
    d.set("input", "mxfp4,stochastic", {1, 2});
    d.set("weights", "mxfp4,stochastic", {1, 2});
    const auto a = d.rekeyed([](tq::rng_key k) { return tq::rng_key{k.seed, k.stream + 1}; });
    const auto c = d.rekeyed([](tq::rng_key k) { return tq::rng_key{k.seed, k.stream + 2}; });
    std::vector<float> v(256, 0.3f), va = v, vc = v;
    tq::quantize_inplace(*a[nn::datapath_role::input], std::span<float>(va));
    tq::quantize_inplace(*c[nn::datapath_role::input], std::span<float>(vc));
    CHECK(va != vc); // other keys, other roundings
}
