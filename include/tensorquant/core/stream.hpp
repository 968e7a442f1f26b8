// Where stochastic quantizers draw their thresholds inside networks and training: one
// layout for the network, the trainer and the optimizers, so that no two tensors share
// thresholds and a seed reproduces a run on any thread count.
//
// Element e of the tensor (layer L, tensor slot S, role R) at training step k is element
//     stream_offset(L, S, R, k) + e
// of its quantizer's stream. The offset's upper 32 bits are a hash of (L, S, R, k) and its
// lower 32 bits are 0, so tensors of up to 2^32 elements never overlap one another; two
// different (L, S, R, k) share a block with probability 2^-32 per pair.
// - L: the layer's index in its network; S: the parameter's position in the layer's
//   parameter list (weights 0, bias 1; gamma, beta, mean, variance), 0 for outputs;
// - R: the role below; k: the optimizer step in training; at inference 0, or the step
//   network::forward is given (the study runs block b of its images as step b + 1;
//   weights keep step 0 there);
// - outputs in training: a shard of samples [first, last) starts at element first times
//   the elements per sample, so the result does not depend on the shard size;
// - intrinsic formats of a layer take rng stream mix64(stream ^ stream_offset(L, 0,
//   intrinsic, k)) for their products and inputs (see conv2d_intrinsic);
// - optimizers: L is the parameter's position in the trainer's list, S = 0.
#pragma once

#include "../config.hpp"

#include "random.hpp"

#include <cstdint>

namespace tensorquant::inline TENSORQUANT_ABI {

enum class stream_role : std::uint8_t {
    weights,   // a parameter through the weights map
    extrinsic, // a layer output through the extrinsic map
    intrinsic, // the layer's intrinsic format
    gradient,  // w <- w - lr Q(g)
    update,    // w <- Q(w - update)
    state,     // momentum, Adam's first moment
    state2     // Adam's second moment
};

constexpr std::uint64_t stream_offset(std::uint64_t layer, std::uint64_t tensor, stream_role role,
                                      std::uint64_t step = 0) noexcept
{
    using detail::mix64;
    const std::uint64_t h = mix64(mix64(mix64(mix64(layer) ^ tensor) ^ std::uint64_t(role)) ^ step);
    return h & ~std::uint64_t(0xffffffffu);
}

// The rng key of a layer's intrinsic format.
constexpr rng_key intrinsic_key(rng_key k, std::uint64_t layer, std::uint64_t step = 0) noexcept
{
    return {k.seed, detail::mix64(k.stream ^ stream_offset(layer, 0, stream_role::intrinsic, step))};
}

} // namespace tensorquant::inline TENSORQUANT_ABI
