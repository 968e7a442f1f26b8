// Includes the core umbrella and quantizes a value.
#include <tensorquant/tensorquant.hpp>

#include <cstdio>

int main()
{
    const float y = tensorquant::fixed_point<8, 4>{}(0.3f); // 0.3 -> 5/16
    std::printf("tensorquant %d.%d.%d: 0.3 -> %g\n", TENSORQUANT_VERSION_MAJOR, TENSORQUANT_VERSION_MINOR,
                TENSORQUANT_VERSION_PATCH, double(y));
    return y == 0.3125f ? 0 : 1;
}
