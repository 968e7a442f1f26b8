// What the quantize benchmarks share: the input data and the memcpy baseline each ratio is
// taken against.
#pragma once

#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

namespace tqbench {

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

// Runs fn(in, out) over state.range(0) floats, counting bytes like memcpy.
template <class Fn>
void run_loop(benchmark::State& state, Fn&& fn)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    buffers b(n);
    for (auto _ : state) {
        fn(b.in, b.out);
        benchmark::DoNotOptimize(b.out.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * sizeof(float)));
}

inline void BM_copy(benchmark::State& state)
{
    run_loop(state, [](auto const& in, auto& out) { std::memcpy(out.data(), in.data(), in.size() * sizeof(float)); });
}

} // namespace tqbench
