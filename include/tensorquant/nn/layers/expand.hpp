// Broadcasts a tensor to a shape (ONNX's Expand: numpy broadcasting of the input's shape and
// the target). A target size that follows the batch takes the batch from the layer's last
// input (the network's input). Data movement only: the intrinsic path rounds the input to
// the format and moves it.
#pragma once

#include "../../config.hpp"

#include "../kernels/broadcast.hpp"
#include "../kernels/intrinsic.hpp"
#include "../kernels/layout.hpp"
#include "../kernels/tensor_ops.hpp"
#include "layer.hpp"

#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

namespace kernels {

template <class V, class S>
tensor<V> expanded(tensor<V> const& x, S const& target)
{
    const auto p = broadcast_shapes(x.shape(), target, "expand");
    tensor<V> y = tensor<V>::from_shape(p.shape);
    for_each_broadcast(p, [&](std::size_t i, std::size_t ia, std::size_t) { y.data()[i] = x.data()[ia]; });
    return y;
}

} // namespace kernels

namespace tape_ops {

template <class Tape>
typename Tape::var expand(Tape& t, typename Tape::var x, std::vector<std::size_t> const& target)
{
    using V = typename Tape::var;
    return t.record(kernels::expanded(t.value(x), target),
                    [x, target](Tape& tp, V out) {
                        const auto p = kernels::broadcast_shapes(tp.value(x).shape(), target, "expand");
                        auto* dx = tp.grad(x).data();
                        auto const* dy = tp.grad(out).data();
                        kernels::for_each_broadcast(
                            p, [&](std::size_t i, std::size_t ia, std::size_t) { dx[ia] += dy[i]; });
                    },
                    {x});
}

} // namespace tape_ops

struct expand_layer
{
    static constexpr std::string_view kind = "expand";
    std::vector<extent> shape;

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        return kernels::expanded(ctx.input(0), target(ctx));
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        return kernels::expanded(kernels::quantized_copy(q, ctx.input(0), kernels::intrinsic_operand_offset(0)),
                                 target(ctx));
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return tape_ops::expand(ctx.tape(), ctx.input(0), target(ctx));
    }

private:
    template <class Ctx>
    std::vector<std::size_t> target(Ctx& ctx) const
    {
        return kernels::resolve(shape, ctx.inputs() > 1 ? kernels::batch_of(ctx, ctx.input(ctx.inputs() - 1)) : 1);
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
