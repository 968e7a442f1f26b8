// Every public header in one translation unit (the list is generated at configure time),
// and the main code paths instantiated, built with -Wall -Wextra -Wpedantic -Werror by each
// compiler, with and without -march=native: the headers stay warning-free for consumers.
#include "all_headers.hpp"

#include <cstdio>
#include <span>
#include <string_view>
#include <vector>

namespace tq = tensorquant;

template <class T>
bool every_quantizer()
{
    std::vector<T> x{T(0.3), T(-1.26), T(9), T(0), T(-0.01), T(2.5), T(1e-3), T(-7), T(0.5)}, y(x.size());
    bool ok = true;
    tq::detail::for_each_type(tq::quantizer_registry{}, [&](auto t) {
        for (std::string_view spec : decltype(t)::type::examples) {
            tq::quantize(tq::parse_quantizer(spec, {1, 2}), std::span<T const>(x), std::span<T>(y));
            ok = ok && y.size() == x.size();
        }
    });
    return ok;
}

int main()
{
    bool ok = every_quantizer<float>() && every_quantizer<double>();
    auto net = tq::nn::lenet5();
    tq::nn::tensor4<float> img = tq::nn::tensor4<float>::from_shape({2, 28, 28, 1});
    tq::splitmix64 gen{5};
    for (auto& v : img) v = float(gen.uniform());
    net.set_quantization({{"LeNet", "nearest,16,8"}}, {{"LeNet", "nearest,8,4"}}, {{"LeNet", "stochastic,8,6"}});
    ok = ok && net.classify(img).size() == 2;
    using q8 = tq::quantized<float, tq::fixed_point<8, 4>>;
    ok = ok && float(q8(0.75f) * q8(0.75f)) == 0.5625f;
    std::printf("all headers: %s\n", ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
