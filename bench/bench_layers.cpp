// LeNet-5 inference on a batch of 1000 28x28 images, single thread: float, extrinsic
// (fixed point nearest 8,4 on every layer output), intrinsic (fixed point nearest 16,8 on
// every operation) and four datapaths (nn/datapath.hpp): int8 inputs and weights into a
// 24-bit accumulator with 8-bit outputs; fp8 e4m3 inputs and weights with exact products
// into an fp32 accumulator; MXFP8 E4M3 and E5M2 block dot products into fp32.
// bench/run.sh prints each one's time / float.
#include <tensorquant/nn.hpp>

#include <benchmark/benchmark.h>

#include "lenet_images.hpp"

namespace tq = tensorquant;
namespace nn = tensorquant::nn;

namespace {

constexpr std::size_t batch = 1000;

void run(benchmark::State& state, nn::scope_map intrinsic, nn::scope_map extrinsic)
{
    auto net = nn::lenet5(1);
    net.set_quantization(std::move(intrinsic), std::move(extrinsic), {});
    const auto x = tqbench::lenet_images(batch);
    for (auto _ : state) {
        auto y = net.forward(x);
        benchmark::DoNotOptimize(y.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch)); // images per second
}

void BM_lenet5_float(benchmark::State& state) { run(state, {}, {}); }
void BM_lenet5_extrinsic(benchmark::State& state) { run(state, {}, {{"LeNet", "nearest,8,4"}}); }
void BM_lenet5_intrinsic(benchmark::State& state) { run(state, {{"LeNet", "nearest,16,8"}}, {}); }

nn::scope_map datapath_map(std::string const& json) { return nn::scope_map::from_json(json, "benchmark map"); }

void BM_lenet5_datapath_fixed(benchmark::State& state)
{
    run(state,
        datapath_map(R"({"LeNet": {"input": "nearest,8,4", "weights": "nearest,8,6", "accumulator": "nearest,24,10",
                        "output": "nearest,8,4"}})"),
        {});
}
void BM_lenet5_datapath_e4m3(benchmark::State& state)
{
    run(state,
        datapath_map(R"({"LeNet": {"input": "fp8_e4m3", "weights": "fp8_e4m3", "accumulator": "minifloat,8,23"}})"),
        {});
}

// The block dot product of an MX datapath (nn/kernels/block_dot.hpp): MXFP8 E4M3 inputs
// and weights in blocks of 32 along the reduction axis, FP32 accumulation.
void BM_lenet5_datapath_mxfp8(benchmark::State& state)
{
    run(state, datapath_map(R"({"LeNet": {"input": "mxfp8_e4m3", "weights": "mxfp8_e4m3"}})"), {});
}
// E5M2: block sums of up to 69 bits, kept as an exact pair of doubles and added to the
// accumulator in integers, one lane at a time.
void BM_lenet5_datapath_mxfp8_e5m2(benchmark::State& state)
{
    run(state, datapath_map(R"({"LeNet": {"input": "mxfp8_e5m2", "weights": "mxfp8_e5m2"}})"), {});
}

} // namespace

BENCHMARK(BM_lenet5_float)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_lenet5_extrinsic)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_lenet5_intrinsic)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_lenet5_datapath_fixed)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_lenet5_datapath_e4m3)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_lenet5_datapath_mxfp8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_lenet5_datapath_mxfp8_e5m2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
