// The state of one import: the network being built, what each ONNX value is (a layer's
// output with its ONNX shape, or a constant), and the helpers every operator's converter
// uses to read attributes and inputs with errors that name the node.
#pragma once

#include "../../config.hpp"

#include "../../core/error.hpp"
#include "../../nn/network.hpp"
#include "qdq.hpp"
#include "tensor.hpp"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::onnx {

// The rule that turns an ONNX node name into a layer name under the model's scope:
// leading and repeated '/' are dropped, a last part that is the operator's name (PyTorch's
// exporter writes "/layer1/conv1/Conv", and "Relu_1" for the second ReLU of a module) is
// dropped, characters other than letters, digits, '_', '-' and '.' become '_'; a node
// left without a name is called after its operator and its position in the graph
// ("conv_3"). Names that would repeat get "_2", "_3", ... in graph order.
inline std::string layer_name(std::string_view node_name, std::string_view op_type, std::size_t position)
{
    std::vector<std::string> parts;
    std::string part;
    auto flush = [&] {
        if (!part.empty()) parts.push_back(part);
        part.clear();
    };
    for (char ch : node_name) {
        if (ch == '/') {
            flush();
            continue;
        }
        const bool ok = std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.';
        part += ok ? ch : '_';
    }
    flush();
    auto is_op_name = [&](std::string const& p) {
        if (p.size() < op_type.size() || p.compare(0, op_type.size(), op_type) != 0) return false;
        if (p.size() == op_type.size()) return true;
        if (p[op_type.size()] != '_' || p.size() == op_type.size() + 1) return false;
        return std::all_of(p.begin() + std::ptrdiff_t(op_type.size()) + 1, p.end(),
                           [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; });
    };
    if (!parts.empty() && is_op_name(parts.back())) parts.pop_back();
    std::string name;
    for (auto const& p : parts) name += (name.empty() ? "" : "/") + p;
    if (name.empty()) {
        for (char ch : op_type) name += char(std::tolower(static_cast<unsigned char>(ch)));
        name += "_" + std::to_string(position);
    }
    return name;
}

namespace detail {

// A tensor a layer computes, as ONNX sees it.
struct value_info
{
    int node = -1;                   // the network node giving it; -1: the network input
    std::vector<std::int64_t> shape; // ONNX shape (NCHW or [N, F]); shape[0] < 0: any batch
    // A [N, C*H*W] value whose features the network holds in H, W, C order (a flattened
    // NHWC tensor): a Gemm or MatMul reading it permutes its weight rows.
    std::optional<std::array<std::int64_t, 3>> flattened_chw;
    // QDQ: the value is the integer codes of QuantizeLinear applied to the node's output
    // (which the network holds in float), read only by DequantizeLinear or given as the
    // model's output; `integer`: the model's integer input, read only by DequantizeLinear.
    std::optional<linear_quantization> codes;
    int integer = 0; // the element type of the model's integer input; 0: a float value
    // The value came through QuantizeLinear and DequantizeLinear: the node's output is
    // quantized there (an extrinsic quantizer), so nothing may be fused into the node after it.
    bool dequantized = false;
};

class importer
{
public:
    importer(std::string source, int opset, std::string const& scope)
        : source_(std::move(source)), opset_(opset), net_(scope)
    {}

    int opset() const noexcept { return opset_; }
    nn::network& net() noexcept { return net_; }
    std::map<std::string, constant>& constants() noexcept { return constants_; }
    std::map<std::string, value_info>& values() noexcept { return values_; }
    std::map<std::string, int>& uses() noexcept { return uses_; }

    void begin_node(::onnx::NodeProto const& n, std::size_t position)
    {
        node_ = &n;
        position_ = position;
        reads_.clear();
    }
    ::onnx::NodeProto const& node() const noexcept { return *node_; }

    // "model.onnx: node '/conv1/Conv' (Conv, opset 13)"
    std::string where() const
    {
        return source_ + ": node '" + node_->name() + "' (" + node_->op_type() + ", opset " + std::to_string(opset_) +
               ")";
    }
    [[noreturn]] void unsupported(std::string const& why) const { throw unsupported_error(where() + ": " + why); }
    [[noreturn]] void malformed(std::string const& why) const { throw file_error(where() + ": " + why); }

    // ---- attributes -------------------------------------------------------------------

    ::onnx::AttributeProto const* attribute(std::string_view name) const
    {
        for (auto const& a : node_->attribute())
            if (a.name() == name) return &a;
        return nullptr;
    }
    std::int64_t attr_int(std::string_view name, std::int64_t fallback) const
    {
        return attr_of(name, fallback, ::onnx::AttributeProto::INT, "an int", [](auto const& a) { return a.i(); });
    }
    double attr_float(std::string_view name, double fallback) const
    {
        return attr_of(name, fallback, ::onnx::AttributeProto::FLOAT, "a float",
                       [](auto const& a) { return double(a.f()); });
    }
    std::string attr_string(std::string_view name, std::string fallback) const
    {
        return attr_of(name, std::move(fallback), ::onnx::AttributeProto::STRING, "a string",
                       [](auto const& a) { return a.s(); });
    }
    std::vector<std::int64_t> attr_ints(std::string_view name, std::vector<std::int64_t> fallback) const
    {
        return attr_of(name, std::move(fallback), ::onnx::AttributeProto::INTS, "a list of ints",
                       [](auto const& a) { return std::vector<std::int64_t>(a.ints().begin(), a.ints().end()); });
    }

    // ---- inputs -----------------------------------------------------------------------

    bool has_input(int k) const { return k < node_->input_size() && !node_->input(k).empty(); }
    std::string const& input_name(int k) const { return node_->input(k); }
    bool is_constant(int k) const { return has_input(k) && constants_.count(input_name(k)) != 0; }

    // Input k as a layer's output; a constant there is not something a layer can read,
    // nor are integer codes (QDQ) anywhere but in a DequantizeLinear.
    value_info const& input_value(int k, std::string_view role)
    {
        auto const& v = input_any(k, role);
        if (v.codes || v.integer)
            unsupported("the " + std::string(role) + " '" + input_name(k) +
                        "' holds integers, which only DequantizeLinear reads (other operators on integers are not " +
                        "supported)");
        reads_.push_back(input_name(k));
        return v;
    }
    // Input k as a computed value of any kind, codes included.
    value_info const& input_any(int k, std::string_view role) const
    {
        if (!has_input(k)) malformed("has no input " + std::to_string(k) + " (" + std::string(role) + ")");
        auto it = values_.find(input_name(k));
        if (it != values_.end()) return it->second;
        if (constants_.count(input_name(k)))
            unsupported("the " + std::string(role) + " '" + input_name(k) +
                        "' is a constant; the importer needs it to be computed from the network's input");
        malformed("reads '" + input_name(k) + "', which no earlier node gives");
    }
    // Input k as a constant (weights, shapes, bounds); a computed one is refused.
    constant const& input_constant(int k, std::string_view role) const
    {
        if (!has_input(k)) malformed("has no input " + std::to_string(k) + " (" + std::string(role) + ")");
        auto it = constants_.find(input_name(k));
        if (it != constants_.end()) return it->second;
        if (values_.count(input_name(k)))
            unsupported("the " + std::string(role) + " '" + input_name(k) +
                        "' is computed by the network (dynamic weights); it must be an initializer or a Constant");
        malformed("reads '" + input_name(k) + "', which no earlier node gives");
    }

    // ---- outputs ----------------------------------------------------------------------

    // Only the first output is supported; a node whose other outputs are read is refused.
    void require_single_output(std::string_view what_else) const
    {
        for (int k = 1; k < node_->output_size(); ++k)
            if (!node_->output(k).empty() && uses_.count(node_->output(k)) && uses_.at(node_->output(k)) > 0)
                unsupported("its output " + std::to_string(k) + " (" + std::string(what_else) +
                            ") is read, which the importer does not provide");
    }

    // Adds the layer; its output is the node's first output.
    int add(nn::layer op, std::vector<int> inputs, std::vector<std::int64_t> shape,
            std::optional<std::array<std::int64_t, 3>> flattened = std::nullopt)
    {
        std::string base = layer_name(node_->name(), node_->op_type(), position_);
        std::string name = base;
        for (int k = 2; taken_.count(name); ++k) name = base + "_" + std::to_string(k);
        taken_.insert(name);
        const int index = net_.add(name, std::move(op), std::move(inputs));
        for (auto const& r : reads_) readers_.push_back({values_.at(r).node, r, node_->name()});
        reads_.clear();
        value_info out;
        out.node = index;
        out.shape = std::move(shape);
        out.flattened_chw = flattened;
        set_output(std::move(out));
        return index;
    }

    // ---- QDQ ----------------------------------------------------------------------------

    // The output of network node `node` quantized by q (QuantizeLinear then
    // DequantizeLinear): an extrinsic quantizer of that layer, or of an identity layer
    // for the network's input. Returns the node whose output is the quantized value.
    int quantize_output(int node, linear_quantization const& q)
    {
        if (!q.per_tensor())
            unsupported("per-axis quantization of a computed tensor (an activation) is not supported; per-axis " +
                        std::string("quantization of constants (weights) is"));
        if (node < 0) {
            nn::activation_layer pass;
            pass.act = nn::activation::none;
            node = add(pass, {-1}, values_.at(input_name(0)).shape);
        }
        auto [it, fresh] = quantized_.emplace(node, q);
        if (!fresh && !(it->second == q))
            unsupported("the output of layer '" + net_.nodes()[std::size_t(node)].name +
                        "' is quantized twice with different scales or zero points");
        return node;
    }
    // Network node -> its QDQ quantization, and who read which value of it.
    std::map<int, linear_quantization> const& quantized() const noexcept { return quantized_; }
    struct read
    {
        int node;
        std::string value, reader;
    };
    std::vector<read> const& readers() const noexcept { return readers_; }
    // The quantization of the model's integer input, once a DequantizeLinear has read it.
    std::optional<linear_quantization>& input_codes() noexcept { return input_codes_; }
    void set_output(value_info v)
    {
        if (node_->output_size() < 1 || node_->output(0).empty()) malformed("has no output");
        values_[node_->output(0)] = std::move(v);
    }
    void set_output_constant(constant c)
    {
        if (node_->output_size() < 1 || node_->output(0).empty()) malformed("has no output");
        constants_[node_->output(0)] = std::move(c);
    }
    // The number of nodes (and graph outputs) that read the node's first output.
    int uses_of_output() const
    {
        auto it = uses_.find(node_->output(0));
        return it == uses_.end() ? 0 : it->second;
    }

private:
    // The attribute's value by get, the fallback when the node has none; another type is malformed.
    template <class T, class Get>
    T attr_of(std::string_view name, T fallback, int type, char const* what, Get get) const
    {
        auto const* a = attribute(name);
        if (!a) return fallback;
        if (a->type() != type) malformed("attribute '" + std::string(name) + "' is not " + what);
        return get(*a);
    }

    std::string source_;
    int opset_;
    nn::network net_;
    std::map<std::string, constant> constants_;
    std::map<std::string, value_info> values_;
    std::map<std::string, int> uses_;
    std::set<std::string> taken_;
    std::vector<std::string> reads_; // the values the node being converted read as layer inputs
    std::vector<read> readers_;
    std::map<int, linear_quantization> quantized_;
    std::optional<linear_quantization> input_codes_;
    ::onnx::NodeProto const* node_ = nullptr;
    std::size_t position_ = 0;
};

inline std::string shape_text(std::vector<std::int64_t> const& s)
{
    std::string r = "[";
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (i) r += ", ";
        r += s[i] < 0 ? std::string("N") : std::to_string(s[i]);
    }
    return r + "]";
}

inline std::int64_t normalized_axis(importer const& im, std::int64_t axis, std::size_t rank)
{
    const auto r = std::int64_t(rank);
    if (axis < -r || axis >= r)
        im.malformed("axis " + std::to_string(axis) + " is outside a tensor of rank " + std::to_string(rank));
    return axis < 0 ? axis + r : axis;
}

} // namespace detail
} // namespace tensorquant::inline TENSORQUANT_ABI::onnx
