// The study's evaluation engine: a network, a fixed set of labelled images and the three
// quantization maps give top-1 accuracy, accuracy relative to the float network and
// agreement with its predictions.
//
// - The images are cut into blocks of a fixed size; block b runs as step b + 1 of the
//   stochastic streams (core/stream.hpp), so every image draws the same thresholds
//   whichever thread runs it: results do not depend on the thread count.
// - Blocks run in parallel, each thread on its own copy of the network.
// - The float predictions are computed once, when the evaluator is made.
// - Reuse: when the first quantized node is not the first node, the nodes before it run
//   in float and their outputs are the same for every quantization that leaves them
//   alone; they are computed once per first node and kept (network::prefix_outputs).
#pragma once

#include "../config.hpp"

#include "../core/range_watch.hpp"
#include "../data/idx.hpp"
#include "../nn/network.hpp"
#include "../train/trainer.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <numeric>
#include <optional>
#include <thread>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::study {

// Which images of a data set: all of them (count 0), the first count, or count drawn
// without replacement with a seed (the paper used about 1% of its validation set).
struct subset
{
    std::size_t count = 0;
    std::uint64_t sample_seed = 0; // 0: the first count images

    std::vector<std::size_t> indices(std::size_t available) const
    {
        const std::size_t n = count == 0 ? available : std::min(count, available);
        std::vector<std::size_t> idx;
        if (sample_seed == 0 || n == available) {
            idx.resize(n);
            std::iota(idx.begin(), idx.end(), std::size_t(0));
        } else {
            auto order = train::shuffled_order(available, sample_seed, 0);
            idx.assign(order.begin(), order.begin() + long(n));
            std::sort(idx.begin(), idx.end());
        }
        return idx;
    }
};

// The three maps of network::set_quantization.
struct quantization
{
    nn::scope_map intrinsic, extrinsic, weights;
    bool empty() const noexcept { return intrinsic.empty() && extrinsic.empty() && weights.empty(); }
};

struct evaluation_options
{
    unsigned threads = 0;    // 0: every core
    std::size_t block = 100; // images per block (fixes the stochastic streams)
    bool reuse_prefix = true;
    bool keep_heap = true; // train::detail::keep_heap_pages()
};

struct evaluation
{
    double accuracy = 0;          // top-1
    double relative_accuracy = 0; // accuracy / float accuracy on the same images
    double agreement = 0;         // share of images whose class is the float network's
    std::size_t images = 0;
    double seconds = 0;
    // When asked for: no fixed-point rounding met a value beyond its format's range
    // (core/range_watch.hpp), so the same maps with wider words and the same F and
    // policies give the same results.
    std::optional<bool> in_range;
    std::vector<nn::tensor_stats> stats; // per layer and tensor, when asked for
};

namespace detail {

inline unsigned thread_count(unsigned asked)
{
    if (asked) return asked;
    const unsigned hw = std::thread::hardware_concurrency();
    return hw ? hw : 1;
}

// fn(b, worker) for every block b on `threads` workers, each taking the next block when
// it is free (results depend only on the block, never on the worker that ran it); the
// first exception is rethrown after all have stopped.
template <class Fn>
void for_each_block(std::size_t blocks, unsigned threads, Fn&& fn)
{
    threads = std::max(1u, std::min<unsigned>(threads, unsigned(std::max<std::size_t>(blocks, 1))));
    if (threads == 1) {
        for (std::size_t b = 0; b < blocks; ++b) fn(b, 0u);
        return;
    }
    std::vector<std::thread> pool;
    std::vector<std::exception_ptr> errors(threads);
    std::atomic<std::size_t> next{0};
    auto work = [&](unsigned t) {
        try {
            for (std::size_t b; (b = next.fetch_add(1)) < blocks;) fn(b, t);
        } catch (...) {
            errors[t] = std::current_exception();
            next = blocks; // the others stop at their next block
        }
    };
    for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work, t);
    work(0); // the calling thread is worker 0
    for (auto& th : pool) th.join();
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

inline int argmax_row(float const* row, std::size_t k) { return int(std::max_element(row, row + k) - row); }

} // namespace detail

class evaluator
{
public:
    evaluator(nn::network const& net, data::labeled_images const& data, subset which = {},
              evaluation_options options = {})
        : net_(net), options_(options)
    {
        if (options_.block == 0) throw config_error("evaluator: the block size must be positive");
        if (options_.keep_heap) train::detail::keep_heap_pages();
        const auto idx = which.indices(data.size());
        if (idx.empty()) throw config_error("evaluator: no images to evaluate");
        const std::size_t per = data.images.size() / std::max<std::size_t>(data.images.shape(0), 1);
        for (std::size_t first = 0; first < idx.size(); first += options_.block) {
            const std::size_t last = std::min(idx.size(), first + options_.block);
            blocks_.push_back(nn::tensor<float>::from_shape(
                {last - first, data.images.shape(1), data.images.shape(2), data.images.shape(3)}));
            for (std::size_t i = first; i < last; ++i) {
                std::copy_n(data.images.data() + idx[i] * per, per, blocks_.back().data() + (i - first) * per);
                labels_.push_back(int(data.labels[idx[i]]));
            }
        }
        const auto labels = classify(net_, quantization{}, nullptr, nullptr);
        float_labels_ = labels;
        float_accuracy_ = share_correct(labels);
    }

    std::size_t images() const noexcept { return labels_.size(); }
    double float_accuracy() const noexcept { return float_accuracy_; }
    std::vector<int> const& float_predictions() const noexcept { return float_labels_; }
    std::vector<int> const& labels() const noexcept { return labels_; }
    std::vector<nn::tensor<float>> const& blocks() const noexcept { return blocks_; }
    nn::network const& network() const noexcept { return net_; }
    evaluation_options const& options() const noexcept { return options_; }
    // Prefix passes computed so far (one per first quantized node met).
    std::size_t prefix_passes() const noexcept { return prefix_passes_; }
    // Evaluations run so far (not counting the float baseline).
    std::size_t evaluations() const noexcept { return evaluations_; }

    // The evaluator's network under q; instrument: the per-layer statistics; watch_range:
    // in_range (watched products cost about a quarter more).
    evaluation evaluate(quantization const& q, bool instrument = false, bool watch_range = false)
    {
        return run(net_, q, instrument, options_.reuse_prefix, watch_range);
    }

    // Another network (retrained from the same float one, say) under q, against the float
    // predictions of the evaluator's network.
    evaluation evaluate(nn::network const& net, quantization const& q, bool instrument = false)
    {
        return run(net, q, instrument, false, false);
    }

    // Runs fn(node, output) on every node's output under q for every block, on one
    // thread per block; fn must be safe to call from several threads for different blocks
    // (it gets the block index as its first argument).
    template <class Fn>
    void observe(nn::network const& net, quantization const& q, Fn&& fn)
    {
        std::vector<nn::network> copies = copies_of(net, q);
        detail::for_each_block(blocks_.size(), threads(), [&](std::size_t b, unsigned t) {
            nn::network& n = copies[t];
            n.set_output_observer([&, b](std::size_t node, nn::tensor<float> const& y) { fn(b, node, y); });
            n.forward(blocks_[b], b + 1);
            n.set_output_observer({});
        });
    }

private:
    evaluation run(nn::network const& net, quantization const& q, bool instrument, bool reuse, bool watch_range)
    {
        const auto t0 = std::chrono::steady_clock::now();
        ++evaluations_;
        evaluation r;
        bool in_range = true;
        const auto labels = classify(net, q, instrument ? &r.stats : nullptr, reuse ? &net : nullptr,
                                     watch_range ? &in_range : nullptr);
        if (watch_range) r.in_range = in_range;
        r.images = labels.size();
        r.accuracy = share_correct(labels);
        r.relative_accuracy = float_accuracy_ > 0 ? r.accuracy / float_accuracy_ : 0;
        std::size_t same = 0;
        for (std::size_t i = 0; i < labels.size(); ++i) same += labels[i] == float_labels_[i];
        r.agreement = double(same) / double(labels.size());
        r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        return r;
    }

    unsigned threads() const { return detail::thread_count(options_.threads); }

    unsigned workers() const { return std::max(1u, std::min<unsigned>(threads(), unsigned(blocks_.size()))); }

    std::vector<nn::network> copies_of(nn::network const& net, quantization const& q) const
    {
        nn::network first = net;
        first.set_quantization(q.intrinsic, q.extrinsic, q.weights); // checks the maps once
        return std::vector<nn::network>(workers(), first);
    }

    // One copy of the evaluator's network per thread, kept between evaluations (copying
    // the parameters every time is a serial part of each evaluation), under q.
    std::vector<nn::network>& own_copies(quantization const& q)
    {
        if (own_.empty()) own_.assign(workers(), net_);
        for (auto& n : own_) n.set_quantization(q.intrinsic, q.extrinsic, q.weights);
        return own_;
    }

    // The first node any map quantizes.
    static std::size_t first_quantized(nn::network const& net)
    {
        for (std::size_t i = 0; i < net.nodes().size(); ++i) {
            const auto lq = net.quantization_of(net.nodes()[i].name);
            if (lq.intrinsic || lq.extrinsic || lq.weights) return i;
        }
        return net.nodes().size();
    }

    // Class of every image; stats (if given) gets the merged per-tensor statistics, and
    // in_range (if given) whether every rounding stayed in range. reuse_of is the
    // evaluator's own network when prefix reuse is allowed.
    std::vector<int> classify(nn::network const& net, quantization const& q, std::vector<nn::tensor_stats>* stats,
                              nn::network const* reuse_of, bool* in_range = nullptr)
    {
        std::vector<nn::network> others;
        std::vector<nn::network>& copies = &net == &net_ ? own_copies(q) : (others = copies_of(net, q));
        std::size_t first = 0;
        if (reuse_of && !stats) {
            first = first_quantized(copies[0]);
            if (first == copies[0].nodes().size()) first = 0; // nothing quantized: a plain pass
        }
        if (first > 0 && first != cached_first_) {
            prefix_.assign(blocks_.size(), {});
            auto plain = copies_of(net_, quantization{}); // the prefix runs in float
            detail::for_each_block(blocks_.size(), threads(), [&](std::size_t b, unsigned t) {
                prefix_[b] = plain[t].prefix_outputs(blocks_[b], first);
            });
            cached_first_ = first;
            ++prefix_passes_;
        }
        std::vector<std::vector<int>> per_block(blocks_.size());
        std::vector<std::vector<nn::tensor_stats>> block_stats(blocks_.size());
        std::vector<char> beyond(blocks_.size(), 0);
        detail::for_each_block(blocks_.size(), threads(), [&](std::size_t b, unsigned t) {
            nn::network& n = copies[t];
            std::optional<range_watch> watch;
            if (in_range) watch.emplace();
            if (stats) {
                n.clear_stats();
                n.set_instrumentation(true);
            }
            const auto y =
                first > 0 ? n.forward_from(first, blocks_[b], prefix_[b], b + 1) : n.forward(blocks_[b], b + 1);
            if (stats) {
                block_stats[b] = n.stats();
                n.set_instrumentation(false);
            }
            beyond[b] = watch && watch->exceeded();
            const std::size_t rows = y.shape(0), k = y.size() / std::max<std::size_t>(rows, 1);
            per_block[b].resize(rows);
            for (std::size_t r = 0; r < rows; ++r) per_block[b][r] = detail::argmax_row(y.data() + r * k, k);
        });
        std::vector<int> labels;
        for (auto const& p : per_block) labels.insert(labels.end(), p.begin(), p.end());
        if (in_range) *in_range = std::find(beyond.begin(), beyond.end(), 1) == beyond.end();
        if (stats) { // merged in block order
            *stats = block_stats.empty() ? std::vector<nn::tensor_stats>{} : block_stats[0];
            for (std::size_t b = 1; b < block_stats.size(); ++b)
                for (std::size_t s = 0; s < stats->size() && s < block_stats[b].size(); ++s)
                    (*stats)[s].merge(block_stats[b][s]);
        }
        return labels;
    }

    double share_correct(std::vector<int> const& predicted) const
    {
        std::size_t right = 0;
        for (std::size_t i = 0; i < predicted.size(); ++i) right += predicted[i] == labels_[i];
        return double(right) / double(predicted.size());
    }

    nn::network net_;
    evaluation_options options_;
    std::vector<nn::tensor<float>> blocks_;
    std::vector<int> labels_;
    std::vector<int> float_labels_;
    double float_accuracy_ = 0;
    std::vector<nn::network> own_;
    std::vector<std::vector<nn::tensor<float>>> prefix_;
    std::size_t cached_first_ = 0;
    std::size_t prefix_passes_ = 0;
    std::size_t evaluations_ = 0;
};

} // namespace tensorquant::inline TENSORQUANT_ABI::study
