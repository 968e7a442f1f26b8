// Networks to start from, with seeded He-uniform parameters (nn::initializer), so a seed
// gives the same network on every machine.
#pragma once

#include "../config.hpp"

#include "init.hpp"
#include "network.hpp"

namespace tensorquant::inline TENSORQUANT_ABI::nn {

// LeNet-5 for 28x28x1 inputs, with ReLU and max pooling:
// conv1 5x5x6 same, pool1 2x2, conv2 5x5x16 valid, pool2 2x2, flatten, fc3 400-120,
// fc4 120-84, fc5 84-10 (logits).
inline network lenet5(std::uint64_t seed = 1)
{
    initializer init(seed);
    network net("LeNet");
    window_options same;
    same.padding = padding_mode::same;
    net.add("conv1", init.conv2d(5, 1, 6, same, activation::relu));
    net.add("pool1", max_pool_layer{});
    net.add("conv2", init.conv2d(5, 6, 16, {}, activation::relu));
    net.add("pool2", max_pool_layer{});
    net.add("flatten", flatten_layer{});
    net.add("fc3", init.dense(400, 120, activation::relu));
    net.add("fc4", init.dense(120, 84, activation::relu));
    net.add("fc5", init.dense(84, 10, activation::none));
    return net;
}

// A small residual network for 28x28x1 inputs: a stem, two residual blocks with batch
// norm (the second downsamples with a 1x1 projection shortcut), global average pooling
// and a classifier.
inline network small_resnet(std::uint64_t seed = 1, std::size_t width = 8)
{
    initializer init(seed);
    network net("ResNet");
    window_options same;
    same.padding = padding_mode::same;
    window_options down = same;
    down.stride = {2, 2};
    net.add("stem/conv", init.conv2d(3, 1, width, same));
    const int stem = net.add("stem/bn", initializer::batch_norm(width, activation::relu));
    net.add("block1/conv1", init.conv2d(3, width, width, same));
    net.add("block1/bn1", initializer::batch_norm(width, activation::relu));
    net.add("block1/conv2", init.conv2d(3, width, width, same));
    const int b1 = net.add("block1/bn2", initializer::batch_norm(width));
    const int out1 = net.add("block1/add", add_layer{activation::relu}, {b1, stem});
    net.add("block2/conv1", init.conv2d(3, width, 2 * width, down));
    net.add("block2/bn1", initializer::batch_norm(2 * width, activation::relu));
    net.add("block2/conv2", init.conv2d(3, 2 * width, 2 * width, same));
    const int b2 = net.add("block2/bn2", initializer::batch_norm(2 * width));
    window_options proj;
    proj.stride = {2, 2};
    const int sc = net.add("block2/shortcut", init.conv2d(1, width, 2 * width, proj), {out1});
    net.add("block2/add", add_layer{activation::relu}, {b2, sc});
    net.add("pool", global_avg_pool_layer{});
    net.add("fc", init.dense(2 * width, 10));
    return net;
}

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
