// Real networks, forward pass per path: models exported by bench/models.py (ONNX file and
// an input batch in TQ_BENCH_MODELS, default build/release/bench_models), each run float,
// extrinsic (8-bit outputs on every layer), intrinsic fixed point (16, 8), on an int8 x int8
// -> int32 datapath and on an MXFP8 block datapath, on 1 and 2 threads. Time per image is
// the counter "ms_per_image"; bench/models.py interleaves these runs with onnxruntime's on
// the same model, batch and thread count and prints the ratios.
//
// tq_bench_models --load MODEL.onnx loads the model once, in this fresh process (a first
// load, as a user's program does it), and prints {"load_seconds": t}; bench/models.py
// compares it with onnxruntime's session creation.
#include <tensorquant/io/npy.hpp>
#include <tensorquant/onnx.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace tq = tensorquant;
namespace nn = tensorquant::nn;
namespace fs = std::filesystem;

namespace {

enum class path { float_path, extrinsic8, intrinsic16_8, datapath_int8, datapath_mxfp8 };

constexpr std::pair<path, char const*> paths[] = {{path::float_path, "float"},
                                                  {path::extrinsic8, "extrinsic8"},
                                                  {path::intrinsic16_8, "intrinsic16_8"},
                                                  {path::datapath_int8, "datapath_int8"},
                                                  {path::datapath_mxfp8, "datapath_mxfp8"}};

void set_path(nn::network& net, path p)
{
    const std::string scope = net.scope();
    switch (p) {
    case path::float_path:
        net.set_quantization({}, {}, {});
        break;
    case path::extrinsic8:
        net.set_quantization({}, nn::scope_map{{scope, "nearest,8,4"}}, {});
        break;
    case path::intrinsic16_8:
        net.set_quantization(nn::scope_map{{scope, "nearest,16,8"}}, {}, {});
        break;
    case path::datapath_int8:
    case path::datapath_mxfp8: {
        nn::datapath d;
        if (p == path::datapath_int8) {
            d.set("input", "nearest,8,4");
            d.set("weights", "nearest,8,6");
            d.set("accumulator", "nearest,32,10");
            d.set("output", "nearest,8,4");
        } else {
            d.set("input", "mxfp8_e4m3");
            d.set("weights", "mxfp8_e4m3");
        }
        nn::scope_map m;
        m.set(scope, d);
        net.set_quantization(std::move(m), {}, {});
        break;
    }
    }
}

struct loaded
{
    tq::onnx::model model;
    nn::tensor<float> input; // the network's layout
    std::size_t batch = 0;
};

void run(benchmark::State& state, std::shared_ptr<loaded> const& m, path p, unsigned threads)
{
    try {
        set_path(m->model.net, p);
    } catch (std::exception const& e) {
        state.SkipWithError(e.what());
        return;
    }
    const nn::compute_threads scope(threads);
    for (auto _ : state) {
        auto y = m->model.net.forward(m->input);
        benchmark::DoNotOptimize(y.data());
    }
    state.counters["ms_per_image"] = benchmark::Counter(
        double(m->batch) * 1e-3, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

} // namespace

int main(int argc, char** argv)
{
#if defined(__GLIBC__)
    // Freed activations stay in the heap for the next pass instead of going back to the
    // kernel and faulting in again (onnxruntime keeps an arena for the same reason).
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
    if (argc == 3 && std::string_view(argv[1]) == "--load") {
        const auto start = std::chrono::steady_clock::now();
        const auto m = tq::onnx::load(argv[2]);
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
        std::cout << "{\"load_seconds\": " << took.count() << ", \"layers\": " << m.net.nodes().size() << "}\n";
        return 0;
    }
    const char* env = std::getenv("TQ_BENCH_MODELS");
    const fs::path dir = env ? env : "build/release/bench_models";
    for (char const* name : {"resnet18", "mobilenet_v2", "inception_v3"}) {
        const fs::path onnx = dir / (std::string(name) + ".onnx"), npy = dir / (std::string(name) + ".input.npy");
        if (!fs::exists(onnx) || !fs::exists(npy)) continue;
        auto m = std::make_shared<loaded>();
        m->model = tq::onnx::load(onnx);
        const auto x = tq::read_npy<float>(npy);
        xt::xarray<float> given = xt::xarray<float>::from_shape(x.shape);
        std::copy(x.values.begin(), x.values.end(), given.begin());
        m->input = m->model.to_network_layout(given);
        m->batch = x.shape.at(0);
        for (auto const& [p, pname] : paths)
            for (unsigned threads : {1u, 2u})
                benchmark::RegisterBenchmark(
                    (std::string(name) + "/" + pname + "/threads:" + std::to_string(threads)).c_str(),
                    [m, p = p, threads](benchmark::State& s) { run(s, m, p, threads); })
                    ->Unit(benchmark::kMillisecond)
                    ->UseRealTime();
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
}
