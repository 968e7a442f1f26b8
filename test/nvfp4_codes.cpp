// NVFP4 of a float32 file, for scripts/nvfp4_reference.py (Transformer Engine's PyTorch
// reference transcribed in numpy): nvfp4_codes IN OUT writes OUT.values (float32),
// OUT.codes (an E2M1 code per element), OUT.scales (an E4M3 code per block) and prints
// the tensor scale.
#include <tensorquant/quantizers/nvfp4.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace {

template <class T>
bool write(std::string const& path, std::vector<T> const& v)
{
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<char const*>(v.data()), std::streamsize(v.size() * sizeof(T)));
    return bool(out);
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 3) {
        std::fprintf(stderr, "usage: nvfp4_codes IN OUT\n");
        return 2;
    }
    std::ifstream in(argv[1], std::ios::binary | std::ios::ate);
    const auto size = in ? std::size_t(in.tellg()) : std::size_t(1);
    if (!in || size % sizeof(float) != 0) {
        std::fprintf(stderr, "nvfp4_codes: %s is not a readable float32 file\n", argv[1]);
        return 2;
    }
    std::vector<float> x(size / sizeof(float));
    in.seekg(0);
    if (!in.read(reinterpret_cast<char*>(x.data()), std::streamsize(size))) {
        std::fprintf(stderr, "nvfp4_codes: cannot read %s\n", argv[1]);
        return 2;
    }
    const tensorquant::nvfp4_quantizer q;
    std::vector<float> y(x.size());
    q.quantize(std::span<float const>(x), std::span<float>(y));
    const auto codes = q.encode(std::span<float const>(x));
    const std::string out = argv[2];
    if (!write(out + ".values", y) || !write(out + ".codes", codes.elements) || !write(out + ".scales", codes.scales)) {
        std::fprintf(stderr, "nvfp4_codes: cannot write %s.*\n", argv[2]);
        return 2;
    }
    std::printf("%.9g\n", double(codes.tensor_scale));
}
