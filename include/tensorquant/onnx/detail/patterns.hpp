// Subgraphs exporters write for one operation, recognised before import and replaced by
// that operation, so that it becomes one layer (one scope, one quantization point):
// - layer normalization before opset 17: ReduceMean, Sub, Pow (or Mul) 2, ReduceMean,
//   Add epsilon, Sqrt, Div, then optionally Mul by a scale and Add of a bias;
// - GELU before opset 20: x / sqrt(2) (or x 0.7071...), Erf, Add 1, then the product with x
//   and with 1/2 in either order.
// The intermediate values must be read by the pattern only.
#pragma once

#include "../../config.hpp"

#include "tensor.hpp"

#include <onnx/onnx_pb.h>

#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail {

class pattern_matcher
{
public:
    explicit pattern_matcher(::onnx::GraphProto const& g) : g_(g)
    {
        for (auto const& t : g.initializer()) literal_tensors_[t.name()] = &t;
        for (int i = 0; i < g.node_size(); ++i) {
            auto const& n = g.node(i);
            for (auto const& o : n.output()) producer_[o] = i;
            for (auto const& in : n.input()) ++readers_[in];
            if (n.op_type() == "Constant" && n.attribute_size() == 1 && n.attribute(0).name() == "value")
                literal_tensors_[n.output(0)] = &n.attribute(0).t();
        }
        for (auto const& o : g.output()) readers_[o.name()] += 2; // never an intermediate
    }

    // The graph's nodes with the patterns replaced (in the order of the graph, each
    // replacement where its last node was).
    std::vector<::onnx::NodeProto> nodes()
    {
        std::map<int, ::onnx::NodeProto> replacement; // at the pattern's last node
        for (int i = 0; i < g_.node_size(); ++i) {
            if (absorbed_.count(i)) continue;
            auto const& n = g_.node(i);
            if (n.op_type() == "ReduceMean") match_layer_norm(i, replacement);
            if (n.op_type() == "Erf") match_gelu(i, replacement);
        }
        std::vector<::onnx::NodeProto> r;
        for (int i = 0; i < g_.node_size(); ++i) {
            if (auto it = replacement.find(i); it != replacement.end())
                r.push_back(it->second);
            else if (!absorbed_.count(i))
                r.push_back(g_.node(i));
        }
        return r;
    }

private:
    // The one node that reads `value` (and nothing else does), with the given operator.
    std::optional<int> sole_reader(std::string const& value, std::string_view op) const
    {
        auto rc = readers_.find(value);
        if (rc == readers_.end() || rc->second != 1) return std::nullopt;
        for (int i = 0; i < g_.node_size(); ++i) {
            auto const& n = g_.node(i);
            for (auto const& in : n.input())
                if (in == value) return n.op_type() == op && !absorbed_.count(i) ? std::optional<int>(i) : std::nullopt;
        }
        return std::nullopt;
    }
    std::optional<double> scalar(std::string const& name) const
    {
        auto it = literal_tensors_.find(name);
        if (it == literal_tensors_.end()) return std::nullopt;
        try {
            const auto c = to_constant(*it->second, name);
            if (c.size() != 1) return std::nullopt;
            return c.values[0];
        } catch (...) {
            return std::nullopt;
        }
    }
    bool literal(std::string const& name) const { return literal_tensors_.count(name) != 0; }
    int reads(std::string const& value) const
    {
        auto it = readers_.find(value);
        return it == readers_.end() ? 0 : it->second;
    }
    // The other input of a two-input node, given one of them.
    static std::optional<std::string> other(::onnx::NodeProto const& n, std::string const& one)
    {
        if (n.input_size() != 2) return std::nullopt;
        if (n.input(0) == one) return n.input(1);
        if (n.input(1) == one) return n.input(0);
        return std::nullopt;
    }
    std::vector<std::int64_t> ints(::onnx::NodeProto const& n, std::string_view name) const
    {
        for (auto const& a : n.attribute())
            if (a.name() == name) return {a.ints().begin(), a.ints().end()};
        return {};
    }
    std::int64_t int_or(::onnx::NodeProto const& n, std::string_view name, std::int64_t v) const
    {
        for (auto const& a : n.attribute())
            if (a.name() == name) return a.i();
        return v;
    }

    void match_layer_norm(int i0, std::map<int, ::onnx::NodeProto>& replacement)
    {
        auto const& m0 = g_.node(i0);
        if (m0.input_size() != 1 || int_or(m0, "keepdims", 1) != 1) return;
        const auto axes = ints(m0, "axes");
        if (axes.empty()) return;
        const std::string x = m0.input(0);
        const auto i1 = sole_reader(m0.output(0), "Sub");
        if (!i1 || g_.node(*i1).input(0) != x || g_.node(*i1).input(1) != m0.output(0)) return;
        const std::string d = g_.node(*i1).output(0);
        // d is read twice: by the square and by the division
        if (reads(d) != 2) return;
        int sq = -1, dv = -1;
        for (int i = 0; i < g_.node_size(); ++i)
            for (auto const& in : g_.node(i).input())
                if (in == d) {
                    auto const& op = g_.node(i).op_type();
                    if ((op == "Pow" && g_.node(i).input(0) == d && scalar(g_.node(i).input(1)) == 2.0) ||
                        (op == "Mul" && g_.node(i).input(0) == d && g_.node(i).input(1) == d))
                        sq = i;
                    else if (op == "Div" && g_.node(i).input(0) == d)
                        dv = i;
                }
        if (sq < 0 || dv < 0) return;
        const auto i3 = sole_reader(g_.node(sq).output(0), "ReduceMean");
        if (!i3 || ints(g_.node(*i3), "axes") != axes || int_or(g_.node(*i3), "keepdims", 1) != 1) return;
        const auto i4 = sole_reader(g_.node(*i3).output(0), "Add");
        if (!i4) return;
        const auto eps_name = other(g_.node(*i4), g_.node(*i3).output(0));
        if (!eps_name) return;
        const auto eps = scalar(*eps_name);
        if (!eps) return;
        const auto i5 = sole_reader(g_.node(*i4).output(0), "Sqrt");
        if (!i5 || g_.node(dv).input(1) != g_.node(*i5).output(0) || reads(g_.node(*i5).output(0)) != 1) return;
        std::vector<int> nodes{i0, *i1, sq, *i3, *i4, *i5, dv};
        std::string out = g_.node(dv).output(0), scale, bias;
        if (auto i7 = sole_reader(out, "Mul")) {
            if (auto s = other(g_.node(*i7), out); s && literal(*s)) {
                scale = *s, out = g_.node(*i7).output(0), nodes.push_back(*i7);
                if (auto i8 = sole_reader(out, "Add"))
                    if (auto b = other(g_.node(*i8), out); b && literal(*b))
                        bias = *b, out = g_.node(*i8).output(0), nodes.push_back(*i8);
            }
        }
        ::onnx::NodeProto ln;
        ln.set_op_type("LayerNormalization");
        ln.set_name(g_.node(nodes.back()).name());
        ln.add_input(x);
        ln.add_input(scale);
        ln.add_input(bias);
        ln.add_output(out);
        auto* a = ln.add_attribute();
        a->set_name("epsilon");
        a->set_type(::onnx::AttributeProto::FLOAT);
        a->set_f(float(*eps));
        auto* ax = ln.add_attribute(); // checked against the trailing axes at import
        ax->set_name("axes");
        ax->set_type(::onnx::AttributeProto::INTS);
        for (auto v : axes) ax->add_ints(v);
        place(nodes, std::move(ln), replacement);
    }

    void match_gelu(int ie, std::map<int, ::onnx::NodeProto>& replacement)
    {
        auto const& e = g_.node(ie);
        if (e.input_size() != 1) return;
        auto pi = producer_.find(e.input(0));
        if (pi == producer_.end() || absorbed_.count(pi->second)) return;
        auto const& scaled = g_.node(pi->second);
        if (reads(e.input(0)) != 1 || scaled.input_size() != 2) return;
        std::string x;
        if (scaled.op_type() == "Div" && scalar(scaled.input(1)) &&
            std::fabs(*scalar(scaled.input(1)) - 1.4142135623730951) < 1e-6)
            x = scaled.input(0);
        else if (scaled.op_type() == "Mul")
            for (int k = 0; k < 2; ++k)
                if (auto c = scalar(scaled.input(1 - k)); c && std::fabs(*c - 0.7071067811865476) < 1e-6)
                    x = scaled.input(k);
        if (x.empty()) return;
        const auto ia = sole_reader(e.output(0), "Add");
        if (!ia) return;
        const auto one = other(g_.node(*ia), e.output(0));
        if (!one || scalar(*one) != 1.0) return;
        const auto im = sole_reader(g_.node(*ia).output(0), "Mul");
        if (!im) return;
        const auto with = other(g_.node(*im), g_.node(*ia).output(0));
        if (!with) return;
        std::vector<int> nodes{pi->second, ie, *ia, *im};
        std::string out;
        if (*with == x) { // (x (1 + erf)) 0.5
            const auto ih = sole_reader(g_.node(*im).output(0), "Mul");
            if (!ih) return;
            const auto half = other(g_.node(*ih), g_.node(*im).output(0));
            if (!half || scalar(*half) != 0.5) return;
            nodes.push_back(*ih);
            out = g_.node(*ih).output(0);
        } else { // (x 0.5) (1 + erf)
            auto ph = producer_.find(*with);
            if (ph == producer_.end() || absorbed_.count(ph->second) || reads(*with) != 1) return;
            auto const& h = g_.node(ph->second);
            const auto half = h.op_type() == "Mul" ? other(h, x) : std::nullopt;
            if (!half || scalar(*half) != 0.5) return;
            nodes.push_back(ph->second);
            out = g_.node(*im).output(0);
        }
        ::onnx::NodeProto gelu;
        gelu.set_op_type("Gelu");
        gelu.set_name(g_.node(*im).name());
        gelu.add_input(x);
        gelu.add_output(out);
        place(nodes, std::move(gelu), replacement);
    }

    void place(std::vector<int> const& nodes, ::onnx::NodeProto n, std::map<int, ::onnx::NodeProto>& replacement)
    {
        int last = nodes[0];
        for (int i : nodes) {
            absorbed_.insert(i);
            last = std::max(last, i);
        }
        replacement[last] = std::move(n);
    }

    ::onnx::GraphProto const& g_;
    std::map<std::string, ::onnx::TensorProto const*> literal_tensors_;
    std::map<std::string, int> producer_;
    std::map<std::string, int> readers_;
    std::set<int> absorbed_;
};

} // namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail
