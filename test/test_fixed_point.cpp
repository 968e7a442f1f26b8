#include "reference.hpp"

#include <doctest/doctest.h>

#include <random>
#include <span>
#include <sstream>
#include <vector>

namespace tq = tensorquant;
using tqtest::big;

namespace {

constexpr tq::rounding_mode all_roundings[] = {
    tq::rounding_mode::nearest,      tq::rounding_mode::nearest_even, tq::rounding_mode::nearest_up,
    tq::rounding_mode::nearest_down, tq::rounding_mode::nearest_zero, tq::rounding_mode::zero,
    tq::rounding_mode::down,         tq::rounding_mode::up,           tq::rounding_mode::stochastic};
constexpr tq::overflow_mode all_overflows[] = {tq::overflow_mode::saturate, tq::overflow_mode::symmetric,
                                               tq::overflow_mode::wrap};

std::string describe(tq::fixed_format f, tq::rounding_mode r, tq::overflow_mode o)
{
    std::ostringstream s;
    s << (f.is_signed ? "signed" : "unsigned") << " (W=" << f.width << ", F=" << f.frac << ") " << tq::to_string(r)
      << " " << tq::to_string(o);
    return s.str();
}

// Grid four bits finer than the format over its range and beyond, plus the values next
// to both saturation bounds and far outside them.
template <class T>
std::vector<T> exhaustive_inputs(tq::fixed_format f)
{
    const long long lo = f.is_signed ? -(1ll << (f.width - 1)) : 0;
    const long long hi = f.is_signed ? (1ll << (f.width - 1)) - 1 : (1ll << f.width) - 1;
    std::vector<T> x;
    const T fine = std::ldexp(T(1), -(f.frac + 4));
    for (long long k = (lo - 4) * 16; k <= (hi + 4) * 16; ++k) x.push_back(T(k) * fine);
    const T step = std::ldexp(T(1), -f.frac);
    for (T b : {T(lo) * step, T(hi) * step, (T(lo) - T(0.5)) * step, (T(hi) + T(0.5)) * step, (T(hi) + 1) * step}) {
        x.push_back(b);
        x.push_back(std::nextafter(b, std::numeric_limits<T>::infinity()));
        x.push_back(std::nextafter(b, -std::numeric_limits<T>::infinity()));
    }
    for (T v : {T(0), T(-0.0), std::numeric_limits<T>::denorm_min(), -std::numeric_limits<T>::denorm_min(),
                std::numeric_limits<T>::min(), T(1e30), T(-1e30), std::numeric_limits<T>::max(),
                std::numeric_limits<T>::lowest()})
        x.push_back(v);
    return x;
}

// Checks bulk (SIMD), scalar and encode results against the reference; returns the
// number of mismatches and reports the first.
template <class T>
std::size_t check_format(tq::fixed_point_rt const& q, std::span<T const> x, bool check_value = true)
{
    const auto f = q.format();
    std::vector<T> bulk(x.size());
    if (check_value) tq::quantize(q, x, std::span<T>(bulk));
    std::size_t bad = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const std::uint64_t unum = tqtest::threshold_numerator<T>(q.key(), i);
        const big ref = tqtest::fixed_ref(f, q.rounding(), q.overflow(), x[i], unum);
        bool ok = q.encode(x[i], i) == tqtest::word_of(ref, f.width);
        if (check_value)
            ok = ok && tqtest::equals_fixed(bulk[i], ref, f.frac) && tqtest::equals_fixed(q(x[i], i), ref, f.frac);
        if (!ok && bad++ == 0) {
            std::ostringstream s;
            s.precision(17);
            s << describe(f, q.rounding(), q.overflow()) << ": x=" << x[i] << " expected " << ref << " * 2^-" << f.frac;
            if (check_value) s << " got bulk " << bulk[i] << " scalar " << q(x[i], i);
            s << " word " << q.encode(x[i], i) << " expected word " << tqtest::word_of(ref, f.width);
            FAIL_CHECK(s.str());
        }
    }
    return bad;
}

} // namespace

TEST_CASE_TEMPLATE("fixed point equals the exact reference on every format up to W 8", T, float, double)
{
    std::size_t cases = 0, bad = 0;
    for (int W = 1; W <= 8; ++W)
        for (int F : {-3, 0, W / 2, W, W + 3})
            for (bool sgn : {true, false}) {
                const tq::fixed_format f{W, F, sgn};
                const auto x = exhaustive_inputs<T>(f);
                for (auto r : all_roundings)
                    for (auto o : all_overflows) {
                        tq::fixed_point_rt q(f, r, o, tq::rng_key{42, std::uint64_t(W * 1000 + F)});
                        bad += check_format<T>(q, x);
                        cases += x.size();
                    }
            }
    MESSAGE("inputs checked: " << cases);
    CHECK(bad == 0);
}

namespace {
// Random x spread over the format's range and far beyond, with exact ties mixed in.
template <class T>
std::vector<T> random_inputs(tq::fixed_format f, std::size_t n, std::mt19937_64& g)
{
    std::vector<T> x(n);
    std::uniform_int_distribution<int> kind(0, 9);
    std::uniform_real_distribution<double> mant(0.5, 1.0);
    const int top = f.width - f.frac + (f.is_signed ? 0 : 1);
    std::uniform_int_distribution<int> ex(-f.frac - 6, top + 3);
    std::uniform_int_distribution<std::int64_t> word(
        f.is_signed ? -(std::int64_t(1) << (std::min(f.width, 52) - 1)) : 0,
        (std::int64_t(1) << (std::min(f.width, 52) - (f.is_signed ? 1 : 0))) - 1);
    for (auto& v : x) {
        const int k = kind(g);
        if (k == 0)
            v = static_cast<T>(std::ldexp(double(word(g)) + 0.5, -f.frac)); // tie (when representable)
        else if (k == 1)
            v = static_cast<T>(std::ldexp(double(word(g)), -f.frac)); // on the grid
        else
            v = static_cast<T>(std::ldexp(mant(g), ex(g))) * (g() & 1 ? T(1) : T(-1));
    }
    return x;
}
} // namespace

TEST_CASE_TEMPLATE("fixed point equals the exact reference on random inputs up to W 64", T, float, double)
{
    std::mt19937_64 g(12345);
    constexpr int digits = std::numeric_limits<T>::digits;
    std::size_t cases = 0, bad = 0;
    std::uniform_int_distribution<int> frac(-8, 40);
    // 600 formats x 1000 inputs per type: values where T holds W, words up to W = 64
    for (int rep = 0; rep < 600; ++rep) {
        const int W = 1 + rep % 64;
        const bool sgn = W == 64 || (rep / 64) % 2 == 0;
        const tq::fixed_format f{W, frac(g), sgn};
        const auto r = all_roundings[rep % 9];
        const auto o = all_overflows[(rep / 9) % 3];
        tq::fixed_point_rt q(f, r, o, tq::rng_key{9, std::uint64_t(rep)});
        const auto x = random_inputs<T>(f, 1000, g);
        bad += check_format<T>(q, x, W <= digits);
        cases += x.size();
    }
    MESSAGE("random inputs checked: " << cases);
    CHECK(cases >= 600000);
    CHECK(bad == 0);
}

TEST_CASE("every tie rule rounds ties as its name says")
{
    const float x[] = {-2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 2.5f, -0.75f, 0.25f};
    struct row
    {
        tq::rounding_mode mode;
        float expected[8];
    };
    const row table[] = {
        {tq::rounding_mode::nearest, {-3, -2, -1, 1, 2, 3, -1, 0}},
        {tq::rounding_mode::nearest_even, {-2, -2, 0, 0, 2, 2, -1, 0}},
        {tq::rounding_mode::nearest_up, {-2, -1, 0, 1, 2, 3, -1, 0}},
        {tq::rounding_mode::nearest_down, {-3, -2, -1, 0, 1, 2, -1, 0}},
        {tq::rounding_mode::nearest_zero, {-2, -1, 0, 0, 1, 2, -1, 0}},
        {tq::rounding_mode::zero, {-2, -1, 0, 0, 1, 2, 0, 0}},
        {tq::rounding_mode::down, {-3, -2, -1, 0, 1, 2, -1, 0}},
        {tq::rounding_mode::up, {-2, -1, 0, 1, 2, 3, 0, 1}},
    };
    for (auto const& t : table) {
        SUBCASE(std::string(tq::to_string(t.mode)).c_str())
        {
            tq::fixed_point_rt q(8, 0, t.mode);
            for (int i = 0; i < 8; ++i) {
                INFO("x = " << x[i]);
                CHECK(q(x[i]) == t.expected[i]);
                // and with F = 3 the same ties sit at 1/16 steps
                tq::fixed_point_rt q3(8, 3, t.mode);
                CHECK(q3(x[i] / 8) == t.expected[i] / 8);
            }
        }
    }
    SUBCASE("compile-time policies agree")
    {
        CHECK(tq::fixed_point<8, 0, tq::rounding::nearest>{}(2.5f) == 3.0f);
        CHECK(tq::fixed_point<8, 0, tq::rounding::nearest_even>{}(2.5f) == 2.0f);
        CHECK(tq::fixed_point<8, 0, tq::rounding::nearest_up>{}(-2.5f) == -2.0f);
        CHECK(tq::fixed_point<8, 0, tq::rounding::nearest_down>{}(2.5f) == 2.0f);
        CHECK(tq::fixed_point<8, 0, tq::rounding::nearest_zero>{}(-2.5f) == -2.0f);
    }
}

TEST_CASE("saturation bounds of every overflow policy")
{
    using tq::overflow_mode;
    SUBCASE("signed 8 4")
    {
        tq::fixed_point_rt sat(8, 4, tq::rounding_mode::nearest, overflow_mode::saturate);
        tq::fixed_point_rt sym(8, 4, tq::rounding_mode::nearest, overflow_mode::symmetric);
        tq::fixed_point_rt wrap(8, 4, tq::rounding_mode::nearest, overflow_mode::wrap);
        CHECK(sat(7.9375f) == 7.9375f);
        CHECK(sat(7.96875f) == 7.9375f); // rounds to 8, one step past max
        CHECK(sat(100.f) == 7.9375f);
        CHECK(sat(-8.f) == -8.f);
        CHECK(sat(-8.03125f) == -8.f);
        CHECK(sat(-100.f) == -8.f);
        CHECK(sym(-8.f) == -7.9375f);
        CHECK(sym(-100.f) == -7.9375f);
        CHECK(sym(100.f) == 7.9375f);
        CHECK(sym(-7.9375f) == -7.9375f);
        CHECK(wrap(8.f) == -8.f);
        CHECK(wrap(8.0625f) == -7.9375f);
        CHECK(wrap(-8.0625f) == 7.9375f);
        CHECK(wrap(24.f) == -8.f);
        CHECK(wrap(7.9375f) == 7.9375f);
        CHECK(wrap.encode(-8.f) == 0x80u);
        CHECK(sat.encode(100.f) == 0x7fu);
        CHECK(sym.encode(-100.f) == 0x81u);
    }
    SUBCASE("unsigned 8 4")
    {
        tq::fixed_point_rt sat(tq::fixed_format{8, 4, false}, tq::rounding_mode::nearest, overflow_mode::saturate);
        tq::fixed_point_rt sym(tq::fixed_format{8, 4, false}, tq::rounding_mode::nearest, overflow_mode::symmetric);
        tq::fixed_point_rt wrap(tq::fixed_format{8, 4, false}, tq::rounding_mode::nearest, overflow_mode::wrap);
        CHECK(sat(15.9375f) == 15.9375f);
        CHECK(sat(16.f) == 15.9375f);
        CHECK(sat(-0.5f) == 0.f);
        CHECK(sym(-0.5f) == 0.f);
        CHECK(wrap(-0.0625f) == 15.9375f);
        CHECK(wrap(16.f) == 0.f);
    }
    SUBCASE("the widest formats")
    {
        tq::fixed_point_rt s64(64, 0, tq::rounding_mode::nearest, overflow_mode::saturate);
        CHECK(s64.encode(1e30) == 0x7fffffffffffffffull);
        CHECK(s64.encode(-1e30) == 0x8000000000000000ull);
        CHECK(s64.encode(-1.0) == ~0ull);
        tq::fixed_point_rt w64(64, 0, tq::rounding_mode::nearest, overflow_mode::wrap);
        CHECK(w64.encode(0x1p64 + 0x1p12) == 0x1000u);
        CHECK(w64.encode(0x1p70) == 0u);
        tq::fixed_point_rt f24(24, 0);
        CHECK(f24(1e9f) == 8388607.f);
        CHECK(f24(-1e9f) == -8388608.f);
        tq::fixed_point_rt d53(53, 0);
        CHECK(d53(1e300) == 0x1p52 - 1);
    }
}

TEST_CASE("a range watch reports every value beyond the range")
{
    std::size_t unsound = 0, spurious = 0, bulk_differs = 0, flagged = 0, values = 0;
    for (int W = 1; W <= 7; ++W)
        for (int F : {-2, 0, W / 2, W + 2})
            for (bool sgn : {true, false}) {
                const tq::fixed_format f{W, F, sgn}, wider{W + 3, F, sgn};
                const auto x = exhaustive_inputs<float>(f);
                const double lo = sgn ? -std::ldexp(1.0, W - 1) : 0, hi = std::ldexp(1.0, sgn ? W - 1 : W) - 1;
                for (auto r : all_roundings)
                    for (auto o : all_overflows) {
                        const tq::rng_key key{5, std::uint64_t(W * 100 + F)};
                        const tq::fixed_point_rt q(f, r, o, key), wide(wider, r, o, key);
                        bool any = false;
                        for (std::size_t i = 0; i < x.size(); ++i) {
                            float y;
                            bool exceeded;
                            {
                                const tq::range_watch watch;
                                y = q(x[i], i);
                                exceeded = watch.exceeded();
                            }
                            any = any || exceeded;
                            flagged += exceeded;
                            ++values;
                            // in range: a wider word gives the same bits
                            if (!exceeded && !tqtest::same_bits(y, wide(x[i], i)) && unsound++ == 0)
                                FAIL_CHECK(describe(f, r, o) << ": x=" << x[i] << " not reported");
                            // one step inside both bounds is never reported
                            const double scaled = std::ldexp(double(x[i]), F);
                            if (exceeded && scaled >= lo + 1 && scaled <= hi - 1 && spurious++ == 0)
                                FAIL_CHECK(describe(f, r, o) << ": x=" << x[i] << " reported");
                        }
                        std::vector<float> out(x.size());
                        const tq::range_watch watch;
                        tq::quantize(q, std::span<float const>(x), std::span<float>(out));
                        bulk_differs += watch.exceeded() != any;
                    }
            }
    CHECK(unsound == 0);
    CHECK(spurious == 0);
    CHECK(bulk_differs == 0);
    CHECK(flagged > values / 10); // the inputs reach well beyond every range
    MESSAGE("values watched: " << values);
}

TEST_CASE("nested range watches and other threads report to the enclosing watch")
{
    {
        const tq::fixed_point_rt q(8, 4);
        const tq::range_watch outer;
        {
            const tq::range_watch inner;
            CHECK(q(7.5f) == 7.5f);
            CHECK_FALSE(inner.exceeded());
        }
        CHECK_FALSE(outer.exceeded());
        {
            std::vector<float> v(1 << 12, 1.0f), out(v.size());
            v.back() = 9.0f; // in the last thread's piece
            tq::apply_options o;
            o.threads = 2;
            o.min_elements_per_thread = 64;
            const tq::range_watch inner;
            tq::quantize(q, std::span<float const>(v), std::span<float>(out), o);
            CHECK(inner.exceeded());
        }
        CHECK(outer.exceeded());
    }
}

TEST_CASE_TEMPLATE("fixed point NaN and infinities", T, float, double)
{
    const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
    for (auto r : all_roundings) {
        tq::fixed_point_rt sat(8, 4, r, tq::overflow_mode::saturate);
        tq::fixed_point_rt sym(8, 4, r, tq::overflow_mode::symmetric);
        tq::fixed_point_rt wrap(8, 4, r, tq::overflow_mode::wrap);
        INFO(tq::to_string(r));
        CHECK(std::isnan(sat(nan)));
        CHECK(std::isnan(sym(nan)));
        CHECK(std::isnan(wrap(nan)));
        CHECK(sat(inf) == T(7.9375));
        CHECK(sat(-inf) == T(-8));
        CHECK(sym(-inf) == T(-7.9375));
        CHECK(std::isnan(wrap(inf)));
        CHECK(std::isnan(wrap(-inf)));
        CHECK(sat.encode(nan) == 0u);
        CHECK(wrap.encode(inf) == 0u);
        // bulk (SIMD) path agrees
        std::vector<T> x{nan, inf, -inf, T(1), nan, -inf, inf, T(0), nan, nan, inf, T(-3), T(2), nan, inf, -inf, T(1)};
        std::vector<T> y(x.size());
        tq::quantize(wrap, std::span<T const>(x), std::span<T>(y));
        for (std::size_t i = 0; i < x.size(); ++i) CHECK(std::isnan(y[i]) == !std::isfinite(x[i]));
        tq::quantize(sat, std::span<T const>(x), std::span<T>(y));
        for (std::size_t i = 0; i < x.size(); ++i) CHECK(std::isnan(y[i]) == std::isnan(x[i]));
    }
}

TEST_CASE("results are never negative zero")
{
    for (auto r : all_roundings) {
        tq::fixed_point_rt q(8, 4, r);
        std::vector<float> x{-0.0f, -0.01f, -1e-30f, 0.01f}, y(4);
        tq::quantize(q, std::span<float const>(x), std::span<float>(y));
        for (float v : y)
            if (v == 0) CHECK(!std::signbit(v));
    }
}

namespace {
template <int W, int F>
concept fixed_exists = requires
{
    typename tq::fixed_point<W, F>;
};
template <int W, int F>
concept unsigned_exists = requires
{
    typename tq::ufixed_point<W, F>;
};
} // namespace

TEST_CASE("impossible formats are rejected")
{
    SUBCASE("at compile time")
    {
        static_assert(fixed_exists<8, 4> && fixed_exists<1, 0> && fixed_exists<64, 64> && fixed_exists<8, -64>);
        static_assert(!fixed_exists<0, 0> && !fixed_exists<65, 0> && !fixed_exists<8, 65> && !fixed_exists<8, -65>);
        static_assert(unsigned_exists<63, 0> && !unsigned_exists<64, 0>);
        // a format the storage cannot hold exactly is not a quantizer for that type
        static_assert(tq::Quantizer<tq::fixed_point<24, 8>, float>);
        static_assert(!tq::Quantizer<tq::fixed_point<25, 8>, float>);
        static_assert(tq::Quantizer<tq::fixed_point<53, 8>, double>);
        static_assert(!tq::Quantizer<tq::fixed_point<54, 8>, double>);
        CHECK(fixed_exists<8, 4>);
    }
    SUBCASE("at run time with a message naming the problem")
    {
        CHECK_THROWS_WITH_AS(tq::fixed_point_rt(0, 0), doctest::Contains("W=0 is outside [1, 64]"), tq::format_error);
        CHECK_THROWS_WITH_AS(tq::fixed_point_rt(65, 0), doctest::Contains("W=65"), tq::format_error);
        CHECK_THROWS_WITH_AS(tq::fixed_point_rt(8, 70), doctest::Contains("F=70 are outside"), tq::format_error);
        CHECK_THROWS_WITH_AS(tq::fixed_point_rt(tq::fixed_format{64, 0, false}), doctest::Contains("unsigned"),
                             tq::format_error);
        tq::fixed_point_rt wide(32, 16);
        CHECK_THROWS_WITH_AS(wide(1.0f), doctest::Contains("float holds 24"), tq::format_error);
        std::vector<float> x(3), y(3);
        CHECK_THROWS_AS(tq::quantize(wide, std::span<float const>(x), std::span<float>(y)), tq::format_error);
        CHECK(wide(1.5) == 1.5);
        CHECK(wide.encode(1.5f) == 0x18000u);
    }
}

TEST_CASE("compile-time and runtime formats give identical results")
{
    std::mt19937 g(3);
    std::normal_distribution<float> d(0.f, 4.f);
    std::vector<float> x(1037);
    for (auto& v : x) v = d(g);
    std::vector<float> a(x.size()), b(x.size());
    auto same = [&](auto const& ct, tq::fixed_point_rt const& rt) {
        tq::quantize(ct, std::span<float const>(x), std::span<float>(a));
        tq::quantize(rt, std::span<float const>(x), std::span<float>(b));
        return a == b;
    };
    CHECK(same(tq::fixed_point<8, 4>{}, tq::fixed_point_rt(8, 4)));
    CHECK(same(tq::fixed_point<12, 6, tq::rounding::stochastic, tq::overflow::wrap>{tq::rng_key{5, 1}},
               tq::fixed_point_rt(12, 6, tq::rounding_mode::stochastic, tq::overflow_mode::wrap, {5, 1})));
    CHECK(
        same(tq::ufixed_point<6, 2, tq::rounding::down, tq::overflow::symmetric>{},
             tq::fixed_point_rt(tq::fixed_format{6, 2, false}, tq::rounding_mode::down, tq::overflow_mode::symmetric)));
    CHECK(same(tq::fixed_point<4, -2, tq::rounding::up>{}, tq::fixed_point_rt(4, -2, tq::rounding_mode::up)));
}

TEST_CASE_TEMPLATE("stochastic rounding compares the fraction strictly with its threshold", T, float, double)
{
    // x = +-u_i exactly (u_i the threshold element i draws): frac(|x|) == u_i, so |x| does
    // not move away from zero; one grid step more and it does.
    const tq::rng_key key{77, 3};
    tq::fixed_point_rt q(16, 0, tq::rounding_mode::stochastic, tq::overflow_mode::saturate, key);
    const T grid = sizeof(T) == 4 ? T(0x1p-24) : T(0x1p-32);
    const std::size_t n = 4099;
    for (T sign : {T(1), T(-1)}) {
        std::vector<T> at(n), above(n), y(n);
        for (std::size_t i = 0; i < n; ++i) {
            const T u = tq::detail::uniform_at<T>(key, i);
            at[i] = sign * u;
            above[i] = sign * (u + grid);
        }
        tq::quantize(q, std::span<T const>(at), std::span<T>(y));
        for (std::size_t i = 0; i < n; ++i) CHECK(y[i] == T(0));
        tq::quantize(q, std::span<T const>(above), std::span<T>(y));
        for (std::size_t i = 0; i < n; ++i) CHECK(y[i] == sign);
    }
}
