// The input of the LeNet-5 benchmarks: a batch of 28 x 28 grey images, pixel intensities
// in [0, 1) from a fixed seed, so every benchmark binary times the same numbers.
#pragma once

#include <tensorquant/nn.hpp>

#include <cstddef>

namespace tqbench {

inline tensorquant::nn::tensor<float> lenet_images(std::size_t batch)
{
    auto x = tensorquant::nn::tensor<float>::from_shape({batch, 28, 28, 1});
    tensorquant::splitmix64 gen{12345};
    for (auto& v : x) v = float(gen.uniform());
    return x;
}

} // namespace tqbench
