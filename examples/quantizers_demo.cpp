// tensorquant demo: every built-in quantizer on a few values and on a tensor, and a
// quantizer defined by the user at compile time.
#include <tensorquant/xtensor.hpp>

#include <xtensor/xio.hpp>

#include <cstdio>
#include <iostream>
#include <random>
#include <span>
#include <vector>

namespace tq = tensorquant;

// A user-defined quantizer: symmetric 4-bit "int4" with a per-call scale, written once
// for scalars and SIMD batches. Composed below with a threshold at compile time.
struct int4_symmetric
{
    float scale = 0.25f;
    template <class V>
    V operator()(V const& x) const
    {
        const V q = xsimd::nearbyint(x / V(scale));
        return xsimd::max(V(-7.f), xsimd::min(V(7.f), q)) * V(scale);
    }
    float operator()(float x) const { return (*this)(xsimd::batch<float, xsimd::sse2>(x)).get(0); }
};

int main()
{
    const std::vector<float> values{-2.6f, -1.25f, -0.3f, 0.0f, 0.04f, 0.5f, 0.75f, 1.26f, 3.3f, 100.f};
    const char* specs[] = {"nearest,8,4",
                           "nearest_even,8,4",
                           "zero,8,4",
                           "down,8,4",
                           "up,8,4",
                           "stochastic,8,4",
                           "nearest,8,4,wrap",
                           "nearest,4,2,symmetric",
                           "sparse,0.1",
                           "binary",
                           "binary,0.5",
                           "binary_stochastic",
                           "ternary",
                           "ternary,0.4,1",
                           "logarithmic",
                           "logarithmic,nearest,-4,4",
                           "fp16",
                           "bf16",
                           "fp8_e4m3",
                           "fp8_e5m2",
                           "affine,0.1,0,-128,127",
                           "identity"};

    std::printf("%-24s", "input");
    for (float v : values) std::printf("%9.4g", v);
    std::printf("\n");
    std::vector<float> out(values.size());
    for (const char* spec : specs) {
        const auto q = tq::parse_quantizer(spec, tq::rng_key{2024, 0});
        tq::quantize(q, std::span<float const>(values), std::span<float>(out));
        std::printf("%-24s", spec);
        for (float v : out) std::printf("%9.4g", v);
        std::printf("\n");
    }

    // Compile-time formats, as a hardware model would spell them.
    using acc_t = tq::fixed_point<16, 8, tq::rounding::nearest_even, tq::overflow::wrap>;
    std::printf("\nfixed_point<16, 8, nearest_even, wrap>(1000.3) = %g  (wraps modulo 2^8)\n", acc_t{}(1000.3f));
    std::printf("fixed_point<32, 16> word of -1.5 in double: 0x%llx\n",
                static_cast<unsigned long long>(tq::fixed_point<32, 16>{}.encode(-1.5)));

    // A tensor, out of place from an expression and in place.
    std::mt19937 g(7);
    std::normal_distribution<float> d(0.f, 1.f);
    xt::xtensor<float, 2> t = xt::xtensor<float, 2>::from_shape({3, 5});
    for (auto& v : t) v = d(g);
    std::cout << "\ntensor:\n" << t << "\n";
    std::cout << "fixed point (6, 3) of 2 * tensor:\n" << tq::quantize(tq::fixed_point<6, 3>{}, 2.0f * t) << "\n";
    tq::quantize_inplace(tq::parse_quantizer("ternary"), t);
    std::cout << "TWN ternary, in place:\n" << t << "\n";

    // User-defined quantizer composed with a built-in at compile time.
    const auto c = tq::compose(tq::sparse(0.3), int4_symmetric{});
    std::vector<float> x{-3.f, -0.9f, -0.2f, 0.1f, 0.35f, 1.1f, 2.9f}, y(x.size());
    tq::quantize(c, std::span<float const>(x), std::span<float>(y));
    std::printf("\nsparse(0.3) then int4_symmetric(0.25):\n");
    for (std::size_t i = 0; i < x.size(); ++i) std::printf("  %6.2f -> %6.2f\n", x[i], y[i]);
    return 0;
}
