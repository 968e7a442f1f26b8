// The state of one import: the network being built, what each ONNX value is (a layer's
// output with its ONNX shape and the layout the network holds it in, or a constant), and
// the helpers every operator's converter uses to read attributes and inputs with errors
// that name the node.
//
// Shapes are ONNX's ("logical"); a dimension -k stands for k N, N the batch size the model
// leaves open (the first dimension of its input). The network holds a value as a
// row-major tensor whose axis p is logical axis perm[p]: NCHW images as NHWC (perm
// {0, 2, 3, 1}), most other values in ONNX's order. A Transpose only changes perm; a
// layer that needs another layout gets a transpose layer ("<node>/layout") in front.
#pragma once

#include "../../config.hpp"

#include "../../core/error.hpp"
#include "../../nn/kernels/layout.hpp"
#include "../../nn/network.hpp"
#include "qdq.hpp"
#include "tensor.hpp"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
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

using dims = std::vector<std::int64_t>;

inline std::string dim_text(std::int64_t d)
{
    if (d >= 0) return std::to_string(d);
    return d == -1 ? std::string("N") : std::to_string(-d) + "N";
}
inline std::string shape_text(dims const& s)
{
    std::string r = "[";
    for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + dim_text(s[i]);
    return r + "]";
}

// A size that may follow the batch: coef N^power.
struct sym_size
{
    std::int64_t coef = 1;
    int power = 0;
    friend bool operator==(sym_size const&, sym_size const&) = default;
};
inline sym_size size_of(dims const& s, std::size_t first = 0, std::size_t last = std::size_t(-1))
{
    sym_size r;
    for (std::size_t d = first; d < std::min(last, s.size()); ++d) {
        r.coef *= s[d] < 0 ? -s[d] : s[d];
        r.power += s[d] < 0 ? 1 : 0;
    }
    return r;
}
// As a dimension; nothing when it is not one (N^2, ...).
inline std::optional<std::int64_t> as_dim(sym_size s)
{
    if (s.power == 0) return s.coef;
    if (s.power == 1 && s.coef > 0) return -s.coef;
    return std::nullopt;
}

inline std::vector<std::size_t> identity_perm(std::size_t rank)
{
    std::vector<std::size_t> p(rank);
    for (std::size_t i = 0; i < rank; ++i) p[i] = i;
    return p;
}
// Channels last: [N, C, D1, ...] held as [N, D1, ..., C].
inline std::vector<std::size_t> channels_last_perm(std::size_t rank)
{
    std::vector<std::size_t> p{0};
    for (std::size_t i = 2; i < rank; ++i) p.push_back(i);
    if (rank > 1) p.push_back(1);
    return p;
}

// A tensor a layer computes, as ONNX sees it, and how the network holds it.
struct value_info
{
    int node = -1;                 // the network node giving it; -1: the network input
    dims shape;                    // ONNX shape; -k: k N
    std::vector<std::size_t> perm; // the network's axis p is ONNX's axis perm[p]
    // A [N, C*H*W] Flatten of an NHWC feature map held in H, W, C order (the Gemm or MatMul
    // reading it permutes its weight rows instead).
    std::optional<std::array<std::int64_t, 3>> flattened_chw;
    // Zero padding of a Pad node held back for the Conv or AveragePool that reads the value
    // (top, bottom, left, right); `node` is then the unpadded input's.
    std::optional<std::array<int, 4>> zero_pads;
    // QDQ: the value is the integer codes of QuantizeLinear applied to the node's output
    // (which the network holds in float), read only by DequantizeLinear or given as the
    // model's output; `integer`: the model's integer input, read only by DequantizeLinear or
    // as the indices of a Gather (embeddings).
    std::optional<linear_quantization> codes;
    int integer = 0; // the element type of the model's integer input; 0: a float value
    // The value came through QuantizeLinear and DequantizeLinear: the node's output is
    // quantized there (an extrinsic quantizer), so nothing may be fused into the node after it.
    bool dequantized = false;

    std::size_t rank() const noexcept { return shape.size(); }
    bool plain() const noexcept { return perm == identity_perm(shape.size()); }
    // The network's axis that holds ONNX axis a.
    std::size_t physical_axis(std::size_t a) const
    {
        return std::size_t(std::find(perm.begin(), perm.end(), a) - perm.begin());
    }
    // The shape as the network holds it.
    dims physical_shape() const
    {
        dims r;
        for (auto p : perm) r.push_back(shape[p]);
        return r;
    }
    // The network's elements are in ONNX's row-major order (the axes of size 1 aside).
    bool row_major() const
    {
        std::int64_t last = -1;
        for (auto p : perm) {
            if (shape[p] == 1) continue;
            if (std::int64_t(p) < last) return false;
            last = std::int64_t(p);
        }
        return true;
    }
};

inline std::vector<nn::extent> extents_of(dims const& s)
{
    std::vector<nn::extent> r;
    for (auto d : s) r.push_back(d < 0 ? nn::extent{-d, true} : nn::extent{d, false});
    return r;
}

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
    // The operators of the nodes that read each value (for converters that look ahead).
    std::map<std::string, std::vector<::onnx::NodeProto const*>>& readers_of() noexcept { return consumers_; }

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
    std::vector<double> attr_floats(std::string_view name, std::vector<double> fallback) const
    {
        return attr_of(name, std::move(fallback), ::onnx::AttributeProto::FLOATS, "a list of floats",
                       [](auto const& a) { return std::vector<double>(a.floats().begin(), a.floats().end()); });
    }

    // ---- inputs -----------------------------------------------------------------------

    bool has_input(int k) const { return k < node_->input_size() && !node_->input(k).empty(); }
    std::string const& input_name(int k) const { return node_->input(k); }
    bool is_constant(int k) const { return has_input(k) && constants_.count(input_name(k)) != 0; }
    // Every input the node has is a constant (the node folds).
    bool all_constant() const
    {
        for (int k = 0; k < node_->input_size(); ++k)
            if (has_input(k) && !constants_.count(input_name(k))) return false;
        return true;
    }

    // Input k as a layer's output; a constant there is not something a layer can read,
    // nor are integer codes (QDQ) anywhere but in a DequantizeLinear. Zero padding held
    // back for a Conv is applied here for any other reader.
    value_info const& input_value(int k, std::string_view role)
    {
        auto const& v = input_any(k, role);
        if (v.codes || v.integer)
            unsupported("the " + std::string(role) + " '" + input_name(k) +
                        "' holds integers, which only DequantizeLinear and Gather read (other operators on integers "
                        "are not supported)");
        if (v.zero_pads) return padded(k);
        reads_.push_back(input_name(k));
        return v;
    }
    // Records that the node reads input k as a layer input (for QDQ's checks).
    void note_read(int k) { reads_.push_back(input_name(k)); }
    // Input k as a computed value in any layout but a flattened feature map's.
    value_info input_held(int k, std::string_view role)
    {
        auto const& v = input_value(k, role);
        return v.flattened_chw ? in_row_major(v) : v;
    }
    // Input k as a computed value, a constant becoming a constant layer (its shape fixed).
    value_info input_activation(int k, std::string_view role)
    {
        if (is_constant(k)) return constant_value(input_constant(k, role), input_name(k));
        return input_value(k, role);
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
        auto& c = find_constant(k, role);
        c.widen();
        return c;
    }
    // Input k as weights that a layer stores as float: read with size() and float_at(), as
    // a float32 initializer is not widened to double for them.
    constant const& input_weights(int k, std::string_view role) const { return find_constant(k, role); }
    constant& find_constant(int k, std::string_view role) const
    {
        if (!has_input(k)) malformed("has no input " + std::to_string(k) + " (" + std::string(role) + ")");
        auto it = constants_.find(input_name(k));
        if (it != constants_.end()) return it->second;
        if (values_.count(input_name(k)))
            unsupported("the " + std::string(role) + " '" + input_name(k) +
                        "' is computed by the network from its input; it must be an initializer, a Constant or " +
                        "follow from them (and from shapes)");
        malformed("reads '" + input_name(k) + "', which no earlier node gives");
    }
    // Input k as integers (axes, shapes, pads); symbolic entries are refused unless allowed.
    std::vector<std::int64_t> input_ints(int k, std::string_view role, bool allow_batch = false) const
    {
        auto const& c = input_constant(k, role);
        if (c.symbolic() && !allow_batch)
            unsupported("the " + std::string(role) + " depends on the batch size, which the model leaves open");
        std::vector<std::int64_t> r;
        for (std::size_t i = 0; i < c.size(); ++i) {
            const double v = c.values[i];
            if (!(v == std::floor(v)))
                malformed("the " + std::string(role) + " holds " + std::to_string(v) + ", not an integer");
            // int64's extremes (open slice ends) are exact in double only as +-2^63
            const std::int64_t k = v >= 9.2e18    ? std::numeric_limits<std::int64_t>::max()
                                   : v <= -9.2e18 ? std::numeric_limits<std::int64_t>::min()
                                                  : std::int64_t(v);
            r.push_back(c.batch_factor(i) ? -c.batch_factor(i) : k);
        }
        return r;
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

    // The name a layer of this node gets (unique): the node's, plus suffix.
    std::string fresh_name(std::string const& suffix = "")
    {
        const std::string base = layer_name(node_->name(), node_->op_type(), position_) + suffix;
        std::string name = base;
        for (int k = 2; taken_.count(name); ++k) name = base + "_" + std::to_string(k);
        taken_.insert(name);
        return name;
    }
    // Adds a layer named after the node; returns its index (its output is not recorded).
    int add_layer(nn::layer op, std::vector<int> inputs, std::string const& suffix = "")
    {
        const int index = net_.add(fresh_name(suffix), std::move(op), std::move(inputs));
        for (auto const& r : reads_) readers_.push_back({values_.at(r).node, r, node_->name()});
        reads_.clear();
        return index;
    }
    // Adds the layer; its output, of the given ONNX shape and layout, is the node's first.
    int add(nn::layer op, std::vector<int> inputs, dims shape, std::vector<std::size_t> perm = {},
            std::optional<std::array<std::int64_t, 3>> flattened = std::nullopt)
    {
        const int index = add_layer(std::move(op), std::move(inputs));
        value_info out;
        out.node = index;
        out.perm = perm.empty() ? identity_perm(shape.size()) : std::move(perm);
        out.shape = std::move(shape);
        out.flattened_chw = flattened;
        set_output(std::move(out));
        return index;
    }

    // v held in the layout perm: v itself, or a transpose layer's output (one per value and
    // layout). A flattened feature map is put in ONNX's order first.
    value_info in_layout(value_info const& v, std::vector<std::size_t> const& perm)
    {
        if (v.flattened_chw) return in_layout(unflattened(v), perm);
        if (v.perm == perm) return v;
        value_info r = v;
        r.perm = perm;
        const auto key = std::tuple{v.node, v.perm, perm};
        if (auto it = layouts_.find(key); it != layouts_.end()) {
            r.node = it->second;
            return r;
        }
        // new axis i holds ONNX axis perm[i], which v holds at its physical_axis(perm[i])
        std::vector<std::size_t> move;
        for (auto a : perm) move.push_back(v.physical_axis(a));
        r.node = add_layer(nn::transpose_layer{move}, {v.node}, "/layout");
        layouts_[key] = r.node;
        return r;
    }
    value_info in_plain_layout(value_info const& v) { return in_layout(v, identity_perm(v.rank())); }
    // v held in ONNX's element order (its layout may differ on axes of size 1).
    value_info in_row_major(value_info const& v)
    {
        if (v.flattened_chw) return unflattened(v);
        return v.row_major() ? v : in_plain_layout(v);
    }

    // A constant as a computed value: a constant layer reading the network's input (which
    // gives the batch when `shape` follows it), broadcast to shape (empty: its own).
    value_info constant_value(constant const& c, std::string const& name, dims shape = {})
    {
        if (c.symbolic()) unsupported("'" + name + "' is a shape that depends on the batch, not data");
        nn::constant_layer l;
        l.value = nn::tensor<float>::from_shape(std::vector<std::size_t>(c.shape.begin(), c.shape.end()));
        for (std::size_t i = 0; i < c.size(); ++i) l.value.data()[i] = float(c.values[i]);
        if (!shape.empty()) l.shape = extents_of(shape);
        value_info v;
        v.shape = shape.empty() ? c.shape : shape;
        v.perm = identity_perm(v.shape.size());
        v.node = add_layer(std::move(l), {-1}, "/constant");
        return v;
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
            node = add_layer(pass, {-1});
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
    void set_output(value_info v, int k = 0)
    {
        if (node_->output_size() <= k || node_->output(k).empty()) malformed("has no output " + std::to_string(k));
        if (v.perm.size() != v.shape.size()) v.perm = identity_perm(v.shape.size());
        values_[node_->output(k)] = std::move(v);
    }
    void set_output_constant(constant c, int k = 0)
    {
        if (node_->output_size() <= k || node_->output(k).empty()) malformed("has no output " + std::to_string(k));
        constants_[node_->output(k)] = std::move(c);
    }
    // The number of nodes (and graph outputs) that read output k.
    int uses_of_output(int k = 0) const
    {
        if (node_->output_size() <= k) return 0;
        auto it = uses_.find(node_->output(k));
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

    // A flattened NHWC feature map in ONNX's order: [N, H W C] -> [N, H, W, C] -> NCHW
    // -> [N, C H W].
    value_info unflattened(value_info const& v)
    {
        auto [c, h, w] = *v.flattened_chw;
        value_info r = v;
        r.flattened_chw.reset();
        if (auto it = unflattened_.find(v.node); it != unflattened_.end()) {
            r.node = it->second;
            return r;
        }
        nn::reshape_layer to4;
        to4.shape = extents_of({v.shape[0], h, w, c});
        const int a = add_layer(to4, {v.node}, "/layout");
        const int b = add_layer(nn::transpose_layer{{0, 3, 1, 2}}, {a}, "/layout");
        nn::reshape_layer to2;
        to2.shape = extents_of(v.shape);
        r.node = add_layer(to2, {b}, "/layout");
        unflattened_[v.node] = r.node;
        return r;
    }

    // Input k with its held-back zero padding applied (a pad layer, once).
    value_info const& padded(int k)
    {
        auto& v = values_.at(input_name(k));
        const auto p = *v.zero_pads;
        nn::pad_layer l;
        l.begins.assign(v.rank(), 0);
        l.ends.assign(v.rank(), 0);
        l.begins[v.physical_axis(2)] = p[0], l.ends[v.physical_axis(2)] = p[1];
        l.begins[v.physical_axis(3)] = p[2], l.ends[v.physical_axis(3)] = p[3];
        v.node = add_layer(std::move(l), {v.node}, "/pad");
        v.shape[2] += p[0] + p[1];
        v.shape[3] += p[2] + p[3];
        v.zero_pads.reset();
        reads_.push_back(input_name(k));
        return v;
    }

    std::string source_;
    int opset_;
    nn::network net_;
    // mutable: a float32 initializer is widened to double when first read as a constant
    mutable std::map<std::string, constant> constants_;
    std::map<std::string, value_info> values_;
    std::map<std::string, int> uses_;
    std::map<std::string, std::vector<::onnx::NodeProto const*>> consumers_;
    std::set<std::string> taken_;
    std::vector<std::string> reads_; // the values the node being converted read as layer inputs
    std::vector<read> readers_;
    std::map<int, linear_quantization> quantized_;
    std::optional<linear_quantization> input_codes_;
    std::map<std::tuple<int, std::vector<std::size_t>, std::vector<std::size_t>>, int> layouts_;
    std::map<int, int> unflattened_;
    ::onnx::NodeProto const* node_ = nullptr;
    std::size_t position_ = 0;
};

inline std::int64_t normalized_axis(importer const& im, std::int64_t axis, std::size_t rank)
{
    const auto r = std::int64_t(rank);
    if (axis < -r || axis >= r)
        im.malformed("axis " + std::to_string(axis) + " is outside a tensor of rank " + std::to_string(rank));
    return axis < 0 ? axis + r : axis;
}

} // namespace detail
} // namespace tensorquant::inline TENSORQUANT_ABI::onnx
