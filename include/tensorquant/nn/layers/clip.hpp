// min(max(x, lo), hi) element by element (ONNX's Clip with any bounds; ReLU and ReLU6 are
// activations of the layer before). Exact in float, NaN stays NaN. Intrinsic: the input in
// the format, clamped, rounded once; for a deterministic rounding that equals clamping to
// the bounds rounded to the format (as a hardware clamp compares with constants of its
// format), since rounding is monotone and keeps values of the format. On the tape the
// gradient passes where lo < x < hi.
#pragma once

#include "../../config.hpp"

#include "../../apply.hpp"
#include "../kernels/intrinsic.hpp"
#include "../kernels/tensor_ops.hpp"
#include "layer.hpp"

#include <algorithm>
#include <limits>
#include <span>
#include <string>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

namespace kernels {

// (std::max and std::min return their first operand when either is NaN.)
template <class Tensor>
Tensor clamp_float(Tensor y, float lo, float hi)
{
    for (auto& v : y) v = std::min(std::max(v, lo), hi);
    return y;
}

} // namespace kernels

namespace tape_ops {

template <class Tape>
typename Tape::var clip(Tape& t, typename Tape::var x, double lo, double hi)
{
    using T = typename Tape::value_type;
    using V = typename Tape::var;
    xt::xarray<T> y = t.value(x);
    for (auto& v : y) v = std::min(std::max(v, T(lo)), T(hi));
    return t.record(std::move(y),
                    [x, lo, hi](Tape& tp, V out) {
                        T const* dy = tp.grad(out).data();
                        T const* xv = tp.value(x).data();
                        T* dx = tp.grad(x).data();
                        for (std::size_t i = 0; i < tp.value(x).size(); ++i)
                            if (xv[i] > T(lo) && xv[i] < T(hi)) dx[i] += dy[i];
                    },
                    {x});
}

} // namespace tape_ops

struct clip_layer
{
    static constexpr std::string_view kind = "clip";
    float lo = -std::numeric_limits<float>::infinity();
    float hi = std::numeric_limits<float>::infinity();

    template <class Ctx>
    tensor<float> forward(Ctx& ctx) const
    {
        return kernels::clamp_float(ctx.input(0), lo, hi);
    }
    template <class Ctx>
    tensor<float> forward_intrinsic(Ctx& ctx, fixed_point_rt const& q) const
    {
        auto y = kernels::clamp_float(kernels::quantized_copy(q, ctx.input(0), kernels::intrinsic_operand_offset(0)),
                                      lo, hi);
        apply_options o;
        o.index_offset = kernels::intrinsic_activation_offset;
        quantize_inplace(q, std::span<float>(y.data(), y.size()), o);
        return y;
    }
    std::string intrinsic_problem(fixed_point_rt const&) const { return ""; }
    template <class Ctx>
    auto on_tape(Ctx& ctx) const
    {
        return tape_ops::clip(ctx.tape(), ctx.input(0), lo, hi);
    }
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
