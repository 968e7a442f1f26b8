// Small CNN classifiers built here with ONNX's protobuf classes (no PyTorch in CI): a
// residual block, a depthwise convolution with ReLU6 (Clip, both opset forms), an
// unfolded BatchNormalization, Flatten before Gemm (the weight-row permutation) and
// GlobalAveragePool. Each is imported and run, and compared with a plain NCHW forward
// pass over the same initializers written here from ONNX's operator definitions. Then
// the names the layers get, and the errors bad models give.
#include <doctest/doctest.h>

#include <tensorquant/onnx.hpp>

#include "lenet_onnx.hpp"

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

// ---- building models ------------------------------------------------------------------

struct model_builder
{
    ::onnx::ModelProto m;
    std::mt19937 rng{12345};

    explicit model_builder(int opset)
    {
        m.set_ir_version(opset >= 13 ? 7 : 5);
        m.set_producer_name("tensorquant tests");
        auto* o = m.add_opset_import();
        o->set_domain("");
        o->set_version(opset);
    }
    ::onnx::GraphProto& g() { return *m.mutable_graph(); }

    static void set_type(::onnx::ValueInfoProto* v, std::vector<std::int64_t> const& shape)
    {
        auto* t = v->mutable_type()->mutable_tensor_type();
        t->set_elem_type(::onnx::TensorProto::FLOAT);
        for (auto d : shape) {
            auto* dim = t->mutable_shape()->add_dim();
            if (d < 0)
                dim->set_dim_param("N");
            else
                dim->set_dim_value(d);
        }
    }
    void input(std::string const& name, std::vector<std::int64_t> const& shape)
    {
        auto* v = g().add_input();
        v->set_name(name);
        set_type(v, shape);
    }
    void output(std::string const& name)
    {
        g().add_output()->set_name(name);
        set_type(g().mutable_output(0), {});
    }
    // An initializer of the given values, or of random ones in [lo, hi].
    std::vector<float> init(std::string const& name, std::vector<std::int64_t> const& shape, float lo = -1,
                            float hi = 1)
    {
        std::int64_t n = 1;
        for (auto d : shape) n *= d;
        std::uniform_real_distribution<float> u(lo, hi);
        std::vector<float> v(static_cast<std::size_t>(n));
        for (auto& x : v) x = u(rng);
        init_values(name, shape, v);
        return v;
    }
    void init_values(std::string const& name, std::vector<std::int64_t> const& shape, std::vector<float> const& v)
    {
        auto* t = g().add_initializer();
        t->set_name(name);
        t->set_data_type(::onnx::TensorProto::FLOAT);
        for (auto d : shape) t->add_dims(d);
        for (float x : v) t->add_float_data(x);
    }
    ::onnx::NodeProto& node(std::string const& op, std::string const& name, std::vector<std::string> const& in,
                            std::string const& out)
    {
        auto* n = g().add_node();
        n->set_op_type(op);
        n->set_name(name);
        for (auto const& i : in) n->add_input(i);
        n->add_output(out);
        return *n;
    }
};

void set_ints(::onnx::NodeProto& n, std::string const& name, std::vector<std::int64_t> const& v)
{
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(::onnx::AttributeProto::INTS);
    for (auto x : v) a->add_ints(x);
}
void set_int(::onnx::NodeProto& n, std::string const& name, std::int64_t v)
{
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(::onnx::AttributeProto::INT);
    a->set_i(v);
}
void set_float(::onnx::NodeProto& n, std::string const& name, float v)
{
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(::onnx::AttributeProto::FLOAT);
    a->set_f(v);
}

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
        n.set_op_type("Tanh");
        n.set_name("/stem/act/Tanh");
        CHECK_THROWS_WITH_AS(tq::onnx::from_proto(rm.b.m, "m.onnx"),
                             doctest::Contains("m.onnx: node '/stem/act/Tanh' (Tanh, opset 13)"),
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
