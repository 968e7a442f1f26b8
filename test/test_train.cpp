// Autograd against finite differences, the quantizers' estimators and TQT against their
// formulas, the IDX loader, optimizers and reproducible training.
#include <tensorquant/train.hpp>

#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace tq = tensorquant;
namespace nn = tensorquant::nn;
namespace tr = tensorquant::train;
using dtape = tr::tape<double>;
using dvar = dtape::var;

namespace {

xt::xarray<double> random_tensor(std::vector<std::size_t> shape, std::uint64_t seed, double lo = -1, double hi = 1)
{
    std::mt19937_64 gen(seed);
    std::uniform_real_distribution<double> d(lo, hi);
    xt::xarray<double> a = xt::xarray<double>::from_shape(shape);
    for (auto& v : a) v = d(gen);
    return a;
}

// sum(out * r) for a fixed random r: a scalar whose gradient reaches every output.
dvar weighted_sum(dtape& t, dvar out, std::uint64_t seed)
{
    auto r = random_tensor(std::vector<std::size_t>(t.value(out).shape().begin(), t.value(out).shape().end()), seed);
    xt::xarray<double> s = xt::xarray<double>::from_shape({1});
    s(0) = xt::sum(t.value(out) * r)();
    return t.record(std::move(s),
                    [out, r](dtape& tp, dvar o) {
                        const double g = tp.grad(o)(0);
                        auto& d = tp.grad(out);
                        for (std::size_t i = 0; i < d.size(); ++i) d.data()[i] += g * r.data()[i];
                    },
                    {out});
}

// Compares the tape's gradient of every input with central differences.
void check_gradients(std::vector<xt::xarray<double>> inputs,
                     std::function<dvar(dtape&, std::vector<dvar> const&)> const& op, double tolerance = 1e-6)
{
    auto evaluate = [&](std::vector<xt::xarray<double>> const& in, std::vector<xt::xarray<double>>* grads) {
        dtape t;
        std::vector<dvar> vars;
        for (auto const& x : in) vars.push_back(t.leaf(x, true));
        const dvar loss = weighted_sum(t, op(t, vars), 99);
        if (grads) {
            t.backward(loss);
            for (auto v : vars) grads->push_back(t.grad(v));
        }
        return t.value(loss)(0);
    };
    std::vector<xt::xarray<double>> analytic;
    evaluate(inputs, &analytic);
    const double h = 1e-6;
    for (std::size_t k = 0; k < inputs.size(); ++k) {
        double worst = 0, scale = 1e-3;
        for (std::size_t i = 0; i < inputs[k].size(); ++i) {
            auto plus = inputs, minus = inputs;
            plus[k].data()[i] += h;
            minus[k].data()[i] -= h;
            const double numeric = (evaluate(plus, nullptr) - evaluate(minus, nullptr)) / (2 * h);
            worst = std::max(worst, std::abs(numeric - analytic[k].data()[i]));
            scale = std::max(scale, std::abs(numeric));
        }
        CHECK_MESSAGE(worst / scale < tolerance,
                      "input " << k << ": worst difference " << worst << " for gradients up to " << scale);
    }
}

} // namespace

TEST_CASE("layer gradients equal finite differences")
{
    SUBCASE("conv2d: stride padding dilation groups")
    {
        auto cfg = [](int s, nn::padding_mode p, int d, int g) {
            nn::window_options o;
            o.stride = {s, s}, o.padding = p, o.dilation = {d, d}, o.groups = g;
            return o;
        };
        const std::vector<std::pair<nn::window_options, std::vector<std::size_t>>> cases = {
            {cfg(1, nn::padding_mode::valid, 1, 1), {3, 3, 2, 3}},
            {cfg(2, nn::padding_mode::same, 1, 1), {3, 3, 2, 4}},
            {cfg(1, nn::padding_mode::same, 2, 1), {2, 2, 2, 3}},
            {cfg(1, nn::padding_mode::same, 1, 2), {3, 3, 1, 4}},
        };
        for (auto const& [o, ws] : cases) {
            const auto opt = o;
            check_gradients({random_tensor({2, 5, 6, 2}, 1), random_tensor(ws, 2), random_tensor({ws[3]}, 3)},
                            [opt](dtape& t, auto const& v) { return tr::conv2d(t, v[0], v[1], v[2], opt); });
        }
    }
    SUBCASE("dense")
    {
        check_gradients({random_tensor({3, 1, 1, 7}, 4), random_tensor({7, 5}, 5), random_tensor({5}, 6)},
                        [](dtape& t, auto const& v) { return tr::dense(t, v[0], v[1], v[2]); });
    }
    SUBCASE("pooling")
    {
        nn::pool_options same;
        same.padding = nn::padding_mode::same;
        check_gradients({random_tensor({2, 5, 5, 3}, 7)},
                        [same](dtape& t, auto const& v) { return tr::max_pool(t, v[0], same); });
        // 2x2 windows with stride 2 and no padding take a path of their own
        check_gradients({random_tensor({2, 6, 4, 3}, 27)},
                        [](dtape& t, auto const& v) { return tr::max_pool(t, v[0]); });
        check_gradients({random_tensor({2, 5, 5, 3}, 8)},
                        [same](dtape& t, auto const& v) { return tr::avg_pool(t, v[0], same); });
        check_gradients({random_tensor({2, 4, 3, 3}, 9)},
                        [](dtape& t, auto const& v) { return tr::global_avg_pool(t, v[0]); });
        nn::pool_options counted{{3, 3}, {2, 2}, nn::padding_mode::explicit_pads, {1, 1, 1, 0}, true};
        check_gradients({random_tensor({2, 5, 5, 3}, 28)},
                        [counted](dtape& t, auto const& v) { return tr::avg_pool(t, v[0], counted); });
    }
    SUBCASE("batch norm in training and inference form")
    {
        check_gradients({random_tensor({3, 2, 2, 4}, 10), random_tensor({4}, 11, 0.5, 1.5), random_tensor({4}, 12)},
                        [](dtape& t, auto const& v) { return tr::batch_norm(t, v[0], v[1], v[2], 1e-3); });
        const std::vector<double> mean{0.1, -0.2, 0.3, 0.0}, var{0.5, 1.5, 2.0, 0.8};
        check_gradients(
            {random_tensor({3, 2, 2, 4}, 13), random_tensor({4}, 14), random_tensor({4}, 15)},
            [&](dtape& t, auto const& v) { return tr::batch_norm_inference(t, v[0], v[1], v[2], mean, var, 1e-3); });
    }
    SUBCASE("activations add concat flatten")
    {
        // values kept away from the kinks at 0 and 6
        auto x = random_tensor({2, 3, 3, 2}, 16, 0.05, 1);
        for (std::size_t i = 0; i < x.size(); i += 2) x.data()[i] = -x.data()[i];
        for (std::size_t i = 1; i < x.size(); i += 5) x.data()[i] += 6;
        for (auto a :
             {nn::activation::relu, nn::activation::relu6, nn::activation::leaky_relu, nn::activation::sigmoid})
            check_gradients({x}, [a](dtape& t, auto const& v) { return tr::activate(t, v[0], a, 0.1); });
        check_gradients({x}, [](dtape& t, auto const& v) { return tr::clip(t, v[0], -0.5, 6.5); });
        check_gradients({random_tensor({2, 3, 3, 2}, 17), random_tensor({2, 3, 3, 2}, 18)},
                        [](dtape& t, auto const& v) { return tr::add(t, v[0], v[1]); });
        check_gradients({random_tensor({2, 3, 3, 2}, 19), random_tensor({2, 3, 3, 3}, 20)},
                        [](dtape& t, auto const& v) {
                            return tr::concat(t, std::vector<dvar>{v[0], v[1]});
                        });
        check_gradients({random_tensor({2, 3, 3, 2}, 21)},
                        [](dtape& t, auto const& v) { return tr::flatten(t, v[0]); });
    }
    SUBCASE("softmax, softmax cross-entropy and L2 weight decay")
    {
        check_gradients({random_tensor({3, 1, 1, 5}, 26, -3, 3)},
                        [](dtape& t, auto const& v) { return tr::softmax(t, v[0]); });
        const std::vector<int> labels{2, 0, 4};
        check_gradients({random_tensor({3, 1, 1, 5}, 22, -3, 3)},
                        [&](dtape& t, auto const& v) { return tr::softmax_cross_entropy(t, v[0], labels); });
        check_gradients({random_tensor({1}, 23), random_tensor({3, 4}, 24), random_tensor({5}, 25)},
                        [](dtape& t, auto const& v) {
                            return tr::l2_penalty(t, v[0], std::vector<dvar>{v[1], v[2]}, 0.01);
                        });
    }
}

TEST_CASE("gradients of the operators of imported networks equal finite differences")
{
    SUBCASE("element-wise binary operations with broadcasting")
    {
        for (auto op : {nn::binary_op::add, nn::binary_op::sub, nn::binary_op::mul, nn::binary_op::div,
                        nn::binary_op::max, nn::binary_op::min}) {
            CAPTURE(int(op));
            // away from ties of max and min, and from division by small numbers
            auto b = random_tensor({3, 1}, 41, 0.5, 1.5);
            check_gradients({random_tensor({2, 3, 4}, 40, -2, 2), b},
                            [op](dtape& t, auto const& v) { return tr::binary(t, v[0], v[1], op); });
            check_gradients({b, random_tensor({2, 1, 4}, 42, -2, 2)},
                            [op](dtape& t, auto const& v) { return tr::binary(t, v[0], v[1], op); });
        }
        check_gradients({random_tensor({2, 3}, 43, 0.5, 2), random_tensor({3}, 44, -1, 2)},
                        [](dtape& t, auto const& v) { return tr::binary(t, v[0], v[1], nn::binary_op::pow); });
    }
    SUBCASE("element-wise functions")
    {
        auto x = random_tensor({2, 3, 5}, 45, 0.05, 2.5);
        for (std::size_t i = 0; i < x.size(); i += 2) x.data()[i] = -x.data()[i];
        for (auto a :
             {nn::activation::hard_sigmoid, nn::activation::hard_swish, nn::activation::tanh, nn::activation::erf,
              nn::activation::gelu, nn::activation::gelu_tanh, nn::activation::neg, nn::activation::abs}) {
            CAPTURE(nn::info_of(a).name);
            check_gradients({x}, [a](dtape& t, auto const& v) { return tr::activate(t, v[0], a, 0.3); });
        }
        const auto positive = random_tensor({2, 3, 5}, 46, 0.3, 2);
        for (auto a : {nn::activation::sqrt, nn::activation::reciprocal})
            check_gradients({positive}, [a](dtape& t, auto const& v) { return tr::activate(t, v[0], a); });
    }
    SUBCASE("matrix products, batched and broadcast")
    {
        check_gradients({random_tensor({2, 3, 4, 5}, 47), random_tensor({3, 5, 2}, 48)},
                        [](dtape& t, auto const& v) { return tr::matmul(t, v[0], v[1]); });
        check_gradients({random_tensor({5}, 49), random_tensor({2, 5, 3}, 50)},
                        [](dtape& t, auto const& v) { return tr::matmul(t, v[0], v[1]); });
        check_gradients(
            {random_tensor({2, 4, 7}, 51), random_tensor({7, 3}, 52), random_tensor({3}, 53)},
            [](dtape& t, auto const& v) { return tr::dense(t, v[0], v[1], v[2], nn::dense_input::last_axis); });
    }
    SUBCASE("softmax and log-softmax on any axis, reductions, layer norm")
    {
        for (int axis : {0, 1, -1})
            for (bool log : {false, true})
                check_gradients({random_tensor({2, 3, 4}, 54, -2, 2)}, [axis, log](dtape& t, auto const& v) {
                    return tr::softmax(t, v[0], axis, false, log);
                });
        check_gradients({random_tensor({2, 3, 4}, 55, -2, 2)},
                        [](dtape& t, auto const& v) { return tr::softmax(t, v[0], 1, true, false); });
        for (auto op : {nn::reduce_op::sum, nn::reduce_op::mean, nn::reduce_op::max, nn::reduce_op::min})
            for (bool keep : {false, true})
                check_gradients({random_tensor({2, 3, 4}, 56)}, [op, keep](dtape& t, auto const& v) {
                    return tr::reduce(t, v[0], {0, 2}, keep, op);
                });
        check_gradients({random_tensor({2, 3, 4}, 57), random_tensor({12}, 58, 0.5, 1.5), random_tensor({12}, 59)},
                        [](dtape& t, auto const& v) { return tr::layer_norm(t, v[0], v[1], v[2], 1, 1e-5); });
    }
    SUBCASE("data movement")
    {
        const auto x = random_tensor({2, 3, 4}, 60);
        check_gradients({x}, [](dtape& t, auto const& v) { return tr::transpose(t, v[0], {2, 0, 1}); });
        check_gradients({x}, [](dtape& t, auto const& v) {
            return tr::reshape(t, v[0], std::vector<std::size_t>{6, 4});
        });
        check_gradients({x}, [](dtape& t, auto const& v) {
            return tr::slice(t, v[0], {1, 2}, {{2, 0, -1}, {1, 4, 2}});
        });
        check_gradients({x}, [](dtape& t, auto const& v) { return tr::gather(t, v[0], 1, {2, 0, 2, -1}, {2, 2}); });
        check_gradients({random_tensor({3, 1}, 61)}, [](dtape& t, auto const& v) {
            return tr::expand(t, v[0], std::vector<std::size_t>{2, 3, 4});
        });
        check_gradients({random_tensor({2, 3, 3, 2}, 62), random_tensor({2, 3, 3, 1}, 63)},
                        [](dtape& t, auto const& v) {
                            return tr::concat(t, std::vector<dvar>{v[0], v[1]}, 3);
                        });
        check_gradients({x, random_tensor({2, 1, 4}, 64)}, [](dtape& t, auto const& v) {
            return tr::concat(t, std::vector<dvar>{v[0], v[1]}, 1);
        });
        for (auto mode : {nn::pad_mode::constant, nn::pad_mode::reflect, nn::pad_mode::edge})
            check_gradients({x}, [mode](dtape& t, auto const& v) {
                return tr::pad(t, v[0], {0, 2, 1}, {1, -1, 2}, mode, 0.5);
            });
    }
    SUBCASE("transposed convolution and resizing")
    {
        nn::transpose_options o;
        o.stride = {2, 1};
        o.pads = {1, 0, 0, 1};
        o.output_padding = {1, 0};
        o.groups = 2;
        check_gradients({random_tensor({2, 3, 4, 4}, 65), random_tensor({3, 2, 4, 3}, 66), random_tensor({6}, 67)},
                        [o](dtape& t, auto const& v) { return tr::conv_transpose2d(t, v[0], v[1], v[2], o); });
        nn::resize_options r;
        r.mode = nn::resize_mode::linear;
        r.scales = {1.5, 0.75};
        check_gradients({random_tensor({2, 4, 4, 3}, 68)},
                        [r](dtape& t, auto const& v) { return nn::tape_ops::resize(t, v[0], r); });
    }
}

TEST_CASE("quantizers on the tape: straight-through estimators")
{
    const auto q = tq::parse_quantizer("nearest,4,2"); // range [-2, 1.75]
    dtape t;
    xt::xarray<double> xv{-3.0, -1.3, 0.4, 1.7, 2.5};
    const dvar x = t.leaf(xv, true);
    const dvar y = tr::quantize(t, x, q, tr::ste::pass);
    CHECK(t.value(y) == xt::xarray<double>{-2.0, -1.25, 0.5, 1.75, 1.75});
    const dvar ym = tr::quantize(t, x, q, tr::ste::zero_saturated);
    const dvar s = weighted_sum(t, tr::add(t, y, ym), 5);
    t.backward(s);
    // r is the same for both: pass gives r everywhere, the masked form r inside [-2, 1.75]
    const auto r = random_tensor({5}, 5);
    for (std::size_t i = 0; i < 5; ++i) {
        const bool inside = xv(i) >= -2 && xv(i) <= 1.75;
        CHECK(t.grad(x)(i) == doctest::Approx(r(i) * (inside ? 2 : 1)));
    }
    CHECK_THROWS_AS(tr::quantize(t, x, tq::parse_quantizer("binary"), tr::ste::zero_saturated), tq::config_error);
}

TEST_CASE("TQT forward and gradients follow the paper's formulas")
{
    for (bool is_signed : {true, false}) {
        CAPTURE(is_signed);
        const tr::tqt_format f{4, is_signed};
        dtape t;
        const xt::xarray<double> xv = random_tensor({40}, 30, is_signed ? -3 : -0.5, 3);
        const dvar x = t.leaf(xv, true);
        const double log2t = 0.7; // threshold 1.62: scale 2^1 / 2^(b-1 or b)
        const dvar lt = t.leaf(xt::xarray<double>{log2t}, true);
        const dvar y = tr::tqt_quantize(t, x, lt, f);
        t.backward(weighted_sum(t, y, 31));
        const auto r = random_tensor({40}, 31);
        const double s = is_signed ? 2.0 / 8 : 2.0 / 16;
        const double n = is_signed ? -8 : 0, p = is_signed ? 7 : 15;
        double dt = 0;
        for (std::size_t i = 0; i < 40; ++i) {
            const double v = xv(i) / s, rd = std::nearbyint(v);
            const double expect = std::clamp(rd, n, p) * s;
            CHECK(t.value(y)(i) == doctest::Approx(expect).epsilon(1e-12));
            const bool inside = rd >= n && rd <= p;
            CHECK(t.grad(x)(i) == doctest::Approx(inside ? r(i) : 0.0));
            dt += r(i) * s * std::log(2.0) * (rd < n ? n : rd > p ? p : rd - v);
        }
        CHECK(t.grad(lt)(0) == doctest::Approx(dt).epsilon(1e-12));
    }
    SUBCASE("the forward pass is fixed point with W = bits and F = bits - 1 - ceil(log2 t)")
    {
        tr::tape<float> t;
        const xt::xarray<float> xv = xt::cast<float>(random_tensor({200}, 32, -5, 5));
        const auto y = tr::tqt_quantize(t, t.leaf(xv), t.leaf(xt::xarray<float>{1.3f}), tr::tqt_format{6, true});
        const tq::fixed_point_rt f(6, 6 - 1 - 2, tq::rounding_mode::nearest_even);
        for (std::size_t i = 0; i < 200; ++i) CHECK(t.value(y)(i) == f(xv(i)));
    }
    SUBCASE("initialisation")
    {
        std::vector<float> v{-4.0f, 1.0f, 2.0f, 1.0f};
        CHECK(tr::tqt_initial_log2<float>(v, tr::tqt_init::max_abs) == doctest::Approx(2.0));
        // mean 0, sigma sqrt(5.5): t = 3 sqrt(5.5)
        CHECK(tr::tqt_initial_log2<float>(v, tr::tqt_init::mean_three_sigma) ==
              doctest::Approx(std::log2(3 * std::sqrt(5.5))));
        CHECK_THROWS_AS(tr::tqt_initial_log2<float>({}, tr::tqt_init::max_abs), tq::shape_error);
    }
}

namespace {
using tqtest::temp_dir;
void write_gz(std::filesystem::path const& p, std::vector<unsigned char> const& bytes)
{
    gzFile f = gzopen(p.c_str(), "wb");
    REQUIRE(f);
    gzwrite(f, bytes.data(), unsigned(bytes.size()));
    gzclose(f);
}
std::vector<unsigned char> idx(std::uint32_t magic, std::vector<std::uint32_t> dims, std::size_t data_bytes,
                               unsigned char fill = 7)
{
    std::vector<unsigned char> b;
    auto put = [&](std::uint32_t v) {
        for (int s = 24; s >= 0; s -= 8) b.push_back((v >> s) & 0xff);
    };
    put(magic);
    for (auto d : dims) put(d);
    for (std::size_t i = 0; i < data_bytes; ++i) b.push_back((unsigned char)((fill + i) % 10));
    return b;
}
} // namespace

TEST_CASE("IDX loader")
{
    temp_dir dir;
    const auto images = dir.path / "img.gz", labels = dir.path / "lab.gz";
    write_gz(images, idx(0x803, {3, 4, 5}, 60));
    write_gz(labels, idx(0x801, {3}, 3));
    SUBCASE("reads images and labels")
    {
        const auto d = tq::data::load_idx(images, labels, "", 10);
        CHECK(d.size() == 3);
        CHECK(d.images.shape(1) == 4);
        CHECK(d.images.shape(2) == 5);
        CHECK(d.images(0, 0, 1, 0) == doctest::Approx(8 / 255.0));
        CHECK(d.labels[2] == 9);
    }
    SUBCASE("errors name the file and the problem")
    {
        CHECK_THROWS_WITH_AS(tq::data::load_fashion_mnist(tq::data::split::train, dir.path),
                             doctest::Contains("dataset-fashion-mnist"), tq::file_error);
        write_gz(dir.path / "t10k-images-idx3-ubyte.gz", idx(0x803, {3, 4, 5}, 60));
        write_gz(dir.path / "t10k-labels-idx1-ubyte.gz", idx(0x801, {3}, 3));
        CHECK_THROWS_WITH_AS(tq::data::load_fashion_mnist(tq::data::split::test, dir.path),
                             doctest::Contains("28x28, this file has 4x5"), tq::file_error);
        write_gz(dir.path / "magic.gz", idx(0x802, {3, 4, 5}, 60));
        CHECK_THROWS_WITH_AS(tq::data::load_idx(dir.path / "magic.gz", labels),
                             doctest::Contains("bad magic number 0x00000802"), tq::file_error);
        write_gz(dir.path / "short.gz", idx(0x803, {3, 4, 5}, 59));
        CHECK_THROWS_WITH_AS(tq::data::load_idx(dir.path / "short.gz", labels), doctest::Contains("truncated"),
                             tq::file_error);
        write_gz(dir.path / "head.gz", std::vector<unsigned char>{0, 0, 8, 3, 0, 0});
        CHECK_THROWS_WITH_AS(tq::data::load_idx(dir.path / "head.gz", labels),
                             doctest::Contains("truncated IDX header"), tq::file_error);
        write_gz(dir.path / "two.gz", idx(0x801, {2}, 2));
        CHECK_THROWS_WITH_AS(tq::data::load_idx(images, dir.path / "two.gz"),
                             doctest::Contains("2 labels for the 3 images"), tq::file_error);
        CHECK_THROWS_WITH_AS(tq::data::load_idx(images, labels, "", 5), doctest::Contains("is not below 5"),
                             tq::file_error);
        {
            std::ofstream(dir.path / "bad.gz", std::ios::binary) << "\x1f\x8b\x08garbage-that-is-not-deflate";
        }
        CHECK_THROWS_AS(tq::data::load_idx(dir.path / "bad.gz", labels), tq::file_error);
    }
    SUBCASE("seeded shuffling")
    {
        const auto a = tr::shuffled_order(1000, 7, 3), b = tr::shuffled_order(1000, 7, 3),
                   c = tr::shuffled_order(1000, 7, 4);
        CHECK(a == b);
        CHECK(a != c);
        CHECK(std::set<std::size_t>(a.begin(), a.end()).size() == 1000);
    }
}

TEST_CASE("optimizers and gradient quantization")
{
    std::vector<float> w{1.0f, -2.0f};
    auto make = [&]() {
        std::vector<tr::parameter> p;
        p.push_back({"Net/fc", "weights", std::span<float>(w), {0.5f, 0.25f}, 1.0f, true});
        return p;
    };
    SUBCASE("SGD with momentum and weight decay")
    {
        tr::sgd opt(0.1f, 0.9f, 0.01f);
        auto p = make();
        opt.step(p); // v = g + wd w
        CHECK(w[0] == doctest::Approx(1.0 - 0.1 * (0.5 + 0.01)));
        const double v0 = 0.5 + 0.01, w0 = w[0];
        p[0].grad = {0.5f, 0.25f}; // step() consumes the gradients
        opt.step(p);
        CHECK(w[0] == doctest::Approx(w0 - 0.1 * (0.9 * v0 + 0.5 + 0.01 * w0)));
    }
    SUBCASE("Adam")
    {
        tr::adam opt(0.01f);
        auto p = make();
        opt.step(p); // first step moves each weight by lr against the gradient's sign
        CHECK(w[0] == doctest::Approx(1.0 - 0.01).epsilon(1e-5));
        CHECK(w[1] == doctest::Approx(-2.0 - 0.01).epsilon(1e-5));
        // the moments persist: a reversed gradient first cancels the momentum
        const double w1 = w[0];
        p[0].grad = {-0.5f, 0.25f};
        opt.step(p);
        const double m = 0.9 * 0.05 - 0.1 * 0.5, v = 0.999 * 0.001 * 0.25 + 0.001 * 0.25;
        const double mhat = m / (1 - 0.81), vhat = v / (1 - 0.999 * 0.999);
        CHECK(w[0] == doctest::Approx(w1 - 0.01 * mhat / (std::sqrt(vhat) + 1e-8)).epsilon(1e-5));
    }
    SUBCASE("extrinsic gradients, intrinsic updates and quantized state")
    {
        tr::sgd opt(1.0f, 0.0f);
        opt.quantization.gradients = nn::scope_map{{"Net", "nearest,4,1"}}; // 0.5 -> 0.5, 0.25 -> 0.5 (tie away)
        auto p = make();
        opt.step(p);
        CHECK(w[0] == 0.5f);
        CHECK(w[1] == -2.5f);
        tr::sgd opt2(0.3f, 0.0f);
        opt2.quantization.updates = nn::scope_map{{"Net/fc", "nearest,8,2"}}; // w <- Q(w - 0.3 g)
        p = make();
        opt2.step(p);
        CHECK(w[0] == 0.25f); // 0.5 - 0.15 = 0.35 -> 0.25
        tr::sgd opt3(1.0f, 0.5f);
        opt3.quantization.state = nn::scope_map{{"Net", "zero,8,1"}}; // momentum truncated to halves
        p = make();
        const float before = w[1];
        opt3.step(p);
        CHECK(w[1] == before); // v = 0.25 truncates to 0
    }
}

namespace {
// A small network and a learnable task: the class is the brightest quadrant.
nn::network small_net(std::uint64_t seed)
{
    nn::initializer init(seed);
    nn::network net("Small");
    nn::window_options same;
    same.padding = nn::padding_mode::same;
    net.add("conv", init.conv2d(3, 1, 4, same, nn::activation::relu));
    net.add("pool", nn::max_pool_layer{});
    net.add("bn", nn::initializer::batch_norm(4, nn::activation::none));
    net.add("flatten", nn::flatten_layer{});
    net.add("fc", init.dense(4 * 4 * 4, 4, nn::activation::none));
    return net;
}
tq::data::labeled_images quadrant_data(std::size_t n, std::uint64_t seed)
{
    tq::data::labeled_images d;
    d.images = xt::xtensor<float, 4>::from_shape({n, 8, 8, 1});
    std::mt19937_64 gen(seed);
    std::uniform_real_distribution<float> u(0, 0.5f);
    for (std::size_t i = 0; i < n; ++i) {
        const int label = int(i % 4);
        for (std::size_t y = 0; y < 8; ++y)
            for (std::size_t x = 0; x < 8; ++x)
                d.images(i, y, x, 0) = u(gen) + ((int(y / 4) * 2 + int(x / 4)) == label ? 0.5f : 0.0f);
        d.labels.push_back(std::uint8_t(label));
    }
    return d;
}
} // namespace

TEST_CASE("training is reproducible and learns")
{
    const auto data = quadrant_data(256, 3);
    SUBCASE("the same seed gives identical weights on 1 and 2 threads")
    {
        std::vector<std::vector<float>> weights;
        for (unsigned threads : {1u, 2u}) {
            auto net = small_net(1);
            tr::trainer_options o;
            o.batch_size = 64, o.shard_size = 16, o.threads = threads;
            tr::trainer t(net, o);
            tr::sgd opt(0.05f, 0.9f, 1e-4f);
            t.train_epoch(data, opt, 0);
            std::vector<float> all;
            for (auto const& p : t.parameters()) all.insert(all.end(), p.value.begin(), p.value.end());
            auto const& bn = std::get<nn::batch_norm_layer>(net.layer_at("Small/bn"));
            all.insert(all.end(), bn.mean.begin(), bn.mean.end());
            weights.push_back(all);
        }
        CHECK(weights[0] == weights[1]);
    }
    SUBCASE("float and quantization-aware training reach high accuracy")
    {
        for (int mode = 0; mode < 3; ++mode) {
            CAPTURE(mode);
            auto net = small_net(2);
            if (mode == 1) net.set_quantization({}, {{"Small", "nearest,8,4"}}, {{"Small", "nearest,8,6"}});
            if (mode == 2) net.set_quantization({{"Small/fc", "nearest,16,8"}}, {}, {});
            tr::trainer_options o;
            o.batch_size = 32;
            tr::trainer t(net, o);
            tr::sgd opt(0.05f, 0.9f);
            double first = 0, last = 0;
            for (int e = 0; e < 5; ++e) {
                last = t.train_epoch(data, opt, std::uint64_t(e));
                if (e == 0) first = last;
            }
            CHECK(last < first);
            CHECK(tr::accuracy(net, data) > 0.9);
        }
    }
    SUBCASE("TQT thresholds train and export as fixed-point maps")
    {
        auto net = small_net(3);
        tr::trainer_options o;
        o.batch_size = 32;
        tr::trainer t(net, o);
        t.add_tqt({"Small", tr::tqt_format{6, true}, true, false, tr::tqt_init::max_abs, 1.0f});
        t.add_tqt({"Small/conv", tr::tqt_format{6, false}, false, true, tr::tqt_init::mean_three_sigma, 1.0f});
        CHECK_THROWS_AS(t.add_tqt({"Other", tr::tqt_format{}, true, false, tr::tqt_init::max_abs, 1.0f}),
                        tq::config_error);
        std::vector<float> before;
        for (auto const& p : t.parameters())
            if (p.name.ends_with("log2t")) before.push_back(p.value[0]);
        REQUIRE(before.size() == 3); // conv and fc weights, conv output
        tr::sgd opt(0.05f, 0.9f);
        for (int e = 0; e < 5; ++e) t.train_epoch(data, opt, std::uint64_t(e));
        std::vector<float> after;
        for (auto const& p : t.parameters())
            if (p.name.ends_with("log2t")) after.push_back(p.value[0]);
        CHECK(after != before);
        auto [weights, outputs] = t.tqt_maps();
        CHECK(weights.entries().size() == 2);
        CHECK(outputs.match("Small/conv") != nullptr);
        net.set_quantization({}, outputs, weights);
        CHECK(tr::accuracy(net, data) > 0.9);
    }
}
