// A small tape-based reverse-mode autograd over xtensor tensors. Each operation computes
// its value with the reference layers' kernels and records a backward step; tape::backward
// runs the steps in reverse order, accumulating gradients. Tensors have any rank, as in the
// networks (images NHWC, a dense layer's output [N, features]).
#pragma once

#include "../config.hpp"

#include "../nn/layers/list.hpp"

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::train {

template <std::floating_point T>
class tape
{
public:
    using value_type = T;
    using tensor = xt::xarray<T>;

    // A tensor on the tape: its index.
    struct var
    {
        int id = -1;
    };

    var leaf(tensor value, bool needs_grad = false)
    {
        nodes_.push_back({std::move(value), {}, needs_grad});
        return {int(nodes_.size()) - 1};
    }
    // The result of an operation; backward(tape) reads grad(result) and adds into the
    // gradients of its inputs.
    var record(tensor value, std::function<void(tape&, var)> backward, std::vector<var> const& inputs)
    {
        bool needs = false;
        for (var v : inputs) needs = needs || nodes_[std::size_t(v.id)].needs_grad;
        nodes_.push_back({std::move(value), {}, needs});
        const var out{int(nodes_.size()) - 1};
        if (needs) steps_.push_back({out, std::move(backward)});
        return out;
    }

    tensor const& value(var v) const { return nodes_[std::size_t(v.id)].value; }
    tensor& value(var v) { return nodes_[std::size_t(v.id)].value; }
    bool needs_grad(var v) const { return nodes_[std::size_t(v.id)].needs_grad; }
    // The gradient (zeros of the value's shape until something flows in).
    tensor& grad(var v)
    {
        auto& n = nodes_[std::size_t(v.id)];
        if (n.grad.size() != n.value.size() || n.grad.dimension() != n.value.dimension())
            n.grad = xt::zeros<T>(n.value.shape());
        return n.grad;
    }

    // Reverse pass from a scalar.
    void backward(var loss)
    {
        if (value(loss).size() != 1) throw shape_error("tape::backward: the loss must be a scalar");
        grad(loss).fill(T(1));
        for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
            if (nodes_[std::size_t(it->out.id)].grad.size() == 0) continue; // nothing flowed here
            it->backward(*this, it->out);
        }
    }

    void clear()
    {
        nodes_.clear();
        steps_.clear();
    }

private:
    struct node
    {
        tensor value, grad;
        bool needs_grad;
    };
    struct step
    {
        var out;
        std::function<void(tape&, var)> backward;
    };
    std::vector<node> nodes_;
    std::vector<step> steps_;
};

// The layers' training ops (conv2d, dense, the poolings, batch norm, activate, binary,
// matmul, ...) live beside their layers, in nn/layers/; they are train:: names too (gather
// declared here, as train::gather of a batch of images would otherwise hide it).
using namespace nn::tape_ops;
using nn::tape_ops::gather;

// Mean over the batch of -log softmax(logits)[label]; logits [N, ..., classes].
template <class T>
typename tape<T>::var softmax_cross_entropy(tape<T>& t, typename tape<T>::var logits, std::vector<int> const& labels)
{
    using V = typename tape<T>::var;
    auto const& z = t.value(logits);
    const std::size_t n = z.shape(0), k = z.size() / std::max<std::size_t>(n, 1);
    if (labels.size() != n)
        throw shape_error("softmax_cross_entropy: " + std::to_string(labels.size()) + " labels for " +
                          std::to_string(n) + " rows");
    std::vector<T> p(z.size());
    T loss = 0;
    for (std::size_t r = 0; r < n; ++r) {
        if (labels[r] < 0 || std::size_t(labels[r]) >= k)
            throw shape_error("softmax_cross_entropy: label out of range");
        T const* row = z.data() + r * k;
        const T mx = *std::max_element(row, row + k);
        T s = 0;
        for (std::size_t j = 0; j < k; ++j) s += (p[r * k + j] = std::exp(row[j] - mx));
        for (std::size_t j = 0; j < k; ++j) p[r * k + j] /= s;
        loss += -(row[labels[r]] - mx - std::log(s));
    }
    xt::xarray<T> out = xt::xarray<T>::from_shape({std::size_t(1)});
    out(0) = loss / T(n);
    return t.record(std::move(out),
                    [logits, labels, p = std::move(p), n, k](tape<T>& tp, V o) {
                        const T g = tp.grad(o)(0) / T(n);
                        T* d = tp.grad(logits).data();
                        for (std::size_t r = 0; r < n; ++r)
                            for (std::size_t j = 0; j < k; ++j)
                                d[r * k + j] += g * (p[r * k + j] - (int(j) == labels[r] ? T(1) : T(0)));
                    },
                    {logits});
}

// 0.5 lambda sum w^2 over the given tensors, added to loss.
template <class T>
typename tape<T>::var l2_penalty(tape<T>& t, typename tape<T>::var loss,
                                 std::vector<typename tape<T>::var> const& weights, T lambda)
{
    using V = typename tape<T>::var;
    T s = 0;
    for (V w : weights)
        for (T v : t.value(w)) s += v * v;
    xt::xarray<T> out = t.value(loss) + T(0.5) * lambda * s;
    std::vector<V> inputs{loss};
    inputs.insert(inputs.end(), weights.begin(), weights.end());
    return t.record(
        std::move(out),
        [loss, weights, lambda](tape<T>& tp, V r) {
            const T g = tp.grad(r)(0);
            if (tp.needs_grad(loss)) tp.grad(loss)(0) += g;
            for (V w : weights)
                if (tp.needs_grad(w)) {
                    T* d = tp.grad(w).data();
                    T const* v = tp.value(w).data();
                    for (std::size_t i = 0; i < tp.value(w).size(); ++i) d[i] += g * lambda * v[i];
                }
        },
        inputs);
}

} // namespace tensorquant::inline TENSORQUANT_ABI::train
