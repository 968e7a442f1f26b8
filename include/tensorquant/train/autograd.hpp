// A small tape-based reverse-mode autograd over xtensor tensors. Each operation computes
// its value with the reference layers and records a backward step; tape::backward runs
// the steps in reverse order, accumulating gradients. Activations are NHWC; dense layers
// take and give [N, 1, 1, features] like the networks do.
#pragma once

#include "../nn/layers.hpp"

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <vector>

namespace tensorquant::train {

template <std::floating_point T>
class tape
{
public:
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
        if (n.grad.size() != n.value.size() || n.grad.dimension() != n.value.dimension()) n.grad = xt::zeros<T>(n.value.shape());
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

namespace detail {

template <class T, std::size_t N>
xt::xtensor<T, N> as_fixed(xt::xarray<T> const& a)
{
    if (a.dimension() != N)
        throw shape_error("autograd: expected a tensor of rank " + std::to_string(N) + ", got " +
                          nn::detail::shape_string(a.shape()));
    std::array<std::size_t, N> s;
    std::copy(a.shape().begin(), a.shape().end(), s.begin());
    xt::xtensor<T, N> t = xt::xtensor<T, N>::from_shape(s);
    std::copy(a.data(), a.data() + a.size(), t.data());
    return t;
}
template <class E>
auto as_dynamic(E const& t)
{
    using T = typename E::value_type;
    xt::xarray<T> a = xt::xarray<T>::from_shape(std::vector<std::size_t>(t.shape().begin(), t.shape().end()));
    std::copy(t.data(), t.data() + t.size(), a.data());
    return a;
}
template <class T>
void accumulate(xt::xarray<T>& into, T const* from)
{
    T* d = into.data();
    for (std::size_t i = 0; i < into.size(); ++i) d[i] += from[i];
}

} // namespace detail

// ---------------------------------------------------------------------------------------
// Layers.

namespace detail {

// out[m x n] = A b, with b[kk, j] = get(kk, j) and A = a[m x k] row-major, or with
// transpose_a the transpose of a row-major a[k x m]: the layers' packed SIMD product.
template <class T, class Get>
void matmul(T const* a, std::size_t m, std::size_t k, std::size_t n, Get get, T* out, bool transpose_a = false)
{
    const nn::detail::packed_panels<T> b(k, n, get, [](std::size_t) { return T(0); });
    const ::tensorquant::detail::strides as = transpose_a ? ::tensorquant::detail::strides{1, m} : ::tensorquant::detail::strides{k, 1};
    ::tensorquant::detail::gemm(::tensorquant::detail::float_mac<T>{}, a, m, b, out, 0, as);
}

} // namespace detail

// x [N, H, W, C], w HWIO, b [OC] (may be an empty leaf). The patch matrix of the forward
// pass is kept for the weight gradient; all three products use the packed SIMD kernel.
template <class T>
typename tape<T>::var conv2d(tape<T>& t, typename tape<T>::var x, typename tape<T>::var w, typename tape<T>::var b,
                             nn::window_options const& o)
{
    using V = typename tape<T>::var;
    auto const& xv = t.value(x);
    auto const& wv = t.value(w);
    auto const& bv = t.value(b);
    if (xv.dimension() != 4 || wv.dimension() != 4)
        throw shape_error("conv2d: input " + nn::detail::shape_string(xv.shape()) + " and weights " +
                          nn::detail::shape_string(wv.shape()) + " must be NHWC and HWIO");
    const auto g = nn::detail::conv_geometry_of(xv.shape(), wv.shape(), o);
    if (bv.size() != 0 && bv.size() != g.oc) throw shape_error("conv2d: bias does not fit the output channels");
    const std::size_t rows = g.oh * g.ow, M = g.n * rows, K = g.k();
    auto cols = std::make_shared<std::vector<std::vector<T>>>(std::size_t(g.groups));
    xt::xarray<T> y = xt::xarray<T>::from_shape({g.n, g.oh, g.ow, g.oc});
    std::vector<T> part(g.groups > 1 ? M * g.ocg : 0);
    for (std::size_t grp = 0; grp < std::size_t(g.groups); ++grp) {
        auto& col = (*cols)[grp];
        col.resize(M * K);
        for (std::size_t img = 0; img < g.n; ++img) nn::detail::im2col(xv.data(), g, img, grp, col.data() + img * rows * K);
        const nn::detail::packed_panels<T> pack(
            K, g.ocg, [&](std::size_t kk, std::size_t j) { return wv.data()[kk * g.oc + grp * g.ocg + j]; },
            [&](std::size_t j) { return bv.size() ? bv.data()[grp * g.ocg + j] : T(0); });
        T* dst = g.groups == 1 ? y.data() : part.data();
        ::tensorquant::detail::gemm(::tensorquant::detail::float_mac<T>{}, col.data(), M, pack, dst);
        if (g.groups > 1)
            for (std::size_t r = 0; r < M; ++r) std::copy_n(&part[r * g.ocg], g.ocg, y.data() + r * g.oc + grp * g.ocg);
    }
    return t.record(
        std::move(y),
        [x, w, b, g, cols](tape<T>& tp, V out) {
            const std::size_t rows = g.oh * g.ow, M = g.n * rows, K = g.k();
            T const* dy = tp.grad(out).data();
            T const* wv = tp.value(w).data();
            if (tp.needs_grad(b) && tp.value(b).size()) {
                T* db = tp.grad(b).data();
                for (std::size_t r = 0; r < M; ++r)
                    for (std::size_t c = 0; c < g.oc; ++c) db[c] += dy[r * g.oc + c];
            }
            std::vector<T> dyg(g.groups > 1 ? M * g.ocg : 0), tmp;
            for (std::size_t grp = 0; grp < std::size_t(g.groups); ++grp) {
                T const* d = dy;
                if (g.groups > 1) {
                    for (std::size_t r = 0; r < M; ++r) std::copy_n(dy + r * g.oc + grp * g.ocg, g.ocg, &dyg[r * g.ocg]);
                    d = dyg.data();
                }
                if (tp.needs_grad(w)) {
                    // dW[k, j] = sum over rows of col[r, k] dy[r, j], image by image so that
                    // each image's patch rows stay in cache while they are reread
                    tmp.resize(K * g.ocg);
                    T* dw = tp.grad(w).data();
                    for (std::size_t img = 0; img < g.n; ++img) {
                        T const* di = d + img * rows * g.ocg;
                        detail::matmul((*cols)[grp].data() + img * rows * K, K, rows, g.ocg,
                                       [&](std::size_t r, std::size_t j) { return di[r * g.ocg + j]; }, tmp.data(), true);
                        for (std::size_t kk = 0; kk < K; ++kk)
                            for (std::size_t j = 0; j < g.ocg; ++j) dw[kk * g.oc + grp * g.ocg + j] += tmp[kk * g.ocg + j];
                    }
                }
                if (tp.needs_grad(x)) {
                    // dcol[r, k] = sum_j dy[r, j] W[k, j], then back to the image positions
                    tmp.resize(M * K);
                    detail::matmul(d, M, g.ocg, K, [&](std::size_t j, std::size_t kk) { return wv[kk * g.oc + grp * g.ocg + j]; }, tmp.data());
                    nn::detail::col2im_add(tmp.data(), g, grp, tp.grad(x).data());
                }
            }
        },
        {x, w, b});
}

// x [N, ...] (flattened to [N, IN]), w [IN, OUT], b [OUT]; gives [N, 1, 1, OUT].
template <class T>
typename tape<T>::var dense(tape<T>& t, typename tape<T>::var x, typename tape<T>::var w, typename tape<T>::var b)
{
    using V = typename tape<T>::var;
    auto const& xv = t.value(x);
    auto const& wv = t.value(w);
    auto const& bv = t.value(b);
    const std::size_t n = xv.shape(0), in = xv.size() / std::max<std::size_t>(n, 1);
    if (wv.dimension() != 2 || wv.shape(0) != in)
        throw shape_error("dense: input " + nn::detail::shape_string(xv.shape()) + " does not fit weights " +
                          nn::detail::shape_string(wv.shape()) + " [IN, OUT]");
    const std::size_t outs = wv.shape(1);
    if (bv.size() != 0 && bv.size() != outs) throw shape_error("dense: bias does not fit the outputs");
    xt::xarray<T> y = xt::xarray<T>::from_shape({n, std::size_t(1), std::size_t(1), outs});
    const nn::detail::packed_panels<T> pack(
        in, outs, [&](std::size_t i, std::size_t j) { return wv.data()[i * outs + j]; },
        [&](std::size_t j) { return bv.size() ? bv.data()[j] : T(0); });
    ::tensorquant::detail::gemm(::tensorquant::detail::float_mac<T>{}, xv.data(), n, pack, y.data());
    return t.record(
        std::move(y),
        [x, w, b, n, in, outs](tape<T>& tp, V o) {
            T const* dy = tp.grad(o).data();
            if (tp.needs_grad(b) && tp.value(b).size()) {
                T* db = tp.grad(b).data();
                for (std::size_t r = 0; r < n; ++r)
                    for (std::size_t j = 0; j < outs; ++j) db[j] += dy[r * outs + j];
            }
            std::vector<T> tmp;
            if (tp.needs_grad(w)) {
                tmp.resize(in * outs);
                detail::matmul(tp.value(x).data(), in, n, outs, [&](std::size_t r, std::size_t j) { return dy[r * outs + j]; },
                               tmp.data(), true);
                detail::accumulate(tp.grad(w), tmp.data());
            }
            if (tp.needs_grad(x)) {
                T const* wv = tp.value(w).data();
                tmp.resize(n * in);
                detail::matmul(dy, n, outs, in, [&](std::size_t j, std::size_t i) { return wv[i * outs + j]; }, tmp.data());
                detail::accumulate(tp.grad(x), tmp.data());
            }
        },
        {x, w, b});
}

// The gradient goes to the first position of each window (in window order) that holds
// the maximum, as nn::max_pool picks it.
template <class T>
typename tape<T>::var max_pool(tape<T>& t, typename tape<T>::var x, nn::pool_options const& o = {})
{
    using V = typename tape<T>::var;
    const auto x4 = detail::as_fixed<T, 4>(t.value(x));
    const auto g = nn::detail::pool_geometry_of(x4.shape(), o, "max_pool");
    return t.record(
        detail::as_dynamic(nn::max_pool(x4, o)),
        [x, g](tape<T>& tp, V out) {
            T const* in = tp.value(x).data();
            T const* y = tp.value(out).data();
            T const* dy = tp.grad(out).data();
            T* dx = tp.grad(x).data();
            if (g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.pad_top == 0 && g.pad_left == 0 && g.h == 2 * g.oh &&
                g.w == 2 * g.ow) {
                // the common 2x2 / 2 pooling without padding: four candidates per output
                const std::size_t row = g.w * g.c;
                for (std::size_t img = 0; img < g.n; ++img)
                    for (std::size_t oy = 0; oy < g.oh; ++oy)
                        for (std::size_t ox = 0; ox < g.ow; ++ox) {
                            const std::size_t o0 = ((img * g.oh + oy) * g.ow + ox) * g.c;
                            const std::size_t i0 = ((img * g.h + 2 * oy) * g.w + 2 * ox) * g.c;
                            for (std::size_t c = 0; c < g.c; ++c) {
                                const T m = y[o0 + c], d = dy[o0 + c];
                                const std::size_t a = i0 + c, b = a + g.c, e = a + row, f = e + g.c;
                                const bool ta = in[a] == m, tb = !ta && in[b] == m, te = !ta && !tb && in[e] == m;
                                const bool tf = !ta && !tb && !te;
                                dx[a] += ta ? d : T(0);
                                dx[b] += tb ? d : T(0);
                                dx[e] += te ? d : T(0);
                                dx[f] += tf ? d : T(0);
                            }
                        }
                return;
            }
            std::vector<unsigned char> done(g.c);
            nn::detail::for_each_window(g, [&](std::size_t img, std::size_t oy, std::size_t ox, long ya, long yb, long xa, long xb) {
                const std::size_t o0 = ((img * g.oh + oy) * g.ow + ox) * g.c;
                std::fill(done.begin(), done.end(), 0);
                for (long iy = ya; iy < yb; ++iy)
                    for (long ix = xa; ix < xb; ++ix) {
                        const std::size_t base = ((img * g.h + std::size_t(iy)) * g.w + std::size_t(ix)) * g.c;
                        for (std::size_t c = 0; c < g.c; ++c) { // branch-free over the channels
                            const bool take = !done[c] && in[base + c] == y[o0 + c];
                            dx[base + c] += take ? dy[o0 + c] : T(0);
                            done[c] |= take;
                        }
                    }
            });
        },
        {x});
}

template <class T>
typename tape<T>::var avg_pool(tape<T>& t, typename tape<T>::var x, nn::pool_options const& o = {})
{
    using V = typename tape<T>::var;
    const auto x4 = detail::as_fixed<T, 4>(t.value(x));
    const auto g = nn::detail::pool_geometry_of(x4.shape(), o, "avg_pool");
    return t.record(
        detail::as_dynamic(nn::avg_pool(x4, o)),
        [x, g](tape<T>& tp, V out) {
            T const* dy = tp.grad(out).data();
            T* dx = tp.grad(x).data();
            nn::detail::for_each_window(g, [&](std::size_t img, std::size_t oy, std::size_t ox, long ya, long yb, long xa, long xb) {
                const T inv = T(1) / T((yb - ya) * (xb - xa));
                T const* d = dy + ((img * g.oh + oy) * g.ow + ox) * g.c;
                for (long iy = ya; iy < yb; ++iy)
                    for (long ix = xa; ix < xb; ++ix) {
                        T* dst = dx + ((img * g.h + std::size_t(iy)) * g.w + std::size_t(ix)) * g.c;
                        for (std::size_t c = 0; c < g.c; ++c) dst[c] += d[c] * inv;
                    }
            });
        },
        {x});
}

template <class T>
typename tape<T>::var global_avg_pool(tape<T>& t, typename tape<T>::var x)
{
    auto const& s = t.value(x).shape();
    nn::pool_options o;
    o.size = o.stride = {int(s[1]), int(s[2])};
    return avg_pool(t, x, o);
}

// Training-mode batch norm: normalises with the batch's mean and (biased) variance over
// N, H, W; mean_out and var_out receive them for the running averages.
template <class T>
typename tape<T>::var batch_norm(tape<T>& t, typename tape<T>::var x, typename tape<T>::var gamma,
                                 typename tape<T>::var beta, T epsilon, std::vector<T>* mean_out = nullptr,
                                 std::vector<T>* var_out = nullptr)
{
    using V = typename tape<T>::var;
    auto const& xv = t.value(x);
    const std::size_t c = xv.shape(xv.dimension() - 1), m = xv.size() / c;
    std::vector<T> mean(c, 0), var(c, 0), inv(c);
    for (std::size_t r = 0; r < m; ++r)
        for (std::size_t j = 0; j < c; ++j) mean[j] += xv.data()[r * c + j];
    for (auto& v : mean) v /= T(m);
    for (std::size_t r = 0; r < m; ++r)
        for (std::size_t j = 0; j < c; ++j) {
            const T d = xv.data()[r * c + j] - mean[j];
            var[j] += d * d;
        }
    for (std::size_t j = 0; j < c; ++j) var[j] /= T(m), inv[j] = T(1) / std::sqrt(var[j] + epsilon);
    if (mean_out) *mean_out = mean;
    if (var_out) *var_out = var;
    xt::xarray<T> xhat = xt::xarray<T>::from_shape(xv.shape()), y = xt::xarray<T>::from_shape(xv.shape());
    T const* gm = t.value(gamma).data();
    T const* bt = t.value(beta).data();
    for (std::size_t r = 0; r < m; ++r)
        for (std::size_t j = 0; j < c; ++j) {
            const T h = (xv.data()[r * c + j] - mean[j]) * inv[j];
            xhat.data()[r * c + j] = h;
            y.data()[r * c + j] = h * gm[j] + bt[j];
        }
    return t.record(
        std::move(y),
        [x, gamma, beta, c, m, inv = std::move(inv), xhat = std::move(xhat)](tape<T>& tp, V out) {
            T const* dy = tp.grad(out).data();
            std::vector<T> sum_dy(c, 0), sum_dy_xhat(c, 0);
            for (std::size_t r = 0; r < m; ++r)
                for (std::size_t j = 0; j < c; ++j) {
                    sum_dy[j] += dy[r * c + j];
                    sum_dy_xhat[j] += dy[r * c + j] * xhat.data()[r * c + j];
                }
            if (tp.needs_grad(gamma)) detail::accumulate(tp.grad(gamma), sum_dy_xhat.data());
            if (tp.needs_grad(beta)) detail::accumulate(tp.grad(beta), sum_dy.data());
            if (tp.needs_grad(x)) {
                T* dx = tp.grad(x).data();
                T const* gm = tp.value(gamma).data();
                for (std::size_t r = 0; r < m; ++r)
                    for (std::size_t j = 0; j < c; ++j)
                        dx[r * c + j] += gm[j] * inv[j] / T(m) *
                                         (T(m) * dy[r * c + j] - sum_dy[j] - xhat.data()[r * c + j] * sum_dy_xhat[j]);
            }
        },
        {x, gamma, beta});
}

// Inference-mode batch norm (the reference layer) with gradients to x, gamma and beta.
template <class T>
typename tape<T>::var batch_norm_inference(tape<T>& t, typename tape<T>::var x, typename tape<T>::var gamma,
                                           typename tape<T>::var beta, std::vector<T> const& mean,
                                           std::vector<T> const& variance, T epsilon)
{
    using V = typename tape<T>::var;
    auto const& xv = t.value(x);
    const std::size_t c = xv.shape(xv.dimension() - 1), m = xv.size() / c;
    std::vector<T> inv(c);
    for (std::size_t j = 0; j < c; ++j) inv[j] = T(1) / std::sqrt(variance[j] + epsilon);
    xt::xarray<T> y = xt::xarray<T>::from_shape(xv.shape());
    T const* gm = t.value(gamma).data();
    T const* bt = t.value(beta).data();
    for (std::size_t r = 0; r < m; ++r)
        for (std::size_t j = 0; j < c; ++j) y.data()[r * c + j] = (xv.data()[r * c + j] - mean[j]) * inv[j] * gm[j] + bt[j];
    return t.record(
        std::move(y),
        [x, gamma, beta, c, m, inv, mean](tape<T>& tp, V out) {
            T const* dy = tp.grad(out).data();
            T const* xv = tp.value(x).data();
            T const* gm = tp.value(gamma).data();
            for (std::size_t r = 0; r < m; ++r)
                for (std::size_t j = 0; j < c; ++j) {
                    const T d = dy[r * c + j];
                    if (tp.needs_grad(gamma)) tp.grad(gamma).data()[j] += d * (xv[r * c + j] - mean[j]) * inv[j];
                    if (tp.needs_grad(beta)) tp.grad(beta).data()[j] += d;
                    if (tp.needs_grad(x)) tp.grad(x).data()[r * c + j] += d * inv[j] * gm[j];
                }
        },
        {x, gamma, beta});
}

template <class T>
typename tape<T>::var activate(tape<T>& t, typename tape<T>::var x, nn::activation a, double alpha = 0.2)
{
    using V = typename tape<T>::var;
    if (a == nn::activation::none) return x;
    xt::xarray<T> y = t.value(x);
    T* d = y.data();
    const T slope = T(alpha);
    for (std::size_t i = 0; i < y.size(); ++i) {
        if (a == nn::activation::relu) d[i] = std::max(d[i], T(0));
        else if (a == nn::activation::relu6) d[i] = std::min(std::max(d[i], T(0)), T(6));
        else d[i] = d[i] < T(0) ? d[i] * slope : d[i];
    }
    return t.record(
        std::move(y),
        [x, a, slope](tape<T>& tp, V out) {
            T const* dy = tp.grad(out).data();
            T const* xv = tp.value(x).data();
            T* dx = tp.grad(x).data();
            for (std::size_t i = 0; i < tp.value(x).size(); ++i) {
                const T v = xv[i];
                T g;
                if (a == nn::activation::relu) g = v > T(0) ? T(1) : T(0);
                else if (a == nn::activation::relu6) g = v > T(0) && v < T(6) ? T(1) : T(0);
                else g = v < T(0) ? slope : T(1);
                dx[i] += g * dy[i];
            }
        },
        {x});
}

template <class T>
typename tape<T>::var add(tape<T>& t, typename tape<T>::var a, typename tape<T>::var b)
{
    using V = typename tape<T>::var;
    if (t.value(a).shape() != t.value(b).shape()) throw shape_error("add: shapes differ");
    xt::xarray<T> y = t.value(a) + t.value(b);
    return t.record(
        std::move(y),
        [a, b](tape<T>& tp, V out) {
            for (V v : {a, b})
                if (tp.needs_grad(v)) detail::accumulate(tp.grad(v), tp.grad(out).data());
        },
        {a, b});
}

// Along the last axis.
template <class T>
typename tape<T>::var concat(tape<T>& t, std::vector<typename tape<T>::var> const& parts)
{
    using V = typename tape<T>::var;
    std::vector<nn::tensor4<T>> p4;
    for (V v : parts) p4.push_back(detail::as_fixed<T, 4>(t.value(v)));
    std::vector<nn::tensor4<T> const*> ptrs;
    for (auto const& p : p4) ptrs.push_back(&p);
    auto y = nn::concat(ptrs);
    std::vector<std::size_t> widths;
    for (auto const& p : p4) widths.push_back(p.shape(3));
    return t.record(
        detail::as_dynamic(y),
        [parts, widths](tape<T>& tp, V o) {
            std::size_t total = 0;
            for (auto w : widths) total += w;
            T const* dy = tp.grad(o).data();
            const std::size_t pixels = tp.value(o).size() / total;
            std::size_t offset = 0;
            for (std::size_t k = 0; k < parts.size(); ++k) {
                if (tp.needs_grad(parts[k])) {
                    T* d = tp.grad(parts[k]).data();
                    for (std::size_t r = 0; r < pixels; ++r)
                        for (std::size_t c = 0; c < widths[k]; ++c) d[r * widths[k] + c] += dy[r * total + offset + c];
                }
                offset += widths[k];
            }
        },
        parts);
}

// [N, ...] -> [N, 1, 1, F]
template <class T>
typename tape<T>::var flatten(tape<T>& t, typename tape<T>::var x)
{
    using V = typename tape<T>::var;
    auto const& xv = t.value(x);
    const std::size_t n = xv.shape(0);
    xt::xarray<T> y = xt::xarray<T>::from_shape({n, std::size_t(1), std::size_t(1), xv.size() / std::max<std::size_t>(n, 1)});
    std::copy(xv.data(), xv.data() + xv.size(), y.data());
    return t.record(
        std::move(y), [x](tape<T>& tp, V out) { detail::accumulate(tp.grad(x), tp.grad(out).data()); }, {x});
}

// Softmax over the last axis.
template <class T>
typename tape<T>::var softmax(tape<T>& t, typename tape<T>::var x)
{
    using V = typename tape<T>::var;
    auto const& xv = t.value(x);
    const std::size_t k = xv.shape(xv.dimension() - 1), rows = xv.size() / std::max<std::size_t>(k, 1);
    xt::xarray<T> y = xt::xarray<T>::from_shape(xv.shape());
    for (std::size_t r = 0; r < rows; ++r) {
        T const* in = xv.data() + r * k;
        T* out = y.data() + r * k;
        const T mx = *std::max_element(in, in + k);
        T s = 0;
        for (std::size_t j = 0; j < k; ++j) s += (out[j] = std::exp(in[j] - mx));
        for (std::size_t j = 0; j < k; ++j) out[j] /= s;
    }
    return t.record(
        std::move(y),
        [x, k, rows](tape<T>& tp, V o) {
            T const* y = tp.value(o).data();
            T const* dy = tp.grad(o).data();
            T* dx = tp.grad(x).data();
            for (std::size_t r = 0; r < rows; ++r) { // dx = y (dy - sum(dy y))
                T dot = 0;
                for (std::size_t j = 0; j < k; ++j) dot += dy[r * k + j] * y[r * k + j];
                for (std::size_t j = 0; j < k; ++j) dx[r * k + j] += y[r * k + j] * (dy[r * k + j] - dot);
            }
        },
        {x});
}

// Mean over the batch of -log softmax(logits)[label]; logits [N, ..., classes].
template <class T>
typename tape<T>::var softmax_cross_entropy(tape<T>& t, typename tape<T>::var logits, std::vector<int> const& labels)
{
    using V = typename tape<T>::var;
    auto const& z = t.value(logits);
    const std::size_t n = z.shape(0), k = z.size() / std::max<std::size_t>(n, 1);
    if (labels.size() != n) throw shape_error("softmax_cross_entropy: " + std::to_string(labels.size()) + " labels for " + std::to_string(n) + " rows");
    std::vector<T> p(z.size());
    T loss = 0;
    for (std::size_t r = 0; r < n; ++r) {
        if (labels[r] < 0 || std::size_t(labels[r]) >= k) throw shape_error("softmax_cross_entropy: label out of range");
        T const* row = z.data() + r * k;
        const T mx = *std::max_element(row, row + k);
        T s = 0;
        for (std::size_t j = 0; j < k; ++j) s += (p[r * k + j] = std::exp(row[j] - mx));
        for (std::size_t j = 0; j < k; ++j) p[r * k + j] /= s;
        loss += -(row[labels[r]] - mx - std::log(s));
    }
    xt::xarray<T> out = xt::xarray<T>::from_shape({std::size_t(1)});
    out(0) = loss / T(n);
    return t.record(
        std::move(out),
        [logits, labels, p = std::move(p), n, k](tape<T>& tp, V o) {
            const T g = tp.grad(o)(0) / T(n);
            T* d = tp.grad(logits).data();
            for (std::size_t r = 0; r < n; ++r)
                for (std::size_t j = 0; j < k; ++j) d[r * k + j] += g * (p[r * k + j] - (int(j) == labels[r] ? T(1) : T(0)));
        },
        {logits});
}

// 0.5 lambda sum w^2 over the given tensors, added to loss.
template <class T>
typename tape<T>::var l2_penalty(tape<T>& t, typename tape<T>::var loss, std::vector<typename tape<T>::var> const& weights, T lambda)
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

} // namespace tensorquant::train
