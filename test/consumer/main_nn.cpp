// Networks: a scope map from JSON, LeNet-5 forward.
#include <tensorquant/nn.hpp>

#include <cstdio>

int main()
{
    namespace tq = tensorquant;
    auto net = tq::nn::lenet5();
    net.set_quantization({}, tq::nn::scope_map::from_json(R"({"LeNet": "nearest,8,4"})", "inline"), {});
    tq::nn::tensor4<float> img = tq::nn::tensor4<float>::from_shape({1, 28, 28, 1});
    img.fill(0.5f);
    const auto y = net.forward(img);
    bool ok = y.size() == 10;
    for (float v : y) ok = ok && v * 16 == float(int(v * 16));
    std::printf("consumer (nn): %s\n", ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
