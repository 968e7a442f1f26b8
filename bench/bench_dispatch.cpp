// Built for generic x86-64: the baseline kernels (SSE2) against the runtime-dispatched
// ones (the widest the CPU has), each as a ratio to memcpy in this binary; bench/run.sh
// sets them beside BM_fixed_nearest of the -march=native build.
#include <tensorquant/dispatch.hpp>

#include "bench_common.hpp"

namespace tq = tensorquant;

namespace {

using tqbench::BM_copy;

void BM_fixed_nearest_baseline(benchmark::State& s)
{
    const tq::fixed_point<8, 4> q;
    tqbench::run_loop(s, [&](auto const& in, auto& out) { tq::quantize(q, in, out); });
}
void BM_fixed_nearest_dispatched(benchmark::State& s)
{
    const tq::dispatched_quantizer q(tq::parse_quantizer("nearest,8,4"));
    s.SetLabel(std::string(q.instruction_set()));
    tqbench::run_loop(s, [&](auto const& in, auto& out) { q(std::span<float const>(in), std::span<float>(out)); });
}

} // namespace

#define TQ_SIZES Arg(16384)->Arg(16777216)
BENCHMARK(BM_copy)->TQ_SIZES;
BENCHMARK(BM_fixed_nearest_baseline)->TQ_SIZES;
BENCHMARK(BM_fixed_nearest_dispatched)->TQ_SIZES;

BENCHMARK_MAIN();
