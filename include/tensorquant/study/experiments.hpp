// The experiments of the TensorQuant papers, each a function that runs the points of its
// grid (those of the run's shard, and not already in its results file) and returns the
// records of all of them. docs/guide.md ("The study") says what each reproduces.
//
// Fixed point here is TensorQuant's (docs/reference.md §1.1): "rounding,W,F",
// saturating.
#pragma once

#include "../config.hpp"

#include "../train.hpp"
#include "evaluate.hpp"
#include "records.hpp"

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::study {

// How to train a network from scratch (gradients and sparsity) or further (TQT).
struct training_setup
{
    std::function<nn::network()> make; // a fresh network, the same every call
    data::labeled_images const* train_set = nullptr;
    int epochs = 2;
    unsigned threads = 0;
    std::uint64_t seed = 1;
    std::size_t batch_size = 64;
    float lr = 0.05f, momentum = 0.9f, weight_decay = 5e-4f;
};

// What every experiment shares: the network (by its name in the records), the evaluator
// on the images of the searches, where the records go, and the run's shard.
struct context
{
    // called before each point: (experiment, points done, points of this shard, key)
    using progress_fn = std::function<void(std::string const&, std::size_t, std::size_t, std::string const&)>;

    context(std::string network, evaluator& e, results& r, shard s = {}, std::uint64_t rng_seed = 1, progress_fn p = {})
        : network_name(std::move(network)), eval(e), out(r), part(s), seed(rng_seed), progress(std::move(p))
    {}

    std::string network_name;
    evaluator& eval;
    results& out;
    shard part;
    std::uint64_t seed;
    progress_fn progress;
};

// TensorQuant's fixed-point spelling.
inline std::string fixed_spec(std::string const& rounding, int w, int f)
{
    return rounding + "," + std::to_string(w) + "," + std::to_string(f);
}

namespace detail {

// One point of a grid: its record's identity, and how to measure it.
struct grid_point
{
    record identity;
    std::function<void(record&)> measure; // fills in the results
};

inline record identity(context const& ctx, std::string experiment, std::string subunit, std::string placement,
                       std::string rounding, int w, int f, std::string point = {})
{
    record r;
    r.experiment = std::move(experiment);
    r.network = ctx.network_name;
    r.subunit = std::move(subunit);
    r.placement = std::move(placement);
    r.rounding = std::move(rounding);
    r.width = w;
    r.frac = f;
    r.point = std::move(point);
    r.seed = ctx.seed;
    return r;
}

inline void fill(record& r, evaluation const& e)
{
    r.accuracy = e.accuracy;
    r.relative_accuracy = e.relative_accuracy;
    r.agreement = e.agreement;
    r.images = e.images;
    r.seconds = e.seconds;
}

// Runs the points this shard owns that the results do not hold yet, in order; returns
// the records of every point this shard owns.
inline std::vector<record> run_grid(context& ctx, std::string const& experiment, std::vector<grid_point> points)
{
    std::size_t owned = 0, done = 0;
    for (std::size_t i = 0; i < points.size(); ++i) owned += ctx.part.owns(i);
    std::vector<record> out;
    for (std::size_t i = 0; i < points.size(); ++i) {
        if (!ctx.part.owns(i)) continue;
        auto& p = points[i];
        const std::string key = p.identity.key();
        if (ctx.progress) ctx.progress(experiment, done, owned, key);
        if (auto const* existing = ctx.out.find(key)) {
            out.push_back(*existing);
        } else {
            record r = p.identity;
            p.measure(r);
            ctx.out.add(r);
            out.push_back(std::move(r));
        }
        ++done;
    }
    if (ctx.progress) ctx.progress(experiment, done, owned, "");
    return out;
}

// A record of the results (same point but a smaller W among widths) whose every rounding
// stayed in range: with saturating or wrapping words of the same F, every step of r's
// point computes the same value, so r's results are that record's.
inline record const* in_range_below(context const& ctx, record const& r, std::vector<int> const& widths)
{
    for (int w : widths) {
        if (w >= r.width || r.frac >= w) continue;
        record smaller = r;
        smaller.width = w;
        record const* found = ctx.out.find(smaller.key());
        if (found && found->extra.contains("in_range") && found->extra.at("in_range") == true) return found;
    }
    return nullptr;
}

// The layers of net that can run format f intrinsically, and those that cannot.
inline std::pair<std::vector<std::string>, std::vector<std::string>> intrinsic_capable(nn::network const& net,
                                                                                       fixed_point_rt const& f)
{
    std::vector<std::string> can, cannot;
    for (auto const& n : net.nodes()) {
        const std::string problem = std::visit([&](auto const& l) { return l.intrinsic_problem(f); }, n.op);
        (problem.empty() ? can : cannot).push_back(n.name);
    }
    return {can, cannot};
}

// A map giving spec to every node of net under scope; where the placement is intrinsic,
// the nodes that cannot run the format keep float (their names go to skipped).
inline quantization placed(nn::network const& net, std::string const& scope, std::string const& placement,
                           std::string const& spec, rng_key key, std::vector<std::string>* skipped = nullptr)
{
    quantization q;
    if (placement == "extrinsic") {
        q.extrinsic.set(scope, spec, key);
    } else if (placement == "weights") {
        q.weights.set(scope, spec, key);
    } else if (placement == "intrinsic") {
        const auto parsed = parse_quantizer(spec, key);
        auto const* f = std::get_if<fixed_point_rt>(&parsed.get());
        if (!f) throw config_error("intrinsic placement needs a fixed-point format, got '" + spec + "'");
        auto [can, cannot] = intrinsic_capable(net, *f);
        bool all = true;
        for (auto const& n : net.nodes())
            if (nn::scope_matches(scope, n.name) && std::find(cannot.begin(), cannot.end(), n.name) != cannot.end()) {
                all = false;
                if (skipped) skipped->push_back(n.name);
            }
        if (all) {
            q.intrinsic.set(scope, spec, key);
        } else {
            for (auto const& n : can)
                if (nn::scope_matches(scope, n)) q.intrinsic.set(n, spec, key);
        }
    } else {
        throw config_error("placement '" + placement + "': expected intrinsic, extrinsic or weights");
    }
    return q;
}

inline nlohmann::ordered_json names_json(std::vector<std::string> const& names)
{
    nlohmann::ordered_json j = nlohmann::ordered_json::array();
    for (auto const& n : names) j.push_back(n);
    return j;
}

} // namespace detail

// ---- 1. rounding sweep (figures 3 and 4) ------------------------------------------------

struct sweep_options
{
    std::vector<std::string> roundings{"nearest", "zero", "down", "stochastic"};
    std::vector<int> widths{4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    std::function<int(int)> frac = [](int w) { return w / 2; }; // the paper's F = W/2
    std::vector<std::string> placements{"intrinsic", "extrinsic"};
};

inline std::vector<record> rounding_sweep(context& ctx, sweep_options const& o)
{
    std::vector<detail::grid_point> points;
    auto const& net = ctx.eval.network();
    for (auto const& rounding : o.roundings)
        for (auto const& placement : o.placements)
            for (int w : o.widths) {
                const int f = o.frac(w);
                points.push_back({detail::identity(ctx, "sweep", "", placement, rounding, w, f),
                                  [&, rounding, placement, w, f](record& r) {
                                      std::vector<std::string> skipped;
                                      const auto q =
                                          detail::placed(net, net.scope(), placement, fixed_spec(rounding, w, f),
                                                         {ctx.seed, 0}, &skipped);
                                      detail::fill(r, ctx.eval.evaluate(q));
                                      if (!skipped.empty()) r.extra["float_layers"] = detail::names_json(skipped);
                                  }});
            }
    return detail::run_grid(ctx, "sweep", std::move(points));
}

// ---- 2. best fractional bits (tables 2 to 4) --------------------------------------------

struct fractions_options
{
    std::string rounding = "nearest";
    std::vector<int> widths{4, 6, 8, 10, 12, 14, 16, 18, 20};
    int min_frac = 0;             // F from min_frac ...
    int max_frac_below_width = 0; // ... to W - max_frac_below_width
    std::vector<std::string> placements{"intrinsic", "extrinsic"};
};

inline std::vector<record> best_fractions(context& ctx, fractions_options const& o)
{
    std::vector<detail::grid_point> points;
    auto const& net = ctx.eval.network();
    for (auto const& placement : o.placements)
        for (int w : o.widths)
            for (int f = o.min_frac; f <= w - o.max_frac_below_width; ++f)
                points.push_back({detail::identity(ctx, "fractions", "", placement, o.rounding, w, f),
                                  [&, placement, w, f](record& r) {
                                      std::vector<std::string> skipped;
                                      const auto q =
                                          detail::placed(net, net.scope(), placement, fixed_spec(o.rounding, w, f),
                                                         {ctx.seed, 0}, &skipped);
                                      detail::fill(r, ctx.eval.evaluate(q));
                                      if (!skipped.empty()) r.extra["float_layers"] = detail::names_json(skipped);
                                  }});
    return detail::run_grid(ctx, "fractions", std::move(points));
}

// For each W, the record of largest relative accuracy (ties: smallest F) among recs of
// one network and placement.
inline std::map<int, record> best_per_width(std::vector<record> const& recs)
{
    std::map<int, record> best;
    for (auto const& r : recs) {
        auto it = best.find(r.width);
        if (it == best.end() || r.relative_accuracy > it->second.relative_accuracy ||
            (r.relative_accuracy == it->second.relative_accuracy && r.frac < it->second.frac))
            best[r.width] = r;
    }
    return best;
}

// ---- 3. subunits and the bottleneck (tables 1, 5 and 6) ---------------------------------

// The scope prefixes depth levels below the network's scope, in the order of their first
// layer: depth 1 gives LeNet/conv1, ..., or ResNet/stem, ResNet/block1, ...
inline std::vector<std::string> subunits_at_depth(nn::network const& net, int depth)
{
    std::vector<std::string> out;
    for (auto const& n : net.nodes()) {
        std::string name = n.name;
        std::size_t pos = 0;
        int level = 0;
        while (level <= depth && pos != std::string::npos) {
            pos = name.find('/', pos == 0 && level == 0 ? 0 : pos + 1);
            ++level;
        }
        const std::string prefix = pos == std::string::npos ? name : name.substr(0, pos);
        if (std::find(out.begin(), out.end(), prefix) == out.end()) out.push_back(prefix);
    }
    return out;
}

struct layers_options
{
    std::vector<std::string> subunits; // empty: subunits_at_depth(net, depth)
    int depth = 1;
    std::string rounding = "nearest";
    std::string placement = "intrinsic";
    std::vector<int> widths{4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24};
    int frac_step = 1; // F = 0, step, 2 step, ... < W
    std::vector<double> thresholds{1.0, 0.99, 0.90};
    // A point whose subunit stayed in range at a smaller W with the same F (its record
    // says in_range) takes that record's results: they are provably the same bits.
    bool reuse_in_range = true;
};

inline std::vector<record> subunit_search(context& ctx, layers_options const& o)
{
    auto const& net = ctx.eval.network();
    const auto units = o.subunits.empty() ? subunits_at_depth(net, o.depth) : o.subunits;
    for (auto const& u : units) {
        bool any = false;
        for (auto const& n : net.nodes()) any = any || nn::scope_matches(u, n.name);
        if (!any) throw config_error("subunit '" + u + "' matches no layer of network '" + net.scope() + "'");
    }
    if (o.frac_step <= 0) throw config_error("layers: the fraction step must be positive");
    std::vector<detail::grid_point> points;
    for (auto const& unit : units) // subunit-major, so the reused prefix is computed once per subunit
        for (int w : o.widths)
            for (int f = 0; f < w; f += o.frac_step)
                points.push_back(
                    {detail::identity(ctx, "layers", unit, o.placement, o.rounding, w, f), [&, unit, w, f](record& r) {
                         const auto t0 = std::chrono::steady_clock::now();
                         std::vector<std::string> skipped;
                         const auto q = detail::placed(net, unit, o.placement, fixed_spec(o.rounding, w, f),
                                                       {ctx.seed, 0}, &skipped);
                         if (record const* same =
                                 o.reuse_in_range ? detail::in_range_below(ctx, r, o.widths) : nullptr) {
                             r.accuracy = same->accuracy;
                             r.relative_accuracy = same->relative_accuracy;
                             r.agreement = same->agreement;
                             r.images = same->images;
                             r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                             r.extra["in_range"] = true;
                         } else {
                             const auto e = ctx.eval.evaluate(q, false, o.reuse_in_range);
                             detail::fill(r, e);
                             if (e.in_range) r.extra["in_range"] = *e.in_range;
                         }
                         if (!skipped.empty()) r.extra["float_layers"] = detail::names_json(skipped);
                     }});
    return detail::run_grid(ctx, "layers", std::move(points));
}

// The smallest (W, then F) whose relative accuracy reaches threshold, among the records
// of one subunit; nothing if none does.
inline std::optional<std::pair<int, int>> smallest_reaching(std::vector<record> const& recs, double threshold)
{
    std::optional<std::pair<int, int>> best;
    for (auto const& r : recs)
        if (r.relative_accuracy >= threshold - 1e-12) {
            const std::pair<int, int> wf{r.width, r.frac};
            if (!best || wf < *best) best = wf;
        }
    return best;
}

struct bottleneck
{
    std::string subunit;
    int width = 0, frac = 0;
    bool reached = true; // false: some subunit never reached the threshold (it is the bottleneck)
};

// The paper's rule: among the subunits' smallest (W, F) reaching the threshold, the one
// of largest W, ties broken by largest F. A subunit that never reaches it is the
// bottleneck outright (the first such, in order).
inline std::optional<bottleneck> find_bottleneck(std::vector<std::string> const& units,
                                                 std::map<std::string, std::vector<record>> const& by_unit,
                                                 double threshold)
{
    std::optional<bottleneck> b;
    for (auto const& u : units) {
        auto it = by_unit.find(u);
        if (it == by_unit.end()) continue;
        const auto wf = smallest_reaching(it->second, threshold);
        if (!wf) return bottleneck{u, 0, 0, false};
        if (!b || wf->first > b->width || (wf->first == b->width && wf->second > b->frac))
            b = bottleneck{u, wf->first, wf->second, true};
    }
    return b;
}

// ---- 4. gradient quantization (table 7) -------------------------------------------------

// Trains a fresh network (setup.make()) in float or with gradients quantized by the map; after_batch(trainer) runs
// after every batch and after_epoch(e, net) after every epoch.
inline nn::network train_from_scratch(training_setup const& s, nn::scope_map gradients,
                                      std::function<void(train::trainer&)> const& after_batch = {},
                                      std::function<void(int, nn::network&)> const& after_epoch = {})
{
    if (!s.make || !s.train_set) throw config_error("training: no network or no training data");
    nn::network net = s.make();
    train::trainer_options o;
    o.threads = detail::thread_count(s.threads);
    o.seed = s.seed;
    o.batch_size = s.batch_size;
    train::trainer t(net, o);
    train::sgd opt(s.lr, s.momentum, s.weight_decay);
    opt.quantization.gradients = std::move(gradients);
    for (int e = 0; e < s.epochs; ++e) {
        opt.lr = train::step_decay_lr(e, s.epochs, s.lr);
        t.train_epoch(*s.train_set, opt, std::uint64_t(e), [&](std::size_t, std::size_t, double) {
            if (after_batch) after_batch(t);
        });
        if (after_epoch) after_epoch(e, net);
    }
    return net;
}

struct gradients_options
{
    std::string rounding = "nearest";
    std::vector<std::pair<int, int>> formats{{2, 1}, {4, 2}, {6, 3}, {8, 4}, {10, 5}, {12, 6}};
};

// Accuracy of training with gradients quantized to each format, relative to the same
// training in float (the point with W = 0, which every shard measures or reads first).
inline std::vector<record> gradient_quantization(context& ctx, training_setup const& s, gradients_options const& o)
{
    auto train_and_measure = [&](record& r, nn::scope_map gradients) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto net = train_from_scratch(s, std::move(gradients));
        const auto e = ctx.eval.evaluate(net, {});
        detail::fill(r, e);
        r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        r.extra["epochs"] = s.epochs;
    };
    record float_run = detail::identity(ctx, "gradients", "", "gradients", "float", 0, 0, "float");
    float_run.extra["epochs"] = s.epochs;
    double float_accuracy = 0;
    if (auto const* existing = ctx.out.find(float_run.key())) {
        float_accuracy = existing->accuracy;
    } else {
        if (ctx.progress) ctx.progress("gradients", 0, o.formats.size() + 1, "float training");
        train_and_measure(float_run, {});
        float_accuracy = float_run.accuracy;
        float_run.relative_accuracy = 1;
        if (ctx.part.index == 1) ctx.out.add(float_run); // recorded by one shard only
    }
    std::vector<detail::grid_point> points;
    for (auto const& format : o.formats) {
        const int w = format.first, f = format.second; // (named copies: clang 14 cannot capture bindings)
        points.push_back({detail::identity(ctx, "gradients", "", "gradients", o.rounding, w, f), [&, w, f](record& r) {
                              nn::scope_map g;
                              g.set(ctx.eval.network().scope(), fixed_spec(o.rounding, w, f), {ctx.seed, 0});
                              train_and_measure(r, std::move(g));
                              r.relative_accuracy = float_accuracy > 0 ? r.accuracy / float_accuracy : 0;
                          }});
    }
    auto out = detail::run_grid(ctx, "gradients", std::move(points));
    if (auto const* existing = ctx.out.find(float_run.key())) out.insert(out.begin(), *existing);
    return out;
}

// ---- 5. sparsity (2018) ------------------------------------------------------------------

struct sparsity_options
{
    double small = 1e-3; // |x| below this counts as near zero
    std::vector<int> widths{4, 6, 8, 10, 12, 16};
    std::string rounding = "nearest";
};

namespace detail {

struct zero_count
{
    std::size_t count = 0, zeros = 0, small = 0;
    void add(float const* x, std::size_t n, double threshold)
    {
        count += n;
        for (std::size_t i = 0; i < n; ++i) {
            zeros += x[i] == 0.0f;
            small += std::fabs(double(x[i])) < threshold;
        }
    }
    void merge(zero_count const& o) { count += o.count, zeros += o.zeros, small += o.small; }
};

using sparsity_table = std::map<std::pair<std::string, std::string>, zero_count>; // (layer, tensor)

inline nlohmann::ordered_json to_json(sparsity_table const& t, nn::network const& net)
{
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    auto emit = [&](std::string const& layer, std::string const& tensor) {
        auto it = t.find({layer, tensor});
        if (it == t.end() || it->second.count == 0) return;
        auto const& c = it->second;
        rows.push_back({{"layer", layer},
                        {"tensor", tensor},
                        {"count", c.count},
                        {"zeros", double(c.zeros) / double(c.count)},
                        {"small", double(c.small) / double(c.count)}});
    };
    for (auto const& n : net.nodes())
        for (char const* tensor : {"output", "weights", "bias", "weight gradient"}) emit(n.name, tensor);
    return rows;
}

// Zeros in every node's output on the evaluator's images, and in every parameter.
inline sparsity_table measure_inference(evaluator& eval, nn::network const& net, quantization const& q, double small)
{
    std::vector<std::map<std::size_t, zero_count>> per_block(eval.blocks().size());
    eval.observe(net, q, [&](std::size_t b, std::size_t node, nn::tensor<float> const& y) {
        per_block[b][node].add(y.data(), y.size(), small);
    });
    sparsity_table t;
    for (auto const& blk : per_block) // block order: deterministic
        for (auto const& [node, c] : blk) t[{net.nodes()[node].name, "output"}].merge(c);
    nn::network copy = net;
    for (auto const& n : net.nodes()) {
        for (auto const& p : copy.parameters(n.name)) {
            if (p.name != "weights" && p.name != "bias") continue;
            std::vector<float> v(p.data, p.data + p.size());
            if (auto const* e = q.weights.match(n.name)) quantize_inplace(e->quantizer, std::span<float>(v));
            t[{n.name, p.name}].add(v.data(), v.size(), small);
        }
    }
    return t;
}

} // namespace detail

// Per epoch of a float training: zeros (and |x| < small) in every layer's outputs on the
// evaluator's images, its weights and its weight gradients (over the epoch's batches);
// then, on the trained network, the same at inference with outputs and weights in fixed
// point (rounding, W, W/2) for each W.
inline std::vector<record> sparsity(context& ctx, training_setup const& s, sparsity_options const& o)
{
    std::vector<detail::grid_point> points;
    points.push_back(
        {detail::identity(ctx, "sparsity", "", "training", "float", 0, 0, "training"), [&](record& r) {
             const auto t0 = std::chrono::steady_clock::now();
             detail::sparsity_table gradients;
             nlohmann::ordered_json epochs = nlohmann::ordered_json::array();
             const auto net = train_from_scratch(
                 s, {},
                 [&](train::trainer& t) {
                     for (auto const& p : t.parameters())
                         if (p.name == "weights")
                             gradients[{p.layer, "weight gradient"}].add(p.grad.data(), p.grad.size(), o.small);
                 },
                 [&](int e, nn::network& net) {
                     auto table = detail::measure_inference(ctx.eval, net, {}, o.small);
                     for (auto const& [k, c] : gradients) table[k] = c;
                     gradients.clear();
                     epochs.push_back({{"epoch", e + 1}, {"layers", detail::to_json(table, net)}});
                 });
             detail::fill(r, ctx.eval.evaluate(net, {}));
             r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
             r.extra["small"] = o.small;
             r.extra["epochs"] = epochs;
         }});
    auto const& net = ctx.eval.network();
    for (int w : o.widths)
        points.push_back(
            {detail::identity(ctx, "sparsity", "", "weights+extrinsic", o.rounding, w, w / 2), [&, w](record& r) {
                 quantization q;
                 q.extrinsic.set(net.scope(), fixed_spec(o.rounding, w, w / 2), {ctx.seed, 0});
                 q.weights.set(net.scope(), fixed_spec(o.rounding, w, w / 2), {ctx.seed, 0});
                 detail::fill(r, ctx.eval.evaluate(q));
                 const auto t0 = std::chrono::steady_clock::now();
                 r.extra["small"] = o.small;
                 r.extra["layers"] = detail::to_json(detail::measure_inference(ctx.eval, net, q, o.small), net);
                 r.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
             }});
    points.push_back({detail::identity(ctx, "sparsity", "", "float", "float", 0, 0, "inference"), [&](record& r) {
                          detail::fill(r, ctx.eval.evaluate(quantization{}));
                          r.extra["small"] = o.small;
                          r.extra["layers"] =
                              detail::to_json(detail::measure_inference(ctx.eval, net, {}, o.small), net);
                      }});
    return detail::run_grid(ctx, "sparsity", std::move(points));
}

// ---- 6. TQT retraining (2019) ------------------------------------------------------------

struct tqt_options
{
    std::vector<int> bits{8, 4};
    int epochs = 1; // at most 2
    float lr = 0.01f, momentum = 0.9f;
    std::size_t batch_size = 64;
};

// From the evaluator's (float, trained) network: TQT thresholds on every layer's weights
// (signed) and output (unsigned where the float outputs are never negative), calibrated
// by max |x| and retrained; accuracy against float before retraining ("calibrated") and
// after ("retrained"), and the learned log2 thresholds per tensor.
inline std::vector<record> tqt_retraining(context& ctx, training_setup const& s, tqt_options const& o)
{
    if (o.epochs < 0 || o.epochs > 2) throw config_error("tqt: between 0 and 2 epochs of retraining");
    auto const& float_net = ctx.eval.network();
    // which outputs are non-negative in float
    std::vector<char> negative(float_net.nodes().size(), 0);
    {
        std::vector<std::vector<char>> per_block(ctx.eval.blocks().size(),
                                                 std::vector<char>(float_net.nodes().size(), 0));
        ctx.eval.observe(float_net, {}, [&](std::size_t b, std::size_t node, nn::tensor<float> const& y) {
            for (float v : y) per_block[b][node] = per_block[b][node] || v < 0;
        });
        for (auto const& blk : per_block)
            for (std::size_t i = 0; i < blk.size(); ++i) negative[i] = negative[i] || blk[i];
    }
    std::vector<detail::grid_point> points;
    for (int bits : o.bits)
        for (char const* stage : {"calibrated", "retrained"})
            points.push_back(
                {detail::identity(ctx, "tqt", "", "weights+outputs", "nearest_even", bits, 0, stage),
                 [&, bits, stage](record& r) {
                     const auto t0 = std::chrono::steady_clock::now();
                     nn::network net = float_net;
                     train::trainer_options to;
                     to.threads = detail::thread_count(s.threads);
                     to.seed = s.seed;
                     to.batch_size = o.batch_size;
                     const bool retrain = std::string(stage) == "retrained";
                     if (!retrain) to.bn_momentum = 1.0f; // the calibration batch keeps the statistics
                     train::trainer t(net, to);
                     for (std::size_t i = 0; i < net.nodes().size(); ++i) {
                         auto const& n = net.nodes()[i];
                         bool has_weights = false;
                         for (auto const& p : net.parameters(n.name)) has_weights |= p.name == "weights";
                         train::tqt_assignment a;
                         a.scope = n.name;
                         a.format = {bits, true};
                         a.weights = has_weights;
                         a.outputs = false;
                         if (has_weights) t.add_tqt(a);
                         a.weights = false;
                         a.outputs = true;
                         a.format = {bits, negative[i] != 0};
                         t.add_tqt(a);
                     }
                     train::sgd opt(o.lr, o.momentum);
                     if (!s.train_set) throw config_error("tqt: no training data");
                     if (retrain) {
                         for (int e = 0; e < o.epochs; ++e) t.train_epoch(*s.train_set, opt, std::uint64_t(e));
                     } else { // thresholds of outputs from one batch, no step
                         std::vector<std::size_t> idx(std::min<std::size_t>(o.batch_size, s.train_set->size()));
                         std::iota(idx.begin(), idx.end(), std::size_t(0));
                         train::sgd none(0.0f, 0.0f);
                         std::vector<int> labels;
                         for (auto i : idx) labels.push_back(s.train_set->labels[i]);
                         // lr 0: calibrates the output thresholds, changes nothing
                         t.train_batch(train::gather(s.train_set->images, idx), labels, none);
                     }
                     auto [weights, outputs] = t.tqt_maps();
                     quantization q;
                     q.weights = weights;
                     q.extrinsic = outputs;
                     detail::fill(r, ctx.eval.evaluate(net, q));
                     nlohmann::ordered_json th = nlohmann::ordered_json::array();
                     for (auto const& p : t.parameters())
                         if (p.name.ends_with("log2t"))
                             th.push_back({{"layer", p.layer},
                                           {"tensor", p.name == "weights_log2t" ? "weights" : "output"},
                                           {"log2_threshold", p.value[0]}});
                     r.extra["thresholds"] = th;
                     r.extra["epochs"] = retrain ? o.epochs : 0;
                     r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                 }});
    return detail::run_grid(ctx, "tqt", std::move(points));
}

// ---- 8. number formats per subunit (block-scaled formats against fixed point) -----------

// A format of the comparison: a label shared by the formats of one family (the fixed-point
// words of one W with different F: the table shows the best) and its quantizer string.
struct format_choice
{
    std::string label, spec;
};

struct formats_options
{
    // 4-bit MXFP4 and NVFP4 against INT4 fixed point (every F) and E2M1 without a scale;
    // 8-bit MXFP8 and MXINT8 against INT8 (F = 2 .. 6)
    std::vector<format_choice> formats{{"MXFP4", "mxfp4"},           {"NVFP4", "nvfp4"},
                                       {"BFP4 (16)", "bfp,4,16"},    {"E2M1", "minifloat,2,1,1,finite,saturate"},
                                       {"INT4", "nearest,4,0"},      {"INT4", "nearest,4,1"},
                                       {"INT4", "nearest,4,2"},      {"INT4", "nearest,4,3"},
                                       {"MXFP8 E4M3", "mxfp8_e4m3"}, {"MXINT8", "mxint8"},
                                       {"INT8", "nearest,8,2"},      {"INT8", "nearest,8,3"},
                                       {"INT8", "nearest,8,4"},      {"INT8", "nearest,8,5"},
                                       {"INT8", "nearest,8,6"}};
    std::vector<std::string> subunits; // empty: subunits_at_depth(net, depth)
    int depth = 1;
    bool whole_network = true; // also every format on the whole network
    // MX and BFP formats also as a block dot product (intrinsic: input and weights of the
    // dense and conv2d layers, FP32 accumulation), labelled "<label> dot"
    bool block_dot = true;
};

// Each format as the weight and extrinsic quantizer of one subunit at a time (and of the
// whole network): relative accuracy per (subunit, format). Records: placement
// weights+extrinsic, rounding the quantizer string, point the label; a block dot
// product's: placement intrinsic, point "<label> dot".
inline std::vector<record> format_comparison(context& ctx, formats_options const& o)
{
    auto const& net = ctx.eval.network();
    auto units = o.subunits.empty() ? subunits_at_depth(net, o.depth) : o.subunits;
    for (auto const& u : units) {
        bool any = false;
        for (auto const& n : net.nodes()) any = any || nn::scope_matches(u, n.name);
        if (!any) throw config_error("subunit '" + u + "' matches no layer of network '" + net.scope() + "'");
    }
    if (o.whole_network) units.insert(units.begin(), "");
    for (auto const& f : o.formats) // refused before any work starts
        tensorquant::detail::with_error_context("formats: '" + f.label + "'", [&] { parse_quantizer(f.spec); });
    std::vector<detail::grid_point> points;
    for (auto const& unit : units)
        for (auto const& f : o.formats)
            points.push_back({detail::identity(ctx, "formats", unit, "weights+extrinsic", f.spec, 0, 0, f.label),
                              [&, unit, f](record& r) {
                                  const std::string scope = unit.empty() ? net.scope() : unit;
                                  quantization q;
                                  q.weights.set(scope, f.spec, {ctx.seed, 0});
                                  q.extrinsic.set(scope, f.spec, {ctx.seed, 1});
                                  detail::fill(r, ctx.eval.evaluate(q));
                              }});
    if (o.block_dot)
        for (auto const& unit : units)
            for (auto const& f : o.formats) {
                if (!nn::kernels::power_of_two_block_format(parse_quantizer(f.spec))) continue;
                points.push_back({detail::identity(ctx, "formats", unit, "intrinsic", f.spec, 0, 0, f.label + " dot"),
                                  [&, unit, f](record& r) {
                                      nn::datapath d;
                                      d.set("input", f.spec, {ctx.seed, 2});
                                      d.set("weights", f.spec, {ctx.seed, 2});
                                      quantization q;
                                      q.intrinsic.set(unit.empty() ? net.scope() : unit, std::move(d));
                                      detail::fill(r, ctx.eval.evaluate(q));
                                  }});
            }
    return detail::run_grid(ctx, "formats", std::move(points));
}

} // namespace tensorquant::inline TENSORQUANT_ABI::study
