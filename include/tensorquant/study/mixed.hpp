// Experiment 7, beyond TensorQuant (which names the bottleneck only): a word size for each
// layer's weights and each layer's output under a budget of bits, by greedy search.
//
// Tensors: the parameters of every layer with weights (weights map, all its parameters)
// and every layer's output (extrinsic map). Each gets fixed point (nearest, W, F) with F
// = W - 1 - ceil(log2 max|x|) from its float range (weights, or outputs on the
// evaluator's images), so nothing saturates. Bits: W times the elements (parameters, or
// outputs per image); the average is over all of them.
// Search: every tensor starts at start_width; at each step every tensor above min_width
// is tried step bits narrower, its accuracy measured (never estimated), and the one
// losing least relative accuracy per bit saved is narrowed (ties: the first in network
// order). It stops at min_width everywhere, when the average reaches the budget, or when
// the relative accuracy falls below stop_below. Every step is a record; so is every
// uniform W, for the comparison.
#pragma once

#include "../config.hpp"

#include "experiments.hpp"

#include <cmath>
#include <sstream>

namespace tensorquant::inline TENSORQUANT_ABI::study {

struct mixed_options
{
    int start_width = 12, min_width = 2, step = 2;
    double budget_average_bits = 0; // stop once the average is at most this (0: no budget)
    double stop_below = 0.9;        // stop once the relative accuracy is below this
    std::vector<int> uniform_widths{2, 4, 6, 8, 10, 12};
};

struct mixed_tensor
{
    std::string layer;
    bool weights = false; // else the layer's output
    double elements = 0;  // parameters, or outputs per image
    int integer_bits = 0; // floor(log2 max|x|) + 1
};

namespace detail {

inline int integer_bits_of(double max_abs)
{
    return max_abs > 0 ? int(std::floor(std::log2(max_abs))) + 1 : 0; // max_abs < 2^bits
}

inline std::vector<mixed_tensor> mixed_tensors(evaluator& eval)
{
    auto net = eval.network();
    std::vector<mixed_tensor> out;
    std::vector<std::vector<double>> max_out(eval.blocks().size(), std::vector<double>(net.nodes().size(), 0));
    std::vector<double> per_image(net.nodes().size(), 0);
    std::vector<std::vector<double>> count(eval.blocks().size(), std::vector<double>(net.nodes().size(), 0));
    eval.observe(net, {}, [&](std::size_t b, std::size_t node, nn::tensor<float> const& y) {
        for (float v : y) max_out[b][node] = std::max(max_out[b][node], double(std::fabs(v)));
        count[b][node] = double(y.size()) / double(std::max<std::size_t>(y.shape(0), 1));
    });
    for (std::size_t i = 0; i < net.nodes().size(); ++i) {
        auto const& n = net.nodes()[i];
        const auto params = net.parameters(n.name);
        bool has_weights = false;
        double elements = 0, max_abs = 0;
        for (auto const& p : params) {
            has_weights = has_weights || p.name == "weights";
            elements += double(p.size());
            for (std::size_t k = 0; k < p.size(); ++k) max_abs = std::max(max_abs, double(std::fabs(p.data[k])));
        }
        if (has_weights) out.push_back({n.name, true, elements, integer_bits_of(max_abs)});
        double m = 0;
        for (auto const& blk : max_out) m = std::max(m, blk[i]);
        out.push_back({n.name, false, count[0][i], integer_bits_of(m)});
    }
    return out;
}

inline std::string mixed_spec(mixed_tensor const& t, int w) { return fixed_spec("nearest", w, w - 1 - t.integer_bits); }

inline quantization mixed_maps(std::vector<mixed_tensor> const& ts, std::vector<int> const& widths)
{
    quantization q;
    for (std::size_t i = 0; i < ts.size(); ++i)
        (ts[i].weights ? q.weights : q.extrinsic).set(ts[i].layer, mixed_spec(ts[i], widths[i]));
    return q;
}

inline double average_bits(std::vector<mixed_tensor> const& ts, std::vector<int> const& widths)
{
    double bits = 0, elements = 0;
    for (std::size_t i = 0; i < ts.size(); ++i) bits += widths[i] * ts[i].elements, elements += ts[i].elements;
    return elements > 0 ? bits / elements : 0;
}

inline double weight_bits(std::vector<mixed_tensor> const& ts, std::vector<int> const& widths)
{
    double bits = 0;
    for (std::size_t i = 0; i < ts.size(); ++i)
        if (ts[i].weights) bits += widths[i] * ts[i].elements;
    return bits;
}

inline std::string assignment(std::vector<int> const& widths)
{
    std::string s;
    for (int w : widths) {
        if (!s.empty()) s += ',';
        s += std::to_string(w);
    }
    return s;
}

inline nlohmann::ordered_json assignment_json(std::vector<mixed_tensor> const& ts, std::vector<int> const& widths)
{
    const auto q = mixed_maps(ts, widths);
    nlohmann::ordered_json j;
    j["average_bits"] = average_bits(ts, widths);
    j["weight_bits"] = weight_bits(ts, widths);
    nlohmann::ordered_json w = nlohmann::ordered_json::object(), e = nlohmann::ordered_json::object();
    for (auto const& x : q.weights.entries()) w[x.scope] = x.spec;
    for (auto const& x : q.extrinsic.entries()) e[x.scope] = x.spec;
    j["weights"] = w;
    j["extrinsic"] = e;
    return j;
}

} // namespace detail

// Not sharded: the search is sequential. Its evaluations are records, so an interrupted
// run replays the search from its file and measures only what is missing.
inline std::vector<record> mixed_precision(context& ctx, mixed_options const& o)
{
    if (o.step <= 0 || o.min_width < 1 || o.start_width < o.min_width)
        throw config_error("mixed: expected 1 <= min width <= start width and a positive step");
    std::vector<record> out;
    if (ctx.part.index != 1) return out; // the first shard runs it
    const auto ts = detail::mixed_tensors(ctx.eval);
    auto measure = [&](std::vector<int> const& widths, std::string const& kind, int w) -> record {
        record id = detail::identity(ctx, "mixed", "", "weights+extrinsic", "nearest", w, 0,
                                     kind + ":" + detail::assignment(widths));
        if (auto const* existing = ctx.out.find(id.key())) return *existing;
        detail::fill(id, ctx.eval.evaluate(detail::mixed_maps(ts, widths)));
        id.extra = detail::assignment_json(ts, widths);
        id.extra["kind"] = kind;
        ctx.out.add(id);
        return id;
    };
    std::size_t done = 0;
    const std::size_t total = o.uniform_widths.size() + ts.size() * std::size_t((o.start_width - o.min_width) / o.step);
    auto tick = [&](std::string const& what) {
        if (ctx.progress) ctx.progress("mixed", done++, total, what);
    };
    for (int w : o.uniform_widths) {
        tick("uniform " + std::to_string(w));
        out.push_back(measure(std::vector<int>(ts.size(), w), "uniform", w));
    }
    std::vector<int> widths(ts.size(), o.start_width);
    record current = measure(widths, "step", 0);
    out.push_back(current);
    while (true) {
        if (o.budget_average_bits > 0 && detail::average_bits(ts, widths) <= o.budget_average_bits) break;
        if (current.relative_accuracy < o.stop_below) break;
        int best = -1;
        double best_cost = std::numeric_limits<double>::infinity();
        record best_record;
        for (std::size_t i = 0; i < ts.size(); ++i) {
            if (widths[i] - o.step < o.min_width) continue;
            auto trial = widths;
            trial[i] -= o.step;
            const record r = measure(trial, "candidate", 0);
            const double saved = o.step * ts[i].elements;
            const double cost = (current.relative_accuracy - r.relative_accuracy) / saved;
            if (cost < best_cost) best = int(i), best_cost = cost, best_record = r;
        }
        if (best < 0) break;
        tick(ts[std::size_t(best)].layer + (ts[std::size_t(best)].weights ? " weights" : " output"));
        widths[std::size_t(best)] -= o.step;
        record step = detail::identity(ctx, "mixed", "", "weights+extrinsic", "nearest", 0, 0,
                                       "step:" + detail::assignment(widths));
        if (auto const* existing = ctx.out.find(step.key())) {
            step = *existing;
        } else { // the candidate's measurement, as a step
            step = best_record;
            step.point = "step:" + detail::assignment(widths);
            step.extra["kind"] = "step";
            step.extra["narrowed"] =
                ts[std::size_t(best)].layer + (ts[std::size_t(best)].weights ? " weights" : " output");
            ctx.out.add(step);
        }
        current = step;
        out.push_back(current);
    }
    if (ctx.progress) ctx.progress("mixed", total, total, "");
    return out;
}

} // namespace tensorquant::inline TENSORQUANT_ABI::study
