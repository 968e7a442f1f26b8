// Malformed and extreme input gives a clear error or a documented result, never undefined
// behaviour (the sanitizer build runs these too).
#include <tensorquant/train.hpp>

#include "fuzz/targets.hpp"
#include "temp_dir.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <span>
#include <vector>

namespace tq = tensorquant;
namespace nn = tensorquant::nn;

TEST_CASE("double NaN and huge values on the SSE2 path")
{
#if XSIMD_WITH_SSE2
    // xsimd's SSE2 trunc for double converts to int64 in C++: NaN and |x| >= 2^63 must not
    // reach that conversion
    const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
    const std::vector<double> x{nan, 1e300, -1e300, inf, -inf, 0.3, nan, -0.7};
    for (const char* spec : {"nearest,8,4", "nearest_zero,8,4,symmetric", "stochastic,8,4", "down,12,3,wrap"}) {
        INFO(spec);
        const auto q = tq::parse_quantizer(spec, {1, 2});
        std::vector<double> y(x.size()), s(x.size());
        tq::quantize<xsimd::sse2>(q, x, y);
        for (std::size_t i = 0; i < x.size(); ++i) s[i] = q(x[i], i);
        CHECK(std::isnan(y[0]));
        CHECK(std::isnan(y[6]));
        for (std::size_t i = 0; i < x.size(); ++i) CHECK((y[i] == s[i] || (std::isnan(y[i]) && std::isnan(s[i]))));
    }
#else
    MESSAGE("not an x86 build");
#endif
}

TEST_CASE_TEMPLATE("ternary and sparse give no NaN for infinities", T, float, double)
{
    const T inf = std::numeric_limits<T>::infinity();
    std::vector<T> x{inf, T(1), T(-2), T(0.1), -inf}, y(x.size());
    tq::quantize(tq::ternary_twn{}, x, y);
    for (T v : y) CHECK(!std::isnan(v));
    CHECK(y[0] > 0);
    CHECK(y[4] < 0);
    tq::quantize(tq::sparse(0.5), x, y);
    CHECK(y[0] == inf);
    CHECK(y[3] == 0);
    CHECK(y[4] == -inf);
    tq::quantize(tq::ternary(1000, 1), x, y);
    CHECK(y[0] == 1);
    CHECK(y[1] == 0);
    // sums of |x| that overflow T (or double): the statistics are taken again scaled, so
    // the magnitude is the true mean and stays finite
    const T top = std::numeric_limits<T>::max() / 2;
    std::vector<T> big(16, top), out(big.size());
    big[3] = inf;
    big[5] = T(2);
    tq::quantize(tq::binary_mean{}, big, out);
    CHECK(out[0] == doctest::Approx(double(top) / 15 * 14 + 2.0 / 15));
    CHECK(std::isfinite(out[3]));
    CHECK(out[3] == out[0]);
    tq::quantize(tq::ternary_twn{}, big, out);
    CHECK(out[0] == top);
    CHECK(out[3] == top);
    CHECK(out[5] == 0);
}

TEST_CASE("JSON maps reject numbers out of range and duplicate scopes")
{
    CHECK_THROWS_WITH_AS(nn::scope_map::from_json(R"({"LeNet": 1e999})", "big.json"), doctest::Contains("big.json"),
                         tq::file_error);
    CHECK_THROWS_WITH_AS(nn::scope_map::from_json(R"({"LeNet": "nearest,8,4", "LeNet": "nearest,4,2"})", "dup.json"),
                         doctest::Contains("dup.json: scope 'LeNet' is given twice"), tq::file_error);
    CHECK_NOTHROW(nn::scope_map::from_json(R"({"LeNet": "nearest,8,4", "LeNet/fc5": "nearest,4,2"})", "ok.json"));
}

TEST_CASE("IDX dimensions whose product overflows are an error")
{
    tqtest::temp_dir dir;
    auto write = [&](char const* name, std::vector<unsigned char> const& bytes) {
        std::ofstream(dir.path / name, std::ios::binary)
            .write(reinterpret_cast<char const*>(bytes.data()), std::streamsize(bytes.size()));
    };
    // images: N = 0, rows = 0xfcfffffa, cols = 0xfffffffa; labels: N = 0
    write("img", {0, 0, 8, 3, 0, 0, 0, 0, 0xfc, 0xff, 0xff, 0xfa, 0xff, 0xff, 0xff, 0xfa});
    write("lab", {0, 0, 8, 1, 0, 0, 0, 0});
    CHECK_THROWS_WITH_AS(tq::data::load_idx(dir.path / "img", dir.path / "lab"),
                         doctest::Contains("implausible IDX dimensions"), tq::file_error);
}

namespace {
// A .npy file with the given header dict (padded to 64 bytes as NumPy does unless pad is
// false) and data bytes.
std::string npy_bytes(std::string dict, std::size_t data_bytes, bool pad = true)
{
    if (pad) dict.append((64 - (10 + dict.size() + 1) % 64) % 64, ' ');
    dict += '\n';
    std::string b = std::string("\x93NUMPY\x01\x00", 8);
    b += char(dict.size() & 0xff);
    b += char(dict.size() >> 8);
    return b + dict + std::string(data_bytes, '\0');
}
} // namespace

TEST_CASE("npy headers are checked before anything is allocated")
{
    tqtest::temp_dir dir;
    auto check = [&](std::string const& name, std::string const& bytes, char const* message) {
        std::ofstream(dir.path / name, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
        CHECK_THROWS_WITH_AS(tq::read_npy<float>(dir.path / name), doctest::Contains(message), tq::file_error);
    };
    check("huge.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (429496796, 4), }", 0),
          "truncated data");
    check("minus.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 0),
          "negative dimension");
    check("wrapping.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", 0),
          "overflows");
    check("mixed.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3, -2), }", 24),
          "negative dimension");
    check("trailing.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 12),
          "4 bytes after the data");
    check("unpadded.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, false), "padded");
    check("junk.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1, }", 8),
          "unexpected key");
    check("twice.npy", npy_bytes("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8),
          "twice");
    check("missing.npy", npy_bytes("{'descr': '<f4', 'shape': (2,), }", 8), "lacks 'fortran_order'");
    const std::string good = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8);
    std::ofstream(dir.path / "good.npy", std::ios::binary).write(good.data(), std::streamsize(good.size()));
    CHECK(tq::read_npy<float>(dir.path / "good.npy").values == std::vector<float>{0, 0});
}

TEST_CASE("a gzip stream must end exactly where the IDX data ends")
{
    const std::vector<std::uint8_t> img{0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 10, 20, 30, 40};
    const std::vector<std::uint8_t> lab{0, 0, 8, 1, 0, 0, 0, 2, 3, 4};
    const auto gi = tqfuzz::gzip(img), gl = tqfuzz::gzip(lab);
    SUBCASE("complete streams load")
    {
        const auto d = tq::data::parse_idx(gi, "i.gz", gl, "l.gz", 10);
        CHECK(d.size() == 2);
        CHECK(d.labels[1] == 4);
        CHECK(d.images(1, 0, 1, 0) == doctest::Approx(40 / 255.0));
        const auto plain = tq::data::parse_idx(img, "i", lab, "l", 10);
        CHECK(plain.images == d.images);
    }
    SUBCASE("a labels stream cut short")
    {
        auto cut = gl;
        cut.resize(cut.size() - 4); // inside the trailer: the data is all there, the CRC is not
        CHECK_THROWS_WITH_AS(tq::data::parse_idx(gi, "i.gz", cut, "l.gz", 10),
                             doctest::Contains("l.gz: the gzip stream is cut short"), tq::file_error);
        cut.resize(cut.size() - 8); // inside the data
        CHECK_THROWS_AS(tq::data::parse_idx(gi, "i.gz", cut, "l.gz", 10), tq::file_error);
    }
    SUBCASE("garbage after a full member")
    {
        auto junk = gl;
        junk.insert(junk.end(), {'x', 'y', 'z'});
        CHECK_THROWS_WITH_AS(tq::data::parse_idx(gi, "i.gz", junk, "l.gz", 10),
                             doctest::Contains("l.gz: 3 bytes of garbage after the gzip data"), tq::file_error);
    }
    SUBCASE("a second member that adds data")
    {
        auto two = gl;
        two.insert(two.end(), gl.begin(), gl.end());
        CHECK_THROWS_WITH_AS(tq::data::parse_idx(gi, "i.gz", two, "l.gz", 10),
                             doctest::Contains("l.gz: bytes after the 2 labels"), tq::file_error);
    }
    SUBCASE("a corrupt member")
    {
        auto bad = gl;
        bad[bad.size() - 6] ^= 0x55; // the CRC
        CHECK_THROWS_WITH_AS(tq::data::parse_idx(gi, "i.gz", bad, "l.gz", 10), doctest::Contains("corrupt gzip data"),
                             tq::file_error);
    }
    SUBCASE("more data announced than the file can hold")
    {
        std::vector<std::uint8_t> big{0, 0, 8, 3, 0, 0, 0x10, 0, 0, 0, 1, 0, 0, 0, 1, 0};
        CHECK_THROWS_WITH_AS(tq::data::parse_idx(tqfuzz::gzip(big), "b.gz", gl, "l.gz", 10),
                             doctest::Contains("more than the file can hold"), tq::file_error);
    }
}

TEST_CASE("the fuzz harness reports broken promises and undocumented exceptions")
{
    const tqfuzz::target broken{"broken", [](tqfuzz::bytes) { tqfuzz::require(false, "always"); }, nullptr, nullptr};
    const tqfuzz::target foreign{"foreign", [](tqfuzz::bytes) { throw std::length_error("vector"); }, nullptr, nullptr};
    const tqfuzz::target documented{"documented", [](tqfuzz::bytes) { throw tq::file_error("x: bad"); }, nullptr,
                                    nullptr};
    CHECK(tqfuzz::run_one(broken, {}) == "broken promise: always");
    CHECK(tqfuzz::run_one(foreign, {}).find("undocumented exception") == 0);
    CHECK(tqfuzz::run_one(documented, {}) == "");
}

TEST_CASE("a magnitude of zero gives no negative zero")
{
    for (const char* spec : {"binary,-0", "binary,0", "binary_stochastic,-0", "ternary,0.5,-0", "sparse,-0"}) {
        INFO(spec);
        const auto q = tq::parse_quantizer(spec);
        CHECK(q.to_string().find("-0") == std::string::npos);
        std::vector<float> x{-2.f, -0.f, 0.f, 3.f}, y(x.size());
        tq::quantize(q, x, y);
        for (std::size_t i = 0; i < x.size(); ++i)
            if (y[i] == 0 && x[i] != 0) CHECK(!std::signbit(y[i]));
    }
}

TEST_CASE("a magnitude beyond the element type is a format error")
{
    for (const char* spec : {"binary,1e100", "binary_stochastic,1e100", "ternary,0.5,1e100"}) {
        INFO(spec);
        const auto q = tq::parse_quantizer(spec);
        std::vector<float> xf{1.f, -1.f}, yf(2);
        CHECK_THROWS_WITH_AS(tq::quantize(q, xf, yf), doctest::Contains("beyond the range of float"), tq::format_error);
        std::vector<double> xd{1.0, -1.0}, yd(2);
        tq::quantize(q, xd, yd);
        CHECK(yd[0] == 1e100);
    }
}
