// Applying quantizers to memory: spans and raw pointers, xtensor containers and
// expressions, in place and out of place. Element i of a call is element
// options.index_offset + i of the stream that stochastic rounding draws from, so a
// tensor quantized in pieces equals the tensor quantized whole, on any thread count and
// any SIMD width. For xtensor containers the element index is the storage order.
//
// xtensor types are recognised by their traits (expression_tag, temporary_type), so this
// header needs no xtensor include: a program that has an xtensor expression has included
// xtensor already.
#pragma once

#include "config.hpp"

#include "core/concepts.hpp"
#include "core/descriptor.hpp"
#include "core/error.hpp"
#include "detail/xsimd_compat.hpp"
#include "quantizers/affine.hpp"

#include <algorithm>
#include <cstdint>
#include <span>
#include <thread>
#include <type_traits>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI {

struct apply_options
{
    std::uint64_t index_offset = 0; // stream position of the first element
    unsigned threads = 1;           // 0: one per hardware thread
    std::size_t min_elements_per_thread = std::size_t(1) << 16;
    // Out-of-place outputs of at least this many bytes are written with non-temporal
    // stores (they would not stay in cache anyway).
    std::size_t streaming_bytes = std::size_t(8) << 20;
    // Block formats (quantizers/block.hpp, nvfp4.hpp; element-wise quantizers ignore it):
    // blocks run along lines of block_line elements spaced block_stride apart, the run
    // being whole lines; 0: one line, the whole run.
    std::size_t block_line = 0;
    std::size_t block_stride = 1;
};

// The block lines of a row-major tensor of this shape as the layers use them: along the
// last axis (a layer's outputs: the channels); for a layer's parameters of rank 2 or more
// along axis 0 of their [K, last axis] view (the reduction axis of dense [IN, OUT] and of
// conv HWIO); a vector, or an empty tensor, is one line.
template <class Shape>
void set_block_lines(apply_options& o, Shape const& shape, bool parameter)
{
    const std::size_t rank = std::size(shape);
    std::size_t size = 1;
    for (std::size_t d = 0; d < rank; ++d) size *= std::size_t(shape[d]);
    o.block_line = 0;
    o.block_stride = 1;
    if (rank < 2 || size == 0) return;
    const auto last = std::size_t(shape[rank - 1]);
    o.block_line = parameter ? size / last : last;
    o.block_stride = parameter ? last : 1;
}

namespace detail {

template <class A, class K, class T>
void run_range(K const& kernel, T const* in, T* out, std::size_t n, std::uint64_t index, bool stream)
{
    // A local copy: the compiler then knows stores to out cannot change the parameters,
    // and keeps them in registers instead of reloading them every batch.
    const K k = kernel;
    std::size_t i = 0;
    if constexpr (BatchQuantizer<K, T, A>) {
        using B = xsimd::batch<T, A>;
        constexpr std::size_t N = B::size;
        if (stream) {
            // scalar head up to the output's batch alignment, then aligned streaming stores
            for (; i < n && reinterpret_cast<std::uintptr_t>(out + i) % A::alignment() != 0; ++i)
                out[i] = call_at(k, in[i], index + i);
            for (; i + N <= n; i += N) simd::store_stream(out + i, call_at(k, B::load_unaligned(in + i), index + i));
            simd::stream_fence();
        } else {
            // two batches per iteration give the out-of-order core independent chains
            for (; i + 2 * N <= n; i += 2 * N) {
                const B a = call_at(k, B::load_unaligned(in + i), index + i);
                const B b = call_at(k, B::load_unaligned(in + i + N), index + i + N);
                a.store_unaligned(out + i);
                b.store_unaligned(out + i + N);
            }
            for (; i + N <= n; i += N) call_at(k, B::load_unaligned(in + i), index + i).store_unaligned(out + i);
        }
    }
    for (; i < n; ++i) out[i] = call_at(k, in[i], index + i);
}

// The threads a run of n elements gets: opt.threads (0: the hardware's), at most one per
// opt.min_elements_per_thread (at least 64) elements.
inline unsigned threads_for(std::size_t n, apply_options const& opt) noexcept
{
    const unsigned threads = opt.threads ? opt.threads : std::max(1u, std::thread::hardware_concurrency());
    const std::size_t per = std::max<std::size_t>(opt.min_elements_per_thread, 64);
    return static_cast<unsigned>(std::min<std::size_t>(threads, std::max<std::size_t>(1, n / per)));
}

template <class A, class K, class T>
void run_elementwise(K const& k, T const* in, T* out, std::size_t n, apply_options const& opt)
{
    const unsigned threads = threads_for(n, opt);
    const bool stream = in != out && n * sizeof(T) >= opt.streaming_bytes;
    if (threads <= 1) {
        run_range<A>(k, in, out, n, opt.index_offset, stream);
        return;
    }
    // chunk bounds on multiples of 64 elements keep SIMD and cache lines whole
    const std::size_t chunk = ((n + threads - 1) / threads + 63) / 64 * 64;
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; ++t) {
        const std::size_t b = std::min(n, t * chunk), e = std::min(n, b + chunk);
        if (b < e)
            pool.emplace_back([&, b, e] { run_range<A>(k, in + b, out + b, e - b, opt.index_offset + b, stream); });
    }
    run_range<A>(k, in, out, std::min(n, chunk), opt.index_offset, stream);
    for (auto& th : pool) th.join();
}

// Resolves a quantizer down to an element-wise kernel: runtime choices are dispatched
// once (visit), tensor statistics are gathered once (prepare), a type-erased quantizer
// runs its own typed loop (quantize_bulk), then the loop runs.
template <class A, class Q, class T>
void resolve_and_run(Q const& q, T const* in, T* out, std::size_t n, apply_options const& opt)
{
    if constexpr (requires { q.quantize_bulk(in, out, n, opt); }) {
        q.quantize_bulk(in, out, n, opt);
    } else if constexpr (DispatchingQuantizer<Q, T>) {
        q.template visit<T>([&](auto const& k) { resolve_and_run<A>(k, in, out, n, opt); });
    } else if constexpr (TensorQuantizer<Q, T>) {
        // the statistics pass runs on the same architecture as the loop
        const std::span<T const> data(in, n);
        if constexpr (requires { q.template prepare<A>(data); })
            resolve_and_run<A>(q.template prepare<A>(data), in, out, n, opt);
        else
            resolve_and_run<A>(q.prepare(data), in, out, n, opt);
    } else {
        run_elementwise<A>(q, in, out, n, opt);
    }
}

// Why Q is not a quantizer for T, as a static_assert message naming the requirement.
template <class Q, class T>
constexpr void require_quantizer()
{
    static_assert(std::floating_point<T>, "quantize: the elements must be float or double");
    if constexpr (requires { Q::template fits<T>; }) {
        static_assert(Q::template fits<T>,
                      "quantize: this fixed-point format has more bits than the element type holds "
                      "exactly (W <= 24 for float, W <= 53 for double); quantize double data, or "
                      "use encode() for the W-bit word");
    }
    constexpr bool const_call = requires(Q const& q, T x) { q(x); }
    || requires(Q const& q, T x, std::uint64_t i) { q(x, i); };
    constexpr bool mutable_call = requires(Q & q, T x) { q(x); }
    || requires(Q & q, T x, std::uint64_t i) { q(x, i); };
    static_assert(const_call || !mutable_call,
                  "quantize: the quantizer's call operator must be const (a lambda must not "
                  "be mutable): results may not depend on the order of calls");
    static_assert(!const_call || ScalarQuantizer<Q, T> || DispatchingQuantizer<Q, T> || TensorQuantizer<Q, T>,
                  "quantize: q(x) must return exactly the element type (a quantizer for float given double data, or "
                  "one that returns another type, would narrow silently)");
    static_assert(
        Quantizer<Q, T> || requires(Q const& q, T const* p, T* o,
                                    apply_options const& a) { q.quantize_bulk(p, o, std::size_t(0), a); },
        "quantize: not a quantizer for this element type: it needs q(x) or q(x, index) returning T, prepare(span), or "
        "visit<T>(fn)");
}

// Contiguous storage with data() and size() (std::vector, std::array, spans, C arrays).
template <class R>
concept float_contiguous_range = requires(R& r)
{
    std::data(r);
    std::size(r);
}
&&std::is_pointer_v<decltype(std::data(std::declval<R&>()))>&&
    std::floating_point<std::remove_cvref_t<decltype(*std::data(std::declval<R&>()))>>;

template <class R>
using range_value_t = std::remove_cvref_t<decltype(*std::data(std::declval<R&>()))>;

template <class R>
concept writable_float_range =
    float_contiguous_range<R> && !std::is_const_v<std::remove_reference_t<decltype(*std::data(std::declval<R&>()))>>;

// An xtensor expression: a container, a view or a lazy expression.
template <class E>
concept xtensor_expression = requires
{
    typename std::decay_t<E>::expression_tag;
};
// A container owns contiguous storage: it is its own temporary type (an adaptor or a view
// is not).
template <class E>
concept xtensor_container = xtensor_expression<E> &&
    std::same_as<typename std::decay_t<E>::temporary_type, std::decay_t<E>> && requires(std::decay_t<E>& e)
{
    e.data();
    e.size();
};

// Row-major strides of a shape (dimensions of size 1 may have any stride).
template <class E>
bool is_row_major(E const& e)
{
    std::size_t expect = 1;
    for (std::size_t d = e.shape().size(); d-- > 0;) {
        if (e.shape()[d] > 1 && std::size_t(e.strides()[d]) != expect) return false;
        expect *= e.shape()[d];
    }
    return true;
}

} // namespace detail

// Out of place: out[i] = Q(in[i]) over contiguous ranges (std::vector, std::array, spans
// of either extent). in and out may be the same memory, not overlap otherwise.
template <class Arch = xsimd::default_arch, class Q, detail::float_contiguous_range In,
          detail::writable_float_range Out>
    requires(std::same_as<detail::range_value_t<In>, detail::range_value_t<Out>> && !detail::xtensor_expression<In> &&
             !detail::xtensor_expression<Out>)
void quantize(Q const& q, In&& in, Out&& out, apply_options const& opt = {})
{
    using T = detail::range_value_t<In>;
    detail::require_quantizer<Q, T>();
    const std::size_t n = std::size(in);
    if (n != std::size_t(std::size(out)))
        throw usage_error("quantize: input has " + std::to_string(n) + " elements, output " +
                          std::to_string(std::size(out)));
    detail::resolve_and_run<Arch>(q, std::data(in), std::data(out), n, opt);
}

template <class Arch = xsimd::default_arch, class Q, std::floating_point T>
void quantize(Q const& q, T const* in, T* out, std::size_t n, apply_options const& opt = {})
{
    detail::require_quantizer<Q, T>();
    detail::resolve_and_run<Arch>(q, in, out, n, opt);
}

// In place over a contiguous range.
template <class Arch = xsimd::default_arch, class Q, detail::writable_float_range R>
    requires(!detail::xtensor_expression<R>)
void quantize_inplace(Q const& q, R&& data, apply_options const& opt = {})
{
    using T = detail::range_value_t<R>;
    detail::require_quantizer<Q, T>();
    T* p = std::data(data);
    detail::resolve_and_run<Arch>(q, p, p, std::size_t(std::size(data)), opt);
}

// In place over an xtensor container (element i is storage element i) or any assignable
// xtensor expression such as a view (element i is the i-th in row-major order; the view is
// gathered, quantized and written back).
template <class Arch = xsimd::default_arch, class Q, class E>
    requires detail::xtensor_expression<E>
void quantize_inplace(Q const& q, E&& d, apply_options const& opt = {})
{
    using T = typename std::decay_t<E>::value_type;
    detail::require_quantizer<Q, T>();
    if constexpr (detail::xtensor_container<E>) {
        detail::resolve_and_run<Arch>(q, d.data(), d.data(), d.size(), opt);
    } else {
        std::vector<T> buffer(d.begin(), d.end());
        detail::resolve_and_run<Arch>(q, buffer.data(), buffer.data(), buffer.size(), opt);
        std::copy(buffer.begin(), buffer.end(), d.begin());
    }
}

// Any xtensor expression, out of place: evaluates it into a container (xarray or xtensor,
// as xtensor chooses) and quantizes that.
template <class Arch = xsimd::default_arch, class Q, detail::xtensor_expression E>
auto quantize(Q const& q, E const& e, apply_options const& opt = {})
{
    using T = typename E::value_type;
    detail::require_quantizer<Q, T>();
    auto out = eval(e); // xt::eval by argument-dependent lookup: a copy of a container, an evaluated expression
    detail::resolve_and_run<Arch>(q, out.data(), out.data(), out.size(), opt);
    return out;
}

// Per-channel affine along `axis` of a row-major tensor viewed as (outer, channels, inner).
template <class Arch = xsimd::default_arch, std::floating_point T>
void quantize_per_channel(affine_per_channel const& q, std::span<T const> in, std::span<T> out, std::size_t outer,
                          std::size_t inner, apply_options const& opt = {})
{
    const std::size_t C = q.channels();
    if (in.size() != out.size() || in.size() != outer * C * inner)
        throw usage_error("quantize_per_channel: " + std::to_string(in.size()) + " elements do not form (" +
                          std::to_string(outer) + ", " + std::to_string(C) + ", " + std::to_string(inner) + ")");
    std::vector<affine> per;
    for (std::size_t c = 0; c < C; ++c) per.push_back(q.channel(c));
    apply_options o = opt;
    o.threads = 1;
    for (std::size_t b = 0; b < outer; ++b)
        for (std::size_t c = 0; c < C; ++c) {
            const std::size_t off = (b * C + c) * inner;
            o.index_offset = opt.index_offset + off;
            detail::resolve_and_run<Arch>(per[c], in.data() + off, out.data() + off, inner, o);
        }
}

template <class Arch = xsimd::default_arch, detail::xtensor_expression E>
auto quantize_per_channel(affine_per_channel const& q, E const& e, std::size_t axis, apply_options const& opt = {})
{
    using T = typename E::value_type;
    auto out = eval(e); // xt::eval by argument-dependent lookup
    const auto& shape = out.shape();
    if (axis >= shape.size())
        throw usage_error("quantize_per_channel: axis " + std::to_string(axis) + " of a " +
                          std::to_string(shape.size()) + "-d tensor");
    if (shape[axis] != q.channels())
        throw usage_error("quantize_per_channel: axis " + std::to_string(axis) + " has " + std::to_string(shape[axis]) +
                          " channels, the quantizer " + std::to_string(q.channels()));
    if (!detail::is_row_major(out)) throw usage_error("quantize_per_channel: needs a row-major tensor");
    std::size_t outer = 1, inner = 1;
    for (std::size_t d = 0; d < axis; ++d) outer *= shape[d];
    for (std::size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
    std::span<T> s(out.data(), out.size());
    quantize_per_channel<Arch>(q, std::span<T const>(s), s, outer, inner, opt);
    return out;
}

} // namespace tensorquant::inline TENSORQUANT_ABI
