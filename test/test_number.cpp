// quantized<T, Q> and quantized_rt<T> against exact rational references: every
// operation's result must be the format's rounding of the exact result, bit for bit.
#include "reference.hpp"

#include <doctest/doctest.h>

#include <array>
#include <bit>
#include <cstdint>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

namespace tq = tensorquant;
using tqtest::big;

namespace {

constexpr std::array deterministic_roundings = {tq::rounding_mode::nearest,      tq::rounding_mode::nearest_even,
                                                tq::rounding_mode::nearest_up,   tq::rounding_mode::nearest_down,
                                                tq::rounding_mode::nearest_zero, tq::rounding_mode::zero,
                                                tq::rounding_mode::down,         tq::rounding_mode::up};
constexpr std::array overflows = {tq::overflow_mode::saturate, tq::overflow_mode::symmetric, tq::overflow_mode::wrap};

// Words of the format: value = word 2^-F.
std::vector<std::int64_t> all_words(tq::fixed_format f)
{
    std::vector<std::int64_t> w;
    const std::int64_t lo = f.is_signed ? -(std::int64_t(1) << (f.width - 1)) : 0;
    const std::int64_t hi = f.is_signed ? (std::int64_t(1) << (f.width - 1)) - 1 : (std::int64_t(1) << f.width) - 1;
    for (std::int64_t v = lo; v <= hi; ++v) w.push_back(v);
    return w;
}

template <class T>
T value_of_word(std::int64_t w, int frac)
{
    return std::ldexp(static_cast<T>(w), -frac);
}

// Word the reference gives for the exact result num / den (in units of 2^-F); unum / 2^24
// is the stochastic threshold.
big expected(tq::fixed_format f, tq::rounding_mode r, tq::overflow_mode o, big const& num, big const& den,
             std::uint64_t unum = 0)
{
    big n = num, d = den;
    if (d < 0) n = -n, d = -d;
    return tqtest::limit_ref(o, f, tqtest::round_rational(r, n, d, unum));
}

struct op_reference
{
    tq::fixed_format f;
    tq::rounding_mode r;
    tq::overflow_mode o;
    std::uint64_t u = 0; // the threshold of the next stochastic rounding, as u / 2^24
    big expected(big const& num, big const& den) const { return ::expected(f, r, o, num, den, u); }
    // exact results, in units of 2^-F, of a op b for words a and b
    big add(std::int64_t a, std::int64_t b) const { return expected(big(a) + b, 1); }
    big sub(std::int64_t a, std::int64_t b) const { return expected(big(a) - b, 1); }
    big mul(std::int64_t a, std::int64_t b) const
    {
        // a b 2^-2F = (a b 2^-F) 2^-F
        return f.frac >= 0 ? expected(big(a) * b, tqtest::pow2(f.frac)) : expected((big(a) * b) << -f.frac, 1);
    }
    big div(std::int64_t a, std::int64_t b) const
    {
        return f.frac >= 0 ? expected(big(a) << f.frac, b) : expected(big(a), big(b) << -f.frac);
    }
    big div_int(std::int64_t a, std::int64_t n) const { return expected(big(a), n); }
    big sqrt(std::int64_t a) const
    {
        // sqrt(a 2^-F) 2^F = sqrt(a 2^F)
        const big q = f.frac >= 0 ? tqtest::round_sqrt(r, big(a) << f.frac, 1, u)
                                  : tqtest::round_sqrt(r, big(a), tqtest::pow2(-f.frac), u);
        return tqtest::limit_ref(o, f, q);
    }
};

template <class T>
bool same_word(T got, big const& want, int frac)
{
    return tqtest::equals_fixed(got, want, frac);
}

} // namespace

TEST_CASE("quantized_rt matches the exact reference exhaustively on small formats")
{
    using V = tq::quantized_rt<float>;
    const std::array formats = {tq::fixed_format{5, 2, true},  tq::fixed_format{5, -1, true},
                                tq::fixed_format{4, 6, true},  tq::fixed_format{6, 0, true},
                                tq::fixed_format{5, 2, false}, tq::fixed_format{1, 0, true}};
    long long checked = 0, wrong = 0;
    for (auto f : formats)
        for (auto r : deterministic_roundings)
            for (auto o : overflows) {
                const tq::number_scope scope(tq::fixed_point_rt(f, r, o));
                const op_reference ref{f, r, o};
                const auto words = all_words(f);
                auto check = [&](float got, big const& want, char const* op, std::int64_t a, std::int64_t b) {
                    ++checked;
                    if (!same_word(got, want, f.frac)) {
                        if (++wrong <= 5)
                            FAIL_CHECK(op << " W=" << f.width << " F=" << f.frac << (f.is_signed ? "" : " unsigned")
                                          << " " << tq::to_string(r) << " overflow " << int(o) << ": words " << a
                                          << ", " << b << " gave " << got << ", want word " << want);
                    }
                };
                for (auto a : words) {
                    const V va = V::from_raw(value_of_word<float>(a, f.frac));
                    if (a >= 0) check(sqrt(va).value(), ref.sqrt(a), "sqrt", a, 0);
                    for (std::int64_t n = 1; n <= 5; ++n)
                        check(divide(va, n).value(), ref.div_int(a, n), "divide", a, n);
                    for (auto b : words) {
                        const V vb = V::from_raw(value_of_word<float>(b, f.frac));
                        check((va + vb).value(), ref.add(a, b), "+", a, b);
                        check((va - vb).value(), ref.sub(a, b), "-", a, b);
                        check((va * vb).value(), ref.mul(a, b), "*", a, b);
                        if (b != 0) check((va / vb).value(), ref.div(a, b), "/", a, b);
                    }
                }
            }
    CHECK(wrong == 0);
    MESSAGE("exhaustive number-type checks: " << checked);
}

TEST_CASE("stochastic rounding in the number type matches the exact reference exhaustively")
{
    using V = tq::quantized_rt<float>;
    const std::array formats = {tq::fixed_format{5, 2, true}, tq::fixed_format{5, -1, true},
                                tq::fixed_format{4, 6, true}, tq::fixed_format{5, 2, false}};
    const tq::rng_key key{12, 3};
    const tq::detail::counter_rng rng(key);
    long long checked = 0, wrong = 0;
    for (auto f : formats)
        for (auto o : overflows) {
            const tq::number_scope scope(tq::fixed_point_rt(f, tq::rounding_mode::stochastic, o));
            tq::stochastic_scope stream(key, 77);
            op_reference ref{f, tq::rounding_mode::stochastic, o};
            auto next = [&] { // the threshold the next rounding operation draws
                ref.u = std::uint64_t(std::ldexp(double(rng.uniform<float>(stream.position())), 24));
            };
            auto check = [&](float got, big const& want, char const* op, std::int64_t a, std::int64_t b) {
                ++checked;
                if (!same_word(got, want, f.frac) && ++wrong <= 5)
                    FAIL_CHECK(op << " W=" << f.width << " F=" << f.frac << " overflow " << int(o) << ": words " << a
                                  << ", " << b << " gave " << got << ", want word " << want);
            };
            const auto words = all_words(f);
            for (auto a : words) {
                const V va = V::from_raw(value_of_word<float>(a, f.frac));
                if (a >= 0) {
                    next();
                    check(sqrt(va).value(), ref.sqrt(a), "sqrt", a, 0);
                }
                for (std::int64_t n = 1; n <= 5; ++n) {
                    next();
                    check(divide(va, n).value(), ref.div_int(a, n), "divide", a, n);
                }
                for (auto b : words) {
                    const V vb = V::from_raw(value_of_word<float>(b, f.frac));
                    check((va + vb).value(), ref.add(a, b), "+", a, b); // exact: draws nothing
                    next();
                    check((va * vb).value(), ref.mul(a, b), "*", a, b);
                    if (b != 0) {
                        next();
                        check((va / vb).value(), ref.div(a, b), "/", a, b);
                    }
                }
            }
        }
    CHECK(wrong == 0);
    CHECK(checked > 10000);
    MESSAGE("exhaustive stochastic number-type checks: " << checked);
    // the compile-time format draws the same thresholds
    using Q = tq::quantized<float, tq::fixed_point<8, 4, tq::rounding::stochastic>>;
    const tq::number_scope scope(
        tq::fixed_point_rt({8, 4, true}, tq::rounding_mode::stochastic, tq::overflow_mode::saturate));
    std::vector<float> typed, runtime;
    {
        tq::stochastic_scope stream(key);
        for (int i = 1; i < 200; ++i) { // one operation per statement: a fixed order of draws
            const Q a = 0.37f, b = 0.01f * float(i), c = 1.3f;
            const Q p = a * b;
            typed.push_back(float(p / c));
        }
    }
    {
        tq::stochastic_scope stream(key);
        for (int i = 1; i < 200; ++i) {
            const V a = 0.37f, b = 0.01f * float(i), c = 1.3f;
            const V p = a * b;
            runtime.push_back((p / c).value());
        }
    }
    CHECK(typed == runtime);
}

TEST_CASE("the number type reports results beyond the range to a range watch")
{
    using V = tq::quantized_rt<float>;
    long long unsound = 0, reported = 0, results = 0;
    for (auto f : {tq::fixed_format{5, 2, true}, tq::fixed_format{4, -1, true}, tq::fixed_format{5, 2, false}})
        for (auto r : {tq::rounding_mode::nearest, tq::rounding_mode::down, tq::rounding_mode::nearest_even})
            for (auto o : overflows) {
                const tq::fixed_point_rt narrow(f, r, o),
                    wide(tq::fixed_format{f.width + 4, f.frac, f.is_signed}, r, o);
                // op on the two formats: in range on the narrow one means the same value
                auto check = [&](auto op) {
                    float y;
                    bool exceeded;
                    {
                        const tq::number_scope scope(narrow);
                        const tq::range_watch watch;
                        y = op().value();
                        exceeded = watch.exceeded();
                    }
                    const tq::number_scope scope(wide);
                    ++results;
                    reported += exceeded;
                    if (!exceeded && op().value() != y) ++unsound;
                };
                const auto words = all_words(f);
                for (auto a : words)
                    for (auto b : words) {
                        const float va = value_of_word<float>(a, f.frac), vb = value_of_word<float>(b, f.frac);
                        check([&] { return V::from_raw(va) + V::from_raw(vb); });
                        check([&] { return V::from_raw(va) - V::from_raw(vb); });
                        check([&] { return V::from_raw(va) * V::from_raw(vb); });
                        if (b != 0) check([&] { return V::from_raw(va) / V::from_raw(vb); });
                        if (b > 0) check([&] { return divide(V::from_raw(va), b); });
                    }
            }
    CHECK(unsound == 0);
    CHECK(reported > results / 10);
    CHECK(reported < results);
    MESSAGE("number-type results watched: " << results);
}

TEST_CASE("quantized_rt matches the exact reference on random words of wide formats")
{
    std::mt19937_64 gen(42);
    auto run = [&](auto tag, tq::fixed_format f) {
        using T = decltype(tag);
        using V = tq::quantized_rt<T>;
        for (auto r : deterministic_roundings)
            for (auto o : overflows) {
                const tq::number_scope scope(tq::fixed_point_rt(f, r, o));
                const op_reference ref{f, r, o};
                const std::int64_t lo = f.is_signed ? -(std::int64_t(1) << (f.width - 1)) : 0;
                const std::int64_t hi =
                    f.is_signed ? (std::int64_t(1) << (f.width - 1)) - 1 : (std::int64_t(1) << f.width) - 1;
                std::uniform_int_distribution<std::int64_t> full(lo, hi), small(-64, 64);
                int wrong = 0;
                for (int i = 0; i < 400; ++i) {
                    // mix full-range words (overflow) with small ones (rounding detail)
                    const std::int64_t a = i % 3 == 0 ? small(gen) : full(gen);
                    const std::int64_t b = i % 2 == 0 ? small(gen) : full(gen);
                    if (!f.is_signed && (a < 0 || b < 0)) continue;
                    const V va = V::from_raw(value_of_word<T>(a, f.frac)),
                            vb = V::from_raw(value_of_word<T>(b, f.frac));
                    wrong += !same_word((va + vb).value(), ref.add(a, b), f.frac);
                    wrong += !same_word((va - vb).value(), ref.sub(a, b), f.frac);
                    wrong += !same_word((va * vb).value(), ref.mul(a, b), f.frac);
                    if (b != 0) wrong += !same_word((va / vb).value(), ref.div(a, b), f.frac);
                    if (a >= 0) wrong += !same_word(sqrt(va).value(), ref.sqrt(a), f.frac);
                }
                CHECK_MESSAGE(wrong == 0, "W=" << f.width << " F=" << f.frac << " " << tq::to_string(r));
            }
    };
    run(float{}, tq::fixed_format{24, 12, true});
    run(float{}, tq::fixed_format{24, 30, true});
    run(float{}, tq::fixed_format{23, 4, false});
    run(double{}, tq::fixed_format{53, 26, true});
    run(double{}, tq::fixed_format{53, -5, true});
    run(double{}, tq::fixed_format{40, 60, true});
}

using fixed_types =
    std::tuple<tq::quantized<float, tq::fixed_point<8, 4>>,
               tq::quantized<float, tq::fixed_point<12, 6, tq::rounding::nearest_even, tq::overflow::symmetric>>,
               tq::quantized<float, tq::fixed_point<24, 12, tq::rounding::down, tq::overflow::wrap>>,
               tq::quantized<double, tq::fixed_point<53, 20, tq::rounding::zero>>,
               tq::quantized<float, tq::ufixed_point<6, 2, tq::rounding::up>>>;

TEST_CASE_TEMPLATE_DEFINE("quantized with a compile-time format equals quantized_rt bit for bit", V,
                          compile_time_equals_runtime)
{
    using T = typename V::value_type;
    using Q = typename V::quantizer_type;
    static_assert(sizeof(V) == sizeof(T));
    static_assert(std::is_trivially_copyable_v<V> && std::is_standard_layout_v<V>);
    const tq::number_scope scope(tq::fixed_point_rt(
        Q::format, tq::rounding_mode_of<typename Q::rounding_policy>(),
        std::is_same_v<typename Q::overflow_policy, tq::overflow::saturate>    ? tq::overflow_mode::saturate
        : std::is_same_v<typename Q::overflow_policy, tq::overflow::symmetric> ? tq::overflow_mode::symmetric
                                                                               : tq::overflow_mode::wrap));
    using R = tq::quantized_rt<T>;
    std::mt19937_64 gen(7);
    std::uniform_real_distribution<T> dist(T(-3) * T(std::numeric_limits<V>::max()),
                                           T(3) * T(std::numeric_limits<V>::max()));
    int wrong = 0;
    for (int i = 0; i < 3000; ++i) {
        const T x = dist(gen) / (i % 4 == 0 ? T(1) : T(1 << (i % 9))), y = dist(gen) / T(1 << (i % 7));
        const V a(x), b(y);
        const R ra(x), rb(y);
        wrong += a.value() != ra.value();
        wrong += (a + b).value() != (ra + rb).value();
        wrong += (a - b).value() != (ra - rb).value();
        wrong += (a * b).value() != (ra * rb).value();
        if (b.value() != 0) wrong += (a / b).value() != (ra / rb).value();
        wrong += sqrt(abs(a)).value() != sqrt(abs(ra)).value();
        wrong += (-a).value() != (-ra).value();
        wrong += divide(a, 3).value() != divide(ra, 3).value();
    }
    CHECK(wrong == 0);
}
TEST_CASE_TEMPLATE_APPLY(compile_time_equals_runtime, fixed_types);

using integer_types =
    std::tuple<tq::quantized<std::int64_t, tq::fixed_point<64, 32>>,
               tq::quantized<std::int64_t, tq::fixed_point<64, -8, tq::rounding::nearest_even>>,
               tq::quantized<std::int64_t, tq::fixed_point<64, 64, tq::rounding::down, tq::overflow::wrap>>,
               tq::quantized<std::int64_t, tq::ufixed_point<63, 10, tq::rounding::nearest_up>>,
               tq::quantized<std::int64_t, tq::fixed_point<40, 20, tq::rounding::zero, tq::overflow::symmetric>>>;

TEST_CASE_TEMPLATE_DEFINE("quantized with integer storage is exact up to 64 bits", V, integer_storage)
{
    using Q = typename V::quantizer_type;
    constexpr tq::fixed_format f = Q::format;
    constexpr tq::overflow_mode o =
        std::is_same_v<typename Q::overflow_policy, tq::overflow::saturate>    ? tq::overflow_mode::saturate
        : std::is_same_v<typename Q::overflow_policy, tq::overflow::symmetric> ? tq::overflow_mode::symmetric
                                                                               : tq::overflow_mode::wrap;
    const op_reference ref{f, tq::rounding_mode_of<typename Q::rounding_policy>(), o};
    static_assert(sizeof(V) == 8);
    const std::int64_t lo = std::numeric_limits<V>::lowest().raw(), hi = std::numeric_limits<V>::max().raw();
    std::mt19937_64 gen(11);
    std::uniform_int_distribution<std::int64_t> full(lo, hi), small(f.is_signed ? -1000 : 0, 1000);
    std::uniform_int_distribution<int> shift(0, 62);
    int wrong = 0;
    for (int i = 0; i < 3000; ++i) {
        // full-range words, small ones, and words of every magnitude
        auto draw = [&](int k) {
            if (k % 3 == 0) return small(gen);
            if (k % 3 == 1) return full(gen);
            return std::clamp<std::int64_t>(full(gen) >> shift(gen), lo, hi);
        };
        const std::int64_t a = draw(i), b = draw(i / 3);
        const V va = V::from_raw(a), vb = V::from_raw(b);
        wrong += big((va + vb).raw()) != ref.add(a, b);
        wrong += big((va - vb).raw()) != ref.sub(a, b);
        wrong += big((va * vb).raw()) != ref.mul(a, b);
        if (b != 0) wrong += big((va / vb).raw()) != ref.div(a, b);
        if (a >= 0) wrong += big(sqrt(va).raw()) != ref.sqrt(a);
        wrong += big(divide(va, 7).raw()) != ref.div_int(a, 7);
    }
    CHECK(wrong == 0);
    // construction: doubles are quantized exactly (encode), integers convert exactly
    const double x = -12345.678901;
    CHECK(big(V(x).raw()) == tqtest::fixed_ref(f, ref.r, o, x));
    CHECK(big(V(std::int64_t(3)).raw()) ==
          expected(f, ref.r, o, f.frac >= 0 ? big(3) << f.frac : big(3), f.frac >= 0 ? big(1) : tqtest::pow2(-f.frac)));
    CHECK_THROWS_AS(V(1.0) / V(0.0), tq::arithmetic_error);
    CHECK_THROWS_AS(V(std::nan("")), tq::arithmetic_error);
}
TEST_CASE_TEMPLATE_APPLY(integer_storage, integer_types);

TEST_CASE("quantized tie and saturation cases")
{
    using N = tq::quantized<float, tq::fixed_point<8, 1>>; // step 0.5, range [-64, 63.5]
    using E = tq::quantized<float, tq::fixed_point<8, 1, tq::rounding::nearest_even>>;
    using D = tq::quantized<float, tq::fixed_point<8, 1, tq::rounding::down>>;
    using W = tq::quantized<float, tq::fixed_point<8, 1, tq::rounding::nearest, tq::overflow::wrap>>;
    using S = tq::quantized<float, tq::fixed_point<8, 1, tq::rounding::nearest, tq::overflow::symmetric>>;
    SUBCASE("ties of products")
    {
        CHECK(float(N(0.5f) * N(0.5f)) == 0.5f); // 0.25: away from zero
        CHECK(float(N(-0.5f) * N(0.5f)) == -0.5f);
        CHECK(float(E(0.5f) * E(0.5f)) == 0.0f); // to even
        CHECK(float(E(1.5f) * E(0.5f)) == 1.0f); // 0.75 -> 1 (above half)
        CHECK(float(E(2.5f) * E(0.5f)) == 1.0f); // 1.25: tie between 1 and 1.5, 1 is even
        CHECK(float(D(-0.5f) * D(0.5f)) == -0.5f);
    }
    SUBCASE("saturation and wrap bounds")
    {
        const N top = std::numeric_limits<N>::max();
        CHECK(float(top) == 63.5f);
        CHECK(float(std::numeric_limits<N>::lowest()) == -64.0f);
        CHECK(float(std::numeric_limits<S>::lowest()) == -63.5f);
        CHECK(float(top + N(0.5f)) == 63.5f);
        CHECK(float(-std::numeric_limits<N>::lowest()) == 63.5f);
        CHECK(float(-std::numeric_limits<S>::lowest()) == -float(std::numeric_limits<S>::lowest()));
        CHECK(float(std::numeric_limits<W>::max() + W(0.5f)) == -64.0f);
        CHECK(float(N(10.0f) * N(10.0f)) == 63.5f);
        CHECK(float(W(10.0f) * W(10.0f)) == 100.0f - 128.0f);
        CHECK(float(abs(std::numeric_limits<N>::lowest())) == 63.5f);
    }
    SUBCASE("limits")
    {
        using L = std::numeric_limits<N>;
        CHECK(L::is_specialized);
        CHECK(L::is_exact);
        CHECK(L::is_signed);
        CHECK(L::digits == 7);
        CHECK(float(L::epsilon()) == 0.5f);
        CHECK(float(L::min()) == 0.5f);
        CHECK(std::numeric_limits<W>::is_modulo);
        CHECK(std::numeric_limits<D>::round_style == std::round_toward_neg_infinity);
        CHECK(isnan(L::quiet_NaN()));
    }
}

TEST_CASE("quantized special values and mixing rules")
{
    using N = tq::quantized<float, tq::fixed_point<16, 8>>;
    using Wr = tq::quantized<float, tq::fixed_point<16, 8, tq::rounding::nearest, tq::overflow::wrap>>;
    SUBCASE("division by zero saturates, 0/0 and sqrt(-x) are NaN, NaN propagates")
    {
        CHECK(float(N(1.0f) / N(0.0f)) == float(std::numeric_limits<N>::max()));
        CHECK(float(N(-1.0f) / N(0.0f)) == float(std::numeric_limits<N>::lowest()));
        CHECK(isnan(N(0.0f) / N(0.0f)));
        CHECK(isnan(Wr(1.0f) / Wr(0.0f)));
        CHECK(isnan(sqrt(N(-1.0f))));
        const N nan = std::numeric_limits<N>::quiet_NaN();
        CHECK(isnan(nan + N(1.0f)));
        CHECK(isnan(nan * N(1.0f)));
        CHECK(isnan(-nan));
    }
    SUBCASE("a plain operand is quantized first, in the wider type")
    {
        const N a(1.0f);
        CHECK(float(a * 0.1) == float(N(0.1)));                // double constant, quantized once in double
        CHECK(float(a + 0.001f) == 1.0f);                      // 0.001 quantizes to 0 with F = 8
        CHECK(float(N(3)) == 3.0f);                            // integers convert exactly when representable
        CHECK(float(divide(N(1.0f), 3)) == float(N(1.0 / 3))); // exact integer divisor
        static_assert(!std::is_convertible_v<N, float>, "conversion back to float is explicit");
        static_assert(std::is_convertible_v<float, N>);
    }
}

namespace {
// Generic code written for float.
template <class V>
V dot_relu(std::vector<V> const& x, std::vector<V> const& w)
{
    using std::max;
    V acc = V(0);
    for (std::size_t i = 0; i < x.size(); ++i) acc += x[i] * w[i];
    return max(acc, V(0));
}
} // namespace

TEST_CASE("generic float code runs on quantized numbers")
{
    using N = tq::quantized<float, tq::fixed_point<12, 6>>;
    const std::vector<float> xf{0.5f, -1.25f, 2.0f, 0.015625f}, wf{1.5f, 0.75f, -0.1f, 3.0f};
    const std::vector<N> xq(xf.begin(), xf.end()), wq(wf.begin(), wf.end());
    const float f = dot_relu(xf, wf);
    const N q = dot_relu(xq, wq);
    CHECK(std::abs(float(q) - f) < 4 * 0.015625f);
    // the same by hand: every step rounded
    N acc = N(0);
    for (std::size_t i = 0; i < xq.size(); ++i) acc = acc + xq[i] * wq[i];
    CHECK(q == max(acc, N(0)));
}

TEST_CASE("number_scope errors name the problem")
{
    CHECK_THROWS_WITH_AS(tq::quantized_rt<float>(1.0f), doctest::Contains("no number_scope"), tq::format_error);
    {
        const tq::number_scope stochastic(tq::fixed_point_rt(8, 4, tq::rounding_mode::stochastic));
        CHECK_THROWS_WITH_AS(tq::quantized_rt<float>(0.3f), doctest::Contains("no stochastic_scope"), tq::format_error);
    }
    const tq::number_scope wide(tq::fixed_point_rt(32, 16));
    CHECK_THROWS_AS(tq::quantized_rt<float>(1.0f), tq::format_error);
    CHECK(tq::quantized_rt<double>(1.5).value() == 1.5);
}

TEST_CASE_TEMPLATE("exp2i is exact over the whole exponent range", T, float, double)
{
    bool same = true;
    for (int e = -1200; e <= 1200; ++e) {
        const T want = std::ldexp(T(1), e);
        same = same && tensorquant::detail::exp2i<T>(e) == want;
    }
    CHECK(same);
    static_assert(tensorquant::detail::exp2i<T>(-3) == T(0.125));
}

// ---- constant expressions ------------------------------------------------------------

namespace {

using q8_4 = tq::quantized<float, tq::fixed_point<8, 4>>;
constexpr q8_4 three = 3;
constexpr q8_4 point3 = 0.3f;
static_assert(tq::fixed_point<8, 4>{}(0.3f) == 0.3125f);
static_assert(tq::fixed_point<8, 4>{}(100.f) == 7.9375f);
static_assert(tq::fixed_point<8, 4, tq::rounding::down>{}(-0.3f) == -0.3125f);
static_assert(tq::fixed_point<8, 4, tq::rounding::nearest, tq::overflow::wrap>{}(8.f) == -8.f);
static_assert(tq::fixed_point<6, 2, tq::rounding::nearest_even>{}(0.375f) == 0.5f);
static_assert((three * point3).value() == 0.9375f);
static_assert((three + point3).value() == 3.3125f);
static_assert((point3 / three).value() == 0.125f);
static_assert((three / point3).value() == 7.9375f); // saturates
static_assert(sqrt(three).value() == 1.75f);
static_assert(q8_4(200).value() == 7.9375f);

// Every input of a grid quantized at compile time (the constexpr paths of the helpers).
template <class Q, std::size_t N>
constexpr std::array<float, N> quantized_grid(float first, float step)
{
    std::array<float, N> out{};
    for (std::size_t i = 0; i < N; ++i) {
        const float x = first + float(i) * step;
        if constexpr (tq::is_stochastic_rounding_v<typename Q::rounding_policy>)
            out[i] = Q{}(x, i);
        else
            out[i] = Q{}(x);
    }
    return out;
}

// Every pair of words of a small format: a + b, a - b, a * b, a / b (b != 0), sqrt(a).
template <class V, std::size_t N>
constexpr std::array<float, 4 * N * N + N> all_results(std::array<float, N> words)
{
    std::array<float, 4 * N * N + N> out{};
    std::size_t k = 0;
    for (float a : words) {
        out[k++] = a >= 0 ? sqrt(V::from_raw(a)).value() : 0.f;
        for (float b : words) {
            out[k++] = (V::from_raw(a) + V::from_raw(b)).value();
            out[k++] = (V::from_raw(a) - V::from_raw(b)).value();
            out[k++] = (V::from_raw(a) * V::from_raw(b)).value();
            out[k++] = b != 0 ? (V::from_raw(a) / V::from_raw(b)).value() : 0.f;
        }
    }
    return out;
}

template <std::size_t N>
constexpr std::array<float, N> words_of(int w, int f)
{
    std::array<float, N> out{};
    for (std::size_t i = 0; i < N; ++i)
        out[i] = float(std::int64_t(i) - (std::int64_t(1) << (w - 1))) / float(std::int64_t(1) << f);
    return out;
}

template <class Q>
void check_grid_at_compile_time()
{
    // a grid eight times finer than the format, from beyond -max to beyond max
    static constexpr auto at_compile_time = quantized_grid<Q, 1024>(-40.f, 1.f / 16);
    std::size_t differ = 0;
    for (std::size_t i = 0; i < at_compile_time.size(); ++i) {
        const float x = -40.f + float(i) * (1.f / 16);
        float now;
        if constexpr (tq::is_stochastic_rounding_v<typename Q::rounding_policy>)
            now = Q{}(x, i);
        else
            now = Q{}(x);
        differ += std::bit_cast<std::uint32_t>(now) != std::bit_cast<std::uint32_t>(at_compile_time[i]);
    }
    CHECK(differ == 0);
}

template <class V, int W, int F>
void check_arithmetic_at_compile_time()
{
    static constexpr auto words = words_of<(std::size_t(1) << W)>(W, F);
    static constexpr auto at_compile_time = all_results<V>(words);
    const auto now = all_results<V>(words);
    std::size_t differ = 0;
    for (std::size_t i = 0; i < now.size(); ++i)
        differ += std::bit_cast<std::uint32_t>(now[i]) != std::bit_cast<std::uint32_t>(at_compile_time[i]);
    CHECK(differ == 0);
}

} // namespace

TEST_CASE("quantizers and the number type work in constant expressions")
{
    SUBCASE("fixed point: every rounding and overflow policy on a fine grid")
    {
        check_grid_at_compile_time<tq::fixed_point<8, 3, tq::rounding::nearest>>();
        check_grid_at_compile_time<tq::fixed_point<8, 3, tq::rounding::nearest_even>>();
        check_grid_at_compile_time<tq::fixed_point<8, 3, tq::rounding::nearest_up>>();
        check_grid_at_compile_time<tq::fixed_point<8, 3, tq::rounding::nearest_down>>();
        check_grid_at_compile_time<tq::fixed_point<8, 3, tq::rounding::nearest_zero>>();
        check_grid_at_compile_time<tq::fixed_point<8, 3, tq::rounding::zero>>();
        check_grid_at_compile_time<tq::fixed_point<8, 3, tq::rounding::down>>();
        check_grid_at_compile_time<tq::fixed_point<8, 3, tq::rounding::up, tq::overflow::symmetric>>();
        check_grid_at_compile_time<tq::fixed_point<7, 2, tq::rounding::nearest, tq::overflow::wrap>>();
        check_grid_at_compile_time<tq::fixed_point<6, -1, tq::rounding::nearest_even>>();
        check_grid_at_compile_time<tq::ufixed_point<8, 3, tq::rounding::down>>();
        check_grid_at_compile_time<tq::fixed_point<8, 3, tq::rounding::stochastic>>();
    }
    SUBCASE("the number type: every operation on every pair of words")
    {
        check_arithmetic_at_compile_time<tq::quantized<float, tq::fixed_point<4, 1>>, 4, 1>();
        check_arithmetic_at_compile_time<
            tq::quantized<float, tq::fixed_point<4, 2, tq::rounding::nearest_even, tq::overflow::wrap>>, 4, 2>();
        check_arithmetic_at_compile_time<tq::quantized<float, tq::fixed_point<5, 2, tq::rounding::down>>, 5, 2>();
    }
}
