// ONNX models as networks of the library: onnx::load reads a .onnx file (opsets 7 to 17;
// tensors of rank 1 to 6) into an nn::network whose layer scopes come from the node names
// (onnx::layer_name gives the rule), with its weights from the initializers. Nodes whose
// inputs are constants (and shapes) are evaluated at import; the batch size may stay open.
//
// Layout: the network holds 4-D images as NHWC, the model's NCHW input included; other
// tensors mostly in ONNX's order (importer.hpp says how). Weights are converted from ONNX's
// OIHW to HWIO, and a Gemm after a Flatten of an image gets its weight rows in the
// network's order. model::run takes and gives tensors in ONNX's layout and converts at the
// boundary.
#pragma once

#include "../config.hpp"

#include "../core/error.hpp"
#include "../nn/network.hpp"
#include "detail/importer.hpp"
#include "detail/operators.hpp"
#include "detail/patterns.hpp"
#include "detail/qdq.hpp"
#include "detail/tensor.hpp"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::onnx {

struct load_options
{
    std::string scope = "model"; // the network's scope: layers are "model/<layer name>"
    // Graph inputs to read as constants, by name (for models whose weights are inputs,
    // such as ONNX's node tests).
    std::map<std::string, constant> bind;
};

// The operators the importer reads, in the order of its list.
inline std::vector<std::string_view> supported_operators()
{
    std::vector<std::string_view> r;
    for (auto const& e : detail::operators) r.push_back(e.name);
    return r;
}

struct model
{
    nn::network net{"model"};
    std::string input_name, output_name;
    // ONNX shapes; a dimension -k is k N, N the batch size the model leaves open
    std::vector<std::int64_t> input_shape, output_shape;
    int opset = 0;
    // The network holds the input and the output with its axis p being ONNX's axis perm[p].
    std::vector<std::size_t> input_perm, output_perm;
    // The model's integer input (token ids; the element type), given to run as floats.
    int input_ids = 0;
    // QDQ. The quantization points inside the network: each QuantizeLinear and
    // DequantizeLinear pair is the extrinsic quantizer of the layer whose output it reads
    // (the affine quantizer with ONNX's division), set on `net` at load; constants (weights,
    // biases) are quantized and dequantized at load. An integer input (DequantizeLinear
    // first) takes its integer codes and decodes them as the model's DequantizeLinear; an
    // output that is a QuantizeLinear's gives its integer codes (as floats).
    nn::scope_map qdq;
    std::optional<linear_quantization> input_codes, output_codes;
    // A model whose output does not depend on its input (every input bound): that output.
    std::optional<constant> constant_output;

    // x in ONNX's layout to the network's (4-D images to NHWC).
    nn::tensor<float> to_network_layout(xt::xarray<float> const& given) const
    {
        check_input(given);
        xt::xarray<float> decoded;
        if (input_codes) {
            decoded = xt::xarray<float>::from_shape(given.shape());
            const std::vector<std::int64_t> shape(given.shape().begin(), given.shape().end());
            for (std::size_t i = 0; i < given.size(); ++i) {
                const float q = given.data()[i];
                if (!(q == std::nearbyint(q)) || q < float(input_codes->qmin) || q > float(input_codes->qmax))
                    throw shape_error("onnx model: input element " + std::to_string(i) + " (" + std::to_string(q) +
                                      ") is not a code of the model's " +
                                      detail::element_type_name(input_codes->element_type) + " input");
                decoded.data()[i] = input_codes->decode(double(q), input_codes->channel(i, shape));
            }
        }
        if (input_ids)
            for (std::size_t i = 0; i < given.size(); ++i)
                if (!(given.data()[i] == std::nearbyint(given.data()[i])))
                    throw shape_error("onnx model: input element " + std::to_string(i) + " (" +
                                      std::to_string(given.data()[i]) + ") is not an integer, as the model's " +
                                      detail::element_type_name(input_ids) + " input needs");
        xt::xarray<float> const& x = input_codes ? decoded : given;
        return nn::kernels::permuted(nn::tensor<float>(x), input_perm);
    }
    // The network's output in ONNX's layout (the integer codes, for an output_codes model).
    xt::xarray<float> from_network_layout(nn::tensor<float> const& y) const
    {
        xt::xarray<float> r = nn::kernels::permuted(y, nn::kernels::inverse_permutation(output_perm));
        if (output_codes) {
            const std::vector<std::int64_t> shape(r.shape().begin(), r.shape().end());
            for (std::size_t i = 0; i < r.size(); ++i)
                r.data()[i] = float(output_codes->encode(r.data()[i], output_codes->channel(i, shape)));
        }
        return r;
    }
    // The model's output for x, both in ONNX's layout.
    xt::xarray<float> run(xt::xarray<float> const& x, std::uint64_t step = 0)
    {
        if (constant_output) {
            xt::xarray<float> r = xt::xarray<float>::from_shape(
                std::vector<std::size_t>(constant_output->shape.begin(), constant_output->shape.end()));
            for (std::size_t i = 0; i < r.size(); ++i) r.data()[i] = float(constant_output->values[i]);
            return r;
        }
        return from_network_layout(net.forward(to_network_layout(x), step));
    }

private:
    void check_input(xt::xarray<float> const& x) const
    {
        bool fits = x.dimension() == input_shape.size();
        for (std::size_t d = 0; fits && d < input_shape.size(); ++d)
            fits = input_shape[d] < 0 || std::int64_t(x.shape(d)) == input_shape[d];
        if (!fits) {
            std::vector<std::int64_t> got(x.shape().begin(), x.shape().end());
            throw shape_error("onnx model: input of shape " + detail::shape_text(got) +
                              " given where the model takes " + detail::shape_text(input_shape));
        }
    }
};

namespace detail {

inline int default_opset(::onnx::ModelProto const& m, std::string const& source)
{
    int opset = -1;
    for (auto const& o : m.opset_import())
        if (o.domain().empty() || o.domain() == "ai.onnx") opset = int(o.version());
    if (opset < 0) throw file_error(source + ": the model imports no opset of the default domain");
    if (opset < 7 || opset > 17)
        throw unsupported_error(source + ": opset " + std::to_string(opset) + " is not supported (7 to 17 are)");
    return opset;
}

inline std::vector<std::int64_t> input_shape_of(::onnx::ValueInfoProto const& v, std::string const& source)
{
    const std::string what = source + ": input '" + v.name() + "'";
    if (!v.type().has_tensor_type()) throw unsupported_error(what + " is not a tensor");
    auto const& t = v.type().tensor_type();
    using TP = ::onnx::TensorProto;
    const int e = t.elem_type();
    if (e != TP::FLOAT && e != TP::INT8 && e != TP::UINT8 && e != TP::INT32 && e != TP::INT64)
        throw unsupported_error(what + " has element type " + element_type_name(e) +
                                "; only FLOAT is supported, INT32 and INT64 indices that a Gather reads, and INT8 or "
                                "UINT8 codes that a DequantizeLinear reads");
    if (!t.has_shape()) throw unsupported_error(what + " has no shape; the importer needs its rank and sizes");
    std::vector<std::int64_t> shape;
    for (int d = 0; d < t.shape().dim_size(); ++d) {
        auto const& dim = t.shape().dim(d);
        if (dim.has_dim_value() && dim.dim_value() >= 0) {
            shape.push_back(dim.dim_value());
        } else if (d == 0) {
            shape.push_back(-1); // any batch
        } else {
            throw unsupported_error(what + ": dimension " + std::to_string(d) +
                                    " has no fixed size; only the batch may vary");
        }
    }
    if (shape.empty()) throw unsupported_error(what + " is a scalar; the importer needs a batch dimension");
    if (shape.size() > 6) throw unsupported_error(what + " has rank " + std::to_string(shape.size()) + " (at most 6)");
    return shape;
}

} // namespace detail

// The network of an ONNX model; source names it in errors. Unsupported operators, shapes and
// attributes throw unsupported_error naming the node; a malformed graph, file_error.
inline model from_proto(::onnx::ModelProto const& m, std::string const& source, load_options const& options = {})
{
    if (!m.has_graph()) throw file_error(source + ": the model has no graph");
    auto const& g = m.graph();
    model result;
    result.opset = detail::default_opset(m, source);
    detail::importer im(source, result.opset, options.scope);

    for (auto const& init : g.initializer())
        im.constants()[init.name()] =
            detail::to_constant(init, source + ": initializer '" + init.name() + "'", /*keep_float32=*/true);
    for (auto const& [name, c] : options.bind) im.constants()[name] = c;
    std::vector<::onnx::ValueInfoProto const*> inputs;
    for (auto const& in : g.input())
        if (!im.constants().count(in.name())) inputs.push_back(&in);
    if (inputs.size() > 1)
        throw unsupported_error(source + ": the graph has " + std::to_string(inputs.size()) +
                                " inputs that are not initializers; the importer needs one");
    detail::value_info input;
    if (!inputs.empty()) {
        result.input_name = inputs[0]->name();
        result.input_shape = detail::input_shape_of(*inputs[0], source);
        input.shape = result.input_shape;
        const int t = inputs[0]->type().tensor_type().elem_type();
        if (t == ::onnx::TensorProto::INT32 || t == ::onnx::TensorProto::INT64) result.input_ids = t;
        if (t != ::onnx::TensorProto::FLOAT) input.integer = t;
        input.perm = input.shape.size() == 4 && !input.integer ? detail::channels_last_perm(4)
                                                               : detail::identity_perm(input.shape.size());
        result.input_perm = input.perm;
        im.values()[result.input_name] = input;
    }
    if (g.output_size() != 1)
        throw unsupported_error(source + ": the graph has " + std::to_string(g.output_size()) +
                                " outputs; the importer needs exactly one");
    result.output_name = g.output(0).name();

    // The graph with the subgraphs of one operation replaced by it. Only the nodes the
    // output depends on become layers (dead branches would otherwise run after it); uses
    // counts the readers of each value among them.
    const auto nodes = detail::pattern_matcher(g).nodes();
    std::map<std::string, std::size_t> producer;
    for (std::size_t i = 0; i < nodes.size(); ++i)
        for (auto const& o : nodes[i].output())
            if (!o.empty()) producer[o] = i;
    std::vector<bool> needed(nodes.size(), false);
    std::vector<std::string> pending{result.output_name};
    while (!pending.empty()) {
        auto name = std::move(pending.back());
        pending.pop_back();
        auto it = producer.find(name);
        if (it == producer.end() || needed[it->second]) continue;
        needed[it->second] = true;
        for (auto const& in : nodes[it->second].input()) pending.push_back(in);
    }
    im.uses()[result.output_name] += 1;
    for (std::size_t i = 0; i < nodes.size(); ++i)
        if (needed[i])
            for (auto const& in : nodes[i].input())
                if (!in.empty()) {
                    im.uses()[in] += 1;
                    im.readers_of()[in].push_back(&nodes[i]);
                }

    std::size_t last = 0;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        if (!needed[i]) continue;
        auto const& n = nodes[i];
        im.begin_node(n, i);
        last = i;
        if (!n.domain().empty() && n.domain() != "ai.onnx")
            im.unsupported("operators of domain '" + n.domain() + "' are not supported");
        auto it = std::find_if(detail::operators.begin(), detail::operators.end(),
                               [&](auto const& e) { return e.name == n.op_type(); });
        if (it == detail::operators.end())
            im.unsupported("the operator is not supported; the importer reads " + detail::operator_list());
        it->convert(im);
    }

    if (auto c = im.constants().find(result.output_name); c != im.constants().end()) {
        if (c->second.symbolic())
            throw unsupported_error(source + ": the output '" + result.output_name +
                                    "' is a shape that depends on the batch size");
        c->second.widen();
        result.constant_output = c->second;
        result.output_shape = c->second.shape;
        return result;
    }
    if (inputs.empty())
        throw unsupported_error(source + ": the graph has no input besides initializers and bound constants, and its "
                                         "output is not a constant");
    auto out = im.values().find(result.output_name);
    if (out == im.values().end())
        throw file_error(source + ": the output '" + result.output_name + "' is given by no node");
    if (out->second.integer)
        throw unsupported_error(source + ": the output '" + result.output_name + "' is the integer input itself");
    if (out->second.flattened_chw) { // the output in ONNX's order, by layers of the last node
        im.begin_node(nodes[last], last);
        out->second = im.in_row_major(out->second);
    }
    // (a graph of only Identity or Dropout nodes gives a network without layers, which
    // passes its input through)
    if (out->second.node != int(im.net().nodes().size()) - 1)
        throw unsupported_error(
            source + ": the output '" + result.output_name +
            "' is not the last layer's result (a graph whose output is its input, or passes through)");
    result.output_shape = out->second.shape;
    result.output_perm = out->second.perm;
    result.output_codes = out->second.codes;
    result.input_codes = im.input_codes();
    if (input.integer && !result.input_ids && !result.input_codes)
        throw unsupported_error(source + ": the integer input '" + result.input_name +
                                "' is not read by a DequantizeLinear");

    // QDQ: a quantized layer output must be read only through its DequantizeLinear (the
    // network has one output per layer, and the quantizer changes it for every reader)
    auto const& quantized = im.quantized();
    for (auto const& r : im.readers())
        if (quantized.count(r.node) && !im.values().at(r.value).dequantized)
            throw unsupported_error(source + ": node '" + r.reader + "' reads '" + r.value +
                                    "' before its QuantizeLinear, while other nodes read it quantized (a tensor " +
                                    "read both quantized and not is not supported)");
    if (auto q = quantized.find(out->second.node);
        q != quantized.end() && !out->second.dequantized && !(out->second.codes && *out->second.codes == q->second))
        throw unsupported_error(source + ": the output '" + result.output_name +
                                "' is read before its QuantizeLinear while other nodes read it quantized");
    for (auto const& [node, q] : quantized) result.qdq.set(im.net().nodes()[std::size_t(node)].name, q.as_affine());
    // a layer whose name extends a quantized one's ("model/a/b" under "model/a") keeps no quantizer
    for (auto const& n : im.net().nodes())
        if (auto const* e = result.qdq.match(n.name); e && e->scope != n.name) result.qdq.set(n.name, identity{});
    im.net().set_quantization({}, result.qdq, {});
    result.net = std::move(im.net());
    return result;
}

// Reads the model file. A missing, unreadable, truncated or corrupt file is a file_error
// naming it; nothing is kept of a failed load.
inline model load(std::filesystem::path const& path, load_options const& options = {})
{
    const std::string source = path.string();
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) throw file_error(source + ": cannot read the model (" + ec.message() + ")");
    if (size > (std::uintmax_t(1) << 31))
        throw file_error(source + ": " + std::to_string(size) + " bytes is more than protobuf's 2 GiB limit");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw file_error(source + ": cannot read the model");
    ::onnx::ModelProto m; // parsed from the stream: the file is not held twice in memory
    if (!m.ParseFromIstream(&in))
        throw file_error(source + ": not an ONNX model, or truncated (its protobuf does not parse)");
    return from_proto(m, source, options);
}

} // namespace tensorquant::inline TENSORQUANT_ABI::onnx
