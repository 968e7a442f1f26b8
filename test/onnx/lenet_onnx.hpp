// The built-in LeNet-5 written as an ONNX model, as PyTorch's exporter would write it
// (NCHW, OIHW weights, Flatten in C, H, W order before a Gemm with transB = 1), for the
// tests and the benchmark: imported with scope "LeNet", it must be the built-in network.
#pragma once

#include <tensorquant/nn.hpp>

#include <onnx/onnx_pb.h>

#include <string>
#include <variant>
#include <vector>

namespace tq_test {

inline ::onnx::ModelProto lenet_as_onnx(tensorquant::nn::network const& net, int opset = 13)
{
    namespace nn = tensorquant::nn;
    ::onnx::ModelProto m;
    m.set_ir_version(7);
    m.set_producer_name("tensorquant tests");
    m.add_opset_import()->set_version(opset);
    auto& g = *m.mutable_graph();
    auto tensor = [&](std::string const& name, std::vector<std::int64_t> const& dims, std::vector<float> const& v) {
        auto* t = g.add_initializer();
        t->set_name(name);
        t->set_data_type(::onnx::TensorProto::FLOAT);
        for (auto d : dims) t->add_dims(d);
        t->mutable_raw_data()->assign(reinterpret_cast<char const*>(v.data()), v.size() * sizeof(float));
    };
    auto node = [&](std::string const& op, std::string const& name, std::vector<std::string> in, std::string out) {
        auto* n = g.add_node();
        n->set_op_type(op);
        n->set_name(name);
        for (auto const& i : in) n->add_input(i);
        n->add_output(out);
        return n;
    };
    auto ints = [](::onnx::NodeProto* n, std::string const& name, std::vector<std::int64_t> const& v) {
        auto* a = n->add_attribute();
        a->set_name(name);
        a->set_type(::onnx::AttributeProto::INTS);
        for (auto x : v) a->add_ints(x);
    };
    auto* in = g.add_input();
    in->set_name("input");
    auto* tt = in->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(::onnx::TensorProto::FLOAT);
    tt->mutable_shape()->add_dim()->set_dim_param("batch");
    for (int d : {1, 28, 28}) tt->mutable_shape()->add_dim()->set_dim_value(d);

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
            tensor(local + ".weight", {std::int64_t(co), std::int64_t(ci), std::int64_t(kh), std::int64_t(kw)}, oihw);
            tensor(local + ".bias", {std::int64_t(co)}, {c->bias.begin(), c->bias.end()});
            auto* n = node("Conv", "/" + local + "/Conv", {x, local + ".weight", local + ".bias"}, local + "_out");
            ints(n, "kernel_shape", {std::int64_t(kh), std::int64_t(kw)});
            if (c->options.padding == nn::padding_mode::same) {
                const auto p = std::int64_t(kh / 2);
                ints(n, "pads", {p, p, p, p});
            }
            node("Relu", "/" + local + "/Relu", {local + "_out"}, local + "_relu");
            x = local + "_relu";
            flat_c = co;
        } else if (std::holds_alternative<nn::max_pool_layer>(nd.op)) {
            auto* n = node("MaxPool", "/" + local + "/MaxPool", {x}, local + "_out");
            ints(n, "kernel_shape", {2, 2});
            ints(n, "strides", {2, 2});
            x = local + "_out";
        } else if (std::holds_alternative<nn::flatten_layer>(nd.op)) {
            node("Flatten", "/" + local + "/Flatten", {x}, local + "_out");
            x = local + "_out";
        } else if (auto const* d = std::get_if<nn::dense_layer>(&nd.op)) {
            const std::size_t k = d->weights.shape(0), o = d->weights.shape(1);
            // [K, O] in the network's H, W, C feature order to ONNX's [O, K] in C, H, W order
            std::vector<float> b(d->weights.size());
            const bool after_flatten = flat_c != 0;
            if (after_flatten) flat_hw = k / flat_c;
            for (std::size_t j = 0; j < o; ++j)
                for (std::size_t f = 0; f < k; ++f) {
                    const std::size_t row = after_flatten ? (f % flat_hw) * flat_c + f / flat_hw : f;
                    b[j * k + f] = d->weights(row, j);
                }
            flat_c = 0;
            tensor(local + ".weight", {std::int64_t(o), std::int64_t(k)}, b);
            tensor(local + ".bias", {std::int64_t(o)}, {d->bias.begin(), d->bias.end()});
            auto* n = node("Gemm", "/" + local + "/Gemm", {x, local + ".weight", local + ".bias"}, local + "_out");
            auto* a = n->add_attribute();
            a->set_name("transB");
            a->set_type(::onnx::AttributeProto::INT);
            a->set_i(1);
            x = local + "_out";
            if (d->act == nn::activation::relu) {
                node("Relu", "/" + local + "/Relu", {x}, local + "_relu");
                x = local + "_relu";
            }
        }
    }
    g.add_output()->set_name(x);
    return m;
}

} // namespace tq_test
