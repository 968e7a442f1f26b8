// Generic code nobody here wrote, on the number types: Eigen, xtensor's functions and
// printing, the standard algorithms and <cmath>-style calls found by ADL.
#include <tensorquant/tensorquant.hpp>
#include <tensorquant/xtensor.hpp>

#include <doctest/doctest.h>

#include <xtensor/xio.hpp>

#ifdef TQ_HAVE_EIGEN
#include <tensorquant/interop/eigen.hpp>
#endif

#include <cmath>
#include <numeric>
#include <sstream>
#include <vector>

namespace tq = tensorquant;

namespace {
using fixed12 = tq::quantized<float, tq::fixed_point<12, 8>>;
using half = tq::quantized<float, tq::minifloats::fp16_t>;

// What a float routine would write: unqualified calls, std as the fallback.
template <class V>
V generic_norm_step(V a, V b, V c)
{
    using std::abs;
    using std::fma;
    using std::max;
    using std::min;
    using std::sqrt;
    return max(min(abs(a), b), sqrt(abs(fma(a, b, c))));
}
} // namespace

TEST_CASE_TEMPLATE("number types in standard algorithms and ADL calls", V, fixed12, half)
{
    std::vector<V> a, b;
    for (int i = 0; i < 40; ++i) {
        a.push_back(V(0.07f * float(i % 9) - 0.3f));
        b.push_back(V(0.05f * float(i % 7) + 0.1f));
    }
    V acc = V(0);
    for (std::size_t i = 0; i < a.size(); ++i) acc = acc + a[i] * b[i];
    CHECK(std::inner_product(a.begin(), a.end(), b.begin(), V(0)) == acc);
    V sum = V(0);
    for (V x : a) sum = sum + x;
    CHECK(std::accumulate(a.begin(), a.end(), V(0)) == sum);
    const V r = generic_norm_step(a[3], b[3], a[5]);
    using std::abs;
    CHECK(r == max(min(abs(a[3]), b[3]), sqrt(abs(fma(a[3], b[3], a[5])))));
    CHECK(isfinite(r));
    CHECK(!isinf(r));
    CHECK(!isnan(r));
    CHECK(signbit(V(-0.5f)));
    std::ostringstream s;
    s << V(0.5f) << " " << V(-1.25f);
    CHECK(s.str() == "0.5 -1.25");
}

TEST_CASE("xtensor functions and printing on containers of number types")
{
    xt::xtensor<fixed12, 1> a = {fixed12(1.0f), fixed12(-2.5f), fixed12(0.75f)};
    xt::xtensor<fixed12, 1> b = {fixed12(0.5f), fixed12(3.0f), fixed12(0.75f)};
    CHECK(xt::amax(a)() == fixed12(1.0f));
    CHECK(xt::amin(a)() == fixed12(-2.5f));
    const xt::xtensor<fixed12, 1> m = xt::maximum(a, b);
    CHECK(m(0) == fixed12(1.0f));
    CHECK(m(1) == fixed12(3.0f));
    const xt::xtensor<fixed12, 1> w = xt::where(a > b, a, b);
    CHECK(w == m);
    const xt::xtensor<fixed12, 1> s = a + b * b; // every step rounded in the format
    CHECK(s(1) == fixed12(-2.5f) + fixed12(3.0f) * fixed12(3.0f));
    CHECK(xt::allclose(xt::cast<double>(a), xt::cast<double>(a)));
    CHECK(!xt::allclose(xt::cast<double>(a), xt::cast<double>(b)));
    std::ostringstream out;
    out << a;
    CHECK(out.str() == "{   1, -2.5, 0.75}");
}

#ifdef TQ_HAVE_EIGEN
TEST_CASE_TEMPLATE("Eigen products equal the same products accumulated in Eigen's order", V, fixed12, half)
{
    using M = Eigen::Matrix<V, Eigen::Dynamic, Eigen::Dynamic>;
    for (auto [rows, depth, cols] : {std::array{5, 7, 3}, std::array{20, 30, 25}}) {
        M A(rows, depth), B(depth, cols);
        for (int i = 0; i < rows; ++i)
            for (int k = 0; k < depth; ++k) A(i, k) = V(0.037f * float(i % 7) - 0.021f * float(k % 5) + 0.013f);
        for (int k = 0; k < depth; ++k)
            for (int j = 0; j < cols; ++j) B(k, j) = V(0.011f * float(j % 3) + 0.029f * float(k % 4) - 0.07f);
        const M C = A * B;
        int mismatches = 0;
        for (int i = 0; i < rows; ++i)
            for (int j = 0; j < cols; ++j) {
                V acc = A(i, 0) * B(0, j); // left to right, each product and sum rounded
                for (int k = 1; k < depth; ++k) acc = acc + A(i, k) * B(k, j);
                mismatches += !(acc == C(i, j));
            }
        CHECK(mismatches == 0);
        V dot = A(0, 0) * B(0, 0);
        for (int k = 1; k < depth; ++k) dot = dot + A(0, k) * B(k, 0);
        CHECK(A.row(0).dot(B.col(0)) == dot);
        V sum = A(0, 0);
        for (int k = 1; k < depth; ++k) sum = sum + A(0, k);
        CHECK(A.row(0).sum() == sum);
    }
}

TEST_CASE("Eigen NumTraits use the format's precision")
{
    using N = Eigen::NumTraits<half>;
    CHECK(float(N::epsilon()) == 0x1p-10f);
    CHECK(float(N::dummy_precision()) == 0x1p-8f);
    CHECK(float(N::highest()) == 65504.0f);
    CHECK(float(N::lowest()) == -65504.0f);
    CHECK(N::digits() == 11);
    CHECK(int(N::MulCost) > 1);
    using NF = Eigen::NumTraits<fixed12>;
    CHECK(float(NF::epsilon()) == 0x1p-8f);
    CHECK(float(NF::highest()) == 2048.0f / 256.0f - 0x1p-8f);
    Eigen::Matrix<half, 3, 1> v, w;
    v << half(1.0f), half(2.0f), half(3.0f);
    w = v;
    w(2) = half(3.0f) + half(0x1p-9f); // one step of fp16 at 3: within 4 epsilons
    CHECK(v.isApprox(w));
    w(2) = half(3.25f);
    CHECK(!v.isApprox(w));
}
#endif
