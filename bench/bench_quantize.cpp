// Throughput of the built-in quantizers against a memcpy baseline in the same binary:
// bench/run.sh turns the JSON output into ratios to BM_copy at the same size.
#include <tensorquant/tensorquant.hpp>

#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <span>
#include <vector>

namespace tq = tensorquant;

namespace {

struct buffers
{
    std::vector<float> in, out;
    explicit buffers(std::size_t n) : in(n), out(n)
    {
        std::mt19937 g(1);
        std::normal_distribution<float> d(0.f, 2.f);
        for (auto& v : in) v = d(g);
    }
};

template <class Q>
void run_quantizer(benchmark::State& state, Q const& q)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    buffers b(n);
    for (auto _ : state) {
        tq::quantize(q, std::span<float const>(b.in), std::span<float>(b.out));
        benchmark::DoNotOptimize(b.out.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * sizeof(float)));
}

void BM_copy(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    buffers b(n);
    for (auto _ : state) {
        std::memcpy(b.out.data(), b.in.data(), n * sizeof(float));
        benchmark::DoNotOptimize(b.out.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * sizeof(float)));
}

void BM_fixed_nearest(benchmark::State& s) { run_quantizer(s, tq::fixed_point<8, 4>{}); }
void BM_fixed_stochastic(benchmark::State& s)
{
    run_quantizer(s, tq::fixed_point<8, 4, tq::rounding::stochastic>{tq::rng_key{1, 0}});
}
void BM_binary(benchmark::State& s) { run_quantizer(s, tq::binary_mean{}); }
void BM_ternary(benchmark::State& s) { run_quantizer(s, tq::ternary_twn{}); }
void BM_log2(benchmark::State& s) { run_quantizer(s, tq::logarithmic{}); }
void BM_minifloat_e4m3(benchmark::State& s) { run_quantizer(s, tq::minifloat(tq::minifloats::fp8_e4m3)); }

} // namespace

#define TQ_SIZES Arg(16384)->Arg(16777216)
BENCHMARK(BM_copy)->TQ_SIZES;
BENCHMARK(BM_fixed_nearest)->TQ_SIZES;
BENCHMARK(BM_fixed_stochastic)->TQ_SIZES;
BENCHMARK(BM_binary)->TQ_SIZES;
BENCHMARK(BM_ternary)->TQ_SIZES;
BENCHMARK(BM_log2)->TQ_SIZES;
BENCHMARK(BM_minifloat_e4m3)->TQ_SIZES;

BENCHMARK_MAIN();
