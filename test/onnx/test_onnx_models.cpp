// Small CNN classifiers built here with ONNX's protobuf classes (no PyTorch in CI): a
// residual block, a depthwise convolution with ReLU6 (Clip, both opset forms), an
// unfolded BatchNormalization, Flatten before Gemm (the weight-row permutation) and
// GlobalAveragePool. Each is imported and run, and compared with a plain NCHW forward
// pass over the same initializers written here from ONNX's operator definitions. Then
// the names the layers get, and the errors bad models give.
#include <doctest/doctest.h>

#include <tensorquant/onnx.hpp>

#include "lenet_onnx.hpp"
#include "model_builder.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace tq = tensorquant;
namespace fs = std::filesystem;

namespace {

using tq_test::model_builder;
using tq_test::set_float;
using tq_test::set_int;
using tq_test::set_ints;

// ---- the reference: NCHW, double, loops as ONNX defines the operators ------------------

struct nchw
{
    std::size_t n = 0, c = 0, h = 0, w = 0;
    std::vector<double> v;
    nchw(std::size_t n_, std::size_t c_, std::size_t h_, std::size_t w_) : n(n_), c(c_), h(h_), w(w_), v(n * c * h * w)
    {}
    double& at(std::size_t i, std::size_t j, std::size_t y, std::size_t x) { return v[((i * c + j) * h + y) * w + x]; }
    double at(std::size_t i, std::size_t j, std::size_t y, std::size_t x) const
    {
        return v[((i * c + j) * h + y) * w + x];
    }
};

struct conv_attrs
{
    std::size_t k = 3, stride = 1, dilation = 1, group = 1;
    std::array<std::size_t, 4> pads{0, 0, 0, 0}; // top, left, bottom, right (ONNX: begins then ends)
};

nchw ref_conv(nchw const& x, std::vector<float> const& wt, std::vector<float> const& bias, std::size_t out_c,
              conv_attrs a)
{
    const std::size_t cin_g = x.c / a.group, cout_g = out_c / a.group;
    const std::size_t span = a.dilation * (a.k - 1) + 1;
    const std::size_t oh = (x.h + a.pads[0] + a.pads[2] - span) / a.stride + 1;
    const std::size_t ow = (x.w + a.pads[1] + a.pads[3] - span) / a.stride + 1;
    nchw y(x.n, out_c, oh, ow);
    for (std::size_t i = 0; i < x.n; ++i)
        for (std::size_t o = 0; o < out_c; ++o)
            for (std::size_t r = 0; r < oh; ++r)
                for (std::size_t s = 0; s < ow; ++s) {
                    double acc = bias.empty() ? 0.0 : bias[o];
                    const std::size_t gi = o / cout_g;
                    for (std::size_t ci = 0; ci < cin_g; ++ci)
                        for (std::size_t p = 0; p < a.k; ++p)
                            for (std::size_t q = 0; q < a.k; ++q) {
                                const auto yy =
                                    std::ptrdiff_t(r * a.stride + p * a.dilation) - std::ptrdiff_t(a.pads[0]);
                                const auto xx =
                                    std::ptrdiff_t(s * a.stride + q * a.dilation) - std::ptrdiff_t(a.pads[1]);
                                if (yy < 0 || xx < 0 || yy >= std::ptrdiff_t(x.h) || xx >= std::ptrdiff_t(x.w))
                                    continue;
                                acc += double(wt[((o * cin_g + ci) * a.k + p) * a.k + q]) *
                                       x.at(i, gi * cin_g + ci, std::size_t(yy), std::size_t(xx));
                            }
                    y.at(i, o, r, s) = acc;
                }
    return y;
}

template <class F>
nchw ref_map(nchw x, F f)
{
    for (auto& e : x.v) e = f(e);
    return x;
}

nchw ref_batchnorm(nchw x, std::vector<float> const& scale, std::vector<float> const& b, std::vector<float> const& mean,
                   std::vector<float> const& var, double eps)
{
    for (std::size_t i = 0; i < x.n; ++i)
        for (std::size_t j = 0; j < x.c; ++j)
            for (std::size_t y = 0; y < x.h; ++y)
                for (std::size_t k = 0; k < x.w; ++k)
                    x.at(i, j, y, k) =
                        (x.at(i, j, y, k) - mean[j]) / std::sqrt(double(var[j]) + eps) * double(scale[j]) +
                        double(b[j]);
    return x;
}

nchw ref_maxpool2(nchw const& x)
{
    nchw y(x.n, x.c, x.h / 2, x.w / 2);
    for (std::size_t i = 0; i < x.n; ++i)
        for (std::size_t j = 0; j < x.c; ++j)
            for (std::size_t r = 0; r < y.h; ++r)
                for (std::size_t s = 0; s < y.w; ++s) {
                    double m = -std::numeric_limits<double>::infinity();
                    for (std::size_t p = 0; p < 2; ++p)
                        for (std::size_t q = 0; q < 2; ++q) m = std::max(m, x.at(i, j, 2 * r + p, 2 * s + q));
                    y.at(i, j, r, s) = m;
                }
    return y;
}

nchw ref_global_average(nchw const& x)
{
    nchw y(x.n, x.c, 1, 1);
    for (std::size_t i = 0; i < x.n; ++i)
        for (std::size_t j = 0; j < x.c; ++j) {
            double s = 0;
            for (std::size_t r = 0; r < x.h; ++r)
                for (std::size_t k = 0; k < x.w; ++k) s += x.at(i, j, r, k);
            y.at(i, j, 0, 0) = s / double(x.h * x.w);
        }
    return y;
}

// Flatten (C, H, W order, as ONNX) then Gemm with transB = 1: y = alpha x B^T + beta c.
std::vector<double> ref_flatten_gemm(nchw const& x, std::vector<float> const& b, std::vector<float> const& c,
                                     std::size_t outputs, double alpha = 1, double beta = 1)
{
    const std::size_t k = x.c * x.h * x.w;
    std::vector<double> y(x.n * outputs);
    for (std::size_t i = 0; i < x.n; ++i)
        for (std::size_t o = 0; o < outputs; ++o) {
            double acc = 0;
            for (std::size_t f = 0; f < k; ++f) acc += x.v[i * k + f] * double(b[o * k + f]);
            y[i * outputs + o] = alpha * acc + beta * double(c[o]);
        }
    return y;
}

nchw random_input(std::size_t n, std::size_t c, std::size_t h, std::size_t w, double scale)
{
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> u(-scale, scale);
    nchw x(n, c, h, w);
    for (auto& e : x.v) e = double(float(u(rng))); // float inputs, as the network gets them
    return x;
}

xt::xarray<float> to_xarray(nchw const& x)
{
    xt::xarray<float> a = xt::xarray<float>::from_shape({x.n, x.c, x.h, x.w});
    std::transform(x.v.begin(), x.v.end(), a.begin(), [](double d) { return float(d); });
    return a;
}

void check_close(xt::xarray<float> const& got, std::vector<double> const& want, std::vector<std::size_t> const& shape)
{
    REQUIRE(std::vector<std::size_t>(got.shape().begin(), got.shape().end()) == shape);
    REQUIRE(got.size() == want.size());
    int bad = 0;
    double worst = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
        const double err = std::abs(double(got.data()[i]) - want[i]);
        worst = std::max(worst, err);
        if (!(err <= 1e-5 + 1e-4 * std::abs(want[i]))) ++bad;
    }
    CHECK_MESSAGE(bad == 0, "largest difference ", worst);
}

// ---- the models -----------------------------------------------------------------------

// stem conv -> relu -> conv -> add (residual) -> relu -> maxpool -> flatten -> gemm,
// with node names as PyTorch's exporter writes them. With shortcut_before_relu, the
// residual adds the stem's conv output rather than its ReLU.
struct residual_model
{
    model_builder b{13};
    bool shortcut_before_relu;
    std::vector<float> w1, b1, w2, b2, fc_w, fc_b;
    explicit residual_model(bool shortcut_before_relu_ = false) : shortcut_before_relu(shortcut_before_relu_)
    {
        b.input("x", {-1, 3, 6, 6});
        w1 = b.init("stem.conv.weight", {4, 3, 3, 3});
        b1 = b.init("stem.conv.bias", {4});
        w2 = b.init("block1.conv1.weight", {4, 4, 3, 3});
        b2 = b.init("block1.conv1.bias", {4});
        fc_w = b.init("fc.weight", {5, 36});
        fc_b = b.init("fc.bias", {5});
        auto& c1 = b.node("Conv", "/stem/conv/Conv", {"x", "stem.conv.weight", "stem.conv.bias"}, "c1");
        set_ints(c1, "kernel_shape", {3, 3});
        set_ints(c1, "pads", {1, 1, 1, 1});
        b.node("Relu", "/stem/relu/Relu", {"c1"}, "r1");
        auto& c2 = b.node("Conv", "/block1/conv1/Conv", {"r1", "block1.conv1.weight", "block1.conv1.bias"}, "c2");
        set_ints(c2, "pads", {1, 1, 1, 1});
        b.node("Add", "/block1/Add", {"c2", shortcut_before_relu ? "c1" : "r1"}, "s");
        b.node("Relu", "/block1/relu/Relu", {"s"}, "r2");
        auto& p = b.node("MaxPool", "/pool/MaxPool", {"r2"}, "p");
        set_ints(p, "kernel_shape", {2, 2});
        set_ints(p, "strides", {2, 2});
        b.node("Flatten", "/Flatten", {"p"}, "f");
        auto& fc = b.node("Gemm", "/fc/Gemm", {"f", "fc.weight", "fc.bias"}, "logits");
        set_int(fc, "transB", 1);
        b.output("logits");
    }
    std::vector<double> reference(nchw const& x) const
    {
        conv_attrs a;
        a.pads = {1, 1, 1, 1};
        const auto relu = [](double v) { return std::max(v, 0.0); };
        const auto c1 = ref_conv(x, w1, b1, 4, a);
        auto r1 = ref_map(c1, relu);
        auto c2 = ref_conv(r1, w2, b2, 4, a);
        for (std::size_t i = 0; i < c2.v.size(); ++i) c2.v[i] += shortcut_before_relu ? c1.v[i] : r1.v[i];
        return ref_flatten_gemm(ref_maxpool2(ref_map(c2, relu)), fc_w, fc_b, 5);
    }
};

// depthwise conv (stride 2, asymmetric pads) -> ReLU6 -> pointwise conv without bias ->
// BatchNormalization -> ReLU (Clip with a lower bound only) -> GlobalAveragePool ->
// Flatten -> Gemm (alpha, beta). Clip takes its bounds as inputs from opset 11 on and as
// attributes before.
struct mobile_model
{
    int opset;
    model_builder b;
    std::vector<float> dw, dw_b, pw, scale, shift, mean, var, fc_w, fc_b;
    static constexpr double eps = 1e-3;

    explicit mobile_model(int opset_) : opset(opset_), b(opset_)
    {
        b.input("input", {2, 4, 7, 7});
        dw = b.init("dw.weight", {4, 1, 3, 3});
        dw_b = b.init("dw.bias", {4});
        pw = b.init("pw.weight", {6, 4, 1, 1});
        scale = b.init("bn.weight", {6}, 0.5f, 1.5f);
        shift = b.init("bn.bias", {6});
        mean = b.init("bn.running_mean", {6});
        var = b.init("bn.running_var", {6}, 0.2f, 2.0f);
        fc_w = b.init("fc.weight", {3, 6});
        fc_b = b.init("fc.bias", {3});
        auto& d = b.node("Conv", "/features/dw/Conv", {"input", "dw.weight", "dw.bias"}, "d");
        set_int(d, "group", 4);
        set_ints(d, "kernel_shape", {3, 3});
        set_ints(d, "strides", {2, 2});
        set_ints(d, "pads", {1, 0, 1, 1}); // top 1, left 0, bottom 1, right 1
        if (opset >= 11) {
            b.init_values("six", {}, {6.0f});
            b.init_values("zero", {}, {0.0f});
            b.node("Clip", "/features/relu6/Clip", {"d", "zero", "six"}, "d6");
        } else {
            auto& c = b.node("Clip", "/features/relu6/Clip", {"d"}, "d6");
            set_float(c, "min", 0);
            set_float(c, "max", 6);
        }
        b.node("Conv", "/features/pw/Conv", {"d6", "pw.weight"}, "p");
        auto& bn = b.node("BatchNormalization", "/features/bn/BatchNormalization",
                          {"p", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"}, "n");
        set_float(bn, "epsilon", float(eps));
        if (opset >= 11) {
            b.init_values("lower", {}, {0.0f});
            b.node("Clip", "/features/relu/Clip", {"n", "lower"}, "nr");
        } else {
            auto& c = b.node("Clip", "/features/relu/Clip", {"n"}, "nr");
            set_float(c, "min", 0);
        }
        b.node("GlobalAveragePool", "/pool/GlobalAveragePool", {"nr"}, "g");
        b.node("Flatten", "/flatten/Flatten", {"g"}, "f");
        auto& fc = b.node("Gemm", "/classifier/Gemm", {"f", "fc.weight", "fc.bias"}, "out");
        set_int(fc, "transB", 1);
        set_float(fc, "alpha", 0.5f);
        set_float(fc, "beta", 2.0f);
        b.output("out");
    }
    std::vector<double> reference(nchw const& x) const
    {
        conv_attrs a;
        a.group = 4;
        a.stride = 2;
        a.pads = {1, 0, 1, 1};
        auto d = ref_map(ref_conv(x, dw, dw_b, 4, a), [](double v) { return std::clamp(v, 0.0, 6.0); });
        conv_attrs one;
        one.k = 1;
        auto p = ref_batchnorm(ref_conv(d, pw, {}, 6, one), scale, shift, mean, var, double(float(eps)));
        auto g = ref_global_average(ref_map(p, [](double v) { return std::max(v, 0.0); }));
        return ref_flatten_gemm(g, fc_w, fc_b, 3, double(0.5f), double(2.0f));
    }
};

struct temp_file
{
    fs::path path;
    explicit temp_file(std::string const& name) : path(fs::temp_directory_path() / ("tq_onnx_" + name)) {}
    ~temp_file()
    {
        std::error_code ec;
        fs::remove(path, ec);
    }
    void write(std::string const& bytes) const
    {
        std::ofstream out(path, std::ios::binary);
        out << bytes;
    }
};

std::vector<std::string> layer_names(tq::nn::network const& net)
{
    std::vector<std::string> r;
    for (auto const& n : net.nodes()) r.push_back(n.name);
    return r;
}

} // namespace

TEST_CASE("An imported residual network matches an NCHW reference")
{
    residual_model rm;
    temp_file f("residual.onnx");
    f.write(rm.b.m.SerializeAsString());
    auto model = tq::onnx::load(f.path);
    CHECK(model.opset == 13);
    CHECK(model.input_name == "x");
    CHECK(model.output_name == "logits");
    const auto x = random_input(3, 3, 6, 6, 1.0);
    check_close(model.run(to_xarray(x)), rm.reference(x), {3, 5});
    SUBCASE("the batch may vary")
    {
        const auto x1 = random_input(1, 3, 6, 6, 2.0);
        check_close(model.run(to_xarray(x1)), rm.reference(x1), {1, 5});
    }
    SUBCASE("an activation whose input is read elsewhere too is a layer of its own")
    {
        residual_model pre(true);
        auto m2 = tq::onnx::from_proto(pre.b.m, "residual.onnx");
        CHECK(m2.net.find("model/stem/relu") == 1);
        check_close(m2.run(to_xarray(x)), pre.reference(x), {3, 5});
    }
    SUBCASE("a wrong input shape is refused")
    {
        CHECK_THROWS_AS(model.run(xt::zeros<float>({std::size_t(1), std::size_t(3), std::size_t(5), std::size_t(6)})),
                        tq::shape_error);
    }
    SUBCASE("weights in raw_data give the same bits as in float_data")
    {
        // raw float32 weights go straight into the layers without being widened to double
        auto raw = rm.b.m;
        for (auto& t : *raw.mutable_graph()->mutable_initializer()) {
            std::vector<float> v(t.float_data().begin(), t.float_data().end());
            t.clear_float_data();
            t.mutable_raw_data()->assign(reinterpret_cast<char const*>(v.data()), v.size() * sizeof(float));
        }
        auto from_raw = tq::onnx::from_proto(raw, "residual.onnx");
        const auto a = model.run(to_xarray(x)), b = from_raw.run(to_xarray(x));
        REQUIRE(a.shape() == b.shape());
        CHECK(std::equal(a.begin(), a.end(), b.begin()));
    }
}

TEST_CASE("Layer names come from the node names")
{
    residual_model rm;
    auto model = tq::onnx::from_proto(rm.b.m, "residual.onnx");
    // each Relu is fused into the layer before it
    CHECK(layer_names(model.net) == std::vector<std::string>{"model/stem/conv", "model/block1/conv1", "model/block1",
                                                             "model/pool", "model/flatten_6", "model/fc"});
    SUBCASE("the rule")
    {
        CHECK(tq::onnx::layer_name("/layer1/conv1/Conv", "Conv", 0) == "layer1/conv1");
        CHECK(tq::onnx::layer_name("/layer1/relu/Relu_1", "Relu", 0) == "layer1/relu");
        CHECK(tq::onnx::layer_name("//a b//c:d", "Conv", 0) == "a_b/c_d");
        CHECK(tq::onnx::layer_name("Conv_12", "Conv", 12) == "conv_12");
        CHECK(tq::onnx::layer_name("", "MaxPool", 4) == "maxpool_4");
        CHECK(tq::onnx::layer_name("/Relu_x", "Relu", 2) == "Relu_x"); // not an operator name plus a number
    }
    SUBCASE("repeated names get a number")
    {
        for (auto& n : *rm.b.g().mutable_node())
            if (n.op_type() == "Conv") n.set_name("/conv/Conv");
        auto renamed = tq::onnx::from_proto(rm.b.m, "residual.onnx");
        CHECK(renamed.net.find("model/conv") == 0);
        CHECK(renamed.net.find("model/conv_2") == 1);
    }
    SUBCASE("the scope is an option")
    {
        tq::onnx::load_options o;
        o.scope = "resnet";
        auto scoped = tq::onnx::from_proto(rm.b.m, "residual.onnx", o);
        CHECK(scoped.net.find("resnet/block1/conv1") == 1);
    }
}

TEST_CASE("A depthwise network with ReLU6 and an unfolded batch norm matches an NCHW reference")
{
    for (int opset : {9, 11, 13, 17}) {
        INFO("opset ", opset);
        mobile_model mm(opset);
        auto model = tq::onnx::from_proto(mm.b.m, "mobile.onnx");
        const auto x = random_input(2, 4, 7, 7, 3.0);
        check_close(model.run(to_xarray(x)), mm.reference(x), {2, 3});
        // ReLU6 fused into the depthwise convolution, ReLU into the batch norm
        REQUIRE(model.net.find("model/features/dw") == 0);
        CHECK(std::get<tq::nn::conv2d_layer>(model.net.nodes()[0].op).act == tq::nn::activation::relu6);
        REQUIRE(model.net.find("model/features/bn") == 2);
        CHECK(std::get<tq::nn::batch_norm_layer>(model.net.nodes()[2].op).act == tq::nn::activation::relu);
    }
}

TEST_CASE("Sigmoid and GlobalMaxPool match an NCHW reference")
{
    model_builder b(13);
    b.input("x", {-1, 2, 5, 5});
    const auto w = b.init("conv.weight", {3, 2, 3, 3});
    const auto bias = b.init("conv.bias", {3});
    const auto fc_w = b.init("fc.weight", {4, 3});
    const auto fc_b = b.init("fc.bias", {4});
    auto& c = b.node("Conv", "/conv/Conv", {"x", "conv.weight", "conv.bias"}, "c");
    set_ints(c, "dilations", {2, 2});
    b.node("Sigmoid", "/conv/Sigmoid", {"c"}, "s");
    b.node("GlobalMaxPool", "/pool/GlobalMaxPool", {"s"}, "p");
    b.node("Flatten", "/flatten/Flatten", {"p"}, "f");
    auto& fc = b.node("Gemm", "/fc/Gemm", {"f", "fc.weight", "fc.bias"}, "out");
    set_int(fc, "transB", 1);
    b.node("Sigmoid", "/out/Sigmoid", {"out"}, "y");
    b.output("y");
    auto model = tq::onnx::from_proto(b.m, "sigmoid.onnx");
    CHECK(layer_names(model.net) == std::vector<std::string>{"model/conv", "model/pool", "model/flatten", "model/fc"});
    const auto x = random_input(3, 2, 5, 5, 2.0);
    conv_attrs a;
    a.dilation = 2;
    auto s = ref_map(ref_conv(x, w, bias, 3, a), [](double v) { return 1 / (1 + std::exp(-v)); });
    nchw g(s.n, s.c, 1, 1);
    for (std::size_t i = 0; i < s.n; ++i)
        for (std::size_t j = 0; j < s.c; ++j) {
            double m = -1;
            for (std::size_t r = 0; r < s.h; ++r)
                for (std::size_t k = 0; k < s.w; ++k) m = std::max(m, s.at(i, j, r, k));
            g.at(i, j, 0, 0) = m;
        }
    auto want = ref_flatten_gemm(g, fc_w, fc_b, 4);
    for (auto& v : want) v = 1 / (1 + std::exp(-v));
    check_close(model.run(to_xarray(x)), want, {3, 4});
}

TEST_CASE("Quantization maps apply to an imported network by its scopes")
{
    residual_model rm;
    auto model = tq::onnx::from_proto(rm.b.m, "residual.onnx");
    const auto x = to_xarray(random_input(2, 3, 6, 6, 1.0));
    const auto float_out = model.run(x);
    // 2 fractional bits on the classifier's output: every logit a multiple of 1/4
    model.net.set_quantization({}, {{"model/fc", "nearest,16,2"}}, {});
    const auto q = model.run(x);
    bool on_grid = true;
    for (float v : q) on_grid = on_grid && v * 4 == std::round(v * 4);
    CHECK(on_grid);
    CHECK(float(xt::amax(xt::abs(q - float_out))()) <= 0.125f);
    CHECK_THROWS_AS(model.net.set_quantization({}, {{"model/no_such_layer", "nearest,8,4"}}, {}), tq::config_error);
}

TEST_CASE("Bad ONNX files and unsupported models give errors that name them")
{
    residual_model rm;
    SUBCASE("a missing file")
    {
        CHECK_THROWS_WITH_AS(tq::onnx::load("/nonexistent/model.onnx"), doctest::Contains("/nonexistent/model.onnx"),
                             tq::file_error);
    }
    SUBCASE("a file that is not a model")
    {
        temp_file f("garbage.onnx");
        f.write(std::string("\xff\xff\xff\xff this is not protobuf", 25));
        const std::string name = f.path.string();
        CHECK_THROWS_WITH_AS(tq::onnx::load(f.path), doctest::Contains(name.c_str()), tq::file_error);
    }
    SUBCASE("a truncated file")
    {
        const std::string bytes = rm.b.m.SerializeAsString();
        for (std::size_t keep : {bytes.size() / 2, bytes.size() - 3, std::size_t(1)}) {
            INFO("kept ", keep, " of ", bytes.size(), " bytes");
            temp_file f("truncated.onnx");
            f.write(bytes.substr(0, keep));
            const std::string name = f.path.string();
            CHECK_THROWS_WITH_AS(tq::onnx::load(f.path), doctest::Contains(name.c_str()), tq::error);
        }
    }
    SUBCASE("an unsupported operator names the node and lists what is supported")
    {
        auto& n = *rm.b.g().mutable_node(1);
        n.set_op_type("LpNormalization");
        n.set_name("/stem/act/LpNormalization");
        CHECK_THROWS_WITH_AS(tq::onnx::from_proto(rm.b.m, "m.onnx"),
                             doctest::Contains("m.onnx: node '/stem/act/LpNormalization' (LpNormalization, opset 13)"),
                             tq::unsupported_error);
        CHECK_THROWS_WITH_AS(tq::onnx::from_proto(rm.b.m, "m.onnx"), doctest::Contains("Conv, "),
                             tq::unsupported_error);
    }
    SUBCASE("an opset outside 7 to 17")
    {
        rm.b.m.mutable_opset_import(0)->set_version(18);
        CHECK_THROWS_WITH_AS(tq::onnx::from_proto(rm.b.m, "m.onnx"), doctest::Contains("opset 18"),
                             tq::unsupported_error);
    }
    SUBCASE("dynamic weights")
    {
        // the second conv's weight computed from the input instead of an initializer
        rm.b.g().mutable_node(2)->set_input(1, "r1");
        CHECK_THROWS_WITH_AS(tq::onnx::from_proto(rm.b.m, "m.onnx"), doctest::Contains("/block1/conv1/Conv"),
                             tq::unsupported_error);
    }
    SUBCASE("a 3-D activation")
    {
        model_builder b(13);
        b.input("x", {1, 2, 5});
        b.init("w", {3, 2, 3});
        auto& c = b.node("Conv", "/conv1d/Conv", {"x", "w"}, "y");
        set_ints(c, "kernel_shape", {3});
        b.output("y");
        CHECK_THROWS_WITH_AS(tq::onnx::from_proto(b.m, "m.onnx"), doctest::Contains("/conv1d/Conv"),
                             tq::unsupported_error);
    }
    SUBCASE("a node reading a value nothing gives")
    {
        rm.b.g().mutable_node(3)->set_input(1, "nowhere");
        CHECK_THROWS_WITH_AS(tq::onnx::from_proto(rm.b.m, "m.onnx"), doctest::Contains("'nowhere'"), tq::file_error);
    }
    SUBCASE("an initializer whose data does not fill its shape")
    {
        rm.b.g().mutable_initializer(0)->add_dims(2);
        CHECK_THROWS_WITH_AS(tq::onnx::from_proto(rm.b.m, "m.onnx"), doctest::Contains("stem.conv.weight"), tq::error);
    }
}

TEST_CASE("The built-in LeNet written as ONNX imports as the same network")
{
    const auto builtin = tq::nn::lenet5(3);
    tq::onnx::load_options o;
    o.scope = "LeNet";
    auto imported = tq::onnx::from_proto(tq_test::lenet_as_onnx(builtin), "lenet.onnx", o);
    REQUIRE(layer_names(imported.net) == layer_names(builtin));
    auto images = tq::nn::tensor4<float>::from_shape({4, 28, 28, 1});
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(0, 1);
    for (auto& v : images) v = u(rng);
    // the same numbers bit for bit: in float and under every kind of map, stochastic rounding included
    const std::vector<std::array<char const*, 3>> maps{{"", "", ""},
                                                       {"nearest,10,5", "", ""},
                                                       {"", "stochastic,8,4", "zero,6,5"},
                                                       {"down,12,8", "nearest,8,3", "nearest,8,6"}};
    for (auto const& specs : maps) {
        char const* intrinsic = specs[0]; // named copies: clang 14 cannot capture structured bindings in INFO
        char const* extrinsic = specs[1];
        char const* weights = specs[2];
        INFO("maps ", intrinsic, " / ", extrinsic, " / ", weights);
        auto map = [](char const* spec) { return *spec ? tq::nn::scope_map{{"LeNet", spec}} : tq::nn::scope_map{}; };
        auto a = builtin;
        a.set_quantization(map(intrinsic), map(extrinsic), map(weights));
        imported.net.set_quantization(map(intrinsic), map(extrinsic), map(weights));
        const auto want = a.forward(images, 7);
        const auto got = imported.net.forward(images, 7);
        REQUIRE(got.shape() == want.shape());
        CHECK(std::equal(got.begin(), got.end(), want.begin()));
    }
}

// ---- QDQ ---------------------------------------------------------------------------------

namespace {

// ONNX's QuantizeLinear and DequantizeLinear, written here from the operator definitions:
// the float32 quotient (double division rounded to float is the correctly rounded float
// quotient), round half to even, saturate; (q - z) * s exact in double, rounded once.
double ref_quantize(double x, float s, int z, int lo, int hi)
{
    const double q = std::nearbyint(double(float(double(float(x)) / double(s)))) + z;
    return std::clamp(q, double(lo), double(hi));
}
double ref_dequantize(double q, float s, int z) { return double(float((q - z) * double(s))); }

// As onnxruntime's quantizer writes a QDQ model: the input quantized to uint8; a Conv with
// int8 weights (per output channel) and an int32 bias, both dequantized; ReLU; the ReLU's
// output quantized; Flatten; a Gemm whose float weight goes through QuantizeLinear and
// DequantizeLinear (per tensor); the logits quantized to int8. Every scale inside is a
// power of two, so every float sum is exact and the reference (in double) is exact too:
// the comparison is bit for bit, ties of every quantization point included. The last
// scale (0.05) is not: the output quantization divides as ONNX does.
struct qdq_model
{
    model_builder b{13};
    static constexpr float s_in = 0.0625f, s_relu = 0.125f, s_fc = 0.015625f, s_out = 0.05f;
    static constexpr int zp_in = 128;
    std::vector<float> s_w{0.03125f, 0.015625f, 0.0625f};
    std::vector<std::int32_t> wq, bq;
    std::vector<float> fc_w, fc_b;

    explicit qdq_model(bool output_codes = false)
    {
        b.input("x", {-1, 2, 5, 5});
        std::uniform_int_distribution<int> w8(-127, 127), b32(-500, 500);
        for (int i = 0; i < 3 * 2 * 3 * 3; ++i) wq.push_back(w8(b.rng));
        for (int i = 0; i < 3; ++i) bq.push_back(b32(b.rng));
        b.init_ints("conv.weight_quantized", {3, 2, 3, 3}, ::onnx::TensorProto::INT8, wq);
        b.init_values("conv.weight_scale", {3}, s_w);
        b.init_ints("conv.weight_zero_point", {3}, ::onnx::TensorProto::INT8, {0, 0, 0});
        b.init_ints("conv.bias_quantized", {3}, ::onnx::TensorProto::INT32, bq);
        b.init_values("conv.bias_scale", {3}, {s_in * s_w[0], s_in * s_w[1], s_in * s_w[2]});
        b.init_ints("conv.bias_zero_point", {3}, ::onnx::TensorProto::INT32, {0, 0, 0});
        fc_w = b.init("fc.weight", {4, 75});
        fc_b.clear();
        std::uniform_int_distribution<int> fb(-400, 400);
        for (int i = 0; i < 4; ++i) fc_b.push_back(float(fb(b.rng)) / 512.0f);
        b.init_values("fc.bias", {4}, fc_b);
        b.init_values("x_scale", {}, {s_in});
        b.init_ints("x_zero_point", {}, ::onnx::TensorProto::UINT8, {zp_in});
        b.init_values("r_scale", {}, {s_relu});
        b.init_ints("r_zero_point", {}, ::onnx::TensorProto::UINT8, {0});
        b.init_values("fc.weight_scale", {}, {s_fc});
        b.init_ints("fc.weight_zero_point", {}, ::onnx::TensorProto::INT8, {0});
        b.init_values("y_scale", {}, {s_out});
        b.init_ints("y_zero_point", {}, ::onnx::TensorProto::INT8, {0});

        b.node("QuantizeLinear", "x_QuantizeLinear", {"x", "x_scale", "x_zero_point"}, "xq");
        b.node("DequantizeLinear", "x_DequantizeLinear", {"xq", "x_scale", "x_zero_point"}, "xd");
        auto& wd = b.node("DequantizeLinear", "conv.weight_DequantizeLinear",
                          {"conv.weight_quantized", "conv.weight_scale", "conv.weight_zero_point"}, "w");
        set_int(wd, "axis", 0);
        auto& bd = b.node("DequantizeLinear", "conv.bias_DequantizeLinear",
                          {"conv.bias_quantized", "conv.bias_scale", "conv.bias_zero_point"}, "bias");
        set_int(bd, "axis", 0);
        auto& c = b.node("Conv", "/conv/Conv", {"xd", "w", "bias"}, "c");
        set_ints(c, "pads", {1, 1, 1, 1});
        b.node("Relu", "/relu/Relu", {"c"}, "r");
        b.node("QuantizeLinear", "r_QuantizeLinear", {"r", "r_scale", "r_zero_point"}, "rq");
        b.node("DequantizeLinear", "r_DequantizeLinear", {"rq", "r_scale", "r_zero_point"}, "rd");
        b.node("Flatten", "/flatten/Flatten", {"rd"}, "f");
        b.node("QuantizeLinear", "fc.weight_QuantizeLinear", {"fc.weight", "fc.weight_scale", "fc.weight_zero_point"},
               "fwq");
        b.node("DequantizeLinear", "fc.weight_DequantizeLinear", {"fwq", "fc.weight_scale", "fc.weight_zero_point"},
               "fw");
        auto& fc = b.node("Gemm", "/fc/Gemm", {"f", "fw", "fc.bias"}, "logits");
        set_int(fc, "transB", 1);
        b.node("QuantizeLinear", "logits_QuantizeLinear", {"logits", "y_scale", "y_zero_point"}, "yq");
        if (output_codes) {
            b.output("yq");
        } else {
            b.node("DequantizeLinear", "logits_DequantizeLinear", {"yq", "y_scale", "y_zero_point"}, "y");
            b.output("y");
        }
    }
    // The logits' codes, or their dequantized values.
    std::vector<double> reference(nchw x, bool codes) const
    {
        for (auto& v : x.v) v = ref_dequantize(ref_quantize(v, s_in, zp_in, 0, 255), s_in, zp_in);
        std::vector<float> w, bias, fw;
        for (std::size_t i = 0; i < wq.size(); ++i) w.push_back(float(ref_dequantize(wq[i], s_w[i / 18], 0)));
        for (std::size_t c = 0; c < 3; ++c) bias.push_back(float(ref_dequantize(bq[c], s_in * s_w[c], 0)));
        for (float v : fc_w) fw.push_back(float(ref_dequantize(ref_quantize(v, s_fc, 0, -128, 127), s_fc, 0)));
        conv_attrs a;
        a.pads = {1, 1, 1, 1};
        auto r = ref_map(ref_conv(x, w, bias, 3, a), [](double v) {
            return ref_dequantize(ref_quantize(std::max(v, 0.0), s_relu, 0, 0, 255), s_relu, 0);
        });
        auto y = ref_flatten_gemm(r, fw, fc_b, 4);
        for (auto& v : y) {
            v = ref_quantize(v, s_out, 0, -128, 127);
            if (!codes) v = ref_dequantize(v, s_out, 0);
        }
        return y;
    }
};

void check_same(xt::xarray<float> const& got, std::vector<double> const& want)
{
    REQUIRE(got.size() == want.size());
    int bad = 0;
    for (std::size_t i = 0; i < want.size(); ++i)
        if (!(double(got.data()[i]) == want[i]) && bad++ == 0)
            FAIL_CHECK("element ", i, ": got ", got.data()[i], ", the reference ", want[i]);
    CHECK(bad == 0);
}

} // namespace

TEST_CASE("A QDQ model reproduces ONNX's quantization bit for bit")
{
    auto x = random_input(6, 2, 5, 5, 9.0);                               // beyond the input's range [-8, 7.9375] too
    for (std::size_t i = 0; i < 40; ++i) x.v[i] = double(i) / 32.0 - 0.6; // ties of the input's grid
    for (bool codes : {false, true}) {
        INFO("output codes: ", codes);
        qdq_model qm(codes);
        auto model = tq::onnx::from_proto(qm.b.m, "qdq.onnx");
        check_same(model.run(to_xarray(x)), qm.reference(x, codes));
        CHECK(model.output_codes.has_value() == codes);
        CHECK_FALSE(model.input_codes);
        // one layer quantizes the input; the ReLU is fused into the Conv, whose output is quantized
        std::vector<std::string> names{"model/x_DequantizeLinear", "model/conv", "model/flatten", "model/fc"};
        CHECK(layer_names(model.net) == names);
        CHECK(model.net.quantization_of("model/x_DequantizeLinear").extrinsic->spec ==
              "affine,0.0625,128,0,255,divide");
        CHECK(model.net.quantization_of("model/conv").extrinsic->spec == "affine,0.125,0,0,255,divide");
        CHECK_FALSE(model.net.quantization_of("model/flatten").extrinsic);
        if (!codes)
            CHECK(model.net.quantization_of("model/fc").extrinsic->spec ==
                  tq::affine(double(0.05f), 0, -128, 127, tq::rounding_mode::nearest_even, {}, true).to_string());
        CHECK(model.qdq.entries().size() == (codes ? 2u : 3u));
        // without its maps the network is the float model over the dequantized weights
        model.net.set_quantization({}, {}, {});
        const auto f = model.run(to_xarray(x));
        CHECK_FALSE(std::equal(f.begin(), f.end(), qm.reference(x, codes).begin()));
    }
}

TEST_CASE("A model with an integer input decodes it as its DequantizeLinear")
{
    model_builder b(13);
    b.input("codes", {-1, 3, 2, 2}, ::onnx::TensorProto::UINT8);
    b.init_values("s", {3}, {0.5f, 0.1f, 2.0f});
    b.init_ints("z", {3}, ::onnx::TensorProto::UINT8, {10, 0, 255});
    b.node("DequantizeLinear", "dq", {"codes", "s", "z"}, "x");
    b.node("Relu", "/relu/Relu", {"x"}, "y");
    b.output("y");
    auto model = tq::onnx::from_proto(b.m, "codes.onnx");
    REQUIRE(model.input_codes);
    xt::xarray<float> q = xt::xarray<float>::from_shape({1, 3, 2, 2});
    const std::vector<float> given{0, 10, 11, 255, 0, 1, 7, 255, 0, 254, 255, 3};
    std::copy(given.begin(), given.end(), q.begin());
    const auto y = model.run(q);
    const std::vector<float> want{0, 0, 0.5f, 122.5f, 0, 0.1f, 7 * 0.1f, 255 * 0.1f, 0, 0, 0, 0};
    CHECK(std::vector<float>(y.begin(), y.end()) == want);
    q(0, 0, 0, 1) = 2.5f;
    CHECK_THROWS_WITH_AS(model.run(q), doctest::Contains("is not a code of the model's UINT8 input"), tq::shape_error);
    q(0, 0, 0, 1) = 256;
    CHECK_THROWS_AS(model.run(q), tq::shape_error);
}

TEST_CASE("QDQ models the importer cannot reproduce are refused by name")
{
    auto refused = [](model_builder& b, char const* what) {
        CHECK_THROWS_WITH_AS(tq::onnx::from_proto(b.m, "bad.onnx"), doctest::Contains(what), tq::unsupported_error);
    };
    auto base = [](model_builder& b) {
        b.input("x", {-1, 2, 4, 4});
        b.init("w", {2, 2, 1, 1});
        b.init_values("s", {}, {0.1f});
        b.init_values("s2", {}, {0.2f});
        b.init_values("sc", {2}, {0.1f, 0.2f});
        b.init_ints("z", {}, ::onnx::TensorProto::INT8, {0});
        b.init_ints("zc", {2}, ::onnx::TensorProto::INT8, {0, 0});
        b.init_values("bad", {}, {-0.5f});
        b.node("Conv", "/conv/Conv", {"x", "w"}, "c");
    };
    SUBCASE("a tensor read both quantized and not")
    {
        model_builder b(13);
        base(b);
        b.node("QuantizeLinear", "q", {"c", "s", "z"}, "cq");
        b.node("DequantizeLinear", "d", {"cq", "s", "z"}, "cd");
        b.node("Relu", "/relu/Relu", {"cd"}, "r");
        b.node("Add", "/add/Add", {"r", "c"}, "y");
        b.output("y");
        refused(b, "reads 'c' before its QuantizeLinear");
    }
    // c through QuantizeLinear (scale sq) and DequantizeLinear (scale sd), as the output
    auto pair = [&](char const* sq, char const* zq, char const* sd, char const* zd, char const* what) {
        model_builder b(13);
        base(b);
        b.node("QuantizeLinear", "q", {"c", sq, zq}, "cq");
        b.node("DequantizeLinear", "d", {"cq", sd, zd}, "y");
        b.output("y");
        refused(b, what);
    };
    SUBCASE("requantization") { pair("s", "z", "s2", "z", "other scales or zero points"); }
    SUBCASE("per-axis quantization of an activation")
    {
        pair("sc", "zc", "sc", "zc", "per-axis quantization of a computed tensor");
    }
    SUBCASE("a scale that is not positive") { pair("bad", "z", "bad", "z", "is not a positive normal float"); }
    SUBCASE("an operator on integer codes")
    {
        model_builder b(13);
        base(b);
        b.node("QuantizeLinear", "q", {"c", "s", "z"}, "cq");
        b.node("Relu", "/relu/Relu", {"cq"}, "y");
        b.output("y");
        refused(b, "holds integers, which only DequantizeLinear and Gather read");
    }
}

TEST_CASE("Mul by a constant multiplies and rounds once as ONNX does")
{
    // x * c per channel -> conv -> flatten -> Mul by one value per (ONNX) feature -> Mul by a scalar
    model_builder b(13);
    b.input("x", {-1, 3, 4, 4});
    const auto c = b.init("c", {1, 3, 1, 1}, 0.5f, 2.0f);
    const auto w = b.init("w", {2, 3, 3, 3});
    const auto f = b.init("f", {8}, -2.0f, 2.0f);
    b.init_values("t", {}, {0.3f});
    b.node("Mul", "/norm/Mul", {"x", "c"}, "xn");
    b.node("Conv", "/conv/Conv", {"xn", "w"}, "y");
    b.node("Flatten", "/flatten/Flatten", {"y"}, "yf");
    b.node("Mul", "/scale/Mul", {"f", "yf"}, "ys"); // the constant first
    b.node("Mul", "/temperature/Mul", {"ys", "t"}, "out");
    b.output("out");
    auto model = tq::onnx::from_proto(b.m, "mul.onnx");
    // the flattened feature map is put in ONNX's order for the Mul that reads it
    CHECK(layer_names(model.net) ==
          std::vector<std::string>{"model/norm", "model/conv", "model/flatten", "model/scale/layout",
                                   "model/scale/layout_2", "model/scale/layout_3", "model/scale", "model/temperature"});
    const auto x = random_input(3, 3, 4, 4, 2.0);
    // the reference rounds each product to float, as ONNX's float32 Mul
    auto xn = x;
    for (std::size_t i = 0; i < xn.v.size(); ++i) xn.v[i] = double(float(xn.v[i] * double(c[(i / 16) % 3])));
    const auto y = ref_conv(xn, w, {}, 2, conv_attrs{});
    std::vector<double> want(y.v.size());
    for (std::size_t i = 0; i < y.v.size(); ++i)
        want[i] = double(float(double(float(float(y.v[i]) * f[i % 8])) * double(0.3f)));
    check_close(model.run(to_xarray(x)), want, {3, 8});
    SUBCASE("shapes that do not broadcast are refused; two computed inputs multiply")
    {
        model_builder bad(13);
        bad.input("x", {-1, 3, 4, 4});
        bad.init("c", {3, 5, 1});
        bad.node("Mul", "/m/Mul", {"x", "c"}, "y");
        bad.output("y");
        CHECK_THROWS_WITH_AS(tq::onnx::from_proto(bad.m, "mul.onnx"), doctest::Contains("do not broadcast"),
                             tq::file_error);
        model_builder both(13);
        both.input("x", {-1, 3, 4, 4});
        both.node("Mul", "/m/Mul", {"x", "x"}, "y");
        both.output("y");
        auto square = tq::onnx::from_proto(both.m, "mul.onnx");
        const auto in = to_xarray(x);
        const auto out = square.run(in);
        REQUIRE(out.shape() == in.shape());
        for (std::size_t i = 0; i < in.size(); ++i) CHECK(out.data()[i] == in.data()[i] * in.data()[i]);
    }
}
