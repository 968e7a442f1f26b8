// Reference layers, networks, scope maps and files.
#include "reference.hpp"

#include <tensorquant/nn.hpp>

#include "temp_dir.hpp"

#include <boost/multiprecision/cpp_bin_float.hpp>
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace tq = tensorquant;
namespace nn = tensorquant::nn;
using tqtest::big;

namespace {

template <class T, std::size_t N>
void fill_random(xt::xtensor<T, N>& t, std::uint64_t seed, double lo = -2, double hi = 2)
{
    std::mt19937_64 gen(seed);
    std::uniform_real_distribution<double> d(lo, hi);
    for (auto& v : t) v = T(d(gen));
}

template <class To, class From, std::size_t N>
xt::xtensor<To, N> convert(xt::xtensor<From, N> const& x)
{
    auto y = xt::xtensor<To, N>::from_shape(x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) y.data()[i] = To(x.data()[i]);
    return y;
}

// Naive convolution: fn(n, oy, ox, oc, visit) where visit(x index, w index) is called for
// every (kh, kw, ic) inside the image, in that order. Padding as docs/guide.md's layer section defines it.
struct naive_conv
{
    std::size_t n, h, w, c, kh, kw, cg, oc, oh, ow;
    int sh, sw, dh, dw, pt, pl, groups;

    naive_conv(std::vector<std::size_t> xs, std::vector<std::size_t> ws, nn::window_options const& o)
        : n(xs[0]), h(xs[1]), w(xs[2]), c(xs[3]), kh(ws[0]), kw(ws[1]), cg(ws[2]), oc(ws[3]), sh(o.stride[0]),
          sw(o.stride[1]), dh(o.dilation[0]), dw(o.dilation[1]), groups(o.groups)
    {
        auto axis = [&](std::size_t in, std::size_t k, int s, int d, int plo, int phi, int& pad) {
            const int span = int(k - 1) * d + 1;
            if (o.padding == nn::padding_mode::same) {
                const int out = (int(in) + s - 1) / s;
                pad = std::max((out - 1) * s + span - int(in), 0) / 2;
                return std::size_t(out);
            }
            if (o.padding == nn::padding_mode::valid) plo = phi = 0;
            pad = plo;
            return std::size_t((int(in) + plo + phi - span) / s + 1);
        };
        oh = axis(h, kh, sh, dh, o.pads[0], o.pads[1], pt);
        ow = axis(w, kw, sw, dw, o.pads[2], o.pads[3], pl);
    }
    template <class Fn>
    void each_output(Fn&& fn) const
    {
        const std::size_t ocg = oc / std::size_t(groups);
        for (std::size_t b = 0; b < n; ++b)
            for (std::size_t y = 0; y < oh; ++y)
                for (std::size_t x = 0; x < ow; ++x)
                    for (std::size_t o = 0; o < oc; ++o) {
                        const std::size_t g = o / ocg;
                        std::vector<std::pair<std::size_t, std::size_t>> terms;
                        for (std::size_t i = 0; i < kh; ++i)
                            for (std::size_t j = 0; j < kw; ++j)
                                for (std::size_t k = 0; k < cg; ++k) {
                                    const long iy = long(y) * sh + long(i) * dh - pt,
                                               ix = long(x) * sw + long(j) * dw - pl;
                                    if (iy < 0 || ix < 0 || iy >= long(h) || ix >= long(w)) continue;
                                    terms.push_back({((b * h + std::size_t(iy)) * w + std::size_t(ix)) * c + g * cg + k,
                                                     ((i * kw + j) * cg + k) * oc + o});
                                }
                        fn(((b * oh + y) * ow + x) * oc + o, o, terms);
                    }
    }
};

// The exact intrinsic result, in words: acc = L(acc + L(R(x w))) ..., then L(acc + b).
struct intrinsic_reference
{
    tq::fixed_format f;
    tq::rounding_mode r;
    tq::overflow_mode o;
    tq::rng_key key{};

    big word(float v) const { return big(static_cast<std::int64_t>(std::ldexp(double(v), f.frac))); }
    big product(big const& a, big const& b, std::uint64_t index) const
    {
        const big num = a * b;
        if (f.frac < 0) return tqtest::limit_ref(o, f, num << -f.frac);
        const big den = tqtest::pow2(f.frac);
        if (r != tq::rounding_mode::stochastic) return tqtest::limit_ref(o, f, tqtest::round_rational(r, num, den));
        big fl = num / den, rem = num - fl * den;
        if (rem < 0) fl -= 1, rem += den;
        const auto u = tqtest::threshold_numerator<double>(key, index);
        return tqtest::limit_ref(o, f, tqtest::round_ref(r, tqtest::split_value{fl, rem, den}, num < 0, u, 32));
    }
    big sum(big const& a, big const& b) const { return tqtest::limit_ref(o, f, a + b); }
};

bool equals_word(float y, big const& w, int frac) { return tqtest::equals_fixed(y, w, frac); }

} // namespace

TEST_CASE("conv2d float equals a naive reference on shape edge cases")
{
    struct config
    {
        std::vector<std::size_t> x, w;
        nn::window_options o;
    };
    auto opts = [](int sh, int sw, nn::padding_mode p, int dil, int groups, std::array<int, 4> pads = {0, 0, 0, 0}) {
        nn::window_options o;
        o.stride = {sh, sw}, o.padding = p, o.dilation = {dil, dil}, o.groups = groups, o.pads = pads;
        return o;
    };
    const std::vector<config> configs = {
        {{2, 7, 7, 3}, {3, 3, 3, 5}, opts(1, 1, nn::padding_mode::valid, 1, 1)},
        {{2, 7, 6, 3}, {3, 3, 3, 5}, opts(2, 1, nn::padding_mode::same, 1, 1)},
        {{1, 8, 8, 4}, {5, 5, 4, 17}, opts(2, 2, nn::padding_mode::same, 1, 1)},
        {{1, 9, 9, 2}, {3, 3, 2, 4}, opts(1, 1, nn::padding_mode::valid, 2, 1)},
        {{1, 6, 5, 4}, {3, 2, 2, 6}, opts(1, 2, nn::padding_mode::explicit_pads, 1, 2, {1, 2, 0, 3})},
        {{2, 5, 5, 6}, {3, 3, 1, 6}, opts(1, 1, nn::padding_mode::same, 1, 6)}, // depthwise
        {{1, 1, 1, 33}, {1, 1, 33, 40}, opts(1, 1, nn::padding_mode::valid, 1, 1)},
        {{3, 4, 4, 1}, {4, 4, 1, 1}, opts(3, 3, nn::padding_mode::same, 1, 1)},
    };
    int index = 0;
    for (auto const& cfg : configs) {
        CAPTURE(index);
        nn::tensor4<float> x = nn::tensor4<float>::from_shape({cfg.x[0], cfg.x[1], cfg.x[2], cfg.x[3]});
        nn::tensor4<float> w = nn::tensor4<float>::from_shape({cfg.w[0], cfg.w[1], cfg.w[2], cfg.w[3]});
        nn::tensor1<float> b = nn::tensor1<float>::from_shape({cfg.w[3]});
        fill_random(x, 1 + index), fill_random(w, 100 + index), fill_random(b, 200 + index);
        const auto y = nn::conv2d(x, w, b, cfg.o);
        const naive_conv ref(cfg.x, cfg.w, cfg.o);
        REQUIRE(y.shape(1) == ref.oh);
        REQUIRE(y.shape(2) == ref.ow);
        double worst = 0;
        ref.each_output([&](std::size_t out, std::size_t o, auto const& terms) {
            double s = b(o), mag = std::abs(b(o));
            for (auto [xi, wi] : terms)
                s += double(x.data()[xi]) * w.data()[wi], mag += std::abs(double(x.data()[xi]) * w.data()[wi]);
            worst = std::max(worst, std::abs(y.data()[out] - s) / (mag + 1e-30));
        });
        CHECK(worst < 1e-6); // float accumulation, relative to the sum of magnitudes
        ++index;
    }
}

TEST_CASE("intrinsic conv2d and dense equal quantized<T Q> and an exact reference bit for bit")
{
    nn::window_options o;
    o.padding = nn::padding_mode::same;
    o.stride = {1, 2};
    nn::tensor4<float> x = nn::tensor4<float>::from_shape({2, 6, 7, 4});
    nn::tensor4<float> w = nn::tensor4<float>::from_shape({3, 3, 4, 10});
    nn::tensor1<float> b = nn::tensor1<float>::from_shape({10});
    fill_random(x, 1, -3, 3), fill_random(w, 2, -1.5, 1.5), fill_random(b, 3);
    nn::tensor2<float> dx = nn::tensor2<float>::from_shape({5, 37}), dw = nn::tensor2<float>::from_shape({37, 11});
    nn::tensor1<float> db = nn::tensor1<float>::from_shape({11});
    fill_random(dx, 4, -3, 3), fill_random(dw, 5), fill_random(db, 6);

    auto check_against_reference = [&](tq::fixed_point_rt const& q, nn::tensor4<float> const& y,
                                       nn::tensor2<float> const& dy) {
        const intrinsic_reference ref{q.format(), q.rounding(), q.overflow(), q.key()};
        // operands are quantized at their own stream blocks (nn/kernels/intrinsic.hpp)
        const auto xq = nn::kernels::quantized_copy(q, x, nn::kernels::intrinsic_operand_offset(0));
        const auto wq = nn::kernels::quantized_copy(q, w, nn::kernels::intrinsic_operand_offset(1));
        const auto bq = nn::kernels::quantized_copy(q, b, nn::kernels::intrinsic_operand_offset(2));
        const naive_conv geo({2, 6, 7, 4}, {3, 3, 4, 10}, o);
        const std::size_t K = 3 * 3 * 4;
        int wrong = 0;
        geo.each_output([&](std::size_t out, std::size_t oc, auto const& terms) {
            // the stochastic index counts (row, k) over all K taps, padding included
            const std::size_t row = out / 10;
            big acc = 0;
            std::size_t t = 0;
            const std::size_t oy = (row / geo.ow) % geo.oh, ox = row % geo.ow;
            for (std::size_t kk = 0; kk < K; ++kk) {
                const std::size_t ky = kk / 12, kx = (kk / 4) % 3;
                const long iy = long(oy) + long(ky) - geo.pt, ix = long(ox) * 2 + long(kx) - geo.pl;
                if (iy < 0 || ix < 0 || iy >= 6 || ix >= 7) {
                    // a padding tap multiplies 0: word 0, which leaves acc unchanged
                    continue;
                }
                auto [xi, wi] = terms[t++];
                acc = ref.sum(acc,
                              ref.product(ref.word(xq.data()[xi]), ref.word(wq.data()[wi]), (row * K + kk) * 10 + oc));
            }
            acc = ref.sum(acc, ref.word(bq(oc)));
            wrong += !equals_word(y.data()[out], acc, q.format().frac);
        });
        const auto dxq = nn::kernels::quantized_copy(q, dx, nn::kernels::intrinsic_operand_offset(0));
        const auto dwq = nn::kernels::quantized_copy(q, dw, nn::kernels::intrinsic_operand_offset(1));
        const auto dbq = nn::kernels::quantized_copy(q, db, nn::kernels::intrinsic_operand_offset(2));
        for (std::size_t r = 0; r < 5; ++r)
            for (std::size_t j = 0; j < 11; ++j) {
                big acc = 0;
                for (std::size_t i = 0; i < 37; ++i)
                    acc = ref.sum(acc, ref.product(ref.word(dxq(r, i)), ref.word(dwq(i, j)), (r * 37 + i) * 11 + j));
                acc = ref.sum(acc, ref.word(dbq(j)));
                wrong += !equals_word(dy(r, j), acc, q.format().frac);
            }
        return wrong;
    };

    SUBCASE("deterministic formats")
    {
        const std::vector<tq::fixed_point_rt> formats = {
            tq::fixed_point_rt(16, 8),
            tq::fixed_point_rt(8, 4, tq::rounding_mode::down, tq::overflow_mode::wrap),
            tq::fixed_point_rt(12, 6, tq::rounding_mode::nearest_even, tq::overflow_mode::symmetric),
            tq::fixed_point_rt(24, 12, tq::rounding_mode::zero),
            tq::fixed_point_rt(6, -1, tq::rounding_mode::up),
            tq::fixed_point_rt(5, 3, tq::rounding_mode::nearest, tq::overflow_mode::saturate)};
        for (auto const& q : formats) {
            CAPTURE(q.format().width);
            CAPTURE(q.format().frac);
            const auto y = nn::conv2d_intrinsic(x, w, b, o, q);
            const auto dy = nn::dense_intrinsic(dx, dw, db, q);
            CHECK(check_against_reference(q, y, dy) == 0);
            // the generic layers on the runtime number type give the same bits
            const tq::number_scope scope(q);
            using R = tq::quantized_rt<float>;
            const auto yr = nn::conv2d(convert<R>(x), convert<R>(w), convert<R>(b), o);
            const auto dyr = nn::dense(convert<R>(dx), convert<R>(dw), convert<R>(db));
            int differ = 0;
            for (std::size_t i = 0; i < y.size(); ++i) differ += yr.data()[i].value() != y.data()[i];
            for (std::size_t i = 0; i < dy.size(); ++i) differ += dyr.data()[i].value() != dy.data()[i];
            CHECK(differ == 0);
        }
    }
    SUBCASE("compile-time number type")
    {
        using V = tq::quantized<float, tq::fixed_point<16, 8>>;
        const auto y = nn::conv2d_intrinsic(x, w, b, o, tq::fixed_point_rt(16, 8));
        const auto yq = nn::conv2d(convert<V>(x), convert<V>(w), convert<V>(b), o);
        int differ = 0;
        for (std::size_t i = 0; i < y.size(); ++i) differ += yq.data()[i].value() != y.data()[i];
        CHECK(differ == 0);
    }
    SUBCASE("stochastic products use the documented thresholds")
    {
        const tq::fixed_point_rt q(10, 3, tq::rounding_mode::stochastic, tq::overflow_mode::saturate,
                                   tq::rng_key{9, 4});
        const auto y = nn::conv2d_intrinsic(x, w, b, o, q);
        const auto dy = nn::dense_intrinsic(dx, dw, db, q);
        CHECK(check_against_reference(q, y, dy) == 0);
        CHECK(nn::conv2d_intrinsic(x, w, b, o, q) == y); // reproducible
    }
    SUBCASE("formats the vectorised path cannot compute exactly are rejected")
    {
        CHECK_THROWS_AS(nn::conv2d_intrinsic(x, w, b, o, tq::fixed_point_rt(28, 8)), tq::format_error);
    }
}

TEST_CASE("pooling batch norm and element-wise layers")
{
    nn::tensor4<float> x = nn::tensor4<float>::from_shape({2, 5, 5, 3});
    fill_random(x, 11);
    SUBCASE("max and average pooling, same padding does not count the padding")
    {
        nn::pool_options o;
        o.padding = nn::padding_mode::same; // 5 -> 3, windows at the edge see 1 row
        const auto m = nn::max_pool(x, o), a = nn::avg_pool(x, o);
        REQUIRE(m.shape(1) == 3);
        for (std::size_t n = 0; n < 2; ++n)
            for (std::size_t oy = 0; oy < 3; ++oy)
                for (std::size_t ox = 0; ox < 3; ++ox)
                    for (std::size_t c = 0; c < 3; ++c) {
                        float mx = -1e30f;
                        double s = 0;
                        int cnt = 0;
                        for (std::size_t iy = 2 * oy; iy < std::min<std::size_t>(2 * oy + 2, 5); ++iy)
                            for (std::size_t ix = 2 * ox; ix < std::min<std::size_t>(2 * ox + 2, 5); ++ix)
                                mx = std::max(mx, x(n, iy, ix, c)), s += x(n, iy, ix, c), ++cnt;
                        CHECK(m(n, oy, ox, c) == mx);
                        CHECK(a(n, oy, ox, c) == doctest::Approx(s / cnt).epsilon(1e-6));
                    }
        const auto g = nn::global_avg_pool(x);
        CHECK(g.shape(1) == 1);
        CHECK(g(1, 0, 0, 2) == doctest::Approx(xt::mean(xt::view(x, 1, xt::all(), xt::all(), 2))()).epsilon(1e-6));
    }
    SUBCASE("intrinsic average pooling rounds the sum and then the division once")
    {
        const tq::fixed_point_rt q(8, 3);
        const tq::number_scope scope(q);
        using R = tq::quantized_rt<float>;
        const auto xr = convert<R>(x);
        const auto a = nn::avg_pool(xr, nn::pool_options{});
        const intrinsic_reference ref{q.format(), q.rounding(), q.overflow()};
        big s = 0;
        for (std::size_t iy = 0; iy < 2; ++iy)
            for (std::size_t ix = 0; ix < 2; ++ix) s = ref.sum(s, ref.word(xr(0, iy, ix, 1).value()));
        CHECK(equals_word(a(0, 0, 0, 1).value(),
                          tqtest::limit_ref(q.overflow(), q.format(), tqtest::round_rational(q.rounding(), s, 4)), 3));
    }
    SUBCASE("batch norm")
    {
        nn::tensor1<float> gamma{1.5f, 0.5f, 2.0f}, beta{0.1f, -0.2f, 0.3f}, mean{0.5f, -0.5f, 0.0f},
            var{4.0f, 0.25f, 1.0f};
        const auto y = nn::batch_norm(x, gamma, beta, mean, var, 1e-3f);
        for (std::size_t c = 0; c < 3; ++c)
            CHECK(y(1, 2, 3, c) ==
                  doctest::Approx((x(1, 2, 3, c) - mean(c)) / std::sqrt(var(c) + 1e-3) * gamma(c) + beta(c))
                      .epsilon(1e-5));
        // intrinsic: each of TensorQuant's steps rounds, checked on one element by hand
        using V = tq::quantized<float, tq::fixed_point<12, 6>>;
        const auto yq = nn::batch_norm(convert<V>(x), convert<V>(gamma), convert<V>(beta), convert<V>(mean),
                                       convert<V>(var), V(1e-3f));
        V inv = V(1) / sqrt(V(var(0)) + V(1e-3f));
        inv = inv * V(gamma(0));
        const V rest = V(beta(0)) - V(mean(0)) * inv;
        CHECK(yq(0, 1, 1, 0) == V(x(0, 1, 1, 0)) * inv + rest);
        CHECK_THROWS_AS(nn::batch_norm(x, gamma, beta, mean, nn::tensor1<float>{1.0f}, 1e-3f), tq::shape_error);
    }
    SUBCASE("activations add concat flatten softmax")
    {
        const auto r = nn::activate<float>(x, nn::activation::relu);
        const auto r6 = nn::activate<float>(x * 5.0f, nn::activation::relu6);
        const auto lk = nn::activate<float>(x, nn::activation::leaky_relu, 0.1);
        for (std::size_t i = 0; i < x.size(); ++i) {
            CHECK(r.data()[i] == std::max(x.data()[i], 0.0f));
            CHECK(r6.data()[i] == std::min(std::max(5.0f * x.data()[i], 0.0f), 6.0f));
            CHECK(lk.data()[i] == (x.data()[i] < 0 ? x.data()[i] * 0.1f : x.data()[i]));
        }
        const auto s = nn::add(x, x);
        CHECK(s(1, 1, 1, 1) == 2 * x(1, 1, 1, 1));
        nn::tensor4<float> other = nn::tensor4<float>::from_shape({2, 5, 5, 2});
        fill_random(other, 12);
        const auto cat = nn::concat<float>({&x, &other});
        CHECK(cat.shape(3) == 5);
        CHECK(cat(1, 4, 3, 4) == other(1, 4, 3, 1));
        CHECK(cat(1, 4, 3, 2) == x(1, 4, 3, 2));
        CHECK_THROWS_AS(nn::add(x, other), tq::shape_error);
        const auto f = nn::flatten(x);
        CHECK(f.shape(1) == 75);
        CHECK(f(1, (2 * 5 + 3) * 3 + 1) == x(1, 2, 3, 1));
        const auto p = nn::softmax(f);
        CHECK(xt::sum(xt::view(p, 0, xt::all()))() == doctest::Approx(1.0));
    }
}

TEST_CASE("shape errors name the layer shapes")
{
    nn::tensor4<float> x = nn::tensor4<float>::from_shape({1, 5, 5, 3});
    nn::tensor4<float> w = nn::tensor4<float>::from_shape({3, 3, 2, 4});
    CHECK_THROWS_WITH_AS(nn::conv2d(x, w, nn::tensor1<float>{}), doctest::Contains("[3, 3, 2, 4]"), tq::shape_error);
    nn::tensor4<float> big_w = nn::tensor4<float>::from_shape({7, 7, 3, 4});
    CHECK_THROWS_WITH_AS(nn::conv2d(x, big_w, nn::tensor1<float>{}), doctest::Contains("does not fit"),
                         tq::shape_error);
    nn::window_options bad;
    bad.stride = {0, 1};
    CHECK_THROWS_AS(
        nn::conv2d(x, nn::tensor4<float>(nn::tensor4<float>::from_shape({3, 3, 3, 4})), nn::tensor1<float>{}, bad),
        tq::shape_error);
    CHECK_THROWS_WITH_AS(nn::dense(nn::tensor2<float>(nn::tensor2<float>::from_shape({2, 3})),
                                   nn::tensor2<float>(nn::tensor2<float>::from_shape({4, 5})), nn::tensor1<float>{}),
                         doctest::Contains("[4, 5]"), tq::shape_error);
}

TEST_CASE("scope maps use the most specific scope and report unknown keys")
{
    const nn::scope_map m{{"LeNet", "nearest,8,4"}, {"LeNet/fc3", "zero,16,8"}, {"LeNet/conv", "binary"}};
    CHECK(m.match("LeNet/conv1")->scope == "LeNet"); // "LeNet/conv" is not a scope of conv1
    CHECK(m.match("LeNet/fc3")->scope == "LeNet/fc3");
    CHECK(m.match("LeNet/fc3/inner")->scope == "LeNet/fc3");
    CHECK(m.match("ResNet/fc") == nullptr);
    CHECK_THROWS_AS(nn::scope_map({{"a", "nearest,8,4"}, {"a/", "zero,8,4"}}), tq::config_error);

    auto net = nn::lenet5();
    CHECK_THROWS_WITH_AS(net.set_quantization({}, {{"LeNet/conv9", "nearest,8,4"}}, {}),
                         doctest::Contains("LeNet/conv9"), tq::config_error);
    CHECK_THROWS_WITH_AS(net.set_quantization({{"LeNet/fc3", "binary"}}, {}, {}), doctest::Contains("fixed-point"),
                         tq::config_error);
    auto res = nn::small_resnet();
    // stochastic intrinsic formats now reach batch norm, pooling and leaky ReLU too
    CHECK_NOTHROW(res.set_quantization({{"ResNet", "stochastic,8,4"}}, {}, {}));
    net.set_quantization({{"LeNet/fc3", "nearest,16,8"}}, {{"LeNet", "nearest,8,4"}, {"LeNet/fc5", "nearest,12,6"}},
                         {{"LeNet/conv1", "nearest,4,2"}});
    const auto report = net.quantization_report();
    CHECK(report.find(
              "LeNet/fc3: intrinsic nearest,16,8 (from LeNet/fc3), extrinsic nearest,8,4 (from LeNet), weights -") !=
          std::string::npos);
    CHECK(report.find("LeNet/fc5: intrinsic -, extrinsic nearest,12,6 (from LeNet/fc5)") != std::string::npos);
    CHECK(report.find(
              "LeNet/conv1: intrinsic -, extrinsic nearest,8,4 (from LeNet), weights nearest,4,2 (from LeNet/conv1)") !=
          std::string::npos);
}

TEST_CASE("JSON quantizer maps")
{
    const auto m = nn::scope_map::from_json(R"({"LeNet": "nearest,8,4", "LeNet/fc3": "stochastic,16,8"})", "x.json");
    CHECK(m.entries().size() == 2);
    CHECK(m.match("LeNet/fc3")->spec == "stochastic,16,8");
    CHECK_THROWS_WITH_AS(nn::scope_map::from_json("{\"a\": ", "bad.json"),
                         doctest::Contains("bad.json: not valid JSON"), tq::file_error);
    CHECK_THROWS_WITH_AS(nn::scope_map::from_json("[1]", "arr.json"),
                         doctest::Contains("arr.json: expected a JSON object"), tq::file_error);
    CHECK_THROWS_WITH_AS(nn::scope_map::from_json(R"({"LeNet": 8})", "num.json"),
                         doctest::Contains("'LeNet' must be a quantizer"), tq::file_error);
    CHECK_THROWS_WITH_AS(nn::scope_map::from_json(R"({"LeNet": "nearst,8,4"})", "typo.json"),
                         doctest::Contains("typo.json: scope 'LeNet'"), tq::parse_error);
    CHECK_THROWS_WITH_AS(nn::scope_map::from_json_file("/nonexistent/q.json"), doctest::Contains("/nonexistent/q.json"),
                         tq::file_error);
}

TEST_CASE("vectorised intrinsic average pooling equals the number type bit for bit")
{
    std::mt19937_64 gen(12);
    std::uniform_real_distribution<float> u(-1, 1);
    for (int w : {4, 8, 12, 16, 24})
        for (int f : {0, w / 2, w - 1})
            for (auto r : {tq::rounding_mode::nearest, tq::rounding_mode::zero, tq::rounding_mode::down,
                           tq::rounding_mode::nearest_even})
                for (auto o : {tq::overflow_mode::saturate, tq::overflow_mode::wrap, tq::overflow_mode::symmetric}) {
                    const tq::fixed_point_rt q(tq::fixed_format{w, f, true}, r, o);
                    auto x = nn::tensor4<float>::from_shape({2, 7, 6, 5});
                    // near the top of the range, so that partial sums overflow
                    const float top = float(std::ldexp(1.0, w - 1 - f));
                    for (auto& v : x) v = top * u(gen);
                    for (auto opts :
                         {nn::pool_options{}, nn::pool_options{{3, 3}, {2, 2}, nn::padding_mode::same, {0, 0, 0, 0}},
                          nn::pool_options{{3, 2}, {1, 2}, nn::padding_mode::explicit_pads, {1, 1, 0, 1}, true}}) {
                        const auto fast = nn::avg_pool_intrinsic(x, opts, q);
                        const auto ref =
                            nn::kernels::via_number(q, x, [&](auto const& v) { return nn::avg_pool(v, opts); });
                        INFO("format " << w << "," << f);
                        REQUIRE(fast.shape() == ref.shape());
                        bool same = true;
                        for (std::size_t i = 0; i < fast.size(); ++i)
                            same = same && std::bit_cast<std::uint32_t>(fast.data()[i]) ==
                                               std::bit_cast<std::uint32_t>(ref.data()[i]);
                        CHECK(same);
                    }
                }
}

TEST_CASE("vectorised intrinsic batch norm equals the number type bit for bit")
{
    std::mt19937_64 gen(11);
    std::uniform_real_distribution<float> u(-1, 1);
    for (int w : {4, 8, 12, 16, 20, 24})
        for (int f : {0, w / 2, w - 1, w + 2})
            for (auto r : {tq::rounding_mode::nearest, tq::rounding_mode::zero, tq::rounding_mode::down,
                           tq::rounding_mode::nearest_even})
                for (auto o : {tq::overflow_mode::saturate, tq::overflow_mode::wrap}) {
                    const tq::fixed_point_rt q(tq::fixed_format{w, f, true}, r, o);
                    auto x = nn::tensor4<float>::from_shape({3, 4, 5, 6});
                    for (auto& v : x) v = 4 * u(gen);
                    x(0, 0, 0, 0) = 0.5f * float(std::ldexp(1.0, w - f)); // beyond the range
                    nn::tensor1<float> gamma = nn::tensor1<float>::from_shape({6}), beta = gamma, mean = gamma,
                                       var = gamma;
                    for (std::size_t j = 0; j < 6; ++j) {
                        gamma(j) = 2 * u(gen), beta(j) = u(gen), mean(j) = u(gen);
                        var(j) = 0.05f + 3 * std::fabs(u(gen));
                    }
                    const auto fast = nn::batch_norm_intrinsic(x, gamma, beta, mean, var, 1e-3f, q);
                    using nn::kernels::to_rt;
                    const auto ref = nn::kernels::via_number(q, x, [&](auto const& v) {
                        return nn::batch_norm(v, to_rt(gamma), to_rt(beta), to_rt(mean), to_rt(var),
                                              tq::quantized_rt<float>(1e-3f));
                    });
                    INFO("format " << w << "," << f);
                    bool same = true;
                    for (std::size_t i = 0; i < x.size(); ++i)
                        same = same && std::bit_cast<std::uint32_t>(fast.data()[i]) ==
                                           std::bit_cast<std::uint32_t>(ref.data()[i]);
                    CHECK(same);
                }
}

TEST_CASE("stochastic intrinsic pooling batch norm and leaky ReLU")
{
    std::mt19937_64 gen(21);
    std::uniform_real_distribution<float> u(-1, 1);
    auto x = nn::tensor4<float>::from_shape({2, 6, 6, 3});
    for (auto& v : x) v = 3 * u(gen);
    const tq::fixed_point_rt q(tq::fixed_format{10, 5, true}, tq::rounding_mode::stochastic,
                               tq::overflow_mode::saturate, {8, 2});
    const tq::fixed_point_rt other_key(q.format(), q.rounding(), q.overflow(), {8, 3});
    const double step = std::ldexp(1.0, -5);
    auto words_apart = [&](float a, double b) { return std::fabs(double(a) - b) / step; };
    SUBCASE("average pooling equals the generic layer on the number type under its stream")
    {
        for (auto opts : {nn::pool_options{}, nn::pool_options{{3, 3}, {2, 2}, nn::padding_mode::same, {0, 0, 0, 0}}}) {
            const auto fast = nn::avg_pool_intrinsic(x, opts, q);
            const auto xq = nn::kernels::quantized_copy(q, x);
            nn::tensor4<tq::quantized_rt<float>> ref_in;
            {
                const tq::number_scope scope(q);
                tq::stochastic_scope any(q.key()); // the values are in the format: nothing rounds
                ref_in = nn::kernels::to_rt(xq);
            }
            const tq::number_scope scope(q);
            tq::stochastic_scope stream(q.key(), nn::kernels::intrinsic_operand_offset(1));
            const auto ref = nn::kernels::from_rt(nn::avg_pool(ref_in, opts));
            REQUIRE(fast.shape() == ref.shape());
            CHECK(std::equal(fast.begin(), fast.end(), ref.begin()));
            CHECK(!std::equal(fast.begin(), fast.end(), nn::avg_pool_intrinsic(x, opts, other_key).begin()));
        }
    }
    SUBCASE("batch norm is unbiased and reproducible")
    {
        nn::tensor1<float> gamma = nn::tensor1<float>::from_shape({3}), beta = gamma, mean = gamma, var = gamma;
        for (std::size_t j = 0; j < 3; ++j)
            gamma(j) = 0.7f + 0.3f * float(j), beta(j) = 0.1f * float(j), mean(j) = 0.2f, var(j) = 1.5f;
        const auto a = nn::batch_norm_intrinsic(x, gamma, beta, mean, var, 1e-3f, q);
        CHECK(std::equal(a.begin(), a.end(), nn::batch_norm_intrinsic(x, gamma, beta, mean, var, 1e-3f, q).begin()));
        // averaged over many streams the result approaches the exact batch norm of the
        // quantized input (every rounding is unbiased)
        const auto xq = nn::kernels::quantized_copy(q, x);
        std::vector<double> avg(x.size(), 0.0);
        const int runs = 400;
        for (int k = 0; k < runs; ++k) {
            const tq::fixed_point_rt qk(q.format(), q.rounding(), q.overflow(), {8, std::uint64_t(100 + k)});
            const auto y = nn::batch_norm_intrinsic(xq, gamma, beta, mean, var, 1e-3f, qk);
            for (std::size_t i = 0; i < y.size(); ++i) avg[i] += double(y.data()[i]) / runs;
        }
        double worst = 0;
        for (std::size_t i = 0; i < x.size(); ++i) {
            const std::size_t j = i % 3;
            const double exact =
                (double(xq.data()[i]) - mean(j)) * gamma(j) / std::sqrt(double(var(j)) + 1e-3) + beta(j);
            if (std::fabs(exact) < 15) worst = std::max(worst, std::fabs(avg[i] - exact) / step);
        }
        CHECK(worst < 1.0); // within one step on average, where nearest rounding of the constants alone is not
    }
    SUBCASE("leaky ReLU rounds each negative product with its own threshold")
    {
        const auto xq = nn::kernels::quantized_copy(q, x);
        const auto y = nn::kernels::activate_intrinsic(xq, {nn::activation::leaky_relu, 0.3}, q);
        std::size_t up = 0, down = 0;
        for (std::size_t i = 0; i < y.size(); ++i) {
            const float v = xq.data()[i];
            if (v >= 0) {
                CHECK(y.data()[i] == v);
                continue;
            }
            // slope is Q(0.3): 0.28125 or 0.3125; the product rounds to one of its two neighbours
            const double lo = std::floor(double(v) * 0.3125 / step) * step; // v < 0: the larger slope is lower
            const double hi = std::ceil(double(v) * 0.28125 / step) * step;
            CHECK(double(y.data()[i]) >= lo);
            CHECK(double(y.data()[i]) <= hi);
            (words_apart(y.data()[i], double(v) * 0.3) < 0.5 ? down : up) += 1;
        }
        CHECK(up + down > 20);
        const auto again = nn::kernels::activate_intrinsic(xq, {nn::activation::leaky_relu, 0.3}, q);
        CHECK(std::equal(y.begin(), y.end(), again.begin()));
    }
}

namespace {
using tqtest::temp_dir;
void write_bytes(std::filesystem::path const& p, std::string const& bytes)
{
    std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}
} // namespace

TEST_CASE("intrinsic sigmoid is the exact sigmoid rounded once")
{
    // every value of each format, against the sigmoid in 50 digits rounded by integer
    // arithmetic (no ties: the sigmoid of a nonzero dyadic rational is irrational)
    using bf = boost::multiprecision::cpp_bin_float_50;
    for (int w : {6, 8, 10, 12})
        for (int f : {0, 1, w / 2, w - 2})
            for (auto r : {tq::rounding_mode::nearest, tq::rounding_mode::zero, tq::rounding_mode::down,
                           tq::rounding_mode::up}) {
                const tq::fixed_point_rt q(w, f, r);
                INFO("W ", w, " F ", f, " rounding ", int(r));
                const std::int64_t lo = -(std::int64_t(1) << (w - 1)), hi = (std::int64_t(1) << (w - 1)) - 1;
                auto x = nn::tensor4<float>::from_shape({1, 1, 1, std::size_t(hi - lo + 1)});
                for (std::int64_t k = lo; k <= hi; ++k) x.data()[k - lo] = float(std::ldexp(double(k), -f));
                const auto y = nn::kernels::activate_intrinsic(x, nn::activation::sigmoid, q);
                int wrong = 0;
                for (std::int64_t k = lo; k <= hi; ++k) {
                    // for x > 0 through the complement u = 2^F sigmoid(-x): 1 - e^-x is 1 in any
                    // fixed precision once x is large, the level 2^F - u is not
                    const bf xv = bf(x.data()[k - lo]);
                    const bf one = bf(1), half = bf(0.5), top = ldexp(one, f);
                    bf level;
                    if (xv <= 0) {
                        const bf scaled = ldexp(one / (one + exp(-xv)), f);
                        level = r == tq::rounding_mode::nearest ? floor(scaled + half)
                                : r == tq::rounding_mode::up    ? ceil(scaled)
                                                                : floor(scaled); // positive: zero = down
                    } else {
                        const bf u = ldexp(one / (one + exp(xv)), f);
                        level = r == tq::rounding_mode::nearest ? top - ceil(u - half)
                                : r == tq::rounding_mode::up    ? top - floor(u)
                                                                : top - ceil(u);
                    }
                    if (level > bf(hi)) level = bf(hi);
                    const double want = std::ldexp(level.convert_to<double>(), -f);
                    if (double(y.data()[k - lo]) != want) ++wrong;
                }
                CHECK(wrong == 0);
            }
    SUBCASE("float sigmoid is the double one rounded to float")
    {
        xt::xarray<float> x{-30.0f, -2.5f, 0.0f, 0.75f, 16.0f};
        const auto y = nn::activate<float>(x, nn::activation::sigmoid);
        for (std::size_t i = 0; i < x.size(); ++i) CHECK(y(i) == float(1.0 / (1.0 + std::exp(-double(x(i))))));
    }
}

TEST_CASE("clip clamps exactly and intrinsically rounds once")
{
    nn::tensor4<float> x = nn::tensor4<float>::from_shape({2, 3, 3, 4});
    fill_random(x, 31);
    x *= 3.0f;
    x(0, 0, 0, 0) = std::numeric_limits<float>::quiet_NaN();
    x(0, 0, 0, 1) = std::numeric_limits<float>::infinity();
    nn::network net("C");
    nn::clip_layer c;
    c.lo = -1.3f;
    c.hi = 0.7f;
    net.add("clip", c);
    const auto y = net.forward(x);
    CHECK(std::isnan(y(0, 0, 0, 0)));
    CHECK(y(0, 0, 0, 1) == 0.7f);
    for (std::size_t i = 2; i < x.size(); ++i) CHECK(y.data()[i] == std::min(std::max(x.data()[i], -1.3f), 0.7f));
    // intrinsic: the same as the number type clamping to the bounds in the format, for every
    // deterministic rounding (x, and the bounds, rounded to the format; then the clamp is exact)
    for (std::string r : {"nearest", "zero", "down", "up", "nearest_even"}) {
        const std::string spec = r + ",6,3";
        INFO(spec);
        net.set_quantization({{"C", spec}}, {}, {});
        const auto yq = net.forward(x);
        const auto q = tq::parse_quantizer(spec);
        int bad = 0;
        for (std::size_t i = 1; i < x.size(); ++i) {
            const float want = std::min(std::max(q(x.data()[i]), q(c.lo)), q(c.hi));
            bad += yq.data()[i] != want;
        }
        CHECK(bad == 0);
    }
}

TEST_CASE("intrinsic element-wise operations equal the exact reference for every pair of small formats")
{
    using R = tq::rounding_mode;
    using O = tq::overflow_mode;
    std::size_t checked = 0;
    for (auto const& wf : {std::pair{5, 0}, std::pair{6, 2}, std::pair{6, 5}, std::pair{7, 3}})
        for (auto r : {R::nearest, R::nearest_even, R::zero, R::down, R::up})
            for (auto o : {O::saturate, O::wrap}) {
                const int w = wf.first, fr = wf.second; // (clang 14 cannot capture structured bindings)
                const tq::fixed_point_rt q(w, fr, r, o);
                const intrinsic_reference ref{q.format(), r, o};
                INFO("W ", w, " F ", fr, " rounding ", int(r), " overflow ", int(o));
                // every word of the format: a column and a row, broadcast to every pair
                const std::int64_t lo = -(std::int64_t(1) << (w - 1)), hi = (std::int64_t(1) << (w - 1)) - 1;
                const std::size_t n = std::size_t(hi - lo + 1);
                nn::tensor<float> a = nn::tensor<float>::from_shape({n, std::size_t(1)});
                nn::tensor<float> b = nn::tensor<float>::from_shape({std::size_t(1), n});
                for (std::int64_t k = lo; k <= hi; ++k)
                    a.data()[k - lo] = b.data()[k - lo] = float(std::ldexp(double(k), -fr));
                const big one = tqtest::pow2(fr);
                for (auto op : {nn::binary_op::add, nn::binary_op::sub, nn::binary_op::mul, nn::binary_op::div,
                                nn::binary_op::max, nn::binary_op::min}) {
                    CAPTURE(nn::binary_op_names[std::size_t(op)]);
                    const auto y = nn::binary_intrinsic(a, b, op, q);
                    REQUIRE(y.size() == n * n);
                    int wrong = 0;
                    for (std::int64_t i = lo; i <= hi; ++i)
                        for (std::int64_t j = lo; j <= hi; ++j) {
                            const big ka(i), kb(j);
                            big want;
                            switch (op) {
                            case nn::binary_op::add:
                                want = ref.sum(ka, kb);
                                break;
                            case nn::binary_op::sub:
                                want = ref.sum(ka, -kb);
                                break;
                            case nn::binary_op::mul:
                                want = ref.product(ka, kb, 0);
                                break;
                            case nn::binary_op::div: // the exact quotient ka / kb in words: ka 2^F / kb
                                if (j == 0) continue;
                                want = tqtest::limit_ref(
                                    o, q.format(),
                                    tqtest::round_rational(r, j < 0 ? big(-(ka * one)) : big(ka * one),
                                                           j < 0 ? big(-kb) : kb));
                                break;
                            case nn::binary_op::max:
                                want = i > j ? ka : kb;
                                break;
                            default:
                                want = i < j ? ka : kb;
                            }
                            ++checked;
                            if (!equals_word(y.data()[std::size_t((i - lo) * std::int64_t(n) + (j - lo))], want, fr))
                                ++wrong;
                        }
                    CHECK(wrong == 0);
                }
                // unary functions and powers of one operand
                auto words = [&](nn::activation_fn f) {
                    return nn::kernels::activate_intrinsic(nn::tensor<float>(a), f, q);
                };
                const auto neg = words(nn::activation::neg), abs = words(nn::activation::abs),
                           rec = words(nn::activation::reciprocal), sq = words(nn::activation::sqrt),
                           hs = words({nn::activation::hard_sigmoid, 0.2, 0.5}), hw = words(nn::activation::hard_swish);
                auto c2 = nn::binary_intrinsic(a, nn::tensor<float>{2.0f}, nn::binary_op::pow, q);
                auto c3 = nn::binary_intrinsic(a, nn::tensor<float>{3.0f}, nn::binary_op::pow, q);
                const big k_alpha = tqtest::fixed_ref(q.format(), r, o, 0.2),
                          k_beta = tqtest::fixed_ref(q.format(), r, o, 0.5),
                          k_sixth = tqtest::fixed_ref(q.format(), r, o, 1.0 / 6),
                          k_one = tqtest::fixed_ref(q.format(), r, o, 1.0);
                auto hard = [&](big const& k, big const& slope, big const& offset) {
                    big t = ref.sum(ref.product(slope, k, 0), offset);
                    t = t < 0 ? big(0) : t; // min(max(t, 0), Q(1)): Q(1) may saturate or wrap
                    return t > k_one ? k_one : t;
                };
                int wrong = 0;
                for (std::int64_t i = lo; i <= hi; ++i) {
                    const big k(i);
                    const std::size_t e = std::size_t(i - lo);
                    wrong += !equals_word(neg.data()[e], tqtest::limit_ref(o, q.format(), -k), fr);
                    wrong += !equals_word(abs.data()[e], tqtest::limit_ref(o, q.format(), i < 0 ? big(-k) : k), fr);
                    if (i != 0) // 1 / (k 2^-F) in words: 2^2F / k
                        wrong += !equals_word(
                            rec.data()[e],
                            tqtest::limit_ref(o, q.format(),
                                              tqtest::round_rational(r, i < 0 ? big(-(one * one)) : big(one * one),
                                                                     i < 0 ? big(-k) : k)),
                            fr);
                    if (i >= 0) // sqrt(k 2^-F) in words: sqrt(k 2^F)
                        wrong += !equals_word(sq.data()[e],
                                              tqtest::limit_ref(o, q.format(), tqtest::round_sqrt(r, k * one, 1)), fr);
                    wrong += !equals_word(hs.data()[e], hard(k, k_alpha, k_beta), fr);
                    wrong += !equals_word(hw.data()[e], ref.product(k, hard(k, k_sixth, k_beta), 0), fr);
                    const big k2 = ref.product(k, k, 0);
                    wrong += !equals_word(c2.data()[e], k2, fr);
                    wrong += !equals_word(c3.data()[e], ref.product(k2, k, 0), fr);
                    checked += 8;
                }
                CHECK(wrong == 0);
                // sums and means of a reduction, each partial sum limited
                nn::tensor<float> rows = nn::tensor<float>::from_shape({n / 4, std::size_t(4)});
                std::copy(a.data(), a.data() + n, rows.data());
                const auto sums = nn::reduce_intrinsic(rows, {1}, false, nn::reduce_op::sum, q);
                const auto means = nn::reduce_intrinsic(rows, {1}, true, nn::reduce_op::mean, q);
                for (std::size_t row = 0; row < n / 4; ++row) {
                    big acc = 0;
                    for (std::size_t j = 0; j < 4; ++j) acc = ref.sum(acc, ref.word(rows(row, j)));
                    wrong += !equals_word(sums.data()[row], acc, fr);
                    wrong += !equals_word(means.data()[row],
                                          tqtest::limit_ref(o, q.format(), tqtest::round_rational(r, acc, 4)), fr);
                    checked += 2;
                }
                CHECK(wrong == 0);
            }
    MESSAGE("intrinsic element-wise results checked against the exact reference: ", checked);
}

TEST_CASE("intrinsic matrix products, transposed convolution, resizing and padding equal the number type")
{
    using V = tq::quantized<float, tq::fixed_point<12, 6>>;
    const tq::fixed_point_rt q(12, 6);
    auto rnd = [](std::vector<std::size_t> shape, std::uint64_t seed, double scale = 2) {
        nn::tensor<float> t = nn::tensor<float>::from_shape(shape);
        std::mt19937_64 gen(seed);
        std::uniform_real_distribution<double> d(-scale, scale);
        for (auto& v : t) v = float(std::round(d(gen) * 64) / 64); // in the format
        return t;
    };
    auto as_v = [](nn::tensor<float> const& t) {
        nn::tensor<V> r = nn::tensor<V>::from_shape(std::vector<std::size_t>(t.shape().begin(), t.shape().end()));
        for (std::size_t i = 0; i < t.size(); ++i) r.data()[i] = V(t.data()[i]);
        return r;
    };
    auto same = [](nn::tensor<float> const& y, auto const& want) {
        REQUIRE(y.size() == want.size());
        std::size_t differ = 0;
        for (std::size_t i = 0; i < y.size(); ++i) differ += !tqtest::same_bits(y.data()[i], float(want.data()[i]));
        return differ;
    };
    SUBCASE("batched matrix products with broadcasting")
    {
        const auto a = rnd({2, 3, 4, 9}, 1), b = rnd({3, 9, 5}, 2);
        CHECK(same(nn::matmul_intrinsic(a, b, q), nn::matmul(as_v(a), as_v(b))) == 0);
    }
    SUBCASE("transposed convolution")
    {
        nn::transpose_options o;
        o.stride = {2, 3};
        o.pads = {1, 0, 2, 1};
        o.output_padding = {1, 0};
        o.dilation = {1, 2};
        o.groups = 2;
        const auto x = rnd({2, 3, 4, 4}, 3), w = rnd({3, 2, 4, 3}, 4), b = rnd({6}, 5);
        CHECK(same(nn::conv_transpose2d_intrinsic(x, w, b, o, q), nn::conv_transpose2d(as_v(x), as_v(w), as_v(b), o)) ==
              0);
    }
    SUBCASE("bilinear resizing: weights rounded, then each product and sum")
    {
        nn::resize_options o;
        o.mode = nn::resize_mode::linear;
        o.scales = {1.75, 0.6};
        const auto x = rnd({2, 4, 5, 3}, 6);
        const auto y = nn::resize_intrinsic(x, o, q);
        const auto p = nn::kernels::resize_plan_of(x.shape(), o);
        nn::tensor<V> want = nn::tensor<V>::from_shape({p.n, p.oh, p.ow, p.c});
        nn::kernels::for_each_resized(p, [&](std::size_t e, auto const& taps) {
            V acc = V(0);
            for (auto const& t : taps) acc = acc + V(t.second) * V(x.data()[t.first]);
            want.data()[e] = acc;
        });
        CHECK(same(y, want) == 0);
    }
}

TEST_CASE("npy files and network parameters")
{
    temp_dir dir;
    SUBCASE("round trip, and float64 files load as float")
    {
        std::vector<double> v{1.5, -2.25, 3.0, 0.125, 7, 8};
        tq::write_npy(dir.path / "a.npy", v.data(), {2, 3});
        const auto f = tq::read_npy<float>(dir.path / "a.npy");
        CHECK(f.shape == std::vector<std::size_t>{2, 3});
        CHECK(f.values[1] == -2.25f);
        std::vector<float> s{4.0f};
        tq::write_npy(dir.path / "s.npy", s.data(), {1});
        CHECK(tq::read_npy<double>(dir.path / "s.npy").values == std::vector<double>{4.0});
    }
    SUBCASE("malformed files")
    {
        write_bytes(dir.path / "magic.npy", "NOTNUMPY");
        CHECK_THROWS_WITH_AS(tq::read_npy<float>(dir.path / "magic.npy"), doctest::Contains("bad magic"),
                             tq::file_error);
        std::vector<float> v(10, 1.0f);
        tq::write_npy(dir.path / "t.npy", v.data(), {10});
        std::string bytes;
        {
            std::ifstream in(dir.path / "t.npy", std::ios::binary);
            bytes.assign(std::istreambuf_iterator<char>(in), {});
        }
        write_bytes(dir.path / "trunc.npy", bytes.substr(0, bytes.size() - 5));
        CHECK_THROWS_WITH_AS(tq::read_npy<float>(dir.path / "trunc.npy"), doctest::Contains("truncated data"),
                             tq::file_error);
        std::string ints = bytes;
        ints.replace(ints.find("<f4"), 3, "<c8");
        write_bytes(dir.path / "complex.npy", ints);
        CHECK_THROWS_WITH_AS(tq::read_npy<float>(dir.path / "complex.npy"), doctest::Contains("'<c8' is not supported"),
                             tq::file_error);
        std::string fortran = bytes;
        fortran.replace(fortran.find("False"), 5, "True ");
        write_bytes(dir.path / "f.npy", fortran);
        CHECK_THROWS_WITH_AS(tq::read_npy<float>(dir.path / "f.npy"), doctest::Contains("Fortran"), tq::file_error);
        CHECK_THROWS_WITH_AS(tq::read_npy<float>(dir.path / "none.npy"), doctest::Contains("none.npy: cannot open"),
                             tq::file_error);
    }
    SUBCASE("networks save and load by scoped layer name")
    {
        auto a = nn::lenet5(1), b = nn::lenet5(2);
        a.save(dir.path);
        CHECK(std::filesystem::exists(dir.path / "LeNet" / "conv1" / "weights.npy"));
        nn::tensor4<float> x = nn::tensor4<float>::from_shape({3, 28, 28, 1});
        fill_random(x, 5, 0, 1);
        CHECK(a.forward(x) != b.forward(x));
        b.load(dir.path);
        CHECK(a.forward(x) == b.forward(x));
        std::filesystem::remove(dir.path / "LeNet" / "fc4" / "bias.npy");
        CHECK_THROWS_WITH_AS(b.load(dir.path), doctest::Contains("layer 'LeNet/fc4': parameter 'bias' is missing"),
                             tq::file_error);
        std::vector<float> wrong(12, 0.0f);
        tq::write_npy(dir.path / "LeNet" / "fc4" / "bias.npy", wrong.data(), {12});
        CHECK_THROWS_WITH_AS(b.load(dir.path), doctest::Contains("holds shape [12] but bias has shape [84]"),
                             tq::shape_error);
    }
}

TEST_CASE("networks run float extrinsic and intrinsic")
{
    nn::tensor4<float> x = nn::tensor4<float>::from_shape({4, 28, 28, 1});
    fill_random(x, 9, 0, 1);
    SUBCASE("LeNet-5: extrinsic outputs lie on the grid and intrinsic equals the layers composed by hand")
    {
        auto net = nn::lenet5(3);
        const auto yf = net.forward(x);
        CHECK(yf.shape(1) == 10);
        net.set_quantization({}, {{"LeNet", "nearest,8,4"}}, {});
        const auto ye = net.forward(x);
        for (float v : ye) CHECK(v == std::ldexp(std::round(std::ldexp(v, 4)), -4));
        const tq::fixed_point_rt q(16, 8);
        net.set_quantization({{"LeNet", "nearest,16,8"}}, {}, {});
        const auto yi = net.forward(x);
        // by hand, with the layer functions
        auto const& n = net.nodes();
        auto const& c1 = std::get<nn::conv2d_layer>(n[0].op);
        auto const& c2 = std::get<nn::conv2d_layer>(n[2].op);
        auto const& f3 = std::get<nn::dense_layer>(n[5].op);
        auto const& f4 = std::get<nn::dense_layer>(n[6].op);
        auto const& f5 = std::get<nn::dense_layer>(n[7].op);
        auto relu = [](auto t) { return nn::activate<float>(t, nn::activation::relu); };
        auto h = relu(nn::conv2d_intrinsic(x, c1.weights, c1.bias, c1.options, q));
        h = nn::max_pool(h);
        h = nn::max_pool(relu(nn::conv2d_intrinsic(h, c2.weights, c2.bias, c2.options, q)));
        auto d = relu(nn::dense_intrinsic(nn::flatten(h), f3.weights, f3.bias, q));
        d = relu(nn::dense_intrinsic(d, f4.weights, f4.bias, q));
        d = nn::dense_intrinsic(d, f5.weights, f5.bias, q);
        REQUIRE(d.size() == yi.size());
        CHECK(std::equal(d.begin(), d.end(), yi.begin()));
        // coarse intrinsic formats move the logits; fine ones stay close to float
        CHECK(xt::amax(xt::abs(yi - yf))() < 0.1); // about 25 steps of 2^-8 after 150-term sums
    }
    SUBCASE("residual network with batch norm, and instrumentation")
    {
        auto net = nn::small_resnet(4);
        const auto yf = net.forward(x);
        CHECK(yf.shape(1) == 10);
        CHECK(net.stats().empty());
        net.set_quantization({{"ResNet", "nearest,16,8"}}, {{"ResNet/fc", "nearest,4,1"}},
                             {{"ResNet/block2", "nearest,2,2"}});
        net.set_instrumentation(true);
        const auto yi = net.forward(x);
        CHECK(net.forward(x) == yi); // deterministic
        bool saw_saturation = false, saw_weights = false, saw_intrinsic = false;
        for (auto const& s : net.stats()) {
            if (s.layer == "ResNet/fc" && s.tensor == "output (extrinsic)") {
                saw_saturation = s.saturated >= 0;
                CHECK(s.count == 40);
            }
            saw_weights = saw_weights || (s.layer == "ResNet/block2/conv1" && s.tensor == "weights" && s.saturated > 0);
            saw_intrinsic = saw_intrinsic || (s.tensor == "output (intrinsic)" && s.sqnr_db > 20);
        }
        CHECK(saw_saturation);
        CHECK(saw_weights); // He-uniform weights exceed the range [-0.5, 0.25] of (2, 2)
        CHECK(saw_intrinsic);
        // an exact count on a layer whose outputs are known
        nn::network t("T");
        t.add("fc", nn::dense_layer{nn::tensor2<float>{{1, 0}, {0, 1}}, nn::tensor1<float>{0, 0}});
        t.set_quantization({}, {{"T", "nearest,4,1"}}, {}); // range [-4, 3.5]
        t.set_instrumentation(true);
        nn::tensor4<float> in = nn::tensor4<float>::from_shape({2, 1, 1, 2});
        std::vector<float> vals{5.0f, -1.0f, -4.5f, 3.4f};
        std::copy(vals.begin(), vals.end(), in.begin());
        t.forward(in);
        REQUIRE(t.stats().size() == 1);
        CHECK(t.stats()[0].saturated == 2);
        CHECK(t.stats()[0].sqnr_db ==
              doctest::Approx(10 * std::log10((25 + 1 + 20.25 + 3.4 * 3.4) / (2.25 + 0.25 + 0.1 * 0.1))).epsilon(1e-4));
        net.set_instrumentation(false);
        net.clear_stats();
        net.forward(x);
        CHECK(net.stats().empty());
    }
}
