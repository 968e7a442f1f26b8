// The compute engine's fast paths (packed products, 1x1 convolutions read in place,
// direct depthwise kernels, threads over images and rows) against the generic loops, bit
// for bit, on random shapes that hit every edge tile: M, N, K not multiples of the tile,
// 1x1, strided, dilated, grouped and depthwise convolutions, batch 1 and odd batches, with
// 1, 2 and 3 threads. The float reference accumulates in the documented order with the
// step this build's SIMD has: a fused multiply-add where the instruction set has one.
#include <tensorquant/nn.hpp>

#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace tq = tensorquant;
namespace nn = tensorquant::nn;

namespace {

// Whether this build's SIMD multiply-add is fused (rounded once): the engine's float step.
bool simd_fma_is_fused()
{
    using B = xsimd::batch<float>;
    const float a = 1.1f, b = 2.3f, c = -2.53f; // a b + c: 0 when the product is rounded first
    return tq::detail::simd::fma(B(a), B(b), B(c)).get(0) == std::fma(a, b, c);
}
const bool fused = simd_fma_is_fused();

float float_step(float acc, float a, float w)
{
    if (fused) return std::fma(a, w, acc);
    const volatile float p = a * w; // rounded on its own, never contracted
    return acc + p;
}

template <class T, std::size_t N>
void fill_random(xt::xtensor<T, N>& t, std::mt19937_64& gen, double lo, double hi)
{
    std::uniform_real_distribution<double> d(lo, hi);
    for (auto& v : t) v = T(d(gen));
}

template <class To, std::size_t N>
xt::xtensor<To, N> convert(xt::xtensor<float, N> const& x)
{
    auto y = xt::xtensor<To, N>::from_shape(x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) y.data()[i] = To(x.data()[i]);
    return y;
}

struct conv_case
{
    nn::tensor4<float> x, w;
    nn::tensor1<float> b;
    nn::window_options o;
    std::string name;
};

// Random geometry of one of the kinds the engine treats apart.
conv_case random_case(std::mt19937_64& gen, int kind)
{
    auto pick = [&](int lo, int hi) { return int(std::uniform_int_distribution<int>(lo, hi)(gen)); };
    conv_case c;
    const std::size_t n = std::size_t(pick(1, 3)), h = std::size_t(pick(1, 9)), w = std::size_t(pick(1, 9));
    int channels = pick(1, 40), groups = 1, out = pick(1, 37), k = 1;
    switch (kind) {
    case 0: // 1x1, stride 1: rows read in place
        k = 1;
        break;
    case 1: // 3x3, strided, padded
        k = 3, c.o.stride = {pick(1, 2), pick(1, 2)};
        c.o.padding = nn::padding_mode::explicit_pads;
        c.o.pads = {pick(0, 2), pick(0, 2), pick(0, 2), pick(0, 2)};
        break;
    case 2: // dilated
        k = pick(2, 3), c.o.dilation = {2, pick(1, 2)}, c.o.padding = nn::padding_mode::same;
        break;
    case 3: // grouped
        groups = pick(2, 4), channels = groups * pick(1, 5), out = groups * pick(1, 6), k = pick(1, 3);
        c.o.padding = nn::padding_mode::same;
        break;
    default: // depthwise: every channel count from one SIMD batch's tail to several batches
        groups = channels = out = pick(1, 70), k = pick(1, 5) | 1, c.o.stride = {pick(1, 2), pick(1, 2)};
        c.o.padding = nn::padding_mode::explicit_pads;
        c.o.pads = {pick(0, k), pick(0, k), pick(0, k), pick(0, k)};
        c.o.dilation = {pick(1, 2), 1};
        break;
    }
    c.o.groups = groups;
    // the largest window up to k whose dilated extent fits the padded input
    auto fit = [&](int size, int pads, int dilation) {
        int kk = k;
        if (c.o.padding == nn::padding_mode::explicit_pads)
            while (kk > 1 && (kk - 1) * dilation + 1 > size + pads) --kk;
        return std::size_t(kk);
    };
    const std::size_t kh = fit(int(h), c.o.pads[0] + c.o.pads[1], c.o.dilation[0]),
                      kw = fit(int(w), c.o.pads[2] + c.o.pads[3], c.o.dilation[1]);
    c.x = nn::tensor4<float>::from_shape({n, h, w, std::size_t(channels)});
    c.w = nn::tensor4<float>::from_shape({kh, kw, std::size_t(channels / groups), std::size_t(out)});
    c.b = nn::tensor1<float>::from_shape({std::size_t(out)});
    fill_random(c.x, gen, -3, 3), fill_random(c.w, gen, -1.5, 1.5), fill_random(c.b, gen, -2, 2);
    c.name = "kind " + std::to_string(kind) + " x " + nn::kernels::shape_string(c.x.shape()) + " w " +
             nn::kernels::shape_string(c.w.shape()) + " groups " + std::to_string(groups);
    return c;
}

// y[n, oy, ox, oc] = bias, then for (kh, kw, ic) in increasing order acc = float_step(acc, x, w),
// a padding tap reading 0.
std::vector<float> reference_conv(conv_case const& c)
{
    const auto g = nn::kernels::conv_geometry_of(c.x.shape(), c.w.shape(), c.o);
    std::vector<float> y(g.n * g.oh * g.ow * g.oc);
    for (std::size_t img = 0; img < g.n; ++img)
        for (std::size_t oy = 0; oy < g.oh; ++oy)
            for (std::size_t ox = 0; ox < g.ow; ++ox)
                for (std::size_t oc = 0; oc < g.oc; ++oc) {
                    const std::size_t grp = oc / g.ocg;
                    float acc = c.b(oc);
                    for (std::size_t ky = 0; ky < g.kh; ++ky)
                        for (std::size_t kx = 0; kx < g.kw; ++kx)
                            for (std::size_t ic = 0; ic < g.cg; ++ic) {
                                const long iy = long(oy * g.sh + ky * g.dh) - g.pad_top,
                                           ix = long(ox * g.sw + kx * g.dw) - g.pad_left;
                                const bool inside = iy >= 0 && ix >= 0 && iy < long(g.h) && ix < long(g.w);
                                const float xv =
                                    inside ? c.x(img, std::size_t(iy), std::size_t(ix), grp * g.cg + ic) : 0.0f;
                                acc = float_step(acc, xv, c.w(ky, kx, ic, oc));
                            }
                    y[((img * g.oh + oy) * g.ow + ox) * g.oc + oc] = acc;
                }
    return y;
}

int mismatches(float const* fast, float const* ref, std::size_t n)
{
    int wrong = 0;
    for (std::size_t i = 0; i < n; ++i)
        if (std::bit_cast<std::uint32_t>(fast[i]) != std::bit_cast<std::uint32_t>(ref[i])) {
            if (wrong < 3) MESSAGE("element " << i << ": " << fast[i] << " where the reference has " << ref[i]);
            ++wrong;
        }
    return wrong;
}

// run() under 1, 2 and 3 threads gives ref's bits each time.
template <class Run>
void check_on_thread_counts(std::vector<float> const& ref, Run run)
{
    for (unsigned threads : {1u, 2u, 3u}) {
        CAPTURE(threads);
        const nn::compute_threads scope(threads);
        const auto y = run();
        REQUIRE(y.size() == ref.size());
        CHECK(mismatches(y.data(), ref.data(), y.size()) == 0);
    }
}

} // namespace

TEST_CASE("float convolution equals the documented accumulation order bit for bit on any thread count")
{
    std::mt19937_64 gen(2026);
    for (int trial = 0; trial < 60; ++trial) {
        const auto c = random_case(gen, trial % 5);
        CAPTURE(c.name);
        const auto ref = reference_conv(c);
        check_on_thread_counts(ref, [&] { return nn::conv2d(c.x, c.w, c.b, c.o); });
    }
}

TEST_CASE("intrinsic convolution equals the generic number type loop bit for bit on any thread count")
{
    std::mt19937_64 gen(31);
    const std::vector<tq::fixed_point_rt> formats = {
        tq::fixed_point_rt(16, 8), tq::fixed_point_rt(8, 4, tq::rounding_mode::down, tq::overflow_mode::wrap),
        tq::fixed_point_rt(10, 5, tq::rounding_mode::nearest_even, tq::overflow_mode::saturate),
        tq::fixed_point_rt(9, 3, tq::rounding_mode::stochastic, tq::overflow_mode::saturate, tq::rng_key{5, 2})};
    for (int trial = 0; trial < 40; ++trial) {
        const auto c = random_case(gen, trial % 5);
        const auto& q = formats[std::size_t(trial / 5) % formats.size()];
        CAPTURE(c.name);
        CAPTURE(q.format().width);
        CAPTURE(q.format().frac);
        if (q.rounding() == tq::rounding_mode::stochastic) {
            // the generic loop's products draw elsewhere; the threads must not matter
            std::vector<float> first;
            for (unsigned threads : {1u, 2u, 3u}) {
                const nn::compute_threads scope(threads);
                const auto y = nn::conv2d_intrinsic(c.x, c.w, c.b, c.o, q);
                if (first.empty()) first.assign(y.begin(), y.end());
                CHECK(mismatches(y.data(), first.data(), y.size()) == 0);
            }
            continue;
        }
        std::vector<float> generic;
        {
            const tq::number_scope number(q);
            using R = tq::quantized_rt<float>;
            // the generic loop on the operands the intrinsic layer quantizes first
            const auto xq = nn::kernels::quantized_copy(q, c.x, nn::kernels::intrinsic_operand_offset(0));
            const auto wq = nn::kernels::quantized_copy(q, c.w, nn::kernels::intrinsic_operand_offset(1));
            const auto bq = nn::kernels::quantized_copy(q, c.b, nn::kernels::intrinsic_operand_offset(2));
            const auto y = nn::conv2d(convert<R>(xq), convert<R>(wq), convert<R>(bq), c.o);
            for (auto const& v : y) generic.push_back(v.value());
        }
        check_on_thread_counts(generic, [&] { return nn::conv2d_intrinsic(c.x, c.w, c.b, c.o, q); });
    }
}

namespace {

// The runtime datapath of the given formats, products exact.
nn::datapath exact_product_datapath(char const* input, char const* weights, char const* accumulator, char const* output)
{
    nn::datapath d;
    d.set("input", input);
    d.set("weights", weights);
    d.set("product", "exact");
    d.set("accumulator", accumulator);
    d.set("output", output);
    return d;
}

// conv2d_datapath(d) on 1, 2 and 3 threads against the generic loop on Dp in storage T.
template <class Dp, class T>
void check_datapath_conv(conv_case const& c, nn::datapath const& d)
{
    CAPTURE(c.name);
    const auto generic = nn::conv2d(convert<T>(c.x), convert<T>(c.w), convert<T>(c.b), c.o, Dp{});
    std::vector<float> ref;
    for (auto const& v : generic) ref.push_back(float(v.value()));
    check_on_thread_counts(ref, [&] { return nn::conv2d_datapath(c.x, c.w, c.b, c.o, d); });
}

} // namespace

TEST_CASE("datapath convolution equals the generic datapath loop on any thread count")
{
    std::mt19937_64 gen(77);
    SUBCASE("sums within float's 2^24")
    {
        using fx8_4 = tq::fixed_point<8, 4>;
        using Dp = tq::datapath_of<fx8_4, tq::fixed_point<8, 6>, tq::exact_step, tq::fixed_point<24, 10>, fx8_4>;
        const auto d = exact_product_datapath("nearest,8,4", "nearest,8,6", "nearest,24,10", "nearest,8,4");
        for (int trial = 0; trial < 25; ++trial) check_datapath_conv<Dp, float>(random_case(gen, trial % 5), d);
    }
    SUBCASE("sums beyond float's 2^24 run in double lanes")
    {
        using fx12_4 = tq::fixed_point<12, 4>;
        using Wide = tq::datapath_of<fx12_4, tq::fixed_point<12, 8>, tq::exact_step, tq::fixed_point<32, 12>, fx12_4>;
        const auto d = exact_product_datapath("nearest,12,4", "nearest,12,8", "nearest,32,12", "nearest,12,4");
        for (int trial = 0; trial < 10; ++trial) {
            auto c = random_case(gen, trial % 2 ? 4 : 1);
            for (auto& e : c.x) e *= 40; // near the operand formats' bounds 128 and 8
            for (auto& e : c.w) e *= 5;
            // a 32-bit accumulator needs double storage in the generic loop
            check_datapath_conv<Wide, double>(c, d);
        }
    }
}

TEST_CASE("a conv2d layer with a fused activation equals the convolution then the activation")
{
    std::mt19937_64 gen(5);
    for (auto act : {nn::activation::relu, nn::activation::relu6, nn::activation::leaky_relu, nn::activation::none})
        for (int kind : {0, 1, 4}) {
            auto c = random_case(gen, kind);
            for (auto& v : c.x) v *= 3; // beyond 6 too
            CAPTURE(c.name);
            nn::conv2d_layer layer;
            layer.weights = c.w, layer.bias = c.b, layer.options = c.o, layer.act = nn::activation_fn(act, 0.1);
            nn::network net("net");
            net.add("conv", layer);
            const auto y = net.forward(nn::tensor<float>(c.x));
            const auto ref = nn::kernels::activate_float(nn::conv2d(c.x, c.w, c.b, c.o), layer.act);
            REQUIRE(y.size() == ref.size());
            CHECK(mismatches(y.data(), ref.data(), y.size()) == 0);
        }
}
