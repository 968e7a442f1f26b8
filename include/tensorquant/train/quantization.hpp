// Quantizers on the tape: any quantizer with a straight-through estimator (STE), the
// variant that zeroes the gradient where the forward pass saturated, and Trained
// Quantization Thresholds (TQT, docs/reference.md §4) with a learnable log2 threshold.
#pragma once

#include "../config.hpp"

#include "../apply.hpp"
#include "../nn/instrumentation.hpp"
#include "../parse.hpp"
#include "autograd.hpp"

#include <cmath>
#include <optional>

namespace tensorquant::inline TENSORQUANT_ABI::train {

enum class ste {
    pass,          // dq/dx = 1 everywhere
    zero_saturated // dq/dx = 0 where x lies outside the format's range (fixed point)
};

// y = Q(x). index_offset places x in the quantizer's stochastic stream; parameter: x is a
// layer's parameter (block formats then run along its reduction axis, set_block_lines).
template <class T>
typename tape<T>::var quantize(tape<T>& t, typename tape<T>::var x, any_quantizer const& q, ste mode = ste::pass,
                               std::uint64_t index_offset = 0, bool parameter = false)
{
    using V = typename tape<T>::var;
    std::optional<std::pair<double, double>> range;
    if (mode == ste::zero_saturated) {
        range = nn::saturation_range(q);
        if (!range)
            throw config_error("the saturation-masked straight-through estimator needs a fixed-point quantizer");
    }
    xt::xarray<T> y = t.value(x);
    apply_options opt;
    opt.index_offset = index_offset;
    set_block_lines(opt, y.shape(), parameter);
    quantize_inplace(q, std::span<T>(y.data(), y.size()), opt);
    return t.record(std::move(y),
                    [x, range](tape<T>& tp, V out) {
                        T const* dy = tp.grad(out).data();
                        T const* xv = tp.value(x).data();
                        T* dx = tp.grad(x).data();
                        for (std::size_t i = 0; i < tp.value(x).size(); ++i)
                            if (!range || (double(xv[i]) >= range->first && double(xv[i]) <= range->second))
                                dx[i] += dy[i];
                    },
                    {x});
}

// TQT: b bits, power-of-two scale s = 2^ceil(log2 t) / 2^(b-1) (unsigned: / 2^b),
// q(x) = clip(round(x / s), n, p) s with n = -2^(b-1), p = 2^(b-1) - 1 (unsigned: 0,
// 2^b - 1), round = ties to even. log2t is a scalar tensor on the tape, trained with the
// paper's gradients: dq/dx = 1 inside [n, p], else 0; dq/d(log2 t) = s ln2 times
// (round(x/s) - x/s) inside, n below, p above.
struct tqt_format
{
    int bits = 8;
    bool is_signed = true;
};

template <class T>
T tqt_scale(tqt_format f, T log2t)
{
    return std::ldexp(T(1), int(std::ceil(log2t)) - (f.is_signed ? f.bits - 1 : f.bits));
}

template <class T>
typename tape<T>::var tqt_quantize(tape<T>& t, typename tape<T>::var x, typename tape<T>::var log2t, tqt_format f)
{
    using V = typename tape<T>::var;
    if (f.bits < 1 || f.bits > 24) throw format_error("TQT: bits=" + std::to_string(f.bits) + " is outside [1, 24]");
    if (t.value(log2t).size() != 1) throw shape_error("TQT: the log2 threshold must be a scalar");
    const T s = tqt_scale(f, t.value(log2t).data()[0]);
    const T n = f.is_signed ? -std::ldexp(T(1), f.bits - 1) : T(0);
    const T p = f.is_signed ? std::ldexp(T(1), f.bits - 1) - 1 : std::ldexp(T(1), f.bits) - 1;
    xt::xarray<T> y = t.value(x);
    for (auto& v : y) {
        const T r = std::nearbyint(v / s); // ties to even (default rounding mode)
        v = std::min(std::max(r, n), p) * s;
    }
    return t.record(std::move(y),
                    [x, log2t, s, n, p](tape<T>& tp, V out) {
                        T const* dy = tp.grad(out).data();
                        T const* xv = tp.value(x).data();
                        const bool gx = tp.needs_grad(x), gt = tp.needs_grad(log2t);
                        T* dx = gx ? tp.grad(x).data() : nullptr;
                        T dt = 0;
                        const T ln2 = std::log(T(2));
                        for (std::size_t i = 0; i < tp.value(x).size(); ++i) {
                            const T v = xv[i] / s, r = std::nearbyint(v);
                            if (r < n)
                                dt += dy[i] * s * ln2 * n;
                            else if (r > p)
                                dt += dy[i] * s * ln2 * p;
                            else {
                                if (gx) dx[i] += dy[i];
                                dt += dy[i] * s * ln2 * (r - v);
                            }
                        }
                        if (gt) tp.grad(log2t).data()[0] += dt;
                    },
                    {x, log2t});
}

enum class tqt_init {
    max_abs,         // t = max |x|
    mean_three_sigma // t = |mean| + 3 sigma
};

// Initial log2 threshold from data.
template <class T>
T tqt_initial_log2(std::span<T const> x, tqt_init how)
{
    if (x.empty()) throw shape_error("TQT: cannot initialise a threshold from an empty tensor");
    double v = 0;
    if (how == tqt_init::max_abs) {
        for (T e : x) v = std::max(v, std::abs(double(e)));
    } else {
        double m = 0, q = 0;
        for (T e : x) m += double(e);
        m /= double(x.size());
        for (T e : x) q += (double(e) - m) * (double(e) - m);
        v = std::abs(m) + 3 * std::sqrt(q / double(x.size()));
    }
    if (!(v > 0)) v = 1; // an all-zero tensor: any threshold represents it
    return T(std::log2(v));
}

} // namespace tensorquant::inline TENSORQUANT_ABI::train
