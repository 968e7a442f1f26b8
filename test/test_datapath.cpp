// Datapaths: the vectorised conv2d / dense under a runtime datapath equal the generic
// layers on the number type with the same formats as types, bit for bit; a uniform
// datapath is the single format; the scope maps read and check datapath objects.
#include <tensorquant/nn.hpp>

#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <string>

namespace tq = tensorquant;
namespace nn = tensorquant::nn;

namespace {

template <class T, std::size_t N>
void fill_random(xt::xtensor<T, N>& t, std::uint64_t seed, double lo, double hi)
{
    std::mt19937_64 gen(seed);
    std::uniform_real_distribution<double> d(lo, hi);
    for (auto& v : t) v = T(d(gen));
}

nn::datapath runtime_path(std::string const& in, std::string const& w, std::string const& p, std::string const& acc,
                          std::string const& out, tq::rng_key key = {})
{
    nn::datapath d;
    d.set("input", in, key);
    d.set("weights", w, key);
    d.set("product", p, key);
    d.set("accumulator", acc, key);
    d.set("output", out, key);
    return d;
}

// Same bits (floats; -0 and +0 differ, NaN equals NaN of the same bits).
template <class Y, std::size_t N>
int count_mismatches(nn::tensor4<float> const& fast, xt::xtensor<Y, N> const& generic)
{
    int wrong = 0;
    for (std::size_t i = 0; i < fast.size(); ++i) {
        const float g = static_cast<float>(generic.data()[i].value());
        if (std::bit_cast<std::uint32_t>(g) != std::bit_cast<std::uint32_t>(fast.data()[i])) {
            if (wrong < 5) MESSAGE("element " << i << ": generic " << g << ", vectorised " << fast.data()[i]);
            ++wrong;
        }
    }
    return wrong;
}

struct layer_data
{
    nn::tensor4<float> x, w;
    nn::tensor1<float> b;
    nn::tensor2<float> dx, dw;
    nn::tensor1<float> db;
    nn::window_options o;

    layer_data(double xr, double wr, double br, std::uint64_t seed)
    {
        x = nn::tensor4<float>::from_shape({2, 6, 7, 6});
        w = nn::tensor4<float>::from_shape({3, 3, 3, 8}); // two groups of 3 input channels
        b = nn::tensor1<float>::from_shape({8});
        dx = nn::tensor2<float>::from_shape({5, 37});
        dw = nn::tensor2<float>::from_shape({37, 11});
        db = nn::tensor1<float>::from_shape({11});
        fill_random(x, seed, -xr, xr), fill_random(w, seed + 1, -wr, wr), fill_random(b, seed + 2, -br, br);
        fill_random(dx, seed + 3, -xr, xr), fill_random(dw, seed + 4, -wr, wr), fill_random(db, seed + 5, -br, br);
        o.padding = nn::padding_mode::same;
        o.stride = {1, 2};
        o.groups = 2;
    }

    // conv2d and dense, vectorised against generic: mismatching elements.
    // (S: the number types' storage; the operands are floats either way)
    template <class S = float, class Dp>
    int compare(Dp dp, nn::datapath const& d) const
    {
        auto as = [](auto const& t) { return xt::eval(xt::cast<S>(t)); };
        const auto fast_conv = nn::conv2d_datapath(x, w, b, o, d);
        const auto generic_conv = nn::conv2d(as(x), as(w), as(b), o, dp);
        const auto fast_dense = nn::dense_datapath(dx, dw, db, d);
        const auto generic_dense = nn::dense(as(dx), as(dw), as(db), dp);
        return count_mismatches(fast_conv, generic_conv) + count_mismatches(fast_dense, generic_dense);
    }

    // The same with stochastic formats drawing from key's streams. The vectorised layers
    // round their float operands as floats and everything after in double, so the generic
    // ones round the operands in float storage (at the same positions) and run in double.
    template <class Dp>
    int compare_stochastic(Dp dp, nn::datapath const& d, tq::rng_key key) const
    {
        const nn::kernels::generic_datapath<Dp, float> operands{key};
        auto rounded = [](auto const& t, auto const& q) {
            xt::xtensor<double, std::decay_t<decltype(t)>::rank> r = xt::cast<double>(t);
            for (std::size_t i = 0; i < r.size(); ++i) r.data()[i] = double(q[i].value());
            return r;
        };
        const auto b64 = xt::eval(xt::cast<double>(b)), db64 = xt::eval(xt::cast<double>(db));
        const auto fast_conv = nn::conv2d_datapath(x, w, b, o, d);
        const auto generic_conv =
            nn::conv2d(rounded(x, operands.inputs(x)), rounded(w, operands.weights(w)), b64, o, dp, key);
        const auto fast_dense = nn::dense_datapath(dx, dw, db, d);
        const auto generic_dense =
            nn::dense(rounded(dx, operands.inputs(dx)), rounded(dw, operands.weights(dw)), db64, dp, key);
        return count_mismatches(fast_conv, generic_conv) + count_mismatches(fast_dense, generic_dense);
    }
};

using tq::exact_step;
template <int W, int F, class R = tq::rounding::nearest, class O = tq::overflow::saturate>
using fx = tq::fixed_point<W, F, R, O>;
constexpr tq::minifloat_format fp32_format{8, 23, 127, true, true};

} // namespace

TEST_CASE("fixed-point datapaths equal the generic layers on the number type")
{
    SUBCASE("int8 operands and a 24-bit accumulator: every sum exact")
    {
        const layer_data data(6, 1.5, 20, 1);
        using Dp = tq::datapath_of<fx<8, 4>, fx<8, 6>, exact_step, fx<24, 10>, fx<8, 4>>;
        CHECK(data.compare(Dp{}, runtime_path("nearest,8,4", "nearest,8,6", "exact", "nearest,24,10", "nearest,8,4")) ==
              0);
    }
    SUBCASE("12-bit operands and a 40-bit accumulator: sums beyond float")
    {
        const layer_data data(30, 6, 500, 6);
        using Dp = tq::datapath_of<fx<12, 6>, fx<12, 8>, exact_step, fx<40, 14>, fx<16, 4, tq::rounding::nearest_even>>;
        CHECK(data.compare<double>(Dp{}, runtime_path("nearest,12,6", "nearest,12,8", "exact", "nearest,40,14",
                                                      "nearest_even,16,4")) == 0);
    }
    SUBCASE("a narrow accumulator rounds and saturates each sum")
    {
        const layer_data data(6, 1.5, 4, 2);
        using Dp = tq::datapath_of<fx<8, 4>, fx<8, 6>, exact_step, fx<10, 3, tq::rounding::nearest_even>,
                                   fx<6, 2, tq::rounding::zero>>;
        CHECK(data.compare(Dp{},
                           runtime_path("nearest,8,4", "nearest,8,6", "exact", "nearest_even,10,3", "zero,6,2")) == 0);
    }
    SUBCASE("a wrapping accumulator rounding down")
    {
        const layer_data data(6, 1.5, 4, 3);
        using Dp = tq::datapath_of<fx<8, 4>, fx<8, 6>, exact_step, fx<12, 5, tq::rounding::down, tq::overflow::wrap>,
                                   fx<12, 5>>;
        CHECK(data.compare(Dp{},
                           runtime_path("nearest,8,4", "nearest,8,6", "exact", "down,12,5,wrap", "nearest,12,5")) == 0);
    }
    SUBCASE("a product format between operands and accumulator")
    {
        const layer_data data(6, 1.5, 4, 4);
        using Dp = tq::datapath_of<fx<8, 4>, fx<8, 6>, fx<9, 5, tq::rounding::zero>, fx<16, 5>, exact_step>;
        CHECK(data.compare(Dp{}, runtime_path("nearest,8,4", "nearest,8,6", "zero,9,5", "nearest,16,5", "exact")) == 0);
    }
    SUBCASE("an exact accumulator: the output rounds the exact sum once")
    {
        const layer_data data(6, 1.5, 4, 5);
        // 8 + 8 bits of products, 37 terms at most: 16 + 7 bits hold every sum
        using Dp = tq::datapath_of<fx<8, 4>, fx<8, 6>, exact_step, fx<24, 10>, fx<8, 3, tq::rounding::nearest_even>>;
        CHECK(data.compare(Dp{}, runtime_path("nearest,8,4", "nearest,8,6", "exact", "exact", "nearest_even,8,3")) ==
              0);
    }
}

TEST_CASE_TEMPLATE("every deterministic rounding of a fixed-point accumulator equals the generic layers", R,
                   tq::rounding::nearest, tq::rounding::nearest_even, tq::rounding::nearest_up,
                   tq::rounding::nearest_down, tq::rounding::nearest_zero, tq::rounding::zero, tq::rounding::down,
                   tq::rounding::up)
{
    const std::string r(R::name);
    SUBCASE("fixed-point operands: products with more fractional bits than the accumulator")
    {
        const layer_data data(6, 1.5, 4, 21);
        using Dp = tq::datapath_of<fx<8, 4>, fx<8, 6>, exact_step, fx<11, 4, R>, exact_step>;
        CHECK(data.compare(Dp{}, runtime_path("nearest,8,4", "nearest,8,6", "exact", r + ",11,4", "exact")) == 0);
    }
    SUBCASE("wrapping")
    {
        const layer_data data(6, 1.5, 4, 22);
        using Dp = tq::datapath_of<fx<8, 4>, fx<8, 6>, exact_step, fx<7, 3, R, tq::overflow::wrap>, exact_step>;
        CHECK(data.compare(Dp{}, runtime_path("nearest,8,4", "nearest,8,6", "exact", r + ",7,3,wrap", "exact")) == 0);
    }
    SUBCASE("exact float operands with deep fractions")
    {
        // operands on the grid of 2^-20: "exact" is then the same as a 24-bit format with F = 20
        layer_data data(6, 1.5, 4, 23);
        auto to_grid = [](auto& t) {
            for (auto& v : t) v = std::ldexp(std::round(std::ldexp(v * 0.25f, 20)), -20);
        };
        to_grid(data.x), to_grid(data.dx), to_grid(data.w), to_grid(data.dw);
        using Dp = tq::datapath_of<fx<24, 20>, fx<24, 20>, exact_step, fx<12, 6, R>, exact_step>;
        CHECK(data.compare(Dp{}, runtime_path("exact", "exact", "exact", r + ",12,6", "exact")) == 0);
    }
}

TEST_CASE("minifloat datapaths equal the generic layers on the number type")
{
    using e4m3 = tq::minifloats::fp8_e4m3_t;
    using e5m2 = tq::minifloats::fp8_e5m2_t;
    using fp16 = tq::minifloats::fp16_t;
    using bf16 = tq::minifloats::bf16_t;
    using fp32 = tq::minifloat_of<fp32_format>;
    SUBCASE("fp8 e4m3 operands, exact products, fp32 accumulator")
    {
        const layer_data data(40, 3, 100, 11);
        using Dp = tq::datapath_of<e4m3, e4m3, exact_step, fp32, e4m3>;
        CHECK(data.compare(Dp{}, runtime_path("fp8_e4m3", "fp8_e4m3", "exact", "minifloat,8,23", "fp8_e4m3")) == 0);
    }
    SUBCASE("e5m2 accumulator rounding toward zero: most sums round")
    {
        const layer_data data(4, 2, 8, 12);
        using Dp = tq::datapath_of<e4m3, e5m2, exact_step,
                                   tq::minifloat_of<tq::minifloats::fp8_e5m2, tq::rounding::zero>, exact_step>;
        CHECK(data.compare(Dp{}, runtime_path("fp8_e4m3", "fp8_e5m2", "exact", "fp8_e5m2,zero", "exact")) == 0);
    }
    SUBCASE("fp16 products into a bf16 accumulator with ties away")
    {
        const layer_data data(4, 2, 8, 13);
        using Dp =
            tq::datapath_of<bf16, fp16, fp16, tq::minifloat_of<tq::minifloats::bf16, tq::rounding::nearest>, fp16>;
        CHECK(data.compare(Dp{}, runtime_path("bf16", "fp16", "fp16", "bf16,nearest", "fp16")) == 0);
    }
    SUBCASE("fixed-point operands into a saturating fp16 accumulator")
    {
        const layer_data data(6, 1.5, 4, 14);
        using Dp = tq::datapath_of<
            fx<8, 4>, fx<8, 6>, exact_step,
            tq::minifloat_of<tq::minifloats::fp16, tq::rounding::nearest_even, tq::minifloat_overflow::saturate>,
            fx<8, 2>>;
        CHECK(data.compare(Dp{}, runtime_path("nearest,8,4", "nearest,8,6", "exact", "fp16,saturate", "nearest,8,2")) ==
              0);
    }
    SUBCASE("each rounding of an fp16 accumulator after bf16 products")
    {
        const layer_data data(4, 2, 8, 16);
        CHECK(data.compare(tq::datapath_of<e4m3, e4m3, bf16, fp16, exact_step>{},
                           runtime_path("fp8_e4m3", "fp8_e4m3", "bf16", "fp16", "exact")) == 0);
        CHECK(data.compare(tq::datapath_of<e4m3, e4m3, bf16,
                                           tq::minifloat_of<tq::minifloats::fp16, tq::rounding::nearest>, exact_step>{},
                           runtime_path("fp8_e4m3", "fp8_e4m3", "bf16", "fp16,nearest", "exact")) == 0);
        CHECK(data.compare(tq::datapath_of<e4m3, e4m3, bf16, tq::minifloat_of<tq::minifloats::fp16, tq::rounding::zero>,
                                           exact_step>{},
                           runtime_path("fp8_e4m3", "fp8_e4m3", "bf16", "fp16,zero", "exact")) == 0);
    }
    SUBCASE("overflow of an e4m3 accumulator gives NaN in both")
    {
        const layer_data data(400, 400, 1, 15);
        using Dp = tq::datapath_of<e4m3, e4m3, exact_step, e4m3, e4m3>;
        CHECK(data.compare(Dp{}, runtime_path("fp8_e4m3", "fp8_e4m3", "exact", "fp8_e4m3", "fp8_e4m3")) == 0);
    }
}

TEST_CASE("stochastic datapath formats equal the generic layers at the documented stream positions")
{
    using st = tq::rounding::stochastic;
    const tq::rng_key key{0x5eed, 3};
    SUBCASE("a stochastic accumulator and output after exact products")
    {
        const layer_data data(6, 1.5, 4, 31);
        using Dp = tq::datapath_of<fx<8, 4>, fx<8, 6>, exact_step, fx<11, 4, st>, fx<6, 2, st>>;
        CHECK(data.compare_stochastic(
                  Dp{}, runtime_path("nearest,8,4", "nearest,8,6", "exact", "stochastic,11,4", "stochastic,6,2", key),
                  key) == 0);
    }
    SUBCASE("stochastic operands and bias: every sum exact so a float fast path runs")
    {
        const layer_data data(6, 1.5, 4, 32);
        using Dp = tq::datapath_of<fx<8, 4, st>, fx<8, 6, st>, exact_step, fx<24, 10, st>, fx<8, 4, st>>;
        CHECK(data.compare_stochastic(
                  Dp{},
                  runtime_path("stochastic,8,4", "stochastic,8,6", "exact", "stochastic,24,10", "stochastic,8,4", key),
                  key) == 0);
    }
    SUBCASE("a stochastic product format and accumulator")
    {
        const layer_data data(6, 1.5, 4, 33);
        using Dp = tq::datapath_of<fx<8, 4>, fx<8, 6, st>, fx<9, 5, st>, fx<16, 3, st>, exact_step>;
        CHECK(data.compare_stochastic(
                  Dp{},
                  runtime_path("nearest,8,4", "stochastic,8,6", "stochastic,9,5", "stochastic,16,3", "exact", key),
                  key) == 0);
    }
    SUBCASE("a wrapping stochastic accumulator")
    {
        const layer_data data(6, 1.5, 4, 34);
        using Dp = tq::datapath_of<fx<8, 4>, fx<8, 6>, exact_step, fx<7, 3, st, tq::overflow::wrap>, exact_step>;
        CHECK(data.compare_stochastic(
                  Dp{}, runtime_path("nearest,8,4", "nearest,8,6", "exact", "stochastic,7,3,wrap", "exact", key),
                  key) == 0);
    }
    SUBCASE("stochastic minifloat operands products and output into fp32")
    {
        const layer_data data(40, 3, 100, 35);
        using e4m3s = tq::minifloat_of<tq::minifloats::fp8_e4m3, st>;
        using bf16s = tq::minifloat_of<tq::minifloats::bf16, st>;
        using fp32 = tq::minifloat_of<fp32_format>;
        CHECK(data.compare_stochastic(tq::datapath_of<e4m3s, e4m3s, exact_step, fp32, e4m3s>{},
                                      runtime_path("fp8_e4m3,stochastic", "fp8_e4m3,stochastic", "exact",
                                                   "minifloat,8,23", "fp8_e4m3,stochastic", key),
                                      key) == 0);
        CHECK(data.compare_stochastic(tq::datapath_of<e4m3s, e4m3s, bf16s, fp32, exact_step>{},
                                      runtime_path("fp8_e4m3,stochastic", "fp8_e4m3,stochastic", "bf16,stochastic",
                                                   "minifloat,8,23", "exact", key),
                                      key) == 0);
    }
    SUBCASE("another key draws other thresholds")
    {
        const layer_data data(6, 1.5, 4, 31);
        using Dp = tq::datapath_of<fx<8, 4>, fx<8, 6>, exact_step, fx<11, 4, st>, fx<6, 2, st>>;
        CHECK(data.compare_stochastic(Dp{},
                                      runtime_path("nearest,8,4", "nearest,8,6", "exact", "stochastic,11,4",
                                                   "stochastic,6,2", tq::rng_key{0x5eed, 4}),
                                      key) > 0);
    }
}

TEST_CASE("a uniform datapath is the single format")
{
    auto net = nn::lenet5(3);
    nn::tensor4<float> x = nn::tensor4<float>::from_shape({3, 28, 28, 1});
    fill_random(x, 7, 0, 1);
    for (std::string spec : {"nearest,10,5", "stochastic,9,4", "down,8,3,wrap"}) {
        CAPTURE(spec);
        nn::scope_map single;
        single.set("LeNet", spec, tq::rng_key{5, 6});
        net.set_quantization(single, {}, {});
        const auto y_single = net.forward(x, 2);
        nn::scope_map path;
        path.set("LeNet", nn::datapath::uniform(tq::parse_quantizer(spec, tq::rng_key{5, 6})));
        net.set_quantization(path, {}, {});
        const auto y_path = net.forward(x, 2);
        REQUIRE(y_single.size() == y_path.size());
        CHECK(std::memcmp(y_single.data(), y_path.data(), y_single.size() * sizeof(float)) == 0);
    }
}

TEST_CASE("datapath maps from JSON run a network and name their mistakes")
{
    const std::string text = R"({"LeNet": "nearest,8,4",
        "LeNet/fc5": {"input": "nearest,8,4", "weights": "nearest,8,6", "accumulator": "nearest,24,10",
                      "output": "nearest,8,4"},
        "LeNet/conv1": {"input": "fp8_e4m3", "weights": "fp8_e4m3", "accumulator": "minifloat,8,23",
                        "output": "exact"}})";
    const auto m = nn::scope_map::from_json(text, "maps.json");
    REQUIRE(m.match("LeNet/fc5") != nullptr);
    REQUIRE(m.match("LeNet/fc5")->path != nullptr);
    CHECK(
        m.match("LeNet/fc5")->spec ==
        R"({"input": "nearest,8,4", "weights": "nearest,8,6", "product": "exact", "accumulator": "nearest,24,10", "output": "nearest,8,4"})");
    CHECK(m.match("LeNet/pool2")->path == nullptr);
    // to_json reads back as the same map
    const auto again = nn::scope_map::from_json(m.to_json(), "again.json");
    REQUIRE(again.entries().size() == m.entries().size());
    for (std::size_t i = 0; i < m.entries().size(); ++i) CHECK(again.entries()[i].spec == m.entries()[i].spec);

    auto net = nn::lenet5(3);
    net.set_quantization(m, {}, {});
    nn::tensor4<float> x = nn::tensor4<float>::from_shape({2, 28, 28, 1});
    fill_random(x, 8, 0, 1);
    const auto y = net.forward(x);
    CHECK(y.shape(1) == 10);
    CHECK(net.quantization_report().find("LeNet/fc5: intrinsic {\"input\"") != std::string::npos);

    auto fails = [](std::string const& json, std::string const& part) {
        CAPTURE(json);
        try {
            (void)nn::scope_map::from_json(json, "bad.json");
            FAIL("accepted");
        } catch (tq::error const& e) {
            CAPTURE(e.what());
            CHECK(std::string(e.what()).find(part) != std::string::npos);
            CHECK(std::string(e.what()).find("bad.json") != std::string::npos);
        }
    };
    fails(R"({"LeNet": {"inputs": "nearest,8,4"}})", "unknown role 'inputs'");
    fails(R"({"LeNet": {"input": 8}})", "role 'input' must be a quantizer string");
    fails(R"({"LeNet": {}})", "names no role");
    fails(R"({"LeNet": {"input": "nearest,8", "output": "nearest,8,4"}})", "role 'input'");
    fails(R"({"LeNet": {"input": "nearest,8,4", "input": "nearest,8,5"}})", "role 'input' of scope 'LeNet'");
    fails(R"({"LeNet": ["nearest,8,4"]})", "datapath object");

    auto rejects = [&](nn::scope_map const& intrinsic, nn::scope_map const& extrinsic, std::string const& part) {
        try {
            net.set_quantization(intrinsic, extrinsic, {});
            FAIL("accepted");
        } catch (tq::config_error const& e) {
            CAPTURE(e.what());
            CHECK(std::string(e.what()).find(part) != std::string::npos);
        }
    };
    const auto minifloat_out =
        nn::scope_map::from_json(R"({"LeNet": {"input": "fp8_e4m3", "accumulator": "fp16", "output": "fp16"}})", "m");
    // a pooling layer under a minifloat datapath keeps its inputs, which are in the format
    net.set_quantization(minifloat_out, {}, {});
    std::vector<nn::tensor<float>> outputs;
    net.set_output_observer([&](std::size_t, nn::tensor<float> const& t) { outputs.push_back(t); });
    (void)net.forward(x);
    net.set_output_observer({});
    REQUIRE(outputs.size() == 8);
    const auto fp16 = tq::parse_quantizer("fp16");
    for (auto const& t : outputs)
        for (float v : t) REQUIRE(fp16(v) == v);
    rejects({}, minifloat_out, "only the intrinsic map takes");
    rejects(nn::scope_map::from_json(R"({"LeNet/fc5": {"input": "fp8_e4m3", "output": "nearest,8,4"}})", "m"), {},
            "an exact accumulator needs fixed-point inputs");
    rejects(nn::scope_map::from_json(R"({"LeNet/fc5": {"accumulator": "nearest,60,20"}})", "m"), {},
            "wider than double holds) needs fixed-point input");
    rejects(nn::scope_map::from_json(R"({"LeNet/fc5": {"accumulator": "nearest,32,10"}})", "m"), {},
            "give the datapath an output format");
    rejects(nn::scope_map::from_json(R"({"LeNet/fc5": {"accumulator": "fp16,stochastic"}})", "m"), {},
            "stochastic minifloat accumulator");
}

TEST_CASE("directed sums where rounding twice would differ from rounding once")
{
    // dense with one output: y = Acc(Acc(x0 w0) + x1 w1)
    auto one_output = [](float x0, float w0, float x1, float w1, nn::datapath const& d) {
        nn::tensor2<float> x = nn::tensor2<float>::from_shape({1, 2}), w = nn::tensor2<float>::from_shape({2, 1});
        x(0, 0) = x0, x(0, 1) = x1, w(0, 0) = w0, w(1, 0) = w1;
        return nn::dense_datapath(x, w, nn::tensor1<float>{}, d)(0, 0, 0, 0);
    };
    SUBCASE("a minifloat accumulator: the exact sum lies just below a tie")
    {
        // (1 + 2^-10) + 2^-11 (1 + 2^-23)(1 - 2^-23) = the fp16 midpoint 1 + 3 2^-11 - 2^-57: rounded
        // once it stays 1 + 2^-10; rounded to double first it would be the tie, and go to 1 + 2^-9
        const float a = 1 + 0x1p-10f, b = 0x1p-11f * (1 + 0x1p-23f), c = 1 - 0x1p-23f;
        nn::datapath d;
        d.set("accumulator", "fp16");
        CHECK(one_output(a, 1, b, c, d) == 1 + 0x1p-10f);
        using fp32 = tq::minifloat_of<fp32_format>;
        nn::tensor2<float> x = nn::tensor2<float>::from_shape({1, 2}), w = nn::tensor2<float>::from_shape({2, 1});
        x(0, 0) = a, x(0, 1) = b, w(0, 0) = 1, w(1, 0) = c;
        CHECK(nn::dense(x, w, nn::tensor1<float>{},
                        tq::datapath_of<fp32, fp32, exact_step, tq::minifloats::fp16_t>{})(0, 0)
                  .value() == 1 + 0x1p-10f);
    }
    SUBCASE("a fixed-point accumulator: a tiny negative product after a whole sum")
    {
        // 3 - 2^-60 rounded once: down and zero give 2, up and nearest 3
        const float tiny = 0x1p-60f;
        for (auto const& c : {std::pair{"down", 2.0f}, {"zero", 2.0f}, {"up", 3.0f}, {"nearest", 3.0f}}) {
            // (named copies: clang 14 cannot capture structured bindings)
            const std::string r = c.first;
            const float expected = c.second;
            CAPTURE(r);
            nn::datapath d;
            d.set("accumulator", std::string(r) + ",8,0");
            CHECK(one_output(3, 1, -tiny, 1, d) == expected);
        }
        // one product just above and one just below a tie
        nn::datapath e;
        e.set("accumulator", "nearest_even,8,0");
        CHECK(one_output(2.5f, 1 + 0x1p-23f, 0, 1, e) == 3.0f);
        CHECK(one_output(2.5f, 1 - 0x1p-24f, 0, 1, e) == 2.0f);
    }
}

TEST_CASE("fixed-point accumulators wider than double run on exact words")
{
    const layer_data data(6, 1.5, 4, 31);
    SUBCASE("without overflow they equal the same format at 52 bits")
    {
        for (std::string r : {"nearest", "nearest_even", "zero", "down"}) {
            CAPTURE(r);
            const auto narrow = runtime_path("nearest,8,4", "nearest,8,6", "exact", r + ",52,7", "nearest_even,12,4");
            const auto wide = runtime_path("nearest,8,4", "nearest,8,6", "exact", r + ",64,7", "nearest_even,12,4");
            const auto a = nn::conv2d_datapath(data.x, data.w, data.b, data.o, narrow);
            const auto b = nn::conv2d_datapath(data.x, data.w, data.b, data.o, wide);
            CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
            const auto c = nn::dense_datapath(data.dx, data.dw, data.db, narrow);
            const auto e = nn::dense_datapath(data.dx, data.dw, data.db, wide);
            CHECK(std::memcmp(c.data(), e.data(), c.size() * sizeof(float)) == 0);
        }
    }
    SUBCASE("saturating and wrapping 60-bit accumulators against integer arithmetic")
    {
        // words of the products are x 2^4 w 2^6; the accumulator's F = 64 holds them times
        // 2^54, so sums of a few products leave its range of +-2^-5
        for (std::string o : {"saturate", "wrap"}) {
            CAPTURE(o);
            const auto d = runtime_path("nearest,8,4", "nearest,8,6", "exact", "nearest,60,64," + o, "nearest,16,18");
            const auto y = nn::dense_datapath(data.dx, data.dw, data.db, d);
            using i128 = tq::detail::int128;
            const i128 lo = -(i128(1) << 59), hi = (i128(1) << 59) - 1;
            auto fit = [&](i128 v) {
                if (o == "saturate") return v < lo ? lo : v > hi ? hi : v;
                const i128 m = i128(1) << 60;
                v = ((v % m) + m) % m;
                return v > hi ? v - m : v;
            };
            auto q = [](float v, int f) { return i128(std::llround(std::ldexp(double(v), f))); }; // nearest, in range
            int wrong = 0;
            for (std::size_t r = 0; r < 5; ++r)
                for (std::size_t j = 0; j < 11; ++j) {
                    i128 s = 0;
                    for (std::size_t i = 0; i < 37; ++i)
                        s = fit(s + q(data.dx(r, i), 4) * q(data.dw(i, j), 6) * (i128(1) << 54));
                    // the bias in the accumulator's format (exact: |b| > 2^-40 here), saturated or wrapped
                    const i128 bias = i128(std::ldexp(double(data.db(j)), 40)) * (i128(1) << 24);
                    s = fit(s + fit(bias));
                    // output: nearest (ties away) from 2^-64 to 2^-18, 16 bits saturated
                    const i128 unit = i128(1) << 46;
                    i128 mag = s < 0 ? -s : s;
                    mag = (mag + unit / 2) / unit;
                    i128 w = s < 0 ? -mag : mag;
                    w = w > 32767 ? 32767 : w < -32768 ? -32768 : w;
                    wrong += y(r, 0, 0, j) != float(std::ldexp(double(w), -18));
                }
            CHECK(wrong == 0);
        }
    }
}
