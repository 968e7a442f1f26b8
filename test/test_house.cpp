// The library's structure as users meet it: every built-in spelling round-trips through
// to_string, user-defined policies plug into the format and the number type, every error
// derives from tensorquant::error, user quantizers work in scope maps, and bulk quantize
// takes any contiguous range or xtensor view.
#include <tensorquant/nn.hpp>

#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace tq = tensorquant;
namespace nn = tensorquant::nn;

namespace {

template <class T>
std::vector<T> sample(std::size_t n)
{
    std::mt19937 g(7);
    std::normal_distribution<double> d(0, 4);
    std::vector<T> x(n);
    for (auto& v : x) v = T(d(g));
    x[0] = T(0.5), x[1] = T(-0.5), x[2] = std::numeric_limits<T>::quiet_NaN(),
    x[3] = std::numeric_limits<T>::infinity();
    return x;
}

bool same_bits(std::vector<float> const& a, std::vector<float> const& b)
{
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (!(a[i] == b[i] || (a[i] != a[i] && b[i] != b[i]))) return false;
    return true;
}

std::vector<float> run(tq::any_quantizer const& q, std::vector<float> const& x)
{
    std::vector<float> y(x.size());
    tq::quantize(q, x, y);
    return y;
}

// Ties to odd, a policy the library does not have.
struct nearest_odd
{
    static constexpr std::string_view name = "nearest_odd";
    template <class V>
    static V apply(V const& t, V const& e) noexcept
    {
        V a = tq::detail::vabs(e);
        V h = t * tq::detail::half<V>();
        auto even = tq::detail::vfloor(h) == h;
        auto away = (a > tq::detail::half<V>()) || ((a == tq::detail::half<V>()) && even);
        return t + tq::detail::vcopysign(tq::detail::one_if<V>(away), e);
    }
};

// Saturates negative values to 0 in a signed word, a policy the library does not have.
struct nonnegative
{
    static constexpr std::string_view name = "nonnegative";
    static constexpr bool modular = false;
    static constexpr tq::word_range range(tq::fixed_format f) noexcept
    {
        return {0, (tq::detail::int128(1) << (f.width - 1)) - 1};
    }
};

// A user quantizer with a name, for the report.
struct halve
{
    float operator()(float x) const { return x * 0.5f; }
    std::string name() const { return "halve"; }
};

} // namespace

TEST_CASE("every registered spelling round-trips through to_string")
{
    const auto x = sample<float>(300);
    std::size_t count = 0;
    tq::detail::for_each_type(tq::quantizer_registry{}, [&](auto q) {
        using Q = typename decltype(q)::type;
        for (std::string_view example : Q::examples) {
            INFO(example);
            const auto parsed = tq::parse_quantizer(example, {3, 4});
            CHECK(std::holds_alternative<Q>(parsed.get()));
            const std::string text = parsed.to_string();
            CHECK(text == example); // the examples are canonical spellings
            const auto again = tq::parse_quantizer(text, {3, 4});
            CHECK(again.to_string() == text);
            CHECK(same_bits(run(parsed, x), run(again, x)));
            ++count;
        }
    });
    CHECK(count >= 28);
    SUBCASE("non-canonical spellings print canonically")
    {
        CHECK(tq::parse_quantizer(" nearest , 8 , 4 , saturate , signed").to_string() == "nearest,8,4");
        CHECK(tq::parse_quantizer("none").to_string() == "identity");
        CHECK(tq::parse_quantizer("minifloat,5,10").to_string() == "fp16");
        CHECK(tq::parse_quantizer("fp8_e4m3,nearest_even,to_infinity").to_string() == "fp8_e4m3");
        CHECK(tq::parse_quantizer("ternary_twn,0.7").to_string() == "ternary");
        CHECK(tq::parse_quantizer("binary_stochastic,1").to_string() == "binary_stochastic");
        CHECK(tq::to_string(tq::fixed_point<8, 4, tq::rounding::zero, tq::overflow::wrap, false>{}) ==
              "zero,8,4,wrap,unsigned");
    }
    SUBCASE("each quantizer gives its range")
    {
        using range = std::pair<double, double>;
        CHECK(tq::fixed_point_rt(8, 4, tq::rounding_mode::nearest, tq::overflow_mode::symmetric).range() ==
              range(-7.9375, 7.9375));
        CHECK(tq::fixed_point<8, 4>::range() == range(-8, 7.9375));
        CHECK(tq::minifloat(tq::minifloats::fp8_e4m3).range() == range(-448, 448));
        CHECK(tq::minifloat(tq::minifloats::fp8_e5m2).range() == range(-57344, 57344));
        CHECK(tq::affine(0.5, 3, 0, 15).range() == range(-1.5, 6));
        CHECK(tq::binary(0.25).range() == range(-0.25, 0.25));
        CHECK(tq::ternary(0.1, 2).range() == range(-2, 2));
        CHECK(tq::logarithmic(tq::log_rounding::floor, -4, 3).range() == range(-8, 8));
    }
}

TEST_CASE("a user-defined rounding policy works in the format and the number type")
{
    using Q = tq::fixed_point<8, 3, nearest_odd>;
    static_assert(tq::RoundingPolicy<nearest_odd>);
    // ties go to the odd neighbour, everything else to the nearest
    CHECK(Q{}(0.0625f) == 0.125f);   // 0.5 steps -> 1
    CHECK(Q{}(0.1875f) == 0.125f);   // 1.5 steps -> 1
    CHECK(Q{}(-0.3125f) == -0.375f); // -2.5 steps -> -3
    CHECK(Q{}(0.2f) == 0.25f);       // 1.6 steps -> 2
    std::vector<float> x = sample<float>(1000), a(x.size()), b(x.size());
    tq::quantize(Q{}, x, a);
    for (std::size_t i = 0; i < x.size(); ++i) b[i] = Q{}(x[i]);
    CHECK(same_bits(a, b)); // SIMD equals scalar
    using q8 = tq::quantized<float, Q>;
    CHECK(float(q8(0.125f) * q8(0.25f)) == 0.0f);    // 0.25 steps, below half
    CHECK(float(q8(0.375f) * q8(1.0f / 6)) == 0.0f); // 1/6 -> 0.125 (1 step), 0.375 * 0.125 = 0.375 steps
    CHECK(float(q8(0.5f) * q8(0.125f)) == 0.125f);   // 0.5 steps: a tie, to odd 1
    CHECK(float(q8(1.5f) * q8(0.125f)) == 0.125f);   // 1.5 steps -> 1 (odd)
    CHECK(float(q8(2.5f) * q8(0.125f)) == 0.375f);   // 2.5 steps -> 3
}

TEST_CASE("a user-defined overflow policy works in the format and the number type")
{
    using Q = tq::fixed_point<6, 2, tq::rounding::nearest, nonnegative>;
    static_assert(tq::OverflowPolicy<nonnegative>);
    CHECK(Q{}(-1.0f) == 0.0f);
    CHECK(Q{}(3.3f) == 3.25f);
    CHECK(Q{}(100.0f) == 7.75f);
    CHECK(Q{}(-std::numeric_limits<float>::infinity()) == 0.0f);
    CHECK(Q{}.encode(-3.0f) == 0u);
    CHECK(Q{}.encode(100.0f) == 31u);
    CHECK(Q::range() == std::pair<double, double>(0.0, 7.75));
    using q = tq::quantized<double, Q>;
    CHECK(double(q(1.0) - q(2.0)) == 0.0);
    CHECK(double(q(5.0) + q(5.0)) == 7.75);
    CHECK(double(std::numeric_limits<q>::lowest()) == 0.0);
    CHECK(double(std::numeric_limits<q>::max()) == 7.75);
}

TEST_CASE("every documented error derives from tensorquant::error")
{
    auto kind = [](auto&& fn) -> std::string {
        try {
            fn();
        } catch (tq::format_error const&) {
            return "format";
        } catch (tq::parse_error const&) {
            return "parse";
        } catch (tq::shape_error const&) {
            return "shape";
        } catch (tq::file_error const&) {
            return "file";
        } catch (tq::config_error const&) {
            return "config";
        } catch (tq::arithmetic_error const&) {
            return "arithmetic";
        } catch (tq::usage_error const&) {
            return "usage";
        } catch (tq::error const&) {
            return "other tensorquant error";
        } catch (...) {
            return "not a tensorquant error";
        }
        return "no error";
    };
    CHECK(kind([] { tq::fixed_point_rt(0, 0); }) == "format");
    CHECK(kind([] { tq::minifloat(tq::minifloat_format{0, 3, 7}); }) == "format");
    CHECK(kind([] { tq::parse_quantizer("nearest,8"); }) == "parse");
    CHECK(kind([] {
              nn::add(nn::tensor4<float>::from_shape({1, 1, 1, 2}), nn::tensor4<float>::from_shape({1, 1, 1, 3}));
          }) == "shape");
    CHECK(kind([] { tq::read_npy<float>("/nonexistent/x.npy"); }) == "file");
    CHECK(kind([] { nn::scope_map{{"a", "nearest,8,4"}, {"a", "zero,8,4"}}; }) == "config");
    CHECK(kind([] { nn::lenet5().set_quantization({{"Other", "nearest,8,4"}}, {}, {}); }) == "config");
    CHECK(kind([] {
              using q = tq::quantized<std::int64_t, tq::fixed_point<40, 8>>;
              return q(1) / q(0);
          }) == "arithmetic");
    CHECK(kind([] {
              std::vector<float> a(3), b(4);
              tq::quantize(tq::identity{}, a, b);
          }) == "usage");
    CHECK(kind([] { tq::quantized_rt<float>(1.0f); }) == "format");
    SUBCASE("context is added without changing the type")
    {
        CHECK_THROWS_WITH_AS(nn::scope_map::from_json(R"({"LeNet/fc3": "nearest,8"})", "maps.json"),
                             doctest::Contains("maps.json: scope 'LeNet/fc3': invalid quantizer \"nearest,8\""),
                             tq::parse_error);
        CHECK_THROWS_AS(nn::scope_map::from_json(R"({"LeNet": "nearest,0,0"})", "maps.json"), tq::parse_error);
    }
}

TEST_CASE("scope maps take any quantizer")
{
    auto net = nn::lenet5();
    nn::scope_map extrinsic;
    extrinsic.set("LeNet/conv1", tq::fixed_point<8, 4>{});
    extrinsic.set("LeNet/conv2", tq::compose(tq::sparse(0.01), tq::fixed_point<8, 4>{}));
    extrinsic.set("LeNet/fc3", halve{});
    extrinsic.set("LeNet/fc4", [](float x) { return std::round(x); });
    extrinsic.set("LeNet/fc5", tq::fixed_point<8, 4, nearest_odd>{});
    nn::scope_map intrinsic;
    intrinsic.set("LeNet/fc4", tq::fixed_point<12, 6, tq::rounding::nearest_even>{}); // becomes the runtime format
    net.set_quantization(intrinsic, extrinsic, {});
    const std::string report = net.quantization_report();
    CHECK(report.find("LeNet/conv1: intrinsic -, extrinsic nearest,8,4 (from LeNet/conv1)") != std::string::npos);
    CHECK(report.find("extrinsic halve (from LeNet/fc3)") != std::string::npos);
    CHECK(report.find("intrinsic nearest_even,12,6 (from LeNet/fc4)") != std::string::npos);
    CHECK(report.find("extrinsic nearest_odd,8,4,saturate (from LeNet/fc5)") != std::string::npos);
    nn::tensor4<float> img = nn::tensor4<float>::from_shape({2, 28, 28, 1});
    for (std::size_t i = 0; i < img.size(); ++i) img.data()[i] = float(i % 29) / 29.0f;
    const auto y = net.forward(img);
    REQUIRE(y.size() == 20);
    for (float v : y) CHECK(v * 16 == std::round(v * 16)); // fc5's outputs are on the 2^-4 grid
    SUBCASE("a user quantizer is not an intrinsic format")
    {
        nn::scope_map bad;
        bad.set("LeNet/fc3", halve{});
        CHECK_THROWS_AS(net.set_quantization(bad, {}, {}), tq::config_error);
    }
}

TEST_CASE("bulk quantize takes contiguous ranges and xtensor views")
{
    const tq::fixed_point<8, 4> q;
    std::vector<float> v{0.3f, -1.26f, 9.0f, 0.0f};
    const std::vector<float> expect{0.3125f, -1.25f, 7.9375f, 0.0f};
    std::array<float, 4> arr{0.3f, -1.26f, 9.0f, 0.0f};
    std::vector<float> out(4);
    tq::quantize(q, v, out);
    CHECK(out == expect);
    tq::quantize(q, std::span<float>(v), std::span<float, 4>(out.data(), 4)); // non-const span in, fixed extent out
    CHECK(out == expect);
    tq::quantize_inplace(q, arr);
    CHECK(std::vector<float>(arr.begin(), arr.end()) == expect);
    tq::quantize_inplace(q, v);
    CHECK(v == expect);
    xt::xtensor<float, 2> t{{0.3f, 0.3f}, {9.0f, -1.26f}};
    tq::quantize_inplace(q, xt::row(t, 1));
    CHECK(t(0, 0) == 0.3f);
    CHECK(t(1, 0) == 7.9375f);
    CHECK(t(1, 1) == -1.25f);
    tq::quantize_inplace(q, xt::col(t, 0));
    CHECK(t(0, 0) == 0.3125f);
    auto float_only = [](float x) { return x; };
    static_assert(tq::Quantizer<decltype(float_only), float>);
    static_assert(!tq::Quantizer<decltype(float_only), double>); // would narrow
    static_assert(!tq::Quantizer<tq::fixed_point<25, 4>, float>);
    static_assert(tq::Quantizer<tq::fixed_point<25, 4>, double>);
}

TEST_CASE("a failed network load changes nothing")
{
    tqtest::temp_dir dir;
    auto saved = nn::lenet5(1);
    saved.save(dir.path);
    // the last layer's weights file gets the wrong shape
    const std::vector<float> wrong(12, 1.0f);
    tq::write_npy(dir.path / "LeNet/fc5/weights.npy", wrong.data(), {3, 4});
    auto net = nn::lenet5(2);
    std::vector<std::vector<float>> before;
    for (auto const& n : net.nodes())
        for (auto const& p : net.parameters(n.name)) before.emplace_back(p.data, p.data + p.size());
    CHECK_THROWS_WITH_AS(net.load(dir.path), doctest::Contains("LeNet/fc5"), tq::shape_error);
    std::size_t k = 0;
    for (auto const& n : net.nodes())
        for (auto const& p : net.parameters(n.name))
            CHECK(std::vector<float>(p.data, p.data + p.size()) == before[k++]);
    SUBCASE("a whole checkpoint loads")
    {
        saved.save(dir.path);
        net.load(dir.path);
        CHECK(
            std::vector<float>(net.parameters("LeNet/conv1")[0].data, net.parameters("LeNet/conv1")[0].data + 150) ==
            std::vector<float>(saved.parameters("LeNet/conv1")[0].data, saved.parameters("LeNet/conv1")[0].data + 150));
    }
}
