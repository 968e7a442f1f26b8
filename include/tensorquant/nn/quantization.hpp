// TensorQuant's three maps assigned to a network's layers, and their checks: every scope
// must match a layer, and an intrinsic format must be one the layer can run.
#pragma once

#include "../config.hpp"
#include "../core/error.hpp"
#include "graph.hpp"
#include "scope.hpp"

#include <sstream>
#include <string>
#include <variant>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

struct layer_quantization
{
    scope_entry const* intrinsic = nullptr;
    scope_entry const* extrinsic = nullptr;
    scope_entry const* weights = nullptr;
};

struct quantization_maps
{
    scope_map intrinsic, extrinsic, weights;

    // An intrinsic entry of "none" (the identity) leaves the layer on its float path: a layer
    // inside a scope the map emulates that has no intrinsic form, or should not.
    layer_quantization of(std::string_view layer) const
    {
        auto const* in = intrinsic.match(layer);
        if (in && !in->path && std::holds_alternative<identity>(in->quantizer.get())) in = nullptr;
        return {in, extrinsic.match(layer), weights.match(layer)};
    }

    // A config_error naming the first scope that matches no node, or the first layer whose
    // intrinsic format it cannot run (network names the graph in messages).
    void check(std::vector<network_node> const& nodes, std::string const& network) const
    {
        auto check_keys = [&](scope_map const& m, char const* kind) {
            for (auto const& e : m.entries()) {
                bool used = false;
                for (auto const& n : nodes) used = used || scope_matches(e.scope, n.name);
                if (!used)
                    throw config_error(std::string(kind) + " map: scope '" + e.scope +
                                       "' matches no layer of network '" + network + "'");
            }
        };
        check_keys(intrinsic, "intrinsic");
        check_keys(extrinsic, "extrinsic");
        check_keys(weights, "weights");
        auto no_datapath = [](scope_map const& m, char const* kind) {
            for (auto const& e : m.entries())
                if (e.path)
                    throw config_error(std::string(kind) + " map: scope '" + e.scope +
                                       "' gives a datapath, which only the intrinsic map takes");
        };
        no_datapath(extrinsic, "extrinsic");
        no_datapath(weights, "weights");
        for (auto const& n : nodes) {
            auto const* e = of(n.name).intrinsic;
            if (!e) continue;
            auto fail = [&](std::string const& why) {
                throw config_error("intrinsic map: layer '" + n.name + "' gets '" + e->spec + "' from scope '" +
                                   e->scope + "', but " + why);
            };
            if (e->path) {
                const bool multiplies = std::visit(
                    [&](auto const& l) {
                        if constexpr (requires { l.datapath_problem(*e->path); }) {
                            const std::string problem = l.datapath_problem(*e->path);
                            if (!problem.empty()) fail(problem);
                            return true;
                        } else {
                            return false;
                        }
                    },
                    n.op);
                if (multiplies) continue;
                // other layers: intrinsic in a fixed-point output format, else float then
                // rounded to the output format
                if (!std::holds_alternative<fixed_point_rt>(e->quantizer.get())) continue;
            }
            auto const* f = std::get_if<fixed_point_rt>(&e->quantizer.get());
            if (!f && is_block_format(e->quantizer))
                fail("a block format runs intrinsic as a block dot product: give a datapath, {\"input\": \"" + e->spec +
                     "\", \"weights\": \"" + e->spec + "\"}");
            if (!f) fail("intrinsic emulation needs a fixed-point quantizer");
            if (f->format().width > 24) fail("float activations hold at most 24-bit words exactly");
            const std::string problem = std::visit([&](auto const& l) { return l.intrinsic_problem(*f); }, n.op);
            if (!problem.empty()) fail(problem);
        }
    }

    // One line per layer: which quantizer each map gives it, and from which scope.
    std::string report(std::vector<network_node> const& nodes) const
    {
        std::ostringstream out;
        auto show = [](scope_entry const* e) { return e ? e->spec + " (from " + e->scope + ")" : std::string("-"); };
        for (auto const& n : nodes) {
            const auto q = of(n.name);
            out << n.name << ": intrinsic " << show(q.intrinsic) << ", extrinsic " << show(q.extrinsic) << ", weights "
                << show(q.weights) << "\n";
        }
        return out.str();
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
