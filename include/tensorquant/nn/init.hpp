// Seeded parameter initialisation: the same seed gives the same network on every machine.
#pragma once

#include "../config.hpp"

#include "../core/random.hpp"
#include "layers/list.hpp"

#include <cmath>
#include <cstddef>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

class initializer
{
public:
    explicit initializer(std::uint64_t seed) : gen_{seed} {}

    // Uniform in [-a, a] with a = sqrt(6 / fan_in) (He).
    template <class E>
    void he_uniform(E& t, std::size_t fan_in)
    {
        const double a = std::sqrt(6.0 / double(fan_in));
        for (auto& v : t) v = float((2 * gen_.uniform() - 1) * a);
    }

    // A k x k convolution from in to out channels, He-initialised weights, zero bias.
    conv2d_layer conv2d(std::size_t k, std::size_t in, std::size_t out, window_options o = {},
                        activation act = activation::none)
    {
        conv2d_layer l{tensor4<float>::from_shape({k, k, in / std::size_t(o.groups), out}), xt::zeros<float>({out}), o,
                       act};
        he_uniform(l.weights, k * k * in / std::size_t(o.groups));
        return l;
    }
    dense_layer dense(std::size_t in, std::size_t out, activation act = activation::none)
    {
        dense_layer l{tensor2<float>::from_shape({in, out}), xt::zeros<float>({out}), act};
        he_uniform(l.weights, in);
        return l;
    }
    // The identity batch norm (gamma 1, beta 0, mean 0, variance 1).
    static batch_norm_layer batch_norm(std::size_t c, activation act = activation::none)
    {
        return {xt::ones<float>({c}), xt::zeros<float>({c}), xt::zeros<float>({c}), xt::ones<float>({c}), 1e-3f, act};
    }

private:
    splitmix64 gen_;
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
