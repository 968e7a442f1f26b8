// The study's evaluation engine:
// - LeNet-5 on a batch of 1000 synthetic images, float, extrinsic (nearest,8,4 on every
//   layer output) and intrinsic (nearest,12,6 in every layer), on 1 and 2 threads;
//   bench/run.sh prints the 2-thread throughput over the 1-thread one;
// - the layer-wise search of the small residual network as the study runs it (each
//   subunit at depth 1, W = 4, 6, ..., 24 and every F < W, intrinsic nearest; 200 images,
//   2 threads) with reuse (the float prefix computed once, and wider words of a point
//   that stayed in range not run again) and with every point measured in full; run.sh
//   prints the ratio.
#include <tensorquant/study.hpp>

#include <benchmark/benchmark.h>

#include <filesystem>

namespace tq = tensorquant;
namespace nn = tensorquant::nn;
namespace st = tensorquant::study;

namespace {

tq::data::labeled_images synthetic(std::size_t n)
{
    tq::data::labeled_images d;
    d.images = xt::xtensor<float, 4>::from_shape({n, 28, 28, 1});
    tq::splitmix64 gen{99};
    for (auto& v : d.images) v = float(gen.uniform());
    for (std::size_t i = 0; i < n; ++i) d.labels.push_back(std::uint8_t(i % 10));
    return d;
}

st::quantization lenet_maps(int kind)
{
    st::quantization q;
    if (kind == 1) q.extrinsic.set("LeNet", "nearest,8,4");
    if (kind == 2) q.intrinsic.set("LeNet", "nearest,12,6");
    return q;
}

void BM_lenet5_evaluate(benchmark::State& state)
{
    static const auto data = synthetic(1000);
    st::evaluation_options o;
    o.threads = unsigned(state.range(1));
    st::evaluator ev(nn::lenet5(1), data, {}, o);
    const auto q = lenet_maps(int(state.range(0)));
    for (auto _ : state) benchmark::DoNotOptimize(ev.evaluate(q).accuracy);
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * data.size())); // images per second
}

void BM_resnet_layer_search(benchmark::State& state)
{
    static const auto data = synthetic(200);
    st::evaluation_options o;
    o.threads = 2;
    o.reuse_prefix = state.range(0) != 0;
    const auto file = std::filesystem::temp_directory_path() / "tq_bench_layer_search.jsonl";
    st::layers_options lo; // the study's grid
    lo.reuse_in_range = o.reuse_prefix;
    for (auto _ : state) {
        state.PauseTiming();
        std::filesystem::remove(file);
        st::evaluator ev(nn::small_resnet(1), data, {}, o);
        st::results res(file);
        st::context ctx("ResNet", ev, res);
        state.ResumeTiming();
        benchmark::DoNotOptimize(st::subunit_search(ctx, lo).size());
    }
    std::filesystem::remove(file);
}

} // namespace

// range(0): 0 float, 1 extrinsic, 2 intrinsic; range(1): threads
BENCHMARK(BM_lenet5_evaluate)
    ->ArgsProduct({{0, 1, 2}, {1, 2}})
    ->ArgNames({"maps", "threads"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
// range(0): 1 reuse, 0 measure every point in full
// (seconds per run: five repetitions whatever run.sh asks)
BENCHMARK(BM_resnet_layer_search)
    ->Arg(1)
    ->Arg(0)
    ->ArgName("reuse")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1)
    ->Repetitions(5);
BENCHMARK_MAIN();
