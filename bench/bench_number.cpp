// The number type's cost: a dot product of 4096 elements written once for any value
// type (each product and each sum rounded once, in order), against the same loop on
// float. bench/run.sh prints every figure as time / BM_dot_float.
#include <tensorquant/tensorquant.hpp>

#include <benchmark/benchmark.h>

#include <vector>

namespace tq = tensorquant;

namespace {

constexpr std::size_t n = 4096;

template <class V>
std::vector<V> operands(std::uint64_t seed, float scale)
{
    tq::splitmix64 gen{seed};
    std::vector<V> v;
    for (std::size_t i = 0; i < n; ++i) v.push_back(V(scale * (float(gen.uniform()) - 0.5f)));
    return v;
}

template <class V>
void run_dot(benchmark::State& state)
{
    const auto a = operands<V>(1, 2.0f), b = operands<V>(2, 2.0f);
    for (auto _ : state) {
        V acc = V(0);
        for (std::size_t i = 0; i < n; ++i) acc = acc + a[i] * b[i];
        benchmark::DoNotOptimize(acc);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

using fixed16 = tq::quantized<float, tq::fixed_point<16, 8>>;
using fp16 = tq::quantized<float, tq::minifloats::fp16_t>;
using bf16 = tq::quantized<float, tq::minifloats::bf16_t>;
using e4m3 = tq::quantized<float, tq::minifloats::fp8_e4m3_t>;
using fp32 = tq::quantized<float, tq::minifloat_of<tq::minifloat_format{8, 23, 127, true, true}>>;
using log2n = tq::quantized<float, tq::logarithmic_of<tq::log_rounding::nearest, -24, 8>>;

void BM_dot_float(benchmark::State& s) { run_dot<float>(s); }
void BM_dot_fixed_16_8(benchmark::State& s) { run_dot<fixed16>(s); }
void BM_dot_fp16(benchmark::State& s) { run_dot<fp16>(s); }
void BM_dot_bf16(benchmark::State& s) { run_dot<bf16>(s); }
void BM_dot_e4m3(benchmark::State& s) { run_dot<e4m3>(s); }
void BM_dot_logarithmic(benchmark::State& s) { run_dot<log2n>(s); }

// FP8 x FP8 -> FP32: exact products, one rounding per accumulation.
void BM_dot_e4m3_mac_fp32(benchmark::State& state)
{
    const auto a = operands<e4m3>(1, 2.0f), b = operands<e4m3>(2, 2.0f);
    for (auto _ : state) {
        fp32 acc = fp32(0);
        for (std::size_t i = 0; i < n; ++i) acc = tq::mac(a[i], b[i], acc);
        benchmark::DoNotOptimize(acc);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

} // namespace

BENCHMARK(BM_dot_float);
BENCHMARK(BM_dot_fixed_16_8);
BENCHMARK(BM_dot_fp16);
BENCHMARK(BM_dot_bf16);
BENCHMARK(BM_dot_e4m3);
BENCHMARK(BM_dot_logarithmic);
BENCHMARK(BM_dot_e4m3_mac_fp32);
BENCHMARK_MAIN();
