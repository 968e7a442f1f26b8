// tensorquant demo: LeNet-5 with TensorQuant's three scoped quantization maps read from
// JSON, the report of which quantizer each layer got, per-tensor instrumentation, and an
// intrinsic word-size sweep with the exact number type.
//
// Usage: lenet_quantization [maps directory] [weights directory]
// The weights directory holds LeNet/<layer>/<parameter>.npy files (network::save and
// train_lenet write them); with one, the sweep runs on the Fashion-MNIST test set and
// reports accuracy relative to float (the paper's tables 2-4). Without one, the network
// has seeded random weights and the sweep shows how far each format moves the outputs.
#include <tensorquant/train.hpp>

#include "fashion_mnist.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

namespace tq = tensorquant;
namespace nn = tensorquant::nn;

int main(int argc, char** argv)
{
    const std::string maps = argc > 1 ? argv[1] : "examples/lenet_maps";
    auto net = nn::lenet5(1);
    if (argc > 2) net.load(argv[2]);

    nn::tensor4<float> x;
    std::vector<int> truth;
    if (argc > 2) {
        auto test = tq::data::load_fashion_mnist(tq::data::split::test, debian_fashion_mnist_dir);
        x = std::move(test.images);
        truth.assign(test.labels.begin(), test.labels.end());
    } else {
        x = nn::tensor4<float>::from_shape({500, 28, 28, 1});
        tq::splitmix64 gen{2024};
        for (auto& v : x) v = float(gen.uniform());
    }
    const auto float_out = net.forward(x);
    const auto float_labels = net.classify(x);
    auto correct = [&](std::vector<int> const& labels) {
        std::size_t c = 0;
        for (std::size_t i = 0; i < labels.size(); ++i) c += labels[i] == truth[i];
        return double(c) / double(labels.size());
    };
    const double float_accuracy = truth.empty() ? 0 : correct(float_labels);
    if (!truth.empty())
        std::printf("float test accuracy: %.2f%% on %zu images\n\n", 100 * float_accuracy, truth.size());

    std::printf("== Quantization maps from %s/{intrinsic,extrinsic,weights}.json\n", maps.c_str());
    net.set_quantization(nn::scope_map::from_json_file(maps + "/intrinsic.json"),
                         nn::scope_map::from_json_file(maps + "/extrinsic.json"),
                         nn::scope_map::from_json_file(maps + "/weights.json"));
    std::fputs(net.quantization_report().c_str(), stdout);

    std::printf("\n== Instrumentation (one forward pass of %zu images)\n", x.shape(0));
    std::printf("%-14s %-20s %9s %10s %9s\n", "layer", "tensor", "values", "saturated", "SQNR dB");
    net.set_instrumentation(true);
    net.forward(x);
    for (auto const& s : net.stats())
        std::printf("%-14s %-20s %9zu %10lld %9.1f\n", s.layer.c_str(), s.tensor.c_str(), s.count, s.saturated,
                    s.sqnr_db);
    net.set_instrumentation(false);

    for (char const* kind : {"intrinsic", "extrinsic"}) {
        const bool intrinsic = kind[0] == 'i';
        std::printf("\n== %s sweep: %s in fixed point (W, W/2), nearest rounding\n",
                    intrinsic ? "Intrinsic" : "Extrinsic",
                    intrinsic ? "every operation of every layer" : "every layer output");
        std::printf("%4s %4s %12s %14s %16s %10s\n", "W", "F", "same class", "rel. accuracy", "max |logit err|", "ms");
        for (int w = 4; w <= 20; w += 2) {
            const nn::scope_map m{{"LeNet", "nearest," + std::to_string(w) + "," + std::to_string(w / 2)}};
            net.set_quantization(intrinsic ? m : nn::scope_map{}, intrinsic ? nn::scope_map{} : m, {});
            const auto t0 = std::chrono::steady_clock::now();
            const auto out = net.forward(x);
            const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            std::vector<int> labels(out.shape(0));
            std::size_t same = 0;
            for (std::size_t r = 0; r < out.shape(0); ++r) {
                const float* row = &out(r, 0, 0, 0);
                labels[r] = int(std::max_element(row, row + 10) - row);
                same += labels[r] == float_labels[r];
            }
            char rel[32] = "-";
            if (!truth.empty()) std::snprintf(rel, sizeof rel, "%.3f", correct(labels) / float_accuracy);
            std::printf("%4d %4d %11.1f%% %14s %16.4f %10.1f\n", w, w / 2, 100.0 * double(same) / double(out.shape(0)),
                        rel, double(xt::amax(xt::abs(out - float_out))()), ms);
        }
    }
    return 0;
}
