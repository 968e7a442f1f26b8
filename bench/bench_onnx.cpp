// The ONNX importer: loading a model file (LeNet-5, 0.25 MB, and a wide LeNet of 7.1 MB),
// and the imported LeNet-5 against the built-in one on a batch of 1000 images, single
// thread, in float and with extrinsic 8,4. bench/run.sh prints imported / built-in.
#include <tensorquant/onnx.hpp>

#include <benchmark/benchmark.h>

#include "lenet_images.hpp"

#include "../test/onnx/lenet_onnx.hpp"

#include <filesystem>
#include <fstream>

namespace tq = tensorquant;
namespace nn = tensorquant::nn;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t batch = 1000;

// LeNet-5 with wider layers: conv 32 and 64 channels, a 1024 x 1024 dense layer.
nn::network wide_lenet()
{
    nn::initializer init(1);
    nn::network net("LeNet");
    nn::window_options same;
    same.padding = nn::padding_mode::same;
    net.add("conv1", init.conv2d(5, 1, 32, same, nn::activation::relu));
    net.add("pool1", nn::max_pool_layer{});
    net.add("conv2", init.conv2d(5, 32, 64, {}, nn::activation::relu));
    net.add("pool2", nn::max_pool_layer{});
    net.add("flatten", nn::flatten_layer{});
    net.add("fc3", init.dense(1600, 1024, nn::activation::relu));
    net.add("fc4", init.dense(1024, 84, nn::activation::relu));
    net.add("fc5", init.dense(84, 10, nn::activation::none));
    return net;
}

fs::path written(nn::network const& net, char const* name)
{
    const fs::path p = fs::temp_directory_path() / name;
    std::ofstream(p, std::ios::binary) << tq_test::lenet_as_onnx(net).SerializeAsString();
    return p;
}

void load(benchmark::State& state, nn::network const& net, char const* name)
{
    const auto path = written(net, name);
    for (auto _ : state) {
        auto m = tq::onnx::load(path);
        benchmark::DoNotOptimize(m.net.nodes().data());
    }
    state.counters["MB"] = double(fs::file_size(path)) / 1e6;
    fs::remove(path);
}
void BM_load_lenet5(benchmark::State& state) { load(state, nn::lenet5(1), "tq_bench_lenet5.onnx"); }
void BM_load_wide_lenet(benchmark::State& state) { load(state, wide_lenet(), "tq_bench_wide_lenet.onnx"); }

void forward(benchmark::State& state, bool imported, nn::scope_map extrinsic)
{
    auto net = nn::lenet5(1);
    if (imported) {
        tq::onnx::load_options o;
        o.scope = "LeNet";
        net = tq::onnx::from_proto(tq_test::lenet_as_onnx(net), "lenet5.onnx", o).net;
    }
    net.set_quantization({}, std::move(extrinsic), {});
    const auto x = tqbench::lenet_images(batch);
    for (auto _ : state) {
        auto y = net.forward(x);
        benchmark::DoNotOptimize(y.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}
void BM_lenet5_builtin_float(benchmark::State& state) { forward(state, false, {}); }
void BM_lenet5_imported_float(benchmark::State& state) { forward(state, true, {}); }
void BM_lenet5_builtin_extrinsic(benchmark::State& state) { forward(state, false, {{"LeNet", "nearest,8,4"}}); }
void BM_lenet5_imported_extrinsic(benchmark::State& state) { forward(state, true, {{"LeNet", "nearest,8,4"}}); }

} // namespace

BENCHMARK(BM_load_lenet5)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_load_wide_lenet)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_lenet5_builtin_float)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_lenet5_imported_float)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_lenet5_builtin_extrinsic)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_lenet5_imported_extrinsic)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
