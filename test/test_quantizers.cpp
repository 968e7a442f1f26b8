#include "reference.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <span>
#include <sstream>
#include <vector>

namespace tq = tensorquant;
using tqtest::big;

namespace {
template <class T, class Q>
std::vector<T> bulk(Q const& q, std::vector<T> const& x)
{
    std::vector<T> y(x.size());
    tq::quantize(q, std::span<T const>(x), std::span<T>(y));
    return y;
}
using tqtest::same_bits;
} // namespace

TEST_CASE_TEMPLATE("binary ternary sparse and identity", T, float, double)
{
    std::mt19937 g(1);
    std::normal_distribution<double> d(0, 1);
    std::vector<T> x(1001);
    for (auto& v : x) v = T(d(g));
    x[5] = T(0);
    x[6] = T(-0.0);

    SUBCASE("binary with fixed magnitude")
    {
        auto y = bulk(tq::binary(0.5), x);
        for (std::size_t i = 0; i < x.size(); ++i) CHECK(y[i] == (x[i] < 0 ? T(-0.5) : T(0.5)));
    }
    SUBCASE("binary with mean magnitude")
    {
        double ref = 0;
        for (T v : x) ref += std::fabs(double(v));
        ref /= double(x.size());
        auto y = bulk(tq::binary_mean{}, x);
        CHECK(double(y[0] < 0 ? -y[0] : y[0]) == doctest::Approx(ref).epsilon(1e-6));
        const T m = std::fabs(y[0]);
        for (std::size_t i = 0; i < x.size(); ++i) CHECK(y[i] == (x[i] < 0 ? -m : m));
    }
    SUBCASE("ternary fixed")
    {
        auto y = bulk(tq::ternary(0.4, 2.0), x);
        for (std::size_t i = 0; i < x.size(); ++i)
            CHECK(y[i] == (x[i] > T(0.4) ? T(2) : (x[i] < T(-0.4) ? T(-2) : T(0))));
    }
    SUBCASE("ternary TWN")
    {
        double mean = 0;
        for (T v : x) mean += std::fabs(double(v));
        mean /= double(x.size());
        const T thr = T(0.7 * mean);
        double alpha = 0;
        int n = 0;
        for (T v : x)
            if (std::fabs(v) > thr) alpha += std::fabs(double(v)), ++n;
        alpha /= n;
        auto y = bulk(tq::ternary_twn{}, x);
        for (std::size_t i = 0; i < x.size(); ++i) {
            if (std::fabs(x[i]) > thr * T(1.0001))
                CHECK(std::fabs(double(y[i])) == doctest::Approx(alpha).epsilon(1e-6));
            if (std::fabs(x[i]) < thr * T(0.9999)) CHECK(y[i] == T(0));
            if (y[i] != 0) CHECK(std::signbit(y[i]) == std::signbit(x[i]));
        }
    }
    SUBCASE("sparse")
    {
        auto y = bulk(tq::sparse(0.3), x);
        for (std::size_t i = 0; i < x.size(); ++i) CHECK(y[i] == (std::fabs(x[i]) > T(0.3) ? x[i] : T(0)));
        CHECK(!std::signbit(y[6]));
    }
    SUBCASE("identity") { CHECK(bulk(tq::identity{}, x) == x); }
    SUBCASE("stochastic binary: P(+1) is clip((x+1)/2)")
    {
        const tq::binary_stochastic q(1.0, {5, 6});
        for (double p : {0.1, 0.5, 0.8}) {
            std::vector<T> c(200000, T(2 * p - 1));
            auto y = bulk(q, c);
            const double ups = double(std::count(y.begin(), y.end(), T(1)));
            const double n = double(c.size());
            CHECK(std::fabs(ups - n * p) < 5 * std::sqrt(n * p * (1 - p)));
        }
        CHECK(bulk(q, std::vector<T>(100, T(1)))[7] == T(1));   // certain
        CHECK(bulk(q, std::vector<T>(100, T(-1)))[7] == T(-1)); // never
    }
}

TEST_CASE_TEMPLATE("logarithmic equals the exact reference", T, float, double)
{
    using L = std::numeric_limits<T>;
    // reference: e = floor(log2|x|), or round(log2|x|) decided by x^2 >= 2^(2e+1) exactly
    auto ref = [](tq::log_rounding r, int e_min, int e_max, T x) -> T {
        if (x == 0) return x;
        int e;
        std::frexp(x, &e);
        e -= 1;
        if (r == tq::log_rounding::nearest) {
            auto v = tqtest::exact(std::fabs(x)); // |x| = mant 2^exp
            const int lhs_shift = 2 * v.exp - (2 * e + 1);
            big lhs = v.mant * v.mant, rhs = 1;
            if (lhs_shift >= 0)
                lhs <<= lhs_shift;
            else
                rhs <<= -lhs_shift;
            if (lhs >= rhs) ++e;
        }
        if (e < e_min) return std::copysign(T(0), x);
        if (e > e_max) e = e_max;
        return std::copysign(std::ldexp(T(1), e), x);
    };
    std::vector<T> x;
    std::mt19937_64 g(8);
    const T sqrt2 = std::sqrt(T(2));
    for (int e = L::min_exponent - 3; e < L::max_exponent; ++e)
        for (T m : {T(1), std::nextafter(sqrt2, T(0)), sqrt2, std::nextafter(sqrt2, T(2)), T(1.5),
                    std::nextafter(T(2), T(0))}) {
            x.push_back(std::ldexp(m, e));
            x.push_back(-std::ldexp(m, e));
        }
    std::uniform_real_distribution<double> mant(1, 2);
    std::uniform_int_distribution<int> ex(L::min_exponent - 30, L::max_exponent - 1);
    for (int i = 0; i < 200000; ++i) x.push_back(T(std::ldexp(mant(g), ex(g))) * (i % 2 ? T(1) : T(-1)));
    x.push_back(L::denorm_min());
    x.push_back(T(0));
    x.push_back(T(-0.0));
    for (auto r : {tq::log_rounding::floor, tq::log_rounding::nearest})
        for (auto [lo, hi] : {std::pair{L::min_exponent, L::max_exponent - 1}, std::pair{-8, 0}, std::pair{-3, 7}}) {
            const tq::logarithmic q(r, lo, hi);
            const auto y = bulk(q, x);
            std::size_t bad = 0;
            for (std::size_t i = 0; i < x.size(); ++i)
                if (!same_bits(y[i], ref(r, lo, hi, x[i])) && bad++ == 0)
                    FAIL_CHECK("x=" << x[i] << " got " << y[i] << " expected " << ref(r, lo, hi, x[i]));
            CHECK(bad == 0);
        }
    SUBCASE("default bounds cover the normal range of T")
    {
        CHECK(tq::logarithmic{}(L::max()) == std::ldexp(T(1), L::max_exponent - 1));
        CHECK(tq::logarithmic{}(T(0.75)) == T(0.5));
        CHECK(tq::logarithmic(tq::log_rounding::nearest)(T(0.75)) == T(1));
        CHECK(tq::logarithmic(tq::log_rounding::nearest)(T(0.7)) == T(0.5));
    }
    SUBCASE("bad exponent ranges")
    {
        CHECK_THROWS_WITH_AS(tq::logarithmic(tq::log_rounding::floor, 3, 1), doctest::Contains("above e_max"),
                             tq::format_error);
        CHECK_THROWS_WITH_AS(tq::logarithmic(tq::log_rounding::floor, -2000, 0)(T(1)),
                             doctest::Contains("must lie within"), tq::format_error);
    }
}

namespace {
// All non-negative finite values of a minifloat format, in code order.
std::vector<double> minifloat_values(tq::minifloat_format f)
{
    std::vector<double> v;
    const int M = f.mantissa_bits, top_field = (1 << f.exponent_bits) - 1;
    for (int ef = 0; ef <= top_field; ++ef)
        for (int mf = 0; mf < (1 << M); ++mf) {
            if (f.ieee_specials && ef == top_field) continue;
            if (!f.ieee_specials && ef == top_field && mf == (1 << M) - 1) continue; // NaN code
            if (ef == 0)
                v.push_back(std::ldexp(double(mf), f.min_exponent() - M));
            else
                v.push_back(std::ldexp(double((1 << M) + mf), ef - f.bias - M));
        }
    return v;
}

template <class T>
T minifloat_ref(std::vector<double> const& vals, tq::minifloat const& q, T x, double u)
{
    if (std::isnan(x)) return x;
    const double a = std::fabs(double(x));
    const double max = vals.back();
    const double ulp_max = std::ldexp(1.0, q.format.max_exponent() - q.format.mantissa_bits);
    const T over =
        q.overflow == tq::minifloat_overflow::saturate
            ? T(max)
            : (q.format.ieee_specials ? std::numeric_limits<T>::infinity() : std::numeric_limits<T>::quiet_NaN());
    double r;
    if (std::isinf(a) || a >= max + ulp_max) return std::copysign(over, x);
    auto it = std::upper_bound(vals.begin(), vals.end(), a);
    const std::size_t k = std::size_t(it - vals.begin()) - 1; // vals[k] <= a
    const double lo = vals[k], hi = k + 1 < vals.size() ? vals[k + 1] : max + ulp_max;
    if (a == lo)
        r = lo;
    else {
        switch (q.rounding) {
        case tq::rounding_mode::zero:
            r = lo;
            break;
        case tq::rounding_mode::nearest:
            r = 2 * a >= lo + hi ? hi : lo;
            break;
        case tq::rounding_mode::stochastic:
            r = (a - lo) > u * (hi - lo) ? hi : lo;
            break;
        default:
            r = 2 * a > lo + hi ? hi : (2 * a < lo + hi ? lo : (k % 2 == 0 ? lo : hi));
            break;
        }
    }
    if (r > max) return std::copysign(over, x);
    if (!q.format.subnormals && r < std::ldexp(1.0, q.format.min_exponent())) r = 0;
    return std::copysign(T(r), x);
}

template <class T>
void check_minifloat(tq::minifloat const& q, std::size_t random_count)
{
    const auto vals = minifloat_values(q.format);
    std::vector<T> x;
    for (std::size_t k = 0; k + 1 < vals.size(); ++k) {
        const T lo = T(vals[k]), mid = T((vals[k] + vals[k + 1]) / 2), q1 = T(vals[k] + (vals[k + 1] - vals[k]) / 4);
        for (T v : {lo, mid, std::nextafter(mid, T(0)), std::nextafter(mid, T(1e30)), q1}) {
            x.push_back(v);
            x.push_back(-v);
        }
    }
    const double max = vals.back(), ulp_max = std::ldexp(1.0, q.format.max_exponent() - q.format.mantissa_bits);
    for (double v : {max, max + ulp_max / 2, max + ulp_max / 4, max + ulp_max, 2 * max, 1e300})
        if (v < double(std::numeric_limits<T>::max())) x.push_back(T(v));
    x.push_back(std::numeric_limits<T>::denorm_min());
    x.push_back(std::numeric_limits<T>::infinity());
    x.push_back(-std::numeric_limits<T>::infinity());
    x.push_back(std::numeric_limits<T>::quiet_NaN());
    std::mt19937_64 g(11);
    std::uniform_real_distribution<double> m(1, 2);
    std::uniform_int_distribution<int> e(q.format.min_exponent() - q.format.mantissa_bits - 2,
                                         q.format.max_exponent() + 1);
    for (std::size_t i = 0; i < random_count; ++i) x.push_back(T(std::ldexp(m(g), e(g))) * (i % 2 ? T(1) : T(-1)));
    const auto y = bulk(q, x);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double u = double(tq::detail::uniform_at<T>(q.key, i));
        const T r = minifloat_ref<T>(vals, q, x[i], u);
        if (!same_bits(y[i], r) && bad++ == 0) {
            std::ostringstream s;
            s.precision(17);
            s << "x=" << x[i] << " got " << y[i] << " expected " << r;
            FAIL_CHECK(s.str());
        }
    }
    CHECK(bad == 0);
}
} // namespace

TEST_CASE_TEMPLATE("minifloat equals the exact reference", T, float, double)
{
    const tq::rounding_mode modes[] = {tq::rounding_mode::nearest_even, tq::rounding_mode::nearest,
                                       tq::rounding_mode::zero, tq::rounding_mode::stochastic};
    for (auto fmt : {tq::minifloats::fp8_e4m3, tq::minifloats::fp8_e5m2, tq::minifloats::fp16, tq::minifloats::bf16,
                     tq::minifloat_format{3, 2, 3, false, true}})
        for (auto r : modes)
            for (auto o : {tq::minifloat_overflow::to_infinity, tq::minifloat_overflow::saturate}) {
                INFO(tq::detail::describe(fmt)
                     << " " << tq::to_string(r) << (o == tq::minifloat_overflow::saturate ? " saturate" : ""));
                check_minifloat<T>(tq::minifloat(fmt, r, o, {3, 4}), 20000);
            }
    SUBCASE("presets")
    {
        CHECK(tq::minifloat(tq::minifloats::fp8_e4m3, tq::rounding_mode::nearest_even,
                            tq::minifloat_overflow::saturate)(T(1000)) == T(448));
        CHECK(std::isnan(tq::minifloat(tq::minifloats::fp8_e4m3)(T(1000))));
        CHECK(tq::minifloat(tq::minifloats::fp8_e5m2)(T(57344)) == T(57344));
        CHECK(std::isinf(tq::minifloat(tq::minifloats::fp16)(T(65520))));
        CHECK(tq::minifloat(tq::minifloats::fp16)(T(65519)) == T(65504));
        CHECK(tq::minifloat(tq::minifloats::fp16)(T(0x1p-25)) == T(0));         // tie to even (0)
        CHECK(tq::minifloat(tq::minifloats::fp16)(T(0x1.8p-25)) == T(0x1p-24)); // min subnormal
        CHECK(tq::minifloat(tq::minifloats::bf16)(T(1) + T(0x1p-8)) == T(1));
    }
    SUBCASE("bad formats")
    {
        CHECK_THROWS_WITH_AS(tq::minifloat(tq::minifloat_format{0, 3, 7}), doctest::Contains("exponent bits"),
                             tq::format_error);
        CHECK_THROWS_WITH_AS(tq::minifloat(tq::minifloats::fp16, tq::rounding_mode::up),
                             doctest::Contains("not sign-symmetric"), tq::format_error);
        if constexpr (sizeof(T) == 4)
            CHECK_THROWS_WITH_AS(tq::minifloat(tq::minifloat_format{11, 30, 1023})(T(1)),
                                 doctest::Contains("not exactly representable in float"), tq::format_error);
    }
}

TEST_CASE("affine follows PyTorch's fake quantize semantics")
{
    // Reference with every float operation done exactly in double and rounded once.
    auto ref = [](float x, float s, int z, int lo, int hi) {
        const float inv = 1.0f / s;
        const float v = float(double(x) * double(inv));
        double r = std::nearbyint(double(v)) + z;
        r = std::min(std::max(r, double(lo)), double(hi));
        return float((r - z) * double(s));
    };
    std::mt19937 g(2);
    std::uniform_real_distribution<float> d(-20, 20);
    std::vector<float> x;
    for (int k = -3000; k <= 3000; ++k) x.push_back(float(k) * 0.0125f); // many ties at scale 0.05
    for (int i = 0; i < 100000; ++i) x.push_back(d(g));
    for (float s : {0.05f, 0.1f, 0.0078125f, 0.3f})
        for (auto [z, lo, hi] : {std::tuple{0, -128, 127}, std::tuple{10, 0, 255}, std::tuple{-3, -127, 127}}) {
            const tq::affine q(s, z, lo, hi);
            const auto y = bulk(q, x);
            std::size_t bad = 0;
            for (std::size_t i = 0; i < x.size(); ++i)
                if (!same_bits(y[i], ref(x[i], s, z, lo, hi)) && bad++ == 0)
                    FAIL_CHECK("x=" << x[i] << " got " << y[i] << " expected " << ref(x[i], s, z, lo, hi));
            CHECK(bad == 0);
        }
    CHECK_THROWS_WITH_AS(tq::affine(0.1, 300, 0, 255), doctest::Contains("zero point 300"), tq::format_error);
    CHECK_THROWS_WITH_AS(tq::affine(-1, 0, -128, 127), doctest::Contains("scale"), tq::format_error);
    CHECK_THROWS_WITH_AS(tq::affine(1, 0, 5, 1), doctest::Contains("qmin=5 is above qmax=1"), tq::format_error);
}

TEST_CASE("affine with divide follows ONNX's QuantizeLinear and DequantizeLinear")
{
    // ONNX: q = saturate(round_half_even(x / s) + z), y = (q - z) * s, in float32. The
    // reference divides in double and rounds to float: a quotient of two floats rounded to
    // double and then to float is the correctly rounded float quotient (53 >= 2 * 24 + 2),
    // and (q - z) * s is exact in double before its one rounding.
    auto ref = [](float x, float s, int z, int lo, int hi) {
        const float v = float(double(x) / double(s));
        double r = std::nearbyint(double(v)) + z;
        r = std::min(std::max(r, double(lo)), double(hi));
        return float((r - z) * double(s));
    };
    std::mt19937 g(3);
    std::vector<float> x;
    for (float s : {0.05f, 0.1f, 0.0078125f, 0.3f, 0.0235294f}) {
        // every tie of the grid and its float neighbours, beyond both saturation bounds
        for (int k = -600; k <= 600; ++k) {
            const float t = float((k + 0.5) * double(s));
            x.insert(x.end(), {t, std::nextafter(t, 0.0f), std::nextafter(t, 1e9f), std::nextafter(t, -1e9f)});
        }
    }
    std::uniform_real_distribution<float> d(-40, 40);
    for (int i = 0; i < 100000; ++i) x.push_back(d(g));
    std::size_t differ_from_multiply = 0;
    for (float s : {0.05f, 0.1f, 0.0078125f, 0.3f, 0.0235294f})
        for (auto [z, lo, hi] : {std::tuple{0, -128, 127}, std::tuple{128, 0, 255}, std::tuple{-3, -127, 127}}) {
            const tq::affine q(s, z, lo, hi, tq::rounding_mode::nearest_even, {}, true);
            const auto y = bulk(q, x);
            const auto y_multiply = bulk(tq::affine(s, z, lo, hi), x);
            std::size_t bad = 0;
            for (std::size_t i = 0; i < x.size(); ++i) {
                if (!same_bits(y[i], ref(x[i], s, z, lo, hi)) && bad++ == 0)
                    FAIL_CHECK("x=" << x[i] << " s=" << s << " got " << y[i] << " expected "
                                    << ref(x[i], s, z, lo, hi));
                if (!same_bits(q(x[i]), y[i]) && bad++ == 0) FAIL_CHECK("scalar and bulk differ at x=" << x[i]);
                differ_from_multiply += !same_bits(y[i], y_multiply[i]);
            }
            CHECK(bad == 0);
        }
    // x * (1/s) and x / s round apart at some ties: the option is not a spelling
    CHECK(differ_from_multiply > 0);
    SUBCASE("the saturation bounds")
    {
        const tq::affine q(0.5, 128, 0, 255, tq::rounding_mode::nearest_even, {}, true);
        CHECK(q(1e30f) == 63.5f);
        CHECK(q(-1e30f) == -64.0f);
        CHECK(q(std::numeric_limits<float>::infinity()) == 63.5f);
        CHECK(q(63.74f) == 63.5f);
        CHECK(q(-64.26f) == -64.0f);
        CHECK(q(0.25f) == 0.0f); // a tie: to the even code
        CHECK(q(0.75f) == 1.0f);
    }
    SUBCASE("the string")
    {
        CHECK(tq::parse_quantizer("affine,0.02,128,0,255,divide").to_string() == "affine,0.02,128,0,255,divide");
        CHECK(tq::parse_quantizer("affine,0.02,0,-128,127,divide,stochastic").to_string() ==
              "affine,0.02,0,-128,127,stochastic,divide");
        CHECK_THROWS_WITH_AS(tq::parse_quantizer("affine,0.02,0,-128,127,divide,divide"),
                             doctest::Contains("given twice"), tq::parse_error);
        CHECK_THROWS_WITH_AS(tq::parse_quantizer("affine,0.02,0,-128,127,nearest,zero"),
                             doctest::Contains("given twice"), tq::parse_error);
    }
}

TEST_CASE_TEMPLATE("every quantizer has a defined result for NaN and infinities", T, float, double)
{
    const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
    struct row
    {
        char const* spec;
        T at_inf, at_minus_inf; // NaN here means: NaN expected
    };
    const T N = nan;
    const row rows[] = {
        {"identity", inf, -inf},
        {"nearest,8,4", T(7.9375), T(-8)},
        {"nearest,8,4,symmetric", T(7.9375), T(-7.9375)},
        {"nearest,8,4,wrap", N, N},
        {"stochastic,8,4", T(7.9375), T(-8)},
        {"sparse,0.5", inf, -inf},
        {"binary,2", T(2), T(-2)},
        {"binary_stochastic", T(1), T(-1)},
        {"ternary,0.5,3", T(3), T(-3)},
        {"logarithmic,floor,-4,4", T(16), T(-16)},
        {"logarithmic,nearest,-4,4", T(16), T(-16)},
        {"fp16", inf, -inf},
        {"fp16,saturate", T(65504), T(-65504)},
        {"fp8_e4m3", N, N},
        {"fp8_e4m3,saturate", T(448), T(-448)},
        {"affine,0.5,0,-128,127", T(63.5), T(-64)},
    };
    for (auto const& r : rows) {
        INFO(r.spec);
        const auto q = tq::parse_quantizer(r.spec);
        const auto y = bulk(q, std::vector<T>{nan, inf, -inf, T(1)});
        CHECK(std::isnan(y[0]));
        CHECK(same_bits(y[1], r.at_inf));
        CHECK(same_bits(y[2], r.at_minus_inf));
    }
    // tensor-statistics quantizers ignore non-finite elements in their statistics
    const auto yb = bulk(tq::binary_mean{}, std::vector<T>{nan, inf, T(-1), T(3)});
    CHECK(std::isnan(yb[0]));
    CHECK(yb[1] == T(2));
    CHECK(yb[2] == T(-2));
    const auto yt = bulk(tq::ternary_twn{}, std::vector<T>{nan, -inf, T(1), T(3), T(0)});
    CHECK(std::isnan(yt[0]));
    CHECK(yt[1] == T(-2)); // T = 0.7 * 4/3, m = mean(1, 3)
}
