// Throughput of the built-in quantizers against a memcpy baseline in the same binary:
// bench/run.sh turns the JSON output into ratios to BM_copy at the same size.
#include <tensorquant/tensorquant.hpp>

#include "bench_common.hpp"

namespace tq = tensorquant;

namespace {

using tqbench::BM_copy;

template <class Q>
void run_quantizer(benchmark::State& state, Q const& q)
{
    tqbench::run_loop(state, [&](auto const& in, auto& out) { tq::quantize(q, in, out); });
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

// Block formats (quantizers/block.hpp): blocks of 32 along the flat data.
void run_block(benchmark::State& state, char const* spec)
{
    const auto q = tq::block_quantizer::parse(spec);
    tqbench::run_loop(
        state, [&](auto const& in, auto& out) { q.quantize(std::span<float const>(in), std::span<float>(out)); });
}
void BM_mxfp8_e4m3(benchmark::State& s) { run_block(s, "mxfp8_e4m3"); }
void BM_mxfp4(benchmark::State& s) { run_block(s, "mxfp4"); }
void BM_nvfp4(benchmark::State& state)
{
    const auto q = tq::nvfp4_quantizer::parse("nvfp4");
    tqbench::run_loop(
        state, [&](auto const& in, auto& out) { q.quantize(std::span<float const>(in), std::span<float>(out)); });
}

} // namespace

#define TQ_SIZES Arg(16384)->Arg(16777216)
BENCHMARK(BM_copy)->TQ_SIZES;
BENCHMARK(BM_fixed_nearest)->TQ_SIZES;
BENCHMARK(BM_fixed_stochastic)->TQ_SIZES;
BENCHMARK(BM_binary)->TQ_SIZES;
BENCHMARK(BM_ternary)->TQ_SIZES;
BENCHMARK(BM_log2)->TQ_SIZES;
BENCHMARK(BM_minifloat_e4m3)->TQ_SIZES;
BENCHMARK(BM_mxfp8_e4m3)->TQ_SIZES;
BENCHMARK(BM_mxfp4)->TQ_SIZES;
BENCHMARK(BM_nvfp4)->TQ_SIZES;

BENCHMARK_MAIN();
