// Runtime dispatch (dispatch.hpp): the AVX2 and AVX-512 translation units that
// tensorquant_enable_dispatch() adds give the same bits as the kernels of this one.
#include <tensorquant/dispatch.hpp>

#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace tq = tensorquant;

TEST_CASE_TEMPLATE("dispatched quantizers equal the direct ones bit for bit", T, float, double)
{
    std::mt19937 g(3);
    std::normal_distribution<double> d(0, 3);
    std::vector<T> x(4099), direct(x.size()), dispatched(x.size());
    for (auto& v : x) v = T(d(g));
    x[5] = std::numeric_limits<T>::quiet_NaN(), x[9] = -std::numeric_limits<T>::infinity();
    std::string used;
    tq::detail::for_each_type(tq::quantizer_registry{}, [&](auto type) {
        for (std::string_view spec : decltype(type)::type::examples) {
            INFO(spec);
            const auto q = tq::parse_quantizer(spec, {5, 6});
            const tq::dispatched_quantizer dq(q);
            used = dq.instruction_set();
            tq::apply_options o;
            o.index_offset = 77;
            tq::quantize(q, std::span<T const>(x), std::span<T>(direct), o);
            dq(std::span<T const>(x), std::span<T>(dispatched), o);
            CHECK(std::memcmp(direct.data(), dispatched.data(), x.size() * sizeof(T)) == 0);
        }
    });
    MESSAGE("dispatched to: " << used);
    const auto a = xsimd::available_architectures();
    if (a.avx512bw && a.avx512dq && a.avx512cd)
        CHECK(used == "avx512");
    else if (a.avx2 && a.fma3_avx2)
        CHECK(used == "avx2");
    else
        CHECK(used == "baseline");
    SUBCASE("a user quantizer runs where it was compiled")
    {
        const tq::dispatched_quantizer dq(tq::user_quantizer([](T v) { return v * T(2); }));
        CHECK(dq.instruction_set() == "baseline");
        dq(std::span<T const>(x), std::span<T>(dispatched));
        CHECK(dispatched[0] == x[0] * 2);
    }
}
