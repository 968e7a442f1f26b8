// One epoch of LeNet-5 training on 60000 synthetic 28x28 images, batch 64, SGD with
// momentum, one thread: float, and quantization-aware training with fixed point nearest
// 8,4 on every layer output. bench/run.sh prints seconds per epoch and QAT / float.
#include <tensorquant/train.hpp>

#include <benchmark/benchmark.h>

namespace tq = tensorquant;
namespace nn = tensorquant::nn;
namespace tr = tensorquant::train;

namespace {

tq::data::labeled_images synthetic(std::size_t n)
{
    tq::data::labeled_images d;
    d.images = xt::xtensor<float, 4>::from_shape({n, 28, 28, 1});
    tq::splitmix64 gen{777};
    for (auto& v : d.images) v = float(gen.uniform());
    for (std::size_t i = 0; i < n; ++i) d.labels.push_back(std::uint8_t(i % 10));
    return d;
}

void run(benchmark::State& state, nn::scope_map extrinsic)
{
    static const auto data = synthetic(60000);
    for (auto _ : state) {
        state.PauseTiming();
        auto net = nn::lenet5(1);
        net.set_quantization({}, extrinsic, {});
        tr::trainer t(net, tr::trainer_options{});
        tr::sgd opt(0.01f, 0.9f);
        state.ResumeTiming();
        benchmark::DoNotOptimize(t.train_epoch(data, opt, 0));
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * data.size())); // images per second
}

void BM_lenet5_train_epoch(benchmark::State& state) { run(state, {}); }
void BM_lenet5_qat_epoch(benchmark::State& state) { run(state, {{"LeNet", "nearest,8,4"}}); }

} // namespace

BENCHMARK(BM_lenet5_train_epoch)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);
BENCHMARK(BM_lenet5_qat_epoch)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);
BENCHMARK_MAIN();
