#include <tensorquant/tensorquant.hpp>

#include <cstdio>
#include <vector>

int main()
{
    namespace tq = tensorquant;
    std::vector<float> x{0.3f, -1.26f, 9.0f}, y(3);
    tq::quantize(tq::fixed_point<8, 4>{}, std::span<float const>(x), std::span<float>(y));
    // 0.3 -> 5/16, -1.26 -> -20/16, 9 saturates to 127/16
    bool ok = y[0] == 0.3125f && y[1] == -1.25f && y[2] == 7.9375f;
    // the number type and a network with a JSON map (Boost and nlohmann_json via find_dependency)
    using q8 = tq::quantized<float, tq::fixed_point<8, 4>>;
    ok = ok && float(q8(0.75f) * q8(0.75f)) == 0.5625f;
    auto net = tq::nn::lenet5();
    net.set_quantization({}, tq::nn::scope_map::from_json(R"({"LeNet": "nearest,8,4"})", "inline"), {});
    tq::nn::tensor4<float> img = tq::nn::tensor4<float>::from_shape({1, 28, 28, 1});
    img.fill(0.5f);
    ok = ok && net.forward(img).size() == 10;
    std::printf("consumer: %s\n", ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
