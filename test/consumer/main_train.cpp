// Training: one quantization-aware step of LeNet-5 on generated data.
#include <tensorquant/train.hpp>

#include <cstdio>
#include <vector>

int main()
{
    namespace tq = tensorquant;
    auto net = tq::nn::lenet5();
    net.set_quantization({}, {{"LeNet", "nearest,8,4"}}, {});
    tq::train::trainer t(net, {.batch_size = 8, .threads = 2});
    tq::train::sgd opt(0.01f);
    tq::nn::tensor4<float> img = tq::nn::tensor4<float>::from_shape({8, 28, 28, 1});
    tq::splitmix64 gen{5};
    for (auto& v : img) v = float(gen.uniform());
    const std::vector<int> labels{0, 1, 2, 3, 4, 5, 6, 7};
    const double loss = t.train_batch(img, labels, opt);
    const bool ok = loss > 0 && loss < 10;
    std::printf("consumer (train): loss %.3f %s\n", loss, ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
