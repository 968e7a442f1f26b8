// Optimizers with gradient quantization (docs/reference.md §4, paper eq. 8), assigned per scope
// with the same maps as inference. The L2 weight decay is part of the gradient g (as in
// TensorQuant, where it is a term of the loss), so it is quantized with it.
// - gradients (extrinsic): w <- w - lr Q(g)
// - updates (intrinsic):   w <- Q(w - update)
// - state: momentum, or Adam's two moments, are stored quantized.
// Stochastic quantizers draw the thresholds of parameter p (its position in the list) at
// step k from stream_offset(p, 0, role, k) (core/stream.hpp), so a seed reproduces a run.
#pragma once

#include "../config.hpp"

#include "../apply.hpp"
#include "../core/stream.hpp"
#include "../nn/scope.hpp"

#include <cmath>
#include <span>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::train {

// A trainable tensor: its values live elsewhere (a layer of a network).
struct parameter
{
    std::string layer; // scoped layer name, matched against the quantization maps
    std::string name;  // "weights", "bias", "gamma", "beta", or a TQT threshold
    std::span<float> value;
    std::vector<float> grad;
    float lr_scale = 1; // per-parameter learning rate factor (TQT thresholds have their own)
    bool decay = true;  // weight decay applies (not to biases, batch-norm shifts or thresholds)
};

struct gradient_quantization
{
    nn::scope_map gradients; // w <- w - lr Q(g)
    nn::scope_map updates;   // w <- Q(w - update)
    nn::scope_map state;     // optimizer state (momentum, Adam moments)
};

namespace detail {

inline void quantize_span(nn::scope_map const& m, std::string const& layer, std::span<float> v, std::uint64_t offset)
{
    if (auto const* e = m.match(layer)) {
        apply_options opt;
        opt.index_offset = offset;
        quantize_inplace(e->quantizer, v, opt);
    }
}

} // namespace detail

class optimizer
{
public:
    gradient_quantization quantization;
    float weight_decay = 0; // L2: adds weight_decay w to the gradient of decayed parameters

    virtual ~optimizer() = default;

    // One update of every parameter from its gradient (which it consumes: the weight
    // decay and the gradient quantizer are applied to it in place).
    void step(std::vector<parameter>& params)
    {
        if (state_params_ != params.size()) init_state(params), state_params_ = params.size();
        for (std::size_t p = 0; p < params.size(); ++p) {
            auto& prm = params[p];
            if (prm.decay && weight_decay != 0)
                for (std::size_t k = 0; k < prm.grad.size(); ++k) prm.grad[k] += weight_decay * prm.value[k];
            detail::quantize_span(quantization.gradients, prm.layer, std::span<float>(prm.grad),
                                  stream_offset(p, 0, stream_role::gradient, steps_));
            update(p, prm);
            detail::quantize_span(quantization.updates, prm.layer, prm.value,
                                  stream_offset(p, 0, stream_role::update, steps_));
        }
        ++steps_;
    }
    std::uint64_t steps() const noexcept { return steps_; }

protected:
    // Applies one update to prm.value from prm.grad (already quantized if asked).
    virtual void update(std::size_t index, parameter& prm) = 0;
    // Allocates the state buffers (zero) for these parameters.
    virtual void init_state(std::vector<parameter> const& params) = 0;
    void quantize_state(std::size_t index, parameter const& prm, std::vector<float>& s, stream_role role) const
    {
        detail::quantize_span(quantization.state, prm.layer, std::span<float>(s),
                              stream_offset(index, 0, role, steps_));
    }
    std::vector<std::vector<float>> state_; // one buffer per parameter (two for Adam)
    std::size_t state_params_ = 0;          // the parameter count state_ was made for
    std::uint64_t steps_ = 0;
};

// v <- momentum v + g; w <- w - lr v.
class sgd : public optimizer
{
public:
    float lr, momentum;
    explicit sgd(float lr_ = 0.01f, float momentum_ = 0.9f, float weight_decay_ = 0) : lr(lr_), momentum(momentum_)
    {
        weight_decay = weight_decay_;
    }

protected:
    void init_state(std::vector<parameter> const& params) override
    {
        state_.clear();
        for (auto const& p : params) state_.emplace_back(p.value.size(), 0.0f);
    }
    void update(std::size_t i, parameter& prm) override
    {
        auto& v = state_[i];
        const float step = lr * prm.lr_scale;
        for (std::size_t k = 0; k < v.size(); ++k) v[k] = momentum * v[k] + prm.grad[k];
        quantize_state(i, prm, v, stream_role::state);
        for (std::size_t k = 0; k < v.size(); ++k) prm.value[k] -= step * v[k];
    }
};

// Adam (Kingma and Ba).
class adam : public optimizer
{
public:
    float lr, beta1, beta2, epsilon;
    explicit adam(float lr_ = 1e-3f, float beta1_ = 0.9f, float beta2_ = 0.999f, float epsilon_ = 1e-8f,
                  float weight_decay_ = 0)
        : lr(lr_), beta1(beta1_), beta2(beta2_), epsilon(epsilon_)
    {
        weight_decay = weight_decay_;
    }

protected:
    void init_state(std::vector<parameter> const& params) override
    {
        state_.clear();
        for (auto const& p : params) {
            state_.emplace_back(p.value.size(), 0.0f); // first moment
            state_.emplace_back(p.value.size(), 0.0f); // second moment
        }
    }
    void update(std::size_t i, parameter& prm) override
    {
        auto& m = state_[2 * i];
        auto& v = state_[2 * i + 1];
        for (std::size_t k = 0; k < m.size(); ++k) {
            const float g = prm.grad[k];
            m[k] = beta1 * m[k] + (1 - beta1) * g;
            v[k] = beta2 * v[k] + (1 - beta2) * g * g;
        }
        quantize_state(i, prm, m, stream_role::state);
        quantize_state(i, prm, v, stream_role::state2);
        const double t = double(steps_ + 1);
        const float c1 = float(1 / (1 - std::pow(double(beta1), t))), c2 = float(1 / (1 - std::pow(double(beta2), t)));
        const float step = lr * prm.lr_scale;
        for (std::size_t k = 0; k < m.size(); ++k)
            prm.value[k] -= step * (m[k] * c1) / (std::sqrt(v[k] * c2) + epsilon);
    }
};

// The learning rate of epoch e of `epochs` under the step decay the examples and the
// study train with: base for the first half, 0.4 base to four fifths, then 0.1 base.
inline float step_decay_lr(int e, int epochs, float base) noexcept
{
    return e < epochs / 2 ? base : e < (epochs * 4) / 5 ? base * 0.4f : base * 0.1f;
}

} // namespace tensorquant::inline TENSORQUANT_ABI::train
