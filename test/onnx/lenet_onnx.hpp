// The built-in LeNet-5 written as an ONNX model, as PyTorch's exporter would write it
// (NCHW, OIHW weights, Flatten in C, H, W order before a Gemm with transB = 1), for the
// tests and the benchmark: imported with scope "LeNet", it must be the built-in network.
#pragma once

#include <tensorquant/nn.hpp>

#include "model_builder.hpp"

#include <onnx/onnx_pb.h>

#include <string>
#include <variant>
#include <vector>

namespace tq_test {

inline ::onnx::ModelProto lenet_as_onnx(tensorquant::nn::network const& net, int opset = 13)
{
    namespace nn = tensorquant::nn;
    model_builder b(opset);
    b.input("input", {-1, 1, 28, 28});

    std::string x = "input";
    std::size_t flat_c = 0, flat_hw = 0;
    for (auto const& nd : net.nodes()) {
        const std::string local = nd.name.substr(nd.name.find('/') + 1);
        if (auto const* c = std::get_if<nn::conv2d_layer>(&nd.op)) {
            const auto& w = c->weights; // HWIO
            const std::size_t kh = w.shape(0), kw = w.shape(1), ci = w.shape(2), co = w.shape(3);
            std::vector<float> oihw(w.size());
            for (std::size_t o = 0; o < co; ++o)
                for (std::size_t i = 0; i < ci; ++i)
                    for (std::size_t r = 0; r < kh; ++r)
                        for (std::size_t s = 0; s < kw; ++s) oihw[((o * ci + i) * kh + r) * kw + s] = w(r, s, i, o);
            b.init_raw(local + ".weight", {std::int64_t(co), std::int64_t(ci), std::int64_t(kh), std::int64_t(kw)},
                       oihw);
            b.init_raw(local + ".bias", {std::int64_t(co)}, {c->bias.begin(), c->bias.end()});
            auto& n = b.node("Conv", "/" + local + "/Conv", {x, local + ".weight", local + ".bias"}, local + "_out");
            set_ints(n, "kernel_shape", {std::int64_t(kh), std::int64_t(kw)});
            if (c->options.padding == nn::padding_mode::same) {
                const auto p = std::int64_t(kh / 2);
                set_ints(n, "pads", {p, p, p, p});
            }
            b.node("Relu", "/" + local + "/Relu", {local + "_out"}, local + "_relu");
            x = local + "_relu";
            flat_c = co;
        } else if (std::holds_alternative<nn::max_pool_layer>(nd.op)) {
            auto& n = b.node("MaxPool", "/" + local + "/MaxPool", {x}, local + "_out");
            set_ints(n, "kernel_shape", {2, 2});
            set_ints(n, "strides", {2, 2});
            x = local + "_out";
        } else if (std::holds_alternative<nn::flatten_layer>(nd.op)) {
            b.node("Flatten", "/" + local + "/Flatten", {x}, local + "_out");
            x = local + "_out";
        } else if (auto const* d = std::get_if<nn::dense_layer>(&nd.op)) {
            const std::size_t k = d->weights.shape(0), o = d->weights.shape(1);
            // [K, O] in the network's H, W, C feature order to ONNX's [O, K] in C, H, W order
            std::vector<float> wt(d->weights.size());
            const bool after_flatten = flat_c != 0;
            if (after_flatten) flat_hw = k / flat_c;
            for (std::size_t j = 0; j < o; ++j)
                for (std::size_t f = 0; f < k; ++f) {
                    const std::size_t row = after_flatten ? (f % flat_hw) * flat_c + f / flat_hw : f;
                    wt[j * k + f] = d->weights(row, j);
                }
            flat_c = 0;
            b.init_raw(local + ".weight", {std::int64_t(o), std::int64_t(k)}, wt);
            b.init_raw(local + ".bias", {std::int64_t(o)}, {d->bias.begin(), d->bias.end()});
            set_int(b.node("Gemm", "/" + local + "/Gemm", {x, local + ".weight", local + ".bias"}, local + "_out"),
                    "transB", 1);
            x = local + "_out";
            if (d->act == nn::activation::relu) {
                b.node("Relu", "/" + local + "/Relu", {x}, local + "_relu");
                x = local + "_relu";
            }
        }
    }
    b.g().add_output()->set_name(x);
    return b.m;
}

} // namespace tq_test
