// The core alone: formats, bulk quantize, strings, the number type.
#include <tensorquant/tensorquant.hpp>

#include <cstdio>
#include <vector>

int main()
{
    namespace tq = tensorquant;
    std::vector<float> x{0.3f, -1.26f, 9.0f}, y(3);
    tq::quantize(tq::fixed_point<8, 4>{}, x, y);
    // 0.3 -> 5/16, -1.26 -> -20/16, 9 saturates to 127/16
    bool ok = y[0] == 0.3125f && y[1] == -1.25f && y[2] == 7.9375f;
    using q8 = tq::quantized<float, tq::fixed_point<8, 4>>;
    ok = ok && float(q8(0.75f) * q8(0.75f)) == 0.5625f;
    ok = ok && tq::parse_quantizer("nearest,8,4").to_string() == "nearest,8,4";
    std::printf("consumer (core): %s\n", ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
