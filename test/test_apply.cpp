#include "reference.hpp"

#include <tensorquant/xtensor.hpp>

#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <span>
#include <vector>

namespace tq = tensorquant;

namespace {

// Every built-in, by its string form, plus compile-time types and a composition.
// Every example spelling of every registered quantizer.
std::vector<std::string_view> all_specs()
{
    std::vector<std::string_view> specs;
    tq::detail::for_each_type(tq::quantizer_registry{}, [&](auto q) {
        for (auto e : decltype(q)::type::examples) specs.push_back(e);
    });
    return specs;
}

template <class T>
std::vector<T> test_data(std::size_t n, unsigned seed)
{
    std::mt19937 g(seed);
    std::normal_distribution<double> d(0, 3);
    std::vector<T> x(n);
    for (auto& v : x) v = T(d(g));
    if (n > 10) {
        x[1] = std::numeric_limits<T>::quiet_NaN();
        x[3] = std::numeric_limits<T>::infinity();
        x[5] = T(-0.0);
        x[7] = T(1e30);
    }
    return x;
}

template <class T>
bool bit_equal(std::vector<T> const& a, std::vector<T> const& b)
{
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Hides a kernel's batch overloads so the apply loop takes the scalar route.
template <class K>
struct scalar_only
{
    K k;
    template <std::floating_point T>
    T operator()(T x, std::uint64_t i) const
    {
        return tq::detail::call_at(k, x, i);
    }
};

template <class A, class T, class Q>
std::vector<T> run(Q const& q, std::vector<T> const& x, tq::apply_options o = {})
{
    std::vector<T> y(x.size());
    tq::quantize<A>(q, std::span<T const>(x), std::span<T>(y), o);
    return y;
}

template <class T, class Q>
std::vector<T> run_scalar(Q const& q, std::vector<T> const& x)
{
    std::vector<T> y(x.size());
    // resolve to the kernel exactly as apply does, then loop element by element
    auto resolved = [&](auto const& k) {
        using K = std::decay_t<decltype(k)>;
        if constexpr (tq::TensorQuantizer<K, T>) {
            auto p = k.prepare(std::span<T const>(x));
            tq::quantize(scalar_only<decltype(p)>{p}, std::span<T const>(x), std::span<T>(y));
        } else {
            tq::quantize(scalar_only<K>{k}, std::span<T const>(x), std::span<T>(y));
        }
    };
    q.template visit<T>(resolved);
    return y;
}

template <class A, class T>
void simd_equals_scalar()
{
    if constexpr (A::supported()) {
        for (std::size_t n : {1u, 3u, 7u, 15u, 17u, 31u, 33u, 63u, 65u, 100u, 1031u}) {
            const auto x = test_data<T>(n, unsigned(n));
            for (std::string_view spec : all_specs()) {
                INFO(std::string(spec) << " n=" << n);
                const auto q = tq::parse_quantizer(spec, {1, 2});
                CHECK(bit_equal(run<A>(q, x), run_scalar(q, x)));
            }
        }
    } else {
        MESSAGE("architecture not available in this build: " << A::name());
    }
}

} // namespace

#if defined(TQ_TEST_ALL_ARCHES)
#define TQ_ARCHES xsimd::sse2, xsimd::sse4_2, xsimd::avx2, xsimd::avx512bw
#else
#define TQ_ARCHES xsimd::default_arch
#endif

TEST_CASE_TEMPLATE("SIMD equals scalar for every built-in quantizer in float", A, TQ_ARCHES)
{
    simd_equals_scalar<A, float>();
}

TEST_CASE_TEMPLATE("SIMD equals scalar for every built-in quantizer in double", A, TQ_ARCHES)
{
    simd_equals_scalar<A, double>();
}

TEST_CASE_TEMPLATE("results do not depend on thread count or SIMD width", T, float, double)
{
    const auto x = test_data<T>(300007, 9);
    for (const char* spec :
         {"stochastic,8,4", "binary_stochastic", "fp8_e5m2,stochastic", "binary", "ternary", "nearest,8,4"}) {
        INFO(std::string(spec));
        const auto q = tq::parse_quantizer(spec, {11, 0});
        tq::apply_options one, two, eight;
        two.threads = 2;
        eight.threads = 8;
        two.min_elements_per_thread = eight.min_elements_per_thread = 1000;
        const auto ref = run<xsimd::default_arch>(q, x, one);
        CHECK(bit_equal(ref, run<xsimd::default_arch>(q, x, two)));
        CHECK(bit_equal(ref, run<xsimd::default_arch>(q, x, eight)));
#if defined(TQ_TEST_ALL_ARCHES)
        CHECK(bit_equal(ref, run<xsimd::sse2>(q, x, eight)));
#endif
        // streaming stores (big outputs) change nothing either
        tq::apply_options stream;
        stream.streaming_bytes = 0;
        CHECK(bit_equal(ref, run<xsimd::default_arch>(q, x, stream)));
    }
}

TEST_CASE("a tensor quantized in pieces equals the tensor quantized whole")
{
    const auto x = test_data<float>(10000, 4);
    const tq::fixed_point_rt q(8, 4, tq::rounding_mode::stochastic, tq::overflow_mode::saturate, {3, 3});
    const auto whole = run<xsimd::default_arch>(q, x);
    std::vector<float> pieces(x.size());
    for (std::size_t b = 0; b < x.size(); b += 777) {
        const std::size_t n = std::min<std::size_t>(777, x.size() - b);
        tq::apply_options o;
        o.index_offset = b;
        tq::quantize(q, std::span<float const>(x.data() + b, n), std::span<float>(pieces.data() + b, n), o);
    }
    CHECK(bit_equal(whole, pieces));
    SUBCASE("different seeds and streams give different tensors")
    {
        const tq::fixed_point_rt other(8, 4, tq::rounding_mode::stochastic, tq::overflow_mode::saturate, {3, 4});
        CHECK(!bit_equal(whole, run<xsimd::default_arch>(other, x)));
    }
    SUBCASE("the counter crosses a 2^32 block boundary inside a batch")
    {
        std::vector<float> y(x.size()), ref(x.size());
        tq::apply_options o;
        o.index_offset = 0xffffffffull - 5;
        tq::quantize(q, std::span<float const>(x), std::span<float>(y), o);
        for (std::size_t i = 0; i < x.size(); ++i) ref[i] = q(x[i], o.index_offset + i);
        CHECK(bit_equal(y, ref));
    }
}

TEST_CASE_TEMPLATE("stochastic rounding is unbiased and rounds up with probability frac", T, float, double)
{
    const std::size_t n = 1000000;
    const tq::fixed_point_rt q(16, 0, tq::rounding_mode::stochastic, tq::overflow_mode::saturate, {2024, 1});
    for (double f : {0.1, 0.25, 0.5, 0.9}) {
        INFO("fraction " << f);
        for (double base : {3.0, -5.0}) {
            const std::vector<T> x(n, T(base + f));
            const auto y = run<xsimd::default_arch>(q, x);
            double ups = 0, err = 0;
            for (T v : y) {
                ups += v == T(std::floor(base + f) + 1);
                err += double(v) - (base + f);
            }
            // binomial: within 5 standard deviations
            const double sd = std::sqrt(double(n) * f * (1 - f));
            CHECK(std::fabs(ups - double(n) * f) < 5 * sd);
            CHECK(std::fabs(err / double(n)) < 5 * sd / double(n));
        }
    }
    SUBCASE("thresholds are uniform: chi-square over 256 bins")
    {
        std::vector<double> bins(256);
        for (std::size_t i = 0; i < n; ++i) bins[std::size_t(tq::detail::uniform_at<T>({2024, 1}, i) * 256)] += 1;
        double chi2 = 0;
        const double e = double(n) / 256;
        for (double b : bins) chi2 += (b - e) * (b - e) / e;
        // 255 degrees of freedom: p = 0.001 critical value is about 330
        CHECK(chi2 < 330);
    }
}

TEST_CASE("xtensor containers and expressions")
{
    xt::xtensor<float, 2> t = {{0.1f, 0.7f, -0.3f}, {-2.f, 3.3f, 100.f}};
    const tq::fixed_point<4, 1> q;
    SUBCASE("out of place from an expression")
    {
        xt::xtensor<float, 2> r = tq::quantize(q, t * 2.0f);
        CHECK(r(0, 0) == 0.0f);
        CHECK(r(0, 1) == 1.5f);
        CHECK(r(1, 0) == -4.0f);
        CHECK(r(1, 2) == 3.5f);
        CHECK(t(0, 1) == 0.7f); // input untouched
    }
    SUBCASE("in place")
    {
        xt::xarray<double> a = {0.26, -0.74, 9.0};
        tq::quantize_inplace(tq::parse_quantizer("nearest,8,2"), a);
        CHECK(a(0) == 0.25);
        CHECK(a(1) == -0.75);
        CHECK(a(2) == 9.0);
    }
    SUBCASE("per channel affine along an axis")
    {
        xt::xtensor<float, 3> w = xt::xtensor<float, 3>::from_shape({2, 3, 4});
        for (std::size_t i = 0; i < w.size(); ++i) w.data()[i] = float(i) * 0.37f - 4.f;
        const tq::affine_per_channel pc({0.5, 0.25, 1.0}, {0, 1, -2}, -8, 7);
        auto r = tq::quantize_per_channel(pc, w, 1);
        for (std::size_t b = 0; b < 2; ++b)
            for (std::size_t c = 0; c < 3; ++c)
                for (std::size_t k = 0; k < 4; ++k) CHECK(r(b, c, k) == pc.channel(c)(w(b, c, k)));
        CHECK_THROWS_WITH(tq::quantize_per_channel(pc, w, 2), doctest::Contains("axis 2 has 4 channels"));
    }
}

namespace {
// A user-defined quantizer with a SIMD overload: clamp to [-1, 1].
struct clamp_unit
{
    template <class V>
    V operator()(V const& x) const
    {
        return xsimd::min(V(1.0f), xsimd::max(V(-1.0f), x));
    }
    float operator()(float x) const { return std::min(1.0f, std::max(-1.0f, x)); }
};
} // namespace

TEST_CASE("user-defined quantizers and composition")
{
    const auto x = test_data<float>(1000, 5);
    SUBCASE("a lambda")
    {
        auto halve = [](float v) { return v * 0.5f; };
        static_assert(tq::Quantizer<decltype(halve), float>);
        const auto y = run<xsimd::default_arch>(halve, x);
        for (std::size_t i = 0; i < x.size(); ++i)
            if (!std::isnan(x[i])) CHECK(y[i] == x[i] * 0.5f);
    }
    SUBCASE("a struct with a batch overload")
    {
        static_assert(tq::BatchQuantizer<clamp_unit, float, xsimd::default_arch>);
        const auto y = run<xsimd::default_arch>(clamp_unit{}, x);
        for (std::size_t i = 0; i < x.size(); ++i)
            if (!std::isnan(x[i])) CHECK(y[i] == clamp_unit{}(x[i]));
    }
    SUBCASE("threshold then fixed point equals the two passes")
    {
        const auto c = tq::compose(tq::sparse(0.5), tq::fixed_point<8, 3>{});
        auto two = run<xsimd::default_arch>(tq::sparse(0.5), x);
        two = run<xsimd::default_arch>(tq::fixed_point<8, 3>{}, two);
        CHECK(bit_equal(run<xsimd::default_arch>(c, x), two));
        CHECK(c(0.3f) == 0.0f);
        CHECK(c(0.6f) == 0.625f);
    }
    SUBCASE("a user quantizer composed with built-ins and runtime formats")
    {
        const auto c = tq::compose(clamp_unit{}, tq::parse_quantizer("nearest,6,4"), tq::fixed_point<6, 2>{});
        for (float v : {0.3f, -2.0f, 0.91f})
            CHECK(c(v) == tq::fixed_point<6, 2>{}(tq::fixed_point_rt(6, 4)(clamp_unit{}(v))));
    }
}

TEST_CASE("quantizer strings")
{
    SUBCASE("TensorQuant's forms")
    {
        CHECK(tq::parse_quantizer("nearest,8,4")(0.3f) == 0.3125f);
        CHECK(tq::parse_quantizer("zero,8,4")(-0.3f) == -0.25f);
        CHECK(tq::parse_quantizer("down,8,4")(-0.3f) == -0.3125f);
        CHECK(tq::parse_quantizer(" stochastic , 16 , 8 ")(0.5f) == 0.5f);
        CHECK(tq::parse_quantizer("sparse,0.01")(0.005f) == 0.0f);
        CHECK(tq::parse_quantizer("binary")(0.3f) == 0.3f); // mean |x| of a one-element tensor
        CHECK(tq::parse_quantizer("ternary")(-2.0f) == -2.0f);
        CHECK(tq::parse_quantizer("logarithmic")(0.3f) == 0.25f);
    }
    SUBCASE("options")
    {
        const auto q = tq::parse_quantizer("nearest_even,8,4,wrap,unsigned");
        const auto& f = std::get<tq::fixed_point_rt>(q.get());
        CHECK(f.format() == tq::fixed_format{8, 4, false});
        CHECK(f.overflow() == tq::overflow_mode::wrap);
        CHECK(f.rounding() == tq::rounding_mode::nearest_even);
        const auto m = std::get<tq::minifloat>(tq::parse_quantizer("minifloat,4,3,7,finite,saturate").get());
        CHECK(m.format == tq::minifloats::fp8_e4m3);
        CHECK(m.overflow == tq::minifloat_overflow::saturate);
        CHECK(std::get<tq::minifloat>(tq::parse_quantizer("minifloat,5,10").get()).format.bias == 15);
    }
    SUBCASE("malformed strings quote the string and say what is wrong")
    {
        using doctest::Contains;
        CHECK_THROWS_WITH_AS(tq::parse_quantizer("nearest,8"), Contains("\"nearest,8\": fixed point needs word size"),
                             tq::parse_error);
        CHECK_THROWS_WITH_AS(tq::parse_quantizer("nearest,8,x"),
                             Contains("fractional bits F must be an integer, got \"x\""), tq::parse_error);
        CHECK_THROWS_WITH_AS(tq::parse_quantizer("nearest,0,0"), Contains("W=0 is outside"), tq::parse_error);
        CHECK_THROWS_WITH_AS(tq::parse_quantizer("nearest,8,4,wobble"), Contains("unknown option \"wobble\""),
                             tq::parse_error);
        CHECK_THROWS_WITH_AS(tq::parse_quantizer("rounded,8,4"), Contains("unknown quantizer \"rounded\""),
                             tq::parse_error);
        CHECK_THROWS_WITH_AS(tq::parse_quantizer("sparse"), Contains("missing threshold T"), tq::parse_error);
        CHECK_THROWS_WITH_AS(tq::parse_quantizer("sparse,-1"), Contains("sparse threshold must be finite and >= 0"),
                             tq::parse_error);
        CHECK_THROWS_WITH_AS(tq::parse_quantizer("ternary,0.5"), Contains("ternary,T,m"), tq::parse_error);
        CHECK_THROWS_WITH_AS(tq::parse_quantizer("nearest,,4"), Contains("empty field"), tq::parse_error);
        CHECK_THROWS_WITH_AS(tq::parse_quantizer("fp16,up"), Contains("not sign-symmetric"), tq::parse_error);
        CHECK_THROWS_WITH_AS(tq::parse_quantizer("logarithmic,nearest,3"), Contains("both e_min and e_max"),
                             tq::parse_error);
        CHECK_THROWS_WITH_AS(tq::parse_quantizer("affine,0.1,0,-128"), Contains("affine needs scale"), tq::parse_error);
        CHECK_THROWS_WITH_AS(tq::parse_quantizer("binary,1,2"), Contains("unexpected field \"2\""), tq::parse_error);
    }
}
