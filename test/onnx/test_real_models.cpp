// Networks exported by PyTorch (scripts/torch_models.py, run by ctest before this): five
// torchvision classifiers, a 2-layer vision transformer and small networks of ConvNeXt,
// Swin, text-transformer and decoder blocks import and give torch's outputs. Two of them run
// with an intrinsic fixed-point map on every layer that has an intrinsic form, checked bit
// for bit against a reference that evaluates each layer with the generic loops of the
// compile-time number type quantized<float, fixed_point<16, 8>> (no vectorised kernel).
#include <doctest/doctest.h>

#include <tensorquant/io/npy.hpp>
#include <tensorquant/onnx.hpp>

#include <nlohmann/json.hpp>

#include <bit>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <type_traits>
#include <vector>

#ifndef TQ_TORCH_MODELS
#error "TQ_TORCH_MODELS names the folder scripts/torch_models.py exports to"
#endif

namespace tq = tensorquant;
namespace nn = tensorquant::nn;
namespace fs = std::filesystem;

namespace {

xt::xarray<float> read_array(fs::path const& p)
{
    auto d = tq::read_npy<float>(p);
    return xt::adapt(d.values, d.shape);
}

std::vector<std::string> exported()
{
    std::ifstream in(fs::path(TQ_TORCH_MODELS) / "manifest.json");
    REQUIRE(in);
    std::vector<std::string> names;
    for (auto const& e : nlohmann::json::parse(in)) names.push_back(e["name"].get<std::string>());
    return names;
}

// ---- the reference of intrinsic emulation ---------------------------------------------

using Q = tq::fixed_point<16, 8>; // nearest rounding, saturating
using V = tq::quantized<float, Q>;
const tq::fixed_point_rt q16_8(16, 8);

template <class E>
nn::tensor<V> to_v(E const& x)
{
    nn::tensor<V> y = nn::tensor<V>::from_shape(std::vector<std::size_t>(x.shape().begin(), x.shape().end()));
    for (std::size_t i = 0; i < x.size(); ++i) y.data()[i] = V(x.data()[i]); // rounded to the format
    return y;
}
template <class E>
nn::tensor<float> from_v(E const& y)
{
    nn::tensor<float> r = nn::tensor<float>::from_shape(std::vector<std::size_t>(y.shape().begin(), y.shape().end()));
    for (std::size_t i = 0; i < y.size(); ++i) r.data()[i] = float(y.data()[i]);
    return r;
}
template <class T, std::size_t N>
xt::xtensor<T, N> fixed(nn::tensor<T> const& x)
{
    std::array<std::size_t, N> s;
    std::copy(x.shape().begin(), x.shape().end(), s.begin());
    auto y = xt::xtensor<T, N>::from_shape(s);
    std::copy(x.data(), x.data() + x.size(), y.data());
    return y;
}
template <class E>
nn::tensor<V> activated(E const& y, nn::activation_fn const& act)
{
    return nn::activate<V>(nn::tensor<V>(y), act);
}

// What a layer sees in the reference: its inputs, its parameters as they are.
struct reference_context
{
    std::vector<nn::tensor<float> const*> const& in;
    nn::tensor<float> const& input(std::size_t k) const { return *in.at(k); }
    std::size_t inputs() const noexcept { return in.size(); }
    template <class T>
    T param(std::size_t, T const& t) const
    {
        return t;
    }
};

// One layer of the reference: on the float path, or every operation in V.
nn::tensor<float> reference_layer(nn::layer const& op, std::vector<nn::tensor<float> const*> const& in, bool intrinsic)
{
    reference_context ctx{in};
    if (!intrinsic) return std::visit([&](auto const& l) { return l.forward(ctx); }, op);
    auto x = [&](std::size_t k) { return to_v(*in.at(k)); };
    auto batch = [&] { return in.back()->shape(0); };
    return std::visit(
        [&](auto const& l) -> nn::tensor<float> {
            using L = std::decay_t<decltype(l)>;
            if constexpr (std::is_same_v<L, nn::conv2d_layer>) {
                return from_v(activated(
                    nn::conv2d(fixed<V, 4>(x(0)), fixed<V, 4>(to_v(l.weights)), fixed<V, 1>(to_v(l.bias)), l.options),
                    l.act));
            } else if constexpr (std::is_same_v<L, nn::dense_layer>) {
                const auto m = nn::kernels::dense_matrix(*in[0], l.input);
                auto y = from_v(activated(
                    nn::dense(fixed<V, 2>(to_v(m)), fixed<V, 2>(to_v(l.weights)), fixed<V, 1>(to_v(l.bias))), l.act));
                y.reshape(nn::kernels::dense_output_shape(in[0]->shape(), l.input, l.weights.shape(1)));
                return y;
            } else if constexpr (std::is_same_v<L, nn::batch_norm_layer>) {
                auto y = from_v(
                    activated(nn::batch_norm(fixed<V, 4>(to_v(nn::kernels::channels_last4(*in[0]))),
                                             fixed<V, 1>(to_v(l.gamma)), fixed<V, 1>(to_v(l.beta)),
                                             fixed<V, 1>(to_v(l.mean)), fixed<V, 1>(to_v(l.variance)), V(l.epsilon)),
                              l.act));
                y.reshape(in[0]->shape());
                return y;
            } else if constexpr (std::is_same_v<L, nn::max_pool_layer>) {
                return from_v(nn::max_pool(fixed<V, 4>(x(0)), l.options));
            } else if constexpr (std::is_same_v<L, nn::avg_pool_layer>) {
                return from_v(nn::avg_pool(fixed<V, 4>(x(0)), l.options));
            } else if constexpr (std::is_same_v<L, nn::global_avg_pool_layer>) {
                return from_v(nn::global_avg_pool(fixed<V, 4>(x(0))));
            } else if constexpr (std::is_same_v<L, nn::activation_layer>) {
                return from_v(activated(x(0), l.act));
            } else if constexpr (std::is_same_v<L, nn::binary_layer>) {
                const auto a = x(0);
                const auto b = l.constant.size() ? to_v(l.constant) : x(1);
                return from_v(activated(l.constant_first ? nn::binary(b, a, l.op) : nn::binary(a, b, l.op), l.act));
            } else if constexpr (std::is_same_v<L, nn::matmul_layer>) {
                const auto a = x(0);
                const auto b = l.constant.size() ? to_v(l.constant) : x(1);
                return from_v(activated(l.constant_first ? nn::matmul(b, a) : nn::matmul(a, b), l.act));
            } else if constexpr (std::is_same_v<L, nn::concat_layer>) {
                std::vector<nn::tensor<V>> parts;
                for (std::size_t k = 0; k < in.size(); ++k) parts.push_back(x(k));
                std::vector<nn::tensor<V> const*> ptrs;
                for (auto const& p : parts) ptrs.push_back(&p);
                return from_v(nn::kernels::concat_along(ptrs, l.axis));
            } else if constexpr (std::is_same_v<L, nn::reduce_layer>) {
                return from_v(nn::reduce(x(0), l.axes, l.keepdims, l.op));
            } else if constexpr (std::is_same_v<L, nn::transpose_layer>) {
                return from_v(nn::kernels::permuted(x(0), l.perm));
            } else if constexpr (std::is_same_v<L, nn::reshape_layer> || std::is_same_v<L, nn::flatten_layer>) {
                auto y = x(0);
                if constexpr (std::is_same_v<L, nn::reshape_layer>)
                    y.reshape(nn::kernels::reshape_target(l.shape, y.size(), in.size() > 1 ? batch() : 0));
                else
                    y = nn::kernels::flattened(y);
                return from_v(y);
            } else if constexpr (std::is_same_v<L, nn::slice_layer>) {
                return from_v(nn::kernels::sliced(x(0), l.axes, l.ranges));
            } else if constexpr (std::is_same_v<L, nn::gather_layer>) {
                return from_v(nn::kernels::gathered(x(0), l.axis, l.indices, l.indices_shape));
            } else if constexpr (std::is_same_v<L, nn::expand_layer>) {
                return from_v(nn::kernels::expanded(x(0), nn::kernels::resolve(l.shape, in.size() > 1 ? batch() : 1)));
            } else if constexpr (std::is_same_v<L, nn::constant_layer>) {
                const auto target = l.shape.empty()
                                        ? std::vector<std::size_t>(l.value.shape().begin(), l.value.shape().end())
                                        : nn::kernels::resolve(l.shape, batch());
                return from_v(nn::kernels::expanded(to_v(l.value), target));
            } else {
                FAIL("the reference has no intrinsic form of layer kind ", std::string(L::kind));
                return {};
            }
        },
        op);
}

// The network's output by the reference: layers under the intrinsic map in V, the others
// on their float path.
nn::tensor<float> reference_forward(nn::network const& net, nn::tensor<float> const& x)
{
    std::vector<nn::tensor<float>> outs(net.nodes().size());
    for (std::size_t i = 0; i < net.nodes().size(); ++i) {
        auto const& node = net.nodes()[i];
        std::vector<nn::tensor<float> const*> in;
        for (int j : node.inputs) in.push_back(j < 0 ? &x : &outs[std::size_t(j)]);
        outs[i] = reference_layer(node.op, in, net.quantization_of(node.name).intrinsic != nullptr);
    }
    return outs.back();
}

} // namespace

TEST_CASE("Networks exported by PyTorch import and give torch's outputs")
{
    for (auto const& name : exported()) {
        INFO(name);
        const fs::path dir = TQ_TORCH_MODELS;
        const auto t0 = std::chrono::steady_clock::now();
        auto model = tq::onnx::load(dir / (name + ".onnx"));
        const double load = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const auto want = read_array(dir / (name + ".output.npy"));
        const auto got = model.run(read_array(dir / (name + ".input.npy")));
        REQUIRE(got.shape() == want.shape());
        double worst = 0, largest = 0;
        for (std::size_t i = 0; i < got.size(); ++i) {
            worst = std::max(worst, double(std::fabs(got.data()[i] - want.data()[i])));
            largest = std::max(largest, double(std::fabs(want.data()[i])));
        }
        MESSAGE(name, ": ", model.net.nodes().size(), " layers, largest difference ", worst, " of the largest output ",
                largest, " (", worst / largest, "); loaded in ", load, " s");
        CHECK(largest > 0);
        CHECK(worst <= 1e-4 * largest);
        // the batch size is open: a batch of 3 (images 0, 1, 0) gives the same outputs per image
        const auto x = read_array(dir / (name + ".input.npy"));
        const std::size_t per = x.size() / x.shape(0), out = got.size() / got.shape(0);
        auto shape = std::vector<std::size_t>(x.shape().begin(), x.shape().end());
        shape[0] = 3;
        xt::xarray<float> three = xt::xarray<float>::from_shape(shape);
        std::copy(x.data(), x.data() + 2 * per, three.data());
        std::copy(x.data(), x.data() + per, three.data() + 2 * per);
        const auto y3 = model.run(three);
        REQUIRE(y3.size() == 3 * out);
        CHECK(std::equal(y3.data(), y3.data() + 2 * out, got.data()));
        CHECK(std::equal(y3.data() + 2 * out, y3.data() + 3 * out, got.data()));
    }
}

TEST_CASE("Intrinsic emulation of real networks equals the number type's generic loops bit for bit")
{
    for (std::string name : {"mobilenet_v3_small", "vit_2layer_32"}) {
        INFO(name);
        const fs::path dir = TQ_TORCH_MODELS;
        auto model = tq::onnx::load(dir / (name + ".onnx"));
        // every layer that has an intrinsic form; the others (softmax, layer norm, GELU) "none"
        nn::scope_map intrinsic;
        intrinsic.set(model.net.scope(), q16_8);
        std::size_t emulated = 0;
        for (auto const& n : model.net.nodes()) {
            const bool can = std::visit([](auto const& l) { return l.intrinsic_problem(q16_8).empty(); }, n.op);
            if (!can) intrinsic.set(n.name, "none");
            emulated += can;
        }
        model.net.set_quantization(intrinsic, {}, {});
        const auto x = model.to_network_layout(read_array(dir / (name + ".input.npy")));
        const auto got = model.net.forward(x);
        const auto want = reference_forward(model.net, x);
        REQUIRE(got.shape() == want.shape());
        std::size_t differ = 0;
        for (std::size_t i = 0; i < got.size(); ++i)
            differ += std::bit_cast<std::uint32_t>(got.data()[i]) != std::bit_cast<std::uint32_t>(want.data()[i]);
        MESSAGE(name, ": ", emulated, " of ", model.net.nodes().size(), " layers intrinsic (fixed point 16, 8), ",
                got.size(), " outputs compared, ", differ, " differ");
        CHECK(emulated > model.net.nodes().size() / 2);
        CHECK(differ == 0);
        // and the emulation changed something: the outputs are on the format's grid
        bool on_grid = true;
        for (float v : got) on_grid = on_grid && v * 256 == std::round(v * 256);
        CHECK(on_grid);
    }
}
