// LeNet-5 inference on a batch of 1000 28x28 images, single thread: float, extrinsic
// (fixed point nearest 8,4 on every layer output) and intrinsic (fixed point nearest
// 16,8 on every operation). bench/run.sh prints extrinsic/float and intrinsic/float.
#include <tensorquant/nn.hpp>

#include <benchmark/benchmark.h>

namespace tq = tensorquant;
namespace nn = tensorquant::nn;

namespace {

constexpr std::size_t batch = 1000;

nn::tensor4<float> images()
{
    nn::tensor4<float> x = nn::tensor4<float>::from_shape({batch, 28, 28, 1});
    tq::splitmix64 gen{12345};
    for (auto& v : x) v = float(gen.uniform()); // pixel intensities in [0, 1)
    return x;
}

void run(benchmark::State& state, nn::scope_map intrinsic, nn::scope_map extrinsic)
{
    auto net = nn::lenet5(1);
    net.set_quantization(std::move(intrinsic), std::move(extrinsic), {});
    const auto x = images();
    for (auto _ : state) {
        auto y = net.forward(x);
        benchmark::DoNotOptimize(y.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch)); // images per second
}

void BM_lenet5_float(benchmark::State& state) { run(state, {}, {}); }
void BM_lenet5_extrinsic(benchmark::State& state) { run(state, {}, {{"LeNet", "nearest,8,4"}}); }
void BM_lenet5_intrinsic(benchmark::State& state) { run(state, {{"LeNet", "nearest,16,8"}}, {}); }

} // namespace

BENCHMARK(BM_lenet5_float)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_lenet5_extrinsic)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_lenet5_intrinsic)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
