// Training a network on the tape, with the network's quantization maps active in the
// forward pass (quantization-aware training):
// - weights: the parameters pass through their quantizer, with a straight-through
//   estimator (STE) in the backward pass;
// - extrinsic: layer outputs pass through their quantizer with the STE;
// - intrinsic: the layer's value is its exact intrinsic result (network::
//   intrinsic_output), its gradient that of the float layer at the same inputs (STE).
// Batch norm trains with batch statistics and keeps running averages (momentum 0.9)
// in the layer's mean and variance. A softmax layer at the end is skipped: the loss is
// softmax cross-entropy on its input (elsewhere it is an ordinary op).
//
// Reproducibility: a minibatch is cut into shards of a fixed size; each shard runs on
// its own tape (on any thread) and their gradients are summed in shard order, so the
// result does not depend on the number of threads. Batch-norm statistics are per shard.
// Stochastic quantizers draw their thresholds as core/stream.hpp lays out, the step being
// the number of batches trained.
//
// Layers are reached through their on_tape op (nn/layers/layer.hpp): the trainer knows
// no layer type.
#pragma once

#include "../config.hpp"

#include "../core/stream.hpp"
#include "../data/idx.hpp"
#include "../nn/network.hpp"
#include "autograd.hpp"
#include "optimizer.hpp"
#include "quantization.hpp"

#include <algorithm>
#include <cstdint>
#include <deque>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <functional>
#include <map>
#include <numeric>
#include <span>
#include <thread>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::train {

// The order of the samples in epoch e, a pure function of (seed, e).
inline std::vector<std::size_t> shuffled_order(std::size_t n, std::uint64_t seed, std::uint64_t epoch)
{
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t(0));
    splitmix64 gen{seed * 0x9e3779b97f4a7c15ull + epoch + 1};
    for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[gen.next() % i]); // Fisher-Yates
    return order;
}

// Rows idx[first, last) of a dataset as a batch.
inline nn::tensor4<float> gather(xt::xtensor<float, 4> const& images, std::span<std::size_t const> idx)
{
    const std::size_t per = images.size() / std::max<std::size_t>(images.shape(0), 1);
    nn::tensor4<float> b =
        nn::tensor4<float>::from_shape({idx.size(), images.shape(1), images.shape(2), images.shape(3)});
    for (std::size_t i = 0; i < idx.size(); ++i) std::copy_n(images.data() + idx[i] * per, per, b.data() + i * per);
    return b;
}

namespace detail {

// Passes allocate and free tensors of megabytes; glibc then returns the top of the heap
// to the system and faults it back in on the next pass (a third of an epoch's time
// here). This asks glibc (M_TOP_PAD) to keep 64 MiB.
inline void keep_heap_pages() noexcept
{
#if defined(__GLIBC__)
    mallopt(M_TOP_PAD, 64 << 20);
#endif
}

} // namespace detail

struct trainer_options
{
    std::size_t batch_size = 64;
    std::size_t shard_size = 32; // samples per tape; fixes the reduction order
    unsigned threads = 1;
    ste estimator = ste::pass;
    float bn_momentum = 0.9f;
    std::uint64_t seed = 1; // shuffling, and stochastic quantizers' streams
    bool keep_heap = true;  // detail::keep_heap_pages()
};

// Trained Quantization Thresholds on the weights or the outputs of the layers under a
// scope: a learnable log2 threshold per tensor, initialised from the data (the weights,
// or the outputs of the first training batch), trained with its own learning rate.
struct tqt_assignment
{
    std::string scope;
    tqt_format format{};
    bool weights = true;  // the layer's weights tensor
    bool outputs = false; // the layer's output
    tqt_init init = tqt_init::max_abs;
    float lr_scale = 1;
};

class trainer
{
public:
    trainer(nn::network& net, trainer_options o = {}) : net_(net), opt_(o)
    {
        if (o.batch_size == 0 || o.shard_size == 0)
            throw config_error("trainer: batch and shard sizes must be positive");
        if (o.keep_heap) detail::keep_heap_pages();
        for (std::size_t i = 0; i < net.nodes().size(); ++i) {
            const std::string name = net.nodes()[i].name;
            const auto refs = net.parameters(name);
            for (std::size_t slot = 0; slot < refs.size(); ++slot) {
                auto const& p = refs[slot];
                if (!p.trainable) continue; // running statistics
                params_.push_back({name, p.name, std::span<float>(p.data, p.size()), std::vector<float>(p.size(), 0.0f),
                                   1.0f, p.decays});
                param_node_.push_back(i);
                param_slot_.push_back(slot);
                param_shape_.push_back(p.shape);
            }
        }
    }

    std::vector<parameter>& parameters() noexcept { return params_; }

    // Adds TQT thresholds for the layers under a.scope (a config_error if none matches).
    void add_tqt(tqt_assignment const& a)
    {
        bool any = false;
        for (std::size_t i = 0; i < net_.nodes().size(); ++i) {
            auto const& node = net_.nodes()[i];
            if (!nn::scope_matches(a.scope, node.name)) continue;
            auto add = [&](std::string const& what, float initial, bool ready) {
                thresholds_.push_back(initial);
                params_.push_back({node.name, what, std::span<float>(&thresholds_.back(), 1),
                                   std::vector<float>(1, 0.0f), a.lr_scale, false});
                param_node_.push_back(i);
                param_slot_.push_back(~std::size_t(0));
                param_shape_.push_back({1});
                tqt_.push_back({i, params_.size() - 1, what == "weights_log2t", a.format, a.init, ready});
                any = true;
            };
            if (a.weights) {
                for (std::size_t p = 0; p < params_.size(); ++p)
                    if (param_node_[p] == i && params_[p].name == "weights")
                        add("weights_log2t", tqt_initial_log2<float>(params_[p].value, a.init), true);
            }
            if (a.outputs) add("output_log2t", 0.0f, false);
        }
        if (!any) throw config_error("TQT: scope '" + a.scope + "' matches no layer with the requested tensors");
    }

    // The fixed-point formats the trained thresholds stand for (TQT's quantizer is fixed
    // point with W = bits and F = bits - 1 - ceil(log2 t), or bits - ceil(log2 t)
    // unsigned, ties to even, saturating): maps for network::set_quantization, weights
    // and extrinsic.
    std::pair<nn::scope_map, nn::scope_map> tqt_maps() const
    {
        nn::scope_map weights, outputs;
        for (auto const& q : tqt_) {
            const int e = int(std::ceil(params_[q.param].value[0]));
            const int frac = q.format.bits - (q.format.is_signed ? 1 : 0) - e;
            const fixed_point_rt f(fixed_format{q.format.bits, frac, q.format.is_signed}, rounding_mode::nearest_even);
            (q.on_weights ? weights : outputs)
                .set(net_.nodes()[q.node].name, f,
                     "TQT " + tensorquant::detail::describe(f.format()) + ", ties to even");
        }
        return {std::move(weights), std::move(outputs)};
    }
    trainer_options const& options() const noexcept { return opt_; }

    // One optimizer step on a minibatch; returns its mean loss.
    double train_batch(nn::tensor4<float> const& images, std::span<int const> labels, optimizer& o)
    {
        const std::size_t n = labels.size();
        if (images.shape(0) != n) throw shape_error("train_batch: images and labels differ in count");
        calibrate_tqt(images, labels);
        const std::size_t shards = (n + opt_.shard_size - 1) / opt_.shard_size;
        std::vector<shard_result> results(shards);
        auto work = [&](std::size_t s) {
            const std::size_t first = s * opt_.shard_size, last = std::min(n, first + opt_.shard_size);
            results[s] = run_shard(images, labels, first, last);
        };
        const unsigned threads = std::max(1u, std::min<unsigned>(opt_.threads, unsigned(shards)));
        if (threads == 1) {
            for (std::size_t s = 0; s < shards; ++s) work(s);
        } else {
            std::vector<std::thread> pool;
            std::vector<std::exception_ptr> errors(threads);
            for (unsigned t = 0; t < threads; ++t)
                pool.emplace_back([&, t] {
                    try {
                        for (std::size_t s = t; s < shards; s += threads) work(s);
                    } catch (...) {
                        errors[t] = std::current_exception();
                    }
                });
            for (auto& th : pool) th.join();
            for (auto& e : errors)
                if (e) std::rethrow_exception(e);
        }
        double loss = 0;
        for (auto& p : params_) std::fill(p.grad.begin(), p.grad.end(), 0.0f);
        std::map<std::size_t, std::pair<std::vector<float>, std::vector<float>>> batch_stats;
        for (std::size_t s = 0; s < shards; ++s) { // fixed order: independent of the threads
            const double w = double(results[s].count) / double(n);
            loss += w * results[s].loss;
            for (std::size_t p = 0; p < params_.size(); ++p)
                for (std::size_t k = 0; k < params_[p].grad.size(); ++k)
                    params_[p].grad[k] += float(w) * results[s].grads[p][k];
            for (auto const& [node, stats] : results[s].bn) {
                auto& [m, v] = batch_stats[node];
                m.resize(stats.first.size()), v.resize(stats.first.size());
                for (std::size_t j = 0; j < m.size(); ++j)
                    m[j] += float(w) * stats.first[j], v[j] += float(w) * stats.second[j];
            }
        }
        for (auto const& [node, stats] : batch_stats) update_running(node, stats.first, stats.second);
        o.step(params_);
        ++batches_;
        return loss;
    }

    // One pass over the data in the seeded order of this epoch; progress(batch, batches,
    // loss) is called after each batch. Returns the mean loss.
    double train_epoch(data::labeled_images const& data, optimizer& o, std::uint64_t epoch,
                       std::function<void(std::size_t, std::size_t, double)> const& progress = {})
    {
        const auto order = shuffled_order(data.size(), opt_.seed, epoch);
        const std::size_t batches = (data.size() + opt_.batch_size - 1) / opt_.batch_size;
        double total = 0;
        std::vector<int> labels;
        for (std::size_t b = 0; b < batches; ++b) {
            const std::size_t first = b * opt_.batch_size, last = std::min(data.size(), first + opt_.batch_size);
            const std::span<std::size_t const> idx(order.data() + first, last - first);
            labels.clear();
            for (auto i : idx) labels.push_back(data.labels[i]);
            const double loss = train_batch(gather(data.images, idx), labels, o);
            total += loss * double(idx.size());
            if (progress) progress(b + 1, batches, loss);
        }
        return total / double(data.size());
    }

private:
    struct tqt_threshold
    {
        std::size_t node, param;
        bool on_weights;
        tqt_format format;
        tqt_init init;
        bool ready;
    };

    // Output thresholds start from the outputs of the first batch they see.
    void calibrate_tqt(nn::tensor4<float> const& images, std::span<int const> labels)
    {
        bool pending = false;
        for (auto const& q : tqt_) pending = pending || !q.ready;
        if (!pending) return;
        shard_result scratch;
        tape<float> t;
        std::vector<var> outs;
        forward_shard(t, images, labels, 0, labels.size(), scratch, &outs);
        for (auto& q : tqt_)
            if (!q.ready) {
                auto const& v = t.value(outs[q.node]);
                params_[q.param].value[0] = tqt_initial_log2<float>(std::span<float const>(v.data(), v.size()), q.init);
                q.ready = true;
            }
    }

    struct shard_result
    {
        double loss = 0;
        std::size_t count = 0;
        std::vector<std::vector<float>> grads;
        std::vector<std::pair<std::size_t, std::pair<std::vector<float>, std::vector<float>>>> bn;
        std::vector<tape<float>::var> params;
    };
    using var = tape<float>::var;

    // The batch's statistics (the shards' weighted by their size) into the layer's running
    // ones, for the layers that keep them.
    void update_running(std::size_t node, std::vector<float> const& mean, std::vector<float> const& var)
    {
        std::visit(
            [&](auto& l) {
                if constexpr (requires { l.update_statistics(mean, var, opt_.bn_momentum); })
                    l.update_statistics(mean, var, opt_.bn_momentum);
            },
            net_.layer_at(net_.nodes()[node].name));
    }

    // Builds the forward pass of samples [first, last) on t; returns the logits. outs, if
    // given, receives every node's output.
    var forward_shard(tape<float>& t, nn::tensor4<float> const& images, std::span<int const>, std::size_t first,
                      std::size_t last, shard_result& r, std::vector<var>* outs = nullptr)
    {
        const std::size_t per = images.size() / std::max<std::size_t>(images.shape(0), 1);
        xt::xarray<float> x =
            xt::xarray<float>::from_shape({last - first, images.shape(1), images.shape(2), images.shape(3)});
        std::copy_n(images.data() + first * per, x.size(), x.data());
        const var input = t.leaf(std::move(x));
        r.params.resize(params_.size());
        for (std::size_t p = 0; p < params_.size(); ++p) {
            auto const& prm = params_[p];
            xt::xarray<float> v = xt::xarray<float>::from_shape(param_shape_[p]);
            std::copy(prm.value.begin(), prm.value.end(), v.data());
            r.params[p] = t.leaf(std::move(v), true);
        }
        r.count = last - first;
        return forward(t, input, r.params, r, first, outs);
    }

    shard_result run_shard(nn::tensor4<float> const& images, std::span<int const> labels, std::size_t first,
                           std::size_t last)
    {
        tape<float> t;
        shard_result r;
        const var logits = forward_shard(t, images, labels, first, last, r);
        const std::vector<int> lab(labels.begin() + long(first), labels.begin() + long(last));
        const var loss = softmax_cross_entropy(t, logits, lab);
        t.backward(loss);
        r.loss = double(t.value(loss)(0));
        for (std::size_t p = 0; p < params_.size(); ++p) {
            auto& g = t.grad(r.params[p]);
            r.grads.emplace_back(g.data(), g.data() + g.size());
        }
        return r;
    }

    // What a layer's on_tape op sees: the tape, its inputs, its parameters after the
    // weights map (and TQT), and where to leave batch statistics.
    struct tape_context
    {
        train::tape<float>& t;
        std::vector<var> const& in;
        std::function<var(std::size_t)> param_of;
        bool last;
        std::function<void(std::vector<float>, std::vector<float>)> statistics;

        train::tape<float>& tape() const noexcept { return t; }
        var input(std::size_t k) const { return in.at(k); }
        std::size_t inputs() const noexcept { return in.size(); }
        var param(std::size_t slot) const { return param_of(slot); }
        bool is_last() const noexcept { return last; }
        void record_statistics(std::vector<float> mean, std::vector<float> variance) const
        {
            statistics(std::move(mean), std::move(variance));
        }
    };

    var forward(tape<float>& t, var input, std::vector<var> const& param_vars, shard_result& r, std::size_t first,
                std::vector<var>* all_outputs)
    {
        auto const& nodes = net_.nodes();
        std::vector<var> outs(nodes.size());
        const std::uint64_t step = batches_;
        for (std::size_t i = 0; i < nodes.size(); ++i) {
            auto const& node = nodes[i];
            const auto q = net_.quantization_of(node.name);
            std::vector<var> in;
            for (int j : node.inputs) in.push_back(j < 0 ? input : outs[std::size_t(j)]);
            auto tqt_of = [&](bool on_weights) -> tqt_threshold const* {
                for (auto const& th : tqt_)
                    if (th.node == i && th.on_weights == on_weights && th.ready) return &th;
                return nullptr;
            };
            auto param = [&](std::size_t slot) {
                std::size_t p = 0;
                while (p < params_.size() && !(param_node_[p] == i && param_slot_[p] == slot)) ++p;
                if (p == params_.size())
                    throw config_error("layer '" + node.name + "' has no trainable parameter " + std::to_string(slot));
                var v = param_vars[p];
                if (params_[p].name == "weights")
                    if (auto const* th = tqt_of(true)) v = tqt_quantize(t, v, param_vars[th->param], th->format);
                if (!q.weights) return v;
                return quantize(t, v, q.weights->quantizer, opt_.estimator,
                                stream_offset(i, slot, stream_role::weights, step), true);
            };
            const tape_context ctx{t, in, param, i + 1 == nodes.size(),
                                   [&](std::vector<float> m, std::vector<float> v) {
                                       r.bn.push_back({i, {std::move(m), std::move(v)}});
                                   }};
            var y = std::visit([&](auto const& l) { return l.on_tape(ctx); }, node.op);
            if (q.intrinsic) {
                std::vector<nn::tensor<float> const*> ptrs;
                for (var v : in) ptrs.push_back(&t.value(v));
                const auto exact = net_.intrinsic_output(i, ptrs, step);
                std::copy(exact.data(), exact.data() + exact.size(), t.value(y).data());
            }
            if (auto const* th = tqt_of(false)) y = tqt_quantize(t, y, param_vars[th->param], th->format);
            if (q.extrinsic) {
                // a shard's elements sit where they would in the whole batch
                const std::size_t per_sample = r.count ? t.value(y).size() / r.count : 0;
                y = quantize(t, y, q.extrinsic->quantizer, opt_.estimator,
                             stream_offset(i, 0, stream_role::extrinsic, step) + first * per_sample);
            }
            outs[i] = y;
        }
        if (all_outputs) *all_outputs = outs;
        return outs.back();
    }

    nn::network& net_;
    trainer_options opt_;
    std::vector<parameter> params_;
    std::vector<std::size_t> param_node_;
    std::vector<std::size_t> param_slot_; // position in the layer's parameter list (TQT thresholds: none)
    std::vector<std::vector<std::size_t>> param_shape_;
    std::deque<float> thresholds_; // TQT log2 thresholds (stable addresses for the spans)
    std::vector<tqt_threshold> tqt_;
    std::uint64_t batches_ = 0;
};

// Share of the samples whose largest output is their label (the network's own forward
// pass, with its quantization maps), in batches of batch_size.
inline double accuracy(nn::network& net, data::labeled_images const& data, std::size_t batch_size = 1000)
{
    std::size_t right = 0;
    std::vector<std::size_t> idx;
    for (std::size_t first = 0; first < data.size(); first += batch_size) {
        const std::size_t last = std::min(data.size(), first + batch_size);
        idx.resize(last - first);
        std::iota(idx.begin(), idx.end(), first);
        const auto labels = net.classify(gather(data.images, idx));
        for (std::size_t i = 0; i < labels.size(); ++i) right += labels[i] == int(data.labels[first + i]);
    }
    return data.size() ? double(right) / double(data.size()) : 0.0;
}

} // namespace tensorquant::inline TENSORQUANT_ABI::train
