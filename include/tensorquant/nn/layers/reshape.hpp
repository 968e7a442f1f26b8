// Gives a tensor another shape with the same elements in the same order (ONNX's Reshape,
// Flatten, Squeeze and Unsqueeze on tensors whose element order the network keeps). A size
// that follows the batch is inferred from the input's size when it is the only one;
// otherwise the batch comes from the layer's last input (the network's input).
#pragma once

#include "../../config.hpp"

#include "../kernels/intrinsic.hpp"
#include "../kernels/layout.hpp"
#include "../kernels/tensor_ops.hpp"
#include "layer.hpp"

#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

namespace kernels {

// The shape of `target` for an input of `total` elements; batch is the batch size when
// known (0: infer a single per-batch size from total).
inline std::vector<std::size_t> reshape_target(std::vector<extent> const& target, std::size_t total, std::size_t batch)
{
    std::size_t fixed = 1, per = 0;
    for (auto const& e : target) {
        fixed *= std::size_t(e.size);
        if (e.per_batch) ++per;
    }
    if (per == 1 && batch == 0) batch = fixed ? total / fixed : 0;
    auto shape = resolve(target, batch);
    if (element_count(shape) != total)
        throw shape_error("reshape: " + std::to_string(total) + " elements do not fill the shape " +
                          shape_string(shape));
    return shape;
}

} // namespace kernels

namespace tape_ops {

template <class Tape>
typename Tape::var reshape(Tape& t, typename Tape::var x, std::vector<std::size_t> const& shape)
{
    using V = typename Tape::var;
    auto y = t.value(x);
    y.reshape(shape);
    return t.record(std::move(y), [x](Tape& tp, V out) { kernels::accumulate(tp.grad(x), tp.grad(out).data()); }, {x});
}

} // namespace tape_ops

struct reshape_layer
{
    static constexpr std::string_view kind = "reshape";
    std::vector<extent> shape;

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        tensor<float> y = ctx.input(0);
        y.reshape(target(ctx, y.size()));
        return y;
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        auto y = kernels::quantized_copy(q, ctx.input(0), kernels::intrinsic_operand_offset(0));
        y.reshape(target(ctx, y.size()));
        return y;
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        auto& t = ctx.tape();
        return tape_ops::reshape(t, ctx.input(0), target(ctx, t.value(ctx.input(0)).size()));
    }

private:
    template <class Ctx>
    std::vector<std::size_t> target(Ctx& ctx, std::size_t total) const
    {
        std::size_t batch = 0;
        if (ctx.inputs() > 1) batch = kernels::batch_of(ctx, ctx.input(ctx.inputs() - 1));
        return kernels::reshape_target(shape, total, batch);
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
