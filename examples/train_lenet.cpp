// Trains LeNet-5 on Fashion-MNIST (Debian's dataset-fashion-mnist) with a progress bar and
// saves the weights as .npy checkpoints. The paper's gradient-quantization study (table
// 7) is `tensorquant-study gradients` (study::gradient_quantization).
//
// Usage: train_lenet [--epochs N] [--threads T] [--seed S] [--checkpoint DIR]
//                    [--resume DIR] [--data DIR]
#include <tensorquant/train.hpp>

#include "fashion_mnist.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace tq = tensorquant;
namespace nn = tensorquant::nn;
namespace tr = tensorquant::train;

namespace {

struct settings
{
    int epochs = 10;
    unsigned threads = 1;
    std::uint64_t seed = 1;
    std::string checkpoint = "build/lenet5_checkpoint";
    std::string resume;
    std::string data = debian_fashion_mnist_dir;
};

settings parse(int argc, char** argv)
{
    settings s;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "train_lenet: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--epochs")
            s.epochs = std::stoi(value());
        else if (a == "--threads")
            s.threads = unsigned(std::stoul(value()));
        else if (a == "--seed")
            s.seed = std::stoull(value());
        else if (a == "--checkpoint")
            s.checkpoint = value();
        else if (a == "--resume")
            s.resume = value();
        else if (a == "--data")
            s.data = value();
        else {
            std::fprintf(stderr,
                         "usage: train_lenet [--epochs N] [--threads T] [--seed S] [--checkpoint DIR] [--resume DIR] "
                         "[--data DIR]\n");
            std::exit(2);
        }
    }
    return s;
}

// A progress bar on a terminal, one line per epoch otherwise.
struct progress
{
    bool tty = isatty(fileno(stderr));
    std::string label;
    int epoch = 0, epochs = 0;
    std::size_t batch_size = 64;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

    void begin(int e)
    {
        epoch = e;
        start = std::chrono::steady_clock::now();
    }
    void update(std::size_t batch, std::size_t batches, double loss) const
    {
        if (!tty || (batch % 10 != 0 && batch != batches)) return;
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const int width = 30, done = int(width * batch / batches);
        std::fprintf(stderr, "\r%s epoch %d/%d [%s%s] batch %zu/%zu loss %.4f %6.0f img/s", label.c_str(), epoch + 1,
                     epochs, std::string(std::size_t(done), '#').c_str(),
                     std::string(std::size_t(width - done), '.').c_str(), batch, batches, loss,
                     double(batch * batch_size) / std::max(s, 1e-9));
    }
    void end(double loss, double accuracy) const
    {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (tty) std::fprintf(stderr, "\r\033[K");
        std::printf("%s epoch %d/%d: loss %.4f, test accuracy %.2f%%, %.1f s\n", label.c_str(), epoch + 1, epochs, loss,
                    100 * accuracy, s);
        std::fflush(stdout);
    }
};

// Trains a fresh LeNet-5 (same seed every time) and returns its test accuracy.
double train(settings const& s, tq::data::labeled_images const& train_set, tq::data::labeled_images const& test_set,
             nn::network& net, std::string const& label)
{
    tr::trainer_options o;
    o.threads = s.threads;
    o.seed = s.seed;
    tr::trainer t(net, o);
    tr::sgd opt(0.05f, 0.9f, 5e-4f);
    progress bar;
    bar.label = label, bar.epochs = s.epochs, bar.batch_size = o.batch_size;
    double acc = 0;
    for (int e = 0; e < s.epochs; ++e) {
        opt.lr = tr::step_decay_lr(e, s.epochs, 0.05f);
        bar.begin(e);
        const double loss = t.train_epoch(train_set, opt, std::uint64_t(e),
                                          [&](std::size_t b, std::size_t n, double l) { bar.update(b, n, l); });
        acc = tr::accuracy(net, test_set);
        bar.end(loss, acc);
    }
    return acc;
}

} // namespace

int main(int argc, char** argv)
{
    const settings s = parse(argc, argv);
    try {
        const auto train_set = tq::data::load_fashion_mnist(tq::data::split::train, s.data);
        const auto test_set = tq::data::load_fashion_mnist(tq::data::split::test, s.data);
        std::printf("Fashion-MNIST: %zu training and %zu test images\n", train_set.size(), test_set.size());

        auto net = nn::lenet5(s.seed);
        if (!s.resume.empty()) {
            net.load(s.resume);
            std::printf("loaded %s: test accuracy %.2f%%\n", s.resume.c_str(), 100 * tr::accuracy(net, test_set));
        } else {
            train(s, train_set, test_set, net, "float");
            net.save(s.checkpoint);
            std::printf("saved the weights to %s/LeNet/<layer>/<parameter>.npy\n", s.checkpoint.c_str());
        }
    } catch (std::exception const& e) {
        std::fprintf(stderr, "train_lenet: %s\n", e.what());
        return 1;
    }
    return 0;
}
