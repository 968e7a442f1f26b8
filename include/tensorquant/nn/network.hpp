// Networks of reference layers with TensorFlow-style scoped names, run with the three
// quantization maps of TensorQuant:
// - weights: applied to a layer's parameters before it runs;
// - intrinsic: every arithmetic step of the layer rounds (a fixed-point format);
// - extrinsic: the layer computes in float, its output is quantized.
// Layers are reached through the interface of nn/layers/layer.hpp only. Stochastic
// quantizers draw their thresholds as core/stream.hpp lays out.
#pragma once

#include "../config.hpp"

#include "../apply.hpp"
#include "../core/stream.hpp"
#include "checkpoint.hpp"
#include "graph.hpp"
#include "instrumentation.hpp"
#include "layers/list.hpp"
#include "quantization.hpp"
#include "scope.hpp"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

class network
{
public:
    explicit network(std::string scope) : scope_(std::move(scope)) {}

    std::string const& scope() const noexcept { return scope_; }
    std::vector<network_node> const& nodes() const noexcept { return nodes_; }

    // Adds scope/local_name reading the given nodes (default: the previous node, or the
    // network input for the first). Returns the node's index.
    int add(std::string const& local_name, layer op, std::vector<int> inputs = {})
    {
        const std::string name = scope_ + "/" + local_name;
        if (find(name) >= 0) throw config_error("network '" + scope_ + "': layer name '" + name + "' is used twice");
        if (inputs.empty()) inputs.push_back(int(nodes_.size()) - 1);
        for (int i : inputs)
            if (i < -1 || i >= int(nodes_.size()))
                throw config_error("network '" + scope_ + "': layer '" + name + "' reads node " + std::to_string(i) +
                                   ", which does not exist yet");
        nodes_.push_back({name, std::move(op), std::move(inputs)});
        return int(nodes_.size()) - 1;
    }

    int find(std::string_view name) const noexcept
    {
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            if (nodes_[i].name == name) return int(i);
        return -1;
    }
    layer& layer_at(std::string_view name)
    {
        const int i = find(name);
        if (i < 0) throw config_error("network '" + scope_ + "' has no layer '" + std::string(name) + "'");
        return nodes_[std::size_t(i)].op;
    }

    std::vector<parameter_ref> parameters(std::string_view layer_name) { return parameters_of(layer_at(layer_name)); }

    // ---- quantization -----------------------------------------------------------------

    // Assigns the three maps. A scope that matches no layer, an intrinsic quantizer that
    // is not a fixed-point format, or one a layer cannot run is a config_error naming it;
    // the maps change only when all is well.
    void set_quantization(scope_map intrinsic, scope_map extrinsic, scope_map weights)
    {
        quantization_maps m{std::move(intrinsic), std::move(extrinsic), std::move(weights)};
        m.check(nodes_, scope_);
        maps_ = std::move(m);
    }

    layer_quantization quantization_of(std::string_view layer_name) const { return maps_.of(layer_name); }

    // One line per layer: which quantizer each map gives it, and from which scope.
    std::string quantization_report() const { return maps_.report(nodes_); }

    // Per-tensor statistics of the next forward passes (off by default; costs nothing then).
    void set_instrumentation(bool on) noexcept { instrument_ = on; }
    std::vector<tensor_stats> const& stats() const noexcept { return stats_; }
    void clear_stats() noexcept { stats_.clear(); }

    // ---- inference --------------------------------------------------------------------

    // The network's output for x. step salts the streams of stochastic intrinsic and
    // extrinsic quantizers (core/stream.hpp) so that batches evaluated as separate steps
    // draw independent thresholds; weights keep step 0 at inference.
    tensor<float> forward(tensor<float> const& x, std::uint64_t step = 0) { return forward_from(0, x, {}, step); }

    // The outputs of the nodes before first that node first or a later one reads (the
    // others are left empty): the part of a pass that stays the same while only nodes
    // from first on change their quantization.
    std::vector<tensor<float>> prefix_outputs(tensor<float> const& x, std::size_t first, std::uint64_t step = 0)
    {
        first = std::min(first, nodes_.size());
        std::vector<bool> keep(nodes_.size(), false);
        for (std::size_t i = first; i < nodes_.size(); ++i)
            for (int j : nodes_[i].inputs)
                if (j >= 0 && std::size_t(j) < first) keep[std::size_t(j)] = true;
        std::vector<tensor<float>> outs(nodes_.size(), kernels::empty_tensor());
        const auto last_use = last_uses(0, first);
        for (std::size_t i = 0; i < first; ++i) {
            std::vector<tensor<float> const*> in;
            for (int j : nodes_[i].inputs) in.push_back(j < 0 ? &x : &outs[std::size_t(j)]);
            outs[i] = run(i, in, step);
            for (int j : nodes_[i].inputs)
                if (j >= 0 && last_use[std::size_t(j)] == i && !keep[std::size_t(j)])
                    outs[std::size_t(j)] = kernels::empty_tensor();
        }
        for (std::size_t i = 0; i < first; ++i)
            if (!keep[i]) outs[i] = kernels::empty_tensor();
        return outs;
    }

    // The output of the pass that runs nodes [first, end) on the outputs prefix_outputs
    // gave for the same x: the same as forward(x, step) when the nodes before first are
    // quantized as they were then.
    tensor<float> forward_from(std::size_t first, tensor<float> const& x, std::vector<tensor<float>> const& prefix,
                               std::uint64_t step = 0)
    {
        if (nodes_.empty()) return x;
        first = std::min(first, nodes_.size() - 1);
        std::vector<tensor<float>> outs(nodes_.size(), kernels::empty_tensor());
        const auto last_use = last_uses(first, nodes_.size());
        for (std::size_t i = first; i < nodes_.size(); ++i) {
            std::vector<tensor<float> const*> in;
            for (int j : nodes_[i].inputs) {
                if (j < 0) {
                    in.push_back(&x);
                } else if (std::size_t(j) < first) {
                    if (std::size_t(j) >= prefix.size() || prefix[std::size_t(j)].size() == 0)
                        throw config_error("network '" + scope_ + "': forward_from(" + std::to_string(first) +
                                           ") needs the output of '" + nodes_[std::size_t(j)].name +
                                           "' from prefix_outputs");
                    in.push_back(&prefix[std::size_t(j)]);
                } else {
                    in.push_back(&outs[std::size_t(j)]);
                }
            }
            outs[i] = run(i, in, step);
            if (observer_) observer_(i, outs[i]);
            for (int j : nodes_[i].inputs)
                if (j >= 0 && std::size_t(j) >= first && last_use[std::size_t(j)] == i &&
                    std::size_t(j) + 1 != nodes_.size())
                    outs[std::size_t(j)] = kernels::empty_tensor();
        }
        return std::move(outs.back());
    }

    // Called with every node's output (after its extrinsic quantizer) in forward and
    // forward_from; for measurements such as sparsity. Copies of the network share it.
    void set_output_observer(std::function<void(std::size_t, tensor<float> const&)> f) { observer_ = std::move(f); }

    // Index of the largest output per sample.
    std::vector<int> classify(tensor<float> const& x)
    {
        const auto y = forward(x);
        const std::size_t n = y.shape(0), k = y.size() / std::max<std::size_t>(n, 1);
        std::vector<int> labels(n);
        for (std::size_t r = 0; r < n; ++r)
            labels[r] = int(std::max_element(y.data() + r * k, y.data() + (r + 1) * k) - (y.data() + r * k));
        return labels;
    }

    // Node i's output for the given inputs under the layer's weight and intrinsic
    // quantizers, without the extrinsic one (quantization-aware training builds the rest
    // on its tape). The node must have an intrinsic quantizer. step places stochastic
    // thresholds (core/stream.hpp).
    tensor<float> intrinsic_output(std::size_t i, std::vector<tensor<float> const*> const& in, std::uint64_t step = 0)
    {
        const auto q = quantization_of(nodes_.at(i).name);
        if (!q.intrinsic) throw config_error("layer '" + nodes_[i].name + "' has no intrinsic quantizer");
        run_context ctx{*this, i, in, q, step};
        return run_intrinsic(ctx, *q.intrinsic, step);
    }

    // ---- parameters as .npy files: dir/<layer name>/<parameter>.npy ------------------

    void save(std::filesystem::path const& dir) { save_parameters(nodes_, dir); }
    // All or nothing: a failed load leaves the network as it was.
    void load(std::filesystem::path const& dir) { load_parameters(nodes_, dir); }

private:
    // What a layer sees when it runs: its inputs, and its parameters after the weights map.
    struct run_context
    {
        network& net;
        std::size_t node;
        std::vector<tensor<float> const*> const& in;
        layer_quantization const& q;
        std::uint64_t step = 0;

        tensor<float> const& input(std::size_t k) const { return *in.at(k); }
        std::size_t inputs() const noexcept { return in.size(); }
        template <class Tensor>
        Tensor param(std::size_t slot, Tensor const& t) const
        {
            if (!q.weights || t.size() == 0) return t;
            Tensor c = t;
            net.quantize_tensor(c, *q.weights, node, stream_offset(node, slot, stream_role::weights, step),
                                net.parameter_name(node, slot), true);
            return c;
        }
    };

    std::string parameter_name(std::size_t node, std::size_t slot)
    {
        return parameters_of(nodes_[node].op).at(slot).name;
    }

    fixed_point_rt intrinsic_for(std::size_t node, scope_entry const& e, std::uint64_t step = 0) const
    {
        const auto& f = std::get<fixed_point_rt>(e.quantizer.get());
        return fixed_point_rt(f.format(), f.rounding(), f.overflow(), intrinsic_key(f.key(), node, step));
    }

    // The layer under its intrinsic entry: a datapath where the layer multiplies and
    // accumulates; else the single format, or a datapath's output format when that is
    // fixed point; else (a datapath with another output) the float path rounded to the
    // output format. Keys are the node's.
    tensor<float> run_intrinsic(run_context& ctx, scope_entry const& e, std::uint64_t step) const
    {
        auto keyed = [&] { return e.path->rekeyed([&](rng_key k) { return intrinsic_key(k, ctx.node, step); }); };
        return std::visit(
            [&](auto const& l) {
                if constexpr (requires { l.forward_datapath(ctx, *e.path); }) {
                    if (e.path) return l.forward_datapath(ctx, keyed());
                }
                if (e.path && !std::holds_alternative<fixed_point_rt>(e.quantizer.get())) {
                    auto y = l.forward(ctx);
                    const datapath d = keyed();
                    if (auto const& out = d[datapath_role::output]) {
                        apply_options o;
                        o.index_offset = kernels::datapath_output_offset;
                        quantize_inplace(*out, std::span<float>(y.data(), y.size()), o);
                    }
                    return y;
                }
                return l.forward_intrinsic(ctx, intrinsic_for(ctx.node, e, step));
            },
            nodes_[ctx.node].op);
    }

    template <class Tensor>
    void quantize_tensor(Tensor& t, scope_entry const& e, std::size_t node, std::uint64_t offset,
                         std::string const& what, bool parameter = false)
    {
        apply_options opt;
        opt.index_offset = offset;
        set_block_lines(opt, t.shape(), parameter); // block formats: channels, or the reduction axis
        if (!instrument_ || !recording_) {
            quantize_inplace(e.quantizer, std::span<float>(t.data(), t.size()), opt);
            return;
        }
        const Tensor before = t;
        quantize_inplace(e.quantizer, std::span<float>(t.data(), t.size()), opt);
        stats_.push_back(measure(nodes_[node].name, what, before.data(), t.data(), t.size(), e.quantizer));
    }

    // For each node in [first, last), the last node in that range that reads it.
    std::vector<std::size_t> last_uses(std::size_t first, std::size_t last) const
    {
        std::vector<std::size_t> use(nodes_.size(), 0);
        for (std::size_t i = first; i < last; ++i)
            for (int j : nodes_[i].inputs)
                if (j >= 0) use[std::size_t(j)] = i;
        return use;
    }

    tensor<float> run(std::size_t i, std::vector<tensor<float> const*> const& in, std::uint64_t step)
    {
        auto const& node = nodes_[i];
        const auto q = quantization_of(node.name);
        run_context ctx{*this, i, in, q};
        auto float_path = [&] { return std::visit([&](auto const& l) { return l.forward(ctx); }, node.op); };
        tensor<float> y;
        if (q.intrinsic) {
            y = run_intrinsic(ctx, *q.intrinsic, step);
            if (instrument_) {
                struct resume
                {
                    bool& flag;
                    ~resume() { flag = true; }
                } guard{recording_};
                recording_ = false; // the reference pass quantizes the same weights again
                const auto ref = float_path();
                stats_.push_back(
                    measure(node.name, "output (intrinsic)", ref.data(), y.data(), y.size(), q.intrinsic->quantizer));
            }
        } else {
            y = float_path();
        }
        if (q.extrinsic)
            quantize_tensor(y, *q.extrinsic, i, stream_offset(i, 0, stream_role::extrinsic, step),
                            "output (extrinsic)");
        return y;
    }

    std::string scope_;
    std::vector<network_node> nodes_;
    quantization_maps maps_;
    bool instrument_ = false;
    bool recording_ = true;
    std::vector<tensor_stats> stats_;
    std::function<void(std::size_t, tensor<float> const&)> observer_;
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
