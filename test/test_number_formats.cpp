// Minifloat arithmetic in the number type against an exact rational reference: every
// operation's result must be the format's rounding of the exact result (rounded once),
// bit for bit. Exhaustive on every operand pair of 8-bit and 6-bit formats.
#include "reference.hpp"

#include <doctest/doctest.h>

#include <boost/multiprecision/cpp_int.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace tq = tensorquant;

namespace {

using int128 = tq::detail::int128;

// The format written out from its definition: every code's value, and the grid of
// non-negative magnitudes in code order continued up to 2^(e_max + 1), so that a grid
// index's parity is the mantissa's. Magnitudes are integers G at the scale 2^-S of the
// smallest step (S = M - e_min); I is int128 for the small formats, cpp_int otherwise.
template <class I>
struct minifloat_reference
{
    tq::minifloat_format f;
    tq::minifloat_overflow o;
    int S;
    std::vector<double> codes; // value of every code (NaN codes as NaN)
    std::vector<I> grid;
    std::vector<double> grid_values;
    double max = 0;

    minifloat_reference(tq::minifloat_format fmt, tq::minifloat_overflow ov) : f(fmt), o(ov)
    {
        const int M = f.mantissa_bits, E = f.exponent_bits, top_field = (1 << E) - 1;
        const int e_min = 1 - f.bias, e_max = top_field - (f.ieee_specials ? 1 : 0) - f.bias;
        S = M - e_min;
        max = std::ldexp(2.0 - std::ldexp(1.0, (f.ieee_specials ? 0 : 1) - M), e_max);
        for (int sign = 0; sign < 2; ++sign)
            for (int ef = 0; ef <= top_field; ++ef)
                for (int mf = 0; mf < (1 << M); ++mf) {
                    double v;
                    if (ef == top_field && f.ieee_specials)
                        v = mf == 0 ? std::numeric_limits<double>::infinity()
                                    : std::numeric_limits<double>::quiet_NaN();
                    else if (ef == top_field && mf == (1 << M) - 1)
                        v = std::numeric_limits<double>::quiet_NaN(); // finite-only formats: S.1111.111
                    else if (ef == 0 && mf != 0 && !f.subnormals)
                        continue; // no such values
                    else if (ef == 0)
                        v = std::ldexp(double(mf), e_min - M);
                    else
                        v = std::ldexp(double((1 << M) + mf), ef - f.bias - M);
                    codes.push_back(sign ? -v : v);
                }
        for (int e = e_min;; ++e)
            for (int m = (e == e_min ? 0 : 1 << M); m < (2 << M); ++m) {
                grid.push_back(I(m) << (e - e_min));
                grid_values.push_back(std::ldexp(double(m), e - M));
                if (m == (1 << M) && e == e_max + 1) return;
            }
    }

    // |a| 2^S for a value of the format (an integer below 2^1100).
    I scaled(double a) const
    {
        int e = 0;
        const double fr = std::frexp(std::fabs(a), &e);
        const auto m = static_cast<std::int64_t>(std::ldexp(fr, 53));
        const int k = e - 53 + S; // |a| 2^S = m 2^k
        if (k >= 0) return I(m) << k;
        if (m % (std::int64_t(1) << -k) != 0) throw std::logic_error("not a value of the format");
        return I(m >> -k);
    }

    double overflow_value() const
    {
        if (o == tq::minifloat_overflow::saturate) return max;
        return f.ieee_specials ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
    }
    // What a non-finite IEEE result becomes in the format.
    double special(double x) const
    {
        if (std::isinf(x)) return std::copysign(overflow_value(), x);
        return x;
    }

    // |x| rounded. cmp(P, k) is the sign of P 2^-(S + k) - |x|, so quotients and square
    // roots need no approximation. j / 2^ubits: the stochastic threshold.
    int ubits = 24;
    template <class Cmp>
    double round_magnitude(Cmp const& cmp, tq::rounding_mode r, std::uint32_t j) const
    {
        if (cmp(grid.back(), 0) <= 0) return overflow_value(); // |x| >= 2^(e_max + 1)
        std::size_t lo = 0, hi = grid.size() - 1;              // grid[lo] <= |x| < grid[hi]
        while (hi - lo > 1) {
            const std::size_t mid = (lo + hi) / 2;
            (cmp(grid[mid], 0) <= 0 ? lo : hi) = mid;
        }
        std::size_t k = lo;
        if (cmp(grid[lo], 0) != 0) {
            const int c = cmp(I(grid[lo] + grid[hi]), 1);
            switch (r) {
            case tq::rounding_mode::nearest_even:
                k = c < 0 ? hi : c > 0 ? lo : (lo % 2 == 0 ? lo : hi);
                break;
            case tq::rounding_mode::nearest:
                k = c <= 0 ? hi : lo;
                break;
            case tq::rounding_mode::zero:
                k = lo;
                break;
            default: // stochastic: away from zero when frac(|x|) > u
                k = cmp(I((grid[lo] << ubits) + I(j) * I(grid[hi] - grid[lo])), ubits) < 0 ? hi : lo;
            }
        }
        const double v = grid_values[k];
        if (v > max) return overflow_value();
        if (!f.subnormals && v < std::ldexp(1.0, 1 - f.bias)) return 0.0;
        return v;
    }
    // num / (den 2^S) rounded, num >= 0, den > 0.
    double round_quotient(I const& num, I const& den, tq::rounding_mode r, std::uint32_t j) const
    {
        auto cmp = [&](I const& p, int k) {
            const I lhs = p * den, rhs = num << k;
            return lhs < rhs ? -1 : lhs > rhs ? 1 : 0;
        };
        return round_magnitude(cmp, r, j);
    }
};

bool same(double a, float b)
{
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    return std::bit_cast<std::uint32_t>(float(a)) == std::bit_cast<std::uint32_t>(b);
}
bool same(double a, double b)
{
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b);
}

enum class op { add, sub, mul, div };
constexpr const char* op_names[] = {"+", "-", "*", "/"};

template <class I>
double signed_result(minifloat_reference<I> const& ref, I const& num, I const& den, tq::rounding_mode r,
                     std::uint32_t j)
{
    const double m = ref.round_quotient(num < 0 ? I(-num) : num, den, r, j);
    return num < 0 ? -m : m;
}

// The reference result of a op b for values of the format (j: the threshold's bits).
template <class I>
double reference_binary(minifloat_reference<I> const& ref, op o, double a, double b, tq::rounding_mode r,
                        std::uint32_t j)
{
    const double ieee = o == op::add ? a + b : o == op::sub ? a - b : o == op::mul ? a * b : a / b;
    if (!std::isfinite(a) || !std::isfinite(b) || (o == op::div && b == 0)) return ref.special(ieee);
    // x = num / (den 2^S) with the signed integers A = a 2^S, B = b 2^S
    const I A = a < 0 ? I(-ref.scaled(a)) : ref.scaled(a), B = b < 0 ? I(-ref.scaled(b)) : ref.scaled(b);
    I num, den = I(1);
    if (o == op::add || o == op::sub) {
        num = o == op::add ? I(A + B) : I(A - B);
    } else if (o == op::mul) {
        num = A * B, den = I(1) << ref.S;
    } else {
        num = A << ref.S, den = B;
        if (den < 0) num = -num, den = -den;
    }
    if (num == 0) return ieee; // exact zero: IEEE's signed-zero rules, which double computes exactly
    return signed_result(ref, num, den, r, j);
}

template <class I>
double reference_sqrt(minifloat_reference<I> const& ref, double a, tq::rounding_mode r, std::uint32_t j)
{
    if (std::isnan(a) || a == 0 || a == std::numeric_limits<double>::infinity()) return a;
    if (a < 0) return std::numeric_limits<double>::quiet_NaN();
    const I A = ref.scaled(a); // sqrt(A 2^-S) against P 2^-(S + k): P^2 against A 2^(S + 2k)
    auto cmp = [&](I const& p, int k) {
        const I lhs = p * p, rhs = A << (ref.S + 2 * k);
        return lhs < rhs ? -1 : lhs > rhs ? 1 : 0;
    };
    return ref.round_magnitude(cmp, r, j);
}

template <class I>
double reference_fma(minifloat_reference<I> const& ref, double a, double b, double c, tq::rounding_mode r,
                     std::uint32_t j)
{
    if (!std::isfinite(a) || !std::isfinite(b) || !std::isfinite(c)) return ref.special(a * b + c);
    auto signed_scaled = [&](double v) { return v < 0 ? I(-ref.scaled(v)) : ref.scaled(v); };
    const I num = signed_scaled(a) * signed_scaled(b) + (signed_scaled(c) << ref.S);
    if (num == 0) return a * b + c; // exact zero (a b is exact in double for these formats)
    return signed_result(ref, num, I(I(1) << ref.S), r, j);
}

template <class R>
constexpr tq::rounding_mode mode_of = R::mode;

struct case_counter
{
    std::size_t checked = 0;
    std::size_t failed = 0;
    template <class Describe>
    void check(bool ok, Describe&& describe)
    {
        ++checked;
        if (!ok && failed++ < 3) FAIL_CHECK(describe());
    }
};

// Every pair (and every operand for sqrt) of a format with rounding R, through the
// integer arithmetic the number type uses; thresholds vary per case.
template <class R>
void check_all_pairs(tq::minifloat_format fmt, tq::minifloat_overflow o, bool fma_triples, case_counter& count)
{
    const minifloat_reference<int128> ref(fmt, o);
    const tq::detail::minifloat_arith<float, R> ar(fmt, o);
    constexpr tq::rounding_mode mode = mode_of<R>;
    std::mt19937 g(5);
    std::uint32_t j = 0;
    auto threshold = [&] {
        j = g() >> 8;
        return float(j) * 0x1p-24f;
    };
    const auto& v = ref.codes;
    for (double a : v) {
        for (double b : v)
            for (op o2 : {op::add, op::sub, op::mul, op::div}) {
                const float u = threshold();
                const float fa = float(a), fb = float(b);
                const float got = o2 == op::add   ? ar.add(fa, fb, u)
                                  : o2 == op::sub ? ar.add(fa, -fb, u)
                                  : o2 == op::mul ? ar.mul(fa, fb, u)
                                                  : ar.div(fa, fb, u);
                const double want = reference_binary(ref, o2, a, b, mode, j);
                count.check(same(want, got), [&] {
                    std::ostringstream s;
                    s.precision(17);
                    s << tq::minifloat(fmt, mode, o).to_string() << ": " << a << " " << op_names[int(o2)] << " " << b
                      << " (u " << u << ") gave " << got << ", exact rounding " << want;
                    return s.str();
                });
            }
        const float u = threshold();
        const float got = ar.sqrt(float(a), u);
        const double want = reference_sqrt(ref, a, mode, j);
        count.check(same(want, got), [&] {
            std::ostringstream s;
            s.precision(17);
            s << tq::minifloat(fmt, mode, o).to_string() << ": sqrt " << a << " gave " << got << ", exact " << want;
            return s.str();
        });
    }
    // fma: every triple of a small format; every pair with a spread of addends otherwise
    std::vector<double> addends = v;
    if (!fma_triples) {
        addends.clear();
        for (std::size_t i = 0; i < v.size(); i += v.size() / 12) addends.push_back(v[i]);
        addends.push_back(-0.0);
    }
    for (double a : v)
        for (double b : v)
            for (double c : addends) {
                const float u = threshold();
                const float got = ar.fma(float(a), float(b), float(c), u);
                const double want = reference_fma(ref, a, b, c, mode, j);
                count.check(same(want, got), [&] {
                    std::ostringstream s;
                    s.precision(17);
                    s << tq::minifloat(fmt, mode, o).to_string() << ": fma(" << a << ", " << b << ", " << c << ") (u "
                      << u << ") gave " << got << ", exact " << want;
                    return s.str();
                });
            }
}

template <class Fn>
void for_each_rounding(Fn&& fn)
{
    fn(tq::rounding::nearest_even{});
    fn(tq::rounding::nearest{});
    fn(tq::rounding::zero{});
    fn(tq::rounding::stochastic{});
}

} // namespace

TEST_CASE("minifloat arithmetic rounds once on every operand pair of small formats")
{
    const tq::minifloat_format six_bit{3, 2, 3, true, true}, six_bit_flush{3, 2, 2, false, false};
    for (auto fmt : {tq::minifloats::fp8_e4m3, tq::minifloats::fp8_e5m2, six_bit, six_bit_flush})
        for (auto o : {tq::minifloat_overflow::to_infinity, tq::minifloat_overflow::saturate})
            for_each_rounding([&](auto r) {
                case_counter count;
                check_all_pairs<decltype(r)>(fmt, o, fmt.exponent_bits + fmt.mantissa_bits < 7, count);
                CAPTURE(tq::minifloat(fmt, r.mode, o).to_string());
                CHECK(count.failed == 0);
                CHECK(count.checked > 4 * 4096);
            });
}

namespace {

template <class T, class Q>
using number = tq::quantized<T, Q>;

// Random operands of a wide format: random codes (every binade equally likely), some
// special values among them.
template <class I>
std::vector<double> random_operands(minifloat_reference<I> const& ref, std::size_t n, std::uint64_t seed)
{
    std::mt19937_64 g(seed);
    std::uniform_int_distribution<std::size_t> pick(0, ref.codes.size() - 1);
    std::vector<double> v;
    while (v.size() < n) {
        const double x = ref.codes[pick(g)];
        if (!std::isnan(x) || g() % 64 == 0) v.push_back(x);
    }
    return v;
}

// quantized<T, Q> against the cpp_int reference on random operands, thresholds from a
// stochastic_scope.
template <class T, class Q>
void check_random_number(std::size_t n)
{
    using V = number<T, Q>;
    using R = typename Q::rounding_policy;
    constexpr tq::rounding_mode mode = R::mode;
    minifloat_reference<tqtest::big> ref(Q::format, Q::overflow);
    ref.ubits = sizeof(T) == 4 ? 24 : 32;
    const auto a = random_operands(ref, n, 1), b = random_operands(ref, n, 2), c = random_operands(ref, n, 3);
    const tq::rng_key key{9, 4};
    const tq::detail::counter_rng rng(key);
    tq::stochastic_scope scope(key, 1000);
    case_counter count;
    auto next_bits = [&] { // the threshold the next operation draws, as an integer
        return static_cast<std::uint32_t>(std::ldexp(double(rng.uniform<T>(scope.position())), ref.ubits));
    };
    for (std::size_t i = 0; i < n; ++i) {
        const V x = V::from_raw(T(a[i])), y = V::from_raw(T(b[i])), z = V::from_raw(T(c[i]));
        auto report = [&](char const* what, double got, double want) {
            count.check(same(want, got), [&] {
                std::ostringstream s;
                s.precision(17);
                s << Q{}.to_string() << ": " << a[i] << " " << what << " " << b[i] << " (" << c[i] << ") gave " << got
                  << ", exact rounding " << want;
                return s.str();
            });
        };
        std::uint32_t j = next_bits();
        report("+", double(T(x + y)), reference_binary(ref, op::add, a[i], b[i], mode, j));
        j = next_bits();
        report("-", double(T(x - y)), reference_binary(ref, op::sub, a[i], b[i], mode, j));
        j = next_bits();
        report("*", double(T(x * y)), reference_binary(ref, op::mul, a[i], b[i], mode, j));
        j = next_bits();
        report("/", double(T(x / y)), reference_binary(ref, op::div, a[i], b[i], mode, j));
        j = next_bits();
        report("sqrt", double(T(sqrt(x))), reference_sqrt(ref, a[i], mode, j));
        j = next_bits();
        report("fma", double(T(fma(x, y, z))), reference_fma(ref, a[i], b[i], c[i], mode, j));
    }
    CHECK(count.failed == 0);
    CHECK(count.checked == 6 * n);
}

template <class T, class R>
void check_random_wide(std::size_t n)
{
    check_random_number<T, tq::minifloat_of<tq::minifloats::fp16, R>>(n);
    check_random_number<T, tq::minifloat_of<tq::minifloats::bf16, R>>(n);
    check_random_number<T, tq::minifloat_of<tq::minifloats::bf16, R, tq::minifloat_overflow::saturate>>(n / 4);
}

} // namespace

TEST_CASE_TEMPLATE("quantized minifloat numbers round once on random fp16 and bf16 operands", T, float, double)
{
    check_random_wide<T, tq::rounding::nearest_even>(4000);
    check_random_wide<T, tq::rounding::nearest>(1000);
    check_random_wide<T, tq::rounding::zero>(1000);
    check_random_wide<T, tq::rounding::stochastic>(4000);
}

TEST_CASE("quantized minifloat numbers use the exact arithmetic on every fp8 pair")
{
    using Q = tq::minifloat_of<tq::minifloats::fp8_e4m3, tq::rounding::stochastic>;
    using V = number<float, Q>;
    const minifloat_reference<int128> ref(Q::format, Q::overflow);
    const tq::detail::minifloat_arith<float, tq::rounding::stochastic> ar(Q::format, Q::overflow);
    const tq::rng_key key{1, 2};
    const tq::detail::counter_rng rng(key);
    tq::stochastic_scope scope(key);
    std::size_t bad = 0;
    for (double a : ref.codes)
        for (double b : ref.codes) {
            const float fa = float(a), fb = float(b);
            const float u = rng.uniform<float>(scope.position());
            const float got = float(V::from_raw(fa) * V::from_raw(fb));
            bad += !same(double(ar.mul(fa, fb, u)), got);
        }
    CHECK(bad == 0);
    CHECK(scope.position() == ref.codes.size() * ref.codes.size());
}

TEST_CASE("minifloat numbers convert and compare like the quantizer")
{
    using e4m3 = number<float, tq::minifloats::fp8_e4m3_t>;
    using half = number<float, tq::minifloats::fp16_t>;
    using bf16 = number<double, tq::minifloats::bf16_t>;
    SUBCASE("construction quantizes once in the wider type")
    {
        // 1 + 2^-11 + 2^-30 in double rounds up in fp16, but float would drop the 2^-30 first
        CHECK(float(half(1.0 + 0x1p-11 + 0x1p-30)) == 1.0f + 0x1p-10f);
        CHECK(float(half(1.0f + 0x1p-11f)) == 1.0f);   // the tie goes to even
        CHECK(float(e4m3(1000)) != float(e4m3(1000))); // e4m3 has no infinity: NaN
        CHECK(float(e4m3(-3)) == -3.0f);
        CHECK(float(e4m3(17)) == 16.0f);
        CHECK(double(bf16(257)) == 256.0);
    }
    SUBCASE("codes")
    {
        CHECK(e4m3(448.0f).word() == 0x7e);
        CHECK(e4m3(-0x1p-9f).word() == 0x81);
        CHECK(e4m3(std::numeric_limits<float>::quiet_NaN()).word() == 0x7f);
        CHECK(half(std::numeric_limits<float>::infinity()).word() == 0x7c00);
        CHECK(half(-0.0f).word() == 0x8000);
        CHECK(half(1.0f).word() == 0x3c00);
        CHECK(bf16(-2.0).word() == 0xc000);
    }
    SUBCASE("every code of the 8-bit formats")
    {
        auto check_codes = [](auto q) {
            using V = number<float, decltype(q)>;
            const minifloat_reference<int128> ref(V::format, tq::minifloat_overflow::to_infinity);
            std::size_t bad = 0;
            for (std::size_t code = 0; code < ref.codes.size(); ++code)
                if (!std::isnan(ref.codes[code])) {
                    const V v = V::from_raw(float(ref.codes[code]));
                    bad += v.word() != code || !same(ref.codes[code], float(V(ref.codes[code])));
                }
            CHECK(bad == 0);
        };
        check_codes(tq::minifloats::fp8_e4m3_t{});
        check_codes(tq::minifloats::fp8_e5m2_t{});
    }
    SUBCASE("numeric_limits")
    {
        using L8 = std::numeric_limits<e4m3>;
        using L16 = std::numeric_limits<half>;
        CHECK(float(L8::max()) == 448.0f);
        CHECK(float(L8::lowest()) == -448.0f);
        CHECK(float(L8::min()) == 0x1p-6f);
        CHECK(float(L8::denorm_min()) == 0x1p-9f);
        CHECK(float(L8::epsilon()) == 0.125f);
        CHECK(!L8::has_infinity);
        CHECK(L8::digits == 4);
        CHECK(float(L16::max()) == 65504.0f);
        CHECK(L16::has_infinity);
        CHECK(std::isinf(float(L16::infinity())));
        CHECK(L16::max_exponent == 16);
        CHECK(L16::min_exponent == -13);
        CHECK(float(L16::epsilon()) == 0x1p-10f);
    }
    SUBCASE("special values")
    {
        const half zero = 0.0f, one = 1.0f, inf = std::numeric_limits<float>::infinity();
        CHECK(std::isinf(float(one / zero)));
        CHECK(std::isnan(float(zero / zero)));
        CHECK(std::isnan(float(inf - inf)));
        CHECK(std::isnan(float(sqrt(-one))));
        CHECK(std::signbit(float(sqrt(-zero))));
        CHECK(!std::signbit(float(one - one)));
        CHECK(std::signbit(float(-zero + -zero)));
        CHECK(float(half(65504.0f) + half(8.0f)) == 65504.0f);  // below the tie: rounds back
        CHECK(std::isinf(float(half(65504.0f) + half(16.0f)))); // the tie rounds to even: beyond max
        using sat = number<float, tq::minifloat_of<tq::minifloats::fp8_e4m3, tq::rounding::nearest_even,
                                                   tq::minifloat_overflow::saturate>>;
        CHECK(float(sat(448.0f) * sat(2.0f)) == 448.0f);
        CHECK(float(sat(1.0f) / sat(0.0f)) == 448.0f);
    }
}

TEST_CASE("minifloat logarithmic and composed quantizers work in constant expressions")
{
    using e4m3 = number<float, tq::minifloats::fp8_e4m3_t>;
    using half = number<float, tq::minifloats::fp16_t>;
    static_assert(tq::minifloats::fp8_e4m3_t{}(0.3f) == 0.3125f);
    static_assert(tq::minifloats::fp16_t{}(65520.0f) == std::numeric_limits<float>::infinity());
    static_assert(tq::minifloat_of<tq::minifloats::bf16, tq::rounding::zero>{}(1.99f) == 1.984375f);
    static_assert(float(e4m3(1.5f) * e4m3(3.0f)) == 4.5f);
    static_assert(float(e4m3(1.0f) / e4m3(3.0f)) == 0.34375f);
    static_assert(float(sqrt(e4m3(2.0f))) == 1.375f);
    static_assert(float(fma(half(1.0f), half(0x1p-11f), half(1.0f))) == 1.0f);
    static_assert(float(half(1.0f) + half(0x1p-11f) + half(0x1p-11f)) == 1.0f);
    static_assert(float(std::numeric_limits<e4m3>::max()) == 448.0f);
    // composed stages too
    static_assert(tq::compose(tq::fixed_point<8, 4>{}, tq::minifloats::fp8_e4m3_t{})(0.3f) == 0.3125f);
    static_assert(tq::compose(tq::minifloats::fp16_t{}, tq::fixed_point<6, 2>{})(1.3f) == 1.25f);
    constexpr auto both = tq::compose(tq::logarithmic_of<tq::log_rounding::floor, -8, 8>{}, tq::fixed_point<8, 4>{});
    CHECK(both(0.7f) == 0.5f); // the same call at run time
    static_assert(both(0.7f) == 0.5f);
}

TEST_CASE("stochastic minifloat numbers give the same bits on any thread count")
{
    using V = number<float, tq::minifloat_of<tq::minifloats::fp8_e5m2, tq::rounding::stochastic>>;
    // a dot product per row; each row opens a scope at its own position
    auto row = [](int r) {
        tq::stochastic_scope scope({7, 1}, std::uint64_t(r) << 20);
        V acc = 0;
        for (int k = 0; k < 200; ++k) acc = fma(V(0.01f * float(k % 13)), V(0.3f + 0.001f * float(r)), acc);
        return acc.raw();
    };
    std::vector<float> one_thread(64), two_threads(64);
    for (int r = 0; r < 64; ++r) one_thread[r] = row(r);
    std::thread t([&] {
        for (int r = 0; r < 64; r += 2) two_threads[r] = row(r);
    });
    for (int r = 1; r < 64; r += 2) two_threads[r] = row(r);
    t.join();
    CHECK(one_thread == two_threads);
    CHECK_THROWS_WITH_AS(V(1.0f) + V(1.0f), doctest::Contains("no stochastic_scope"), tq::format_error);
}

// ---------------------------------------------------------------------------------------
// Logarithmic: the reference rounds an exact |x| given by its square Y = num / den, so
// that square roots stay exact: floor takes the largest k with 2^(2k) <= Y, nearest moves
// up once Y >= 2^(2k + 1) (|x| >= 2^k sqrt 2).

namespace {

using tqtest::big;

struct log_reference
{
    tq::log_rounding r;
    int e_min;
    int e_max;

    static big pow2(int k) { return big(1) << k; }
    // num / den >= 2^e, for any integer e
    static bool at_least(big const& num, big const& den, int e)
    {
        return e >= 0 ? num >= den * pow2(e) : num * pow2(-e) >= den;
    }
    // |x| for x^2 = num / den > 0, rounded, with the sign, as a double
    double round_square(bool negative, big const& num, big const& den) const
    {
        // floor(log2 Y) from the leading bits, then the largest k with 2k <= it
        int l = int(boost::multiprecision::msb(num)) - int(boost::multiprecision::msb(den));
        if (!at_least(num, den, l)) --l;
        int k = l >= 0 ? l / 2 : -((-l + 1) / 2);
        if (r == tq::log_rounding::nearest && at_least(num, den, 2 * k + 1)) ++k;
        double v = k < e_min ? 0.0 : std::ldexp(1.0, k > e_max ? e_max : k);
        return negative ? -v : v;
    }
    // x = num / den (den != 0)
    double round_value(big const& num, big const& den) const
    {
        const big a = num < 0 ? big(-num) : num;
        return round_square((num < 0) != (den < 0), a * a, den * den);
    }
    // Every value; for wide ranges the exponents near both ends, near 0, and every 9th.
    std::vector<double> values() const
    {
        std::vector<double> v{0.0, -0.0, std::numeric_limits<double>::quiet_NaN()};
        for (int k = e_min; k <= e_max; ++k)
            if (e_max - e_min <= 16 || k - e_min < 4 || e_max - k < 4 || (k > -4 && k < 4) || k % 9 == 0)
                v.push_back(std::ldexp(1.0, k)), v.push_back(-std::ldexp(1.0, k));
        return v;
    }
    double special(double x) const // inf saturates, NaN stays
    {
        if (std::isinf(x)) return std::copysign(std::ldexp(1.0, e_max), x);
        return x;
    }
};

template <class T, class Q>
void check_logarithmic(bool triples)
{
    using V = tq::quantized<T, Q>;
    const log_reference ref{Q::rounding, Q::min_exponent, Q::max_exponent};
    const auto vals = ref.values();
    case_counter count;
    // every value is (integer) 2^-shift; products and sums of two stay integers at 2 shift
    const int shift = -ref.e_min + 1;
    auto fraction = [&](double x, int scale) {
        // x exactly as num / 2^scale
        big num = 0;
        if (x != 0) {
            const int e = std::ilogb(x);
            num = (e + scale >= 0) ? big(1) << (e + scale) : big(0);
            if (x < 0) num = -num;
        }
        return num;
    };
    auto report = [&](char const* what, double a, double b, double got, double want) {
        count.check(same(want, got), [&] {
            std::ostringstream s;
            s << Q{}.to_string() << ": " << a << " " << what << " " << b << " gave " << got << ", exact rounding "
              << want;
            return s.str();
        });
    };
    const big one = big(1) << (2 * shift);
    for (double a : vals) {
        for (double b : vals) {
            const V x = V::from_raw(T(a)), y = V::from_raw(T(b));
            for (int o = 0; o < 4; ++o) {
                const double ieee = o == 0 ? a + b : o == 1 ? a - b : o == 2 ? a * b : a / b;
                double want;
                if (!std::isfinite(a) || !std::isfinite(b) || (o == 3 && b == 0))
                    want = ref.special(ieee);
                else if (ieee == 0)
                    want = ieee; // exact zeros follow IEEE's sign rules
                else if (o < 2)
                    want = ref.round_value(fraction(a, 2 * shift) + (o == 0 ? 1 : -1) * fraction(b, 2 * shift), one);
                else if (o == 2)
                    want = ref.round_value(fraction(a, shift) * fraction(b, shift), one);
                else
                    want = ref.round_value(fraction(a, shift), fraction(b, shift));
                const V got = o == 0 ? x + y : o == 1 ? x - y : o == 2 ? x * y : x / y;
                report(op_names[o], a, b, double(T(got)), want);
            }
            const auto cs = triples ? vals : std::vector<double>{0.0, 1.0, -0.5, std::ldexp(1.0, ref.e_max)};
            for (double c : cs) {
                double want;
                if (!std::isfinite(a) || !std::isfinite(b) || !std::isfinite(c))
                    want = ref.special(a * b + c);
                else if (a * b + c == 0 && (a == 0 || b == 0 || c == 0 || a * b == -c))
                    want = a * b + c;
                else // a b + c at scale 2^(3 shift) covers the product of two and the addend
                    want = ref.round_value(fraction(a, shift) * fraction(b, shift) * (big(1) << shift) +
                                               fraction(c, 3 * shift),
                                           big(1) << (3 * shift));
                report("fma", a, b, double(T(fma(x, y, V::from_raw(T(c))))), want);
            }
        }
        // sqrt: Y = a itself
        double want;
        if (std::isnan(a) || a == 0)
            want = a;
        else if (a < 0)
            want = std::numeric_limits<double>::quiet_NaN();
        else
            want = ref.round_square(false, fraction(a, 2 * shift), one);
        report("sqrt", a, a, double(T(sqrt(V::from_raw(T(a))))), want);
        for (std::int64_t n = 1; n <= 24; ++n) {
            double w = a;
            if (std::isfinite(a) && a != 0) w = ref.round_value(fraction(a, 2 * shift), one * n);
            report("divided by n", a, double(n), double(T(divide(V::from_raw(T(a)), n))), w);
        }
    }
    for (std::int64_t i = -300; i <= 300; ++i)
        report("from integer", double(i), 0, double(T(V(i))), i == 0 ? 0.0 : ref.round_value(big(i), big(1)));
    CHECK(count.failed == 0);
    CHECK(count.checked > vals.size() * vals.size());
}

} // namespace

TEST_CASE_TEMPLATE("logarithmic numbers round once on every operand pair", T, float, double)
{
    using tq::log_rounding;
    check_logarithmic<T, tq::logarithmic_of<log_rounding::floor, -4, 4>>(true);
    check_logarithmic<T, tq::logarithmic_of<log_rounding::nearest, -4, 4>>(true);
    check_logarithmic<T, tq::logarithmic_of<log_rounding::nearest, -3, 0>>(true);
    check_logarithmic<T, tq::logarithmic_of<log_rounding::floor, -125, 127>>(false);
    check_logarithmic<T, tq::logarithmic_of<log_rounding::nearest, -125, 127>>(false);
    static_assert(float(tq::quantized<float, tq::logarithmic_of<log_rounding::nearest, -8, 8>>(3.0f) *
                        tq::quantized<float, tq::logarithmic_of<log_rounding::nearest, -8, 8>>(0.3f)) == 1.0f);
    static_assert(tq::logarithmic_of<log_rounding::floor, -8, 8>{}(0.7f) == 0.5f);
}

// ---------------------------------------------------------------------------------------
// User-defined formats: computed in the wider type, then quantized.

namespace {
// Nearest-even onto steps of 2^-8, unbounded: written for any floating type.
struct steps_of_256
{
    template <std::floating_point T>
    constexpr T operator()(T x) const
    {
        const T s = x * T(256);
        T r = T(static_cast<long long>(s)); // trunc
        const T e = s - r;
        if (e > T(0.5) || (e == T(0.5) && static_cast<long long>(r) % 2 != 0)) r += 1;
        if (e < T(-0.5) || (e == T(-0.5) && static_cast<long long>(r) % 2 != 0)) r -= 1;
        return r / T(256);
    }
};
// Written for float only: the number type converts the wider result to float first.
struct float_only_halves
{
    float operator()(float x) const { return std::nearbyint(x * 2.0f) / 2.0f; }
};
// A format that must not be emulated by double rounding.
struct needs_exact
{
    static constexpr bool needs_exact_arithmetic = true;
    float operator()(float x) const { return x; }
};
} // namespace

TEST_CASE("user-defined formats in the number type round the wider result")
{
    using V = tq::quantized<float, steps_of_256>;
    static_assert(std::is_void_v<V::rounding_policy>);
    static_assert(!tq::number_traits<float, needs_exact>::family);
    static_assert(tq::number_traits<float, steps_of_256>::family);
    std::mt19937 g(3);
    std::uniform_int_distribution<int> words(-(1 << 11), 1 << 11); // results stay floats
    std::size_t bad = 0;
    for (int i = 0; i < 20000; ++i) {
        const int wa = words(g), wb = words(g);
        const float a = float(wa) / 256.0f, b = float(wb) / 256.0f;
        const V x = V::from_raw(a), y = V::from_raw(b);
        // + - * of 2^-8 steps are exact in double, so one rounding: the exact reference
        auto nearest_even_word = [](big num, big den) { // num / den rounded, den > 0
            const bool neg = num < 0;
            if (neg) num = -num;
            big q = num / den, r = num - q * den;
            if (2 * r > den || (2 * r == den && q % 2 != 0)) q += 1;
            return neg ? big(-q) : q;
        };
        auto as_float = [](big w) { return float(double(w.convert_to<long long>()) / 256.0); };
        bad += float(x + y) != as_float(big(wa) + wb);
        bad += float(x - y) != as_float(big(wa) - wb);
        bad += float(x * y) != as_float(nearest_even_word(big(wa) * wb, big(256)));
        bad += float(fma(x, y, x)) != as_float(nearest_even_word(big(wa) * wb + big(wa) * 256, big(256)));
    }
    CHECK(bad == 0);
    using H = tq::quantized<float, float_only_halves>;
    CHECK(float(H(1.25f) + H(0.5f)) == 1.5f); // 1.25 is quantized to 1 first
    CHECK(float(H(0.75f)) == 1.0f);           // construction quantizes (ties to even)
    CHECK(float(H(3)) == 3.0f);
}

// ---------------------------------------------------------------------------------------
// Datapaths: exact products, one rounding into the accumulator.

TEST_CASE("mac rounds an exact product once into a wider fixed-point accumulator")
{
    using in_t = tq::quantized<float, tq::fixed_point<8, 4>>;
    using w_t = tq::quantized<float, tq::fixed_point<8, 6>>;
    using acc_t = tq::quantized<float, tq::fixed_point<20, 8, tq::rounding::nearest_even>>; // 2 product bits dropped
    using wrap_t = tq::quantized<std::int64_t, tq::fixed_point<12, 10, tq::rounding::down, tq::overflow::wrap>>;
    const tq::fixed_format acc{20, 8, true}, wrap{12, 10, true};
    std::size_t bad = 0, checked = 0;
    for (int wa = -128; wa < 128; ++wa)
        for (int wb = -128; wb < 128; ++wb)
            for (int wc : {0, 1, -77, 5000, -(1 << 19), (1 << 19) - 1}) {
                const in_t a = in_t::from_raw(float(wa) / 16);
                const w_t b = w_t::from_raw(float(wb) / 64);
                // exact: wa wb 2^-10 + wc 2^-8, in units of 2^-8: (wa wb + 4 wc) / 4
                const big want = tqtest::limit_ref(
                    tq::overflow_mode::saturate, acc,
                    tqtest::round_rational(tq::rounding_mode::nearest_even, big(wa) * wb + big(4) * wc, big(4)));
                const float got = tq::mac(a, b, acc_t::from_raw(float(wc) / 256)).value();
                bad += !tqtest::equals_fixed(got, want, 8);
                // integer storage, wrap, round down: units of 2^-10 are exact products
                const auto wc2 = std::int64_t(wc % 2048);
                const big want2 = tqtest::limit_ref(tq::overflow_mode::wrap, wrap, big(wa) * wb + wc2);
                using ia = tq::quantized<std::int64_t, tq::fixed_point<8, 4>>;
                using ib = tq::quantized<std::int64_t, tq::fixed_point<8, 6>>;
                const auto got2 = tq::mac(ia::from_raw(wa), ib::from_raw(wb), wrap_t::from_raw(wc2)).raw();
                bad += big(got2) != want2;
                checked += 2;
            }
    CHECK(bad == 0);
    CHECK(checked == 2 * 65536 * 6);
    // the exact product keeps every bit
    const auto p = tq::exact_product(in_t(1.8125f), w_t(-0.984375f));
    static_assert(std::is_same_v<decltype(p)::quantizer_type, tq::fixed_point<16, 10>>);
    CHECK(p.value() == 1.8125f * -0.984375f);
    static_assert(tq::exact_product(in_t(1.5f), w_t(0.5f)).value() == 0.75f);
}

TEST_CASE("mac of fp8 operands into an fp32 accumulator equals a fused multiply-add")
{
    // fp32 as a minifloat: IEEE binary32, nearest even, so std::fma is the reference
    using fp32 = tq::minifloat_of<tq::minifloat_format{8, 23, 127, true, true}>;
    using acc_t = tq::quantized<float, fp32>;
    using e4m3 = tq::quantized<float, tq::minifloats::fp8_e4m3_t>;
    using e5m2 = tq::quantized<float, tq::minifloats::fp8_e5m2_t>;
    const minifloat_reference<int128> r4(tq::minifloats::fp8_e4m3, tq::minifloat_overflow::to_infinity);
    const minifloat_reference<int128> r5(tq::minifloats::fp8_e5m2, tq::minifloat_overflow::to_infinity);
    std::size_t bad = 0;
    for (float c : {0.0f, 1.0f, -3.7e-5f, 1e30f, 0x1p-140f, -448.0f * 448.0f, 12345.678f})
        for (double a : r4.codes)
            for (double b : r5.codes) {
                const float want = std::fma(float(a), float(b), c);
                const float got = tq::mac(e4m3::from_raw(float(a)), e5m2::from_raw(float(b)), acc_t(c)).value();
                bad += !same(double(want), got);
            }
    CHECK(bad == 0);
}
