// The fuzz targets: each takes arbitrary bytes, feeds them to a parser or reader, and
// checks what the documentation promises. A documented error (anything derived from
// tensorquant::error) is a correct answer to bad input; a broken promise throws
// fuzz_failure; any other exception is a bug too. The libFuzzer drivers (fuzz_main.cpp)
// and the regression replay in the normal test suite (test_fuzz_corpus.cpp) share them.
#pragma once

#include <tensorquant/data/idx.hpp>
#include <tensorquant/io/npy.hpp>
#include <tensorquant/nn/scope.hpp>
#include <tensorquant/nn/zoo.hpp>
#include <tensorquant/parse.hpp>
#if TQ_FUZZ_ONNX
#include <tensorquant/onnx.hpp>

#include "../onnx/model_builder.hpp"
#endif

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <numeric>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>
#include <zlib.h>

namespace tqfuzz {

namespace tq = tensorquant;
using bytes = std::span<std::uint8_t const>;

struct fuzz_failure : std::logic_error
{
    using std::logic_error::logic_error;
};

inline void require(bool ok, std::string const& what)
{
    if (!ok) throw fuzz_failure(what);
}

inline std::string as_text(bytes b) { return std::string(reinterpret_cast<char const*>(b.data()), b.size()); }
inline std::vector<std::uint8_t> as_bytes(std::string_view s) { return {s.begin(), s.end()}; }

template <class T>
bool same_value(T a, T b)
{
    return (std::isnan(a) && std::isnan(b)) ||
           std::bit_cast<std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>(a) ==
               std::bit_cast<std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>(b);
}

// ---- quantizer strings, then applying what they parse to ------------------------------
// Input: flags byte (bit 0: double), the spec up to the first newline, then raw values.

template <class T>
std::vector<T> scalar_apply(tq::any_quantizer const& q, std::vector<T> const& x)
{
    std::vector<T> y(x.size());
    q.visit<T>([&](auto const& k) {
        using K = std::decay_t<decltype(k)>;
        if constexpr (tq::TensorQuantizer<K, T>) {
            const auto p = k.prepare(std::span<T const>(x));
            for (std::size_t i = 0; i < x.size(); ++i) y[i] = tq::detail::call_at(p, x[i], i);
        } else {
            for (std::size_t i = 0; i < x.size(); ++i) y[i] = tq::detail::call_at(k, x[i], i);
        }
    });
    return y;
}

template <class T>
void check_results(tq::any_quantizer const& q, std::vector<T> const& x, std::vector<T> const& y)
{
    const std::string name = q.to_string();
    std::visit(
        [&](auto const& d) {
            using D = std::decay_t<decltype(d)>;
            constexpr bool tensor_wise = std::is_same_v<D, tq::binary_mean> || std::is_same_v<D, tq::ternary_twn>;
            std::vector<T> again(y.size());
            if constexpr (!tensor_wise) again = scalar_apply(tq::any_quantizer(d), y);
            T magnitude = 0;
            for (std::size_t i = 0; i < x.size(); ++i) {
                const std::string at = name + ": element " + std::to_string(i) + " (" + std::to_string(double(x[i])) +
                                       " -> " + std::to_string(double(y[i])) + ")";
                if (std::isnan(x[i])) {
                    require(std::isnan(y[i]), at + ": NaN must stay NaN");
                    continue;
                }
                if (std::isnan(y[i])) {
                    // the documented ways to NaN: an infinity under wrap; overflow of a
                    // finite-only minifloat that is not saturating
                    bool allowed = false;
                    if constexpr (std::is_same_v<D, tq::fixed_point_rt>)
                        allowed = std::isinf(x[i]) && d.overflow() == tq::overflow_mode::wrap;
                    if constexpr (std::is_same_v<D, tq::minifloat>)
                        allowed = !d.format.ieee_specials && d.overflow == tq::minifloat_overflow::to_infinity;
                    require(allowed, at + ": NaN from a number");
                    continue;
                }
                if (std::isinf(y[i])) {
                    bool allowed = std::is_same_v<D, tq::identity> || std::is_same_v<D, tq::sparse>;
                    if constexpr (std::is_same_v<D, tq::minifloat>)
                        allowed = d.format.ieee_specials && d.overflow == tq::minifloat_overflow::to_infinity;
                    require(allowed, at + ": an infinity the format does not have");
                    if (std::is_same_v<D, tq::identity> || std::is_same_v<D, tq::sparse>)
                        require(y[i] == x[i], at + ": an infinity that was not there");
                    continue;
                }
                // (affine's range is the real one; its grid in T is checked below)
                if constexpr (requires { d.range(); } && !std::is_same_v<D, tq::affine>) {
                    const auto [lo, hi] = [&] {
                        if constexpr (requires { d.template range<T>(); })
                            return d.template range<T>();
                        else
                            return d.range();
                    }();
                    // (the bounds are parameters in double; the kernel holds them in T)
                    require(y[i] >= static_cast<T>(lo) && y[i] <= static_cast<T>(hi),
                            at + ": outside the range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
                }
                if constexpr (std::is_same_v<D, tq::fixed_point_rt>)
                    require(!(y[i] == 0 && std::signbit(y[i])), at + ": fixed-point results are never -0");
                if constexpr (std::is_same_v<D, tq::affine>) {
                    // on the grid: (n - zero_point) * scale for an n in [qmin, qmax]
                    const T s = T(d.scale);
                    const double n = std::nearbyint(double(y[i]) / double(s));
                    require(T(n) * s == y[i] && n + d.zero_point >= d.qmin && n + d.zero_point <= d.qmax,
                            at + ": off the grid");
                } else if constexpr (tensor_wise) {
                    // one magnitude for the whole tensor
                    if (y[i] != 0) {
                        if (magnitude == 0) magnitude = std::abs(y[i]);
                        require(std::abs(y[i]) == magnitude, at + ": a second magnitude in a binary or ternary tensor");
                    }
                } else {
                    bool idempotent = true;
                    if constexpr (std::is_same_v<D, tq::ternary>) idempotent = d.magnitude > d.threshold;
                    // BinaryConnect's probability reads x itself, so +-m is certain only for m >= 1
                    if constexpr (std::is_same_v<D, tq::binary_stochastic>) idempotent = d.magnitude >= 1;
                    // on the grid: quantizing a result again gives it back
                    if (idempotent)
                        require(same_value(again[i], y[i]),
                                at + ": not on the grid (again gives " + std::to_string(double(again[i])) + ")");
                }
            }
        },
        q.get());
}

// Block formats (held as user_quantizer): the same as the class itself, in pieces at block
// boundaries (MX, bfp: their scales are per block), NaN exactly in blocks holding a NaN or
// an infinity, never an infinity.
template <class T>
void block_values(tq::any_quantizer const& q, std::vector<T> const& x)
{
    const std::string spec = q.to_string();
    std::vector<T> y(x.size()), direct(x.size());
    tq::quantize(q, std::span<T const>(x), std::span<T>(y));
    const tq::detail::spec_reader r(spec);
    std::size_t block = 0;
    if (tq::nvfp4_quantizer::accepts(r)) {
        const auto b = tq::nvfp4_quantizer::parse(r, {7, 3});
        b.quantize(std::span<T const>(x), std::span<T>(direct));
        block = b.block();
    } else {
        const auto b = tq::block_quantizer::parse(r, {7, 3});
        b.quantize(std::span<T const>(x), std::span<T>(direct));
        block = b.block();
        const std::size_t cut = x.size() / 2 / block * block;
        std::vector<T> z(x.size());
        b.quantize(std::span<T const>(x).first(cut), std::span<T>(z).first(cut));
        b.quantize(std::span<T const>(x).subspan(cut), std::span<T>(z).subspan(cut), cut);
        for (std::size_t i = 0; i < x.size(); ++i)
            require(same_value(y[i], z[i]),
                    spec + ": quantizing in block-aligned pieces differs at " + std::to_string(i));
    }
    for (std::size_t first = 0; first < x.size(); first += block) {
        const std::size_t n = std::min(block, x.size() - first);
        bool finite = true;
        for (std::size_t i = first; i < first + n; ++i) finite = finite && std::isfinite(x[i]);
        for (std::size_t i = first; i < first + n; ++i) {
            require(same_value(y[i], direct[i]), spec + ": apply and the class differ at " + std::to_string(i));
            require(std::isnan(y[i]) == !finite, spec + ": NaN where the block is finite, or none where it is not");
            require(!std::isinf(y[i]), spec + ": an infinity");
        }
    }
    require(tq::parse_quantizer(spec).to_string() == spec, "to_string is not canonical: " + spec);
}

template <class T>
void quantizer_values(tq::any_quantizer const& q, bytes raw)
{
    std::vector<T> x(raw.size() / sizeof(T));
    if (!x.empty()) std::memcpy(x.data(), raw.data(), x.size() * sizeof(T));
    if (std::holds_alternative<tq::user_quantizer>(q.get())) return block_values(q, x); // the only user ones here
    std::vector<T> y(x.size());
    tq::quantize(q, std::span<T const>(x), std::span<T>(y));
    const auto s = scalar_apply(q, x);
#if XSIMD_WITH_SSE2
    std::vector<T> y2(x.size()); // the oldest x86 kernels too (double rounds without SSE4.1 there)
    tq::quantize<xsimd::sse2>(q, std::span<T const>(x), std::span<T>(y2));
    for (std::size_t i = 0; i < x.size(); ++i)
        require(same_value(y2[i], s[i]), q.to_string() + ": SSE2 and scalar differ at element " + std::to_string(i));
#endif
    for (std::size_t i = 0; i < x.size(); ++i)
        require(same_value(y[i], s[i]), q.to_string() + ": SIMD and scalar differ at element " + std::to_string(i));
    // in two pieces, the second with its stream offset, for element-wise quantizers
    const bool tensor_wise =
        std::holds_alternative<tq::binary_mean>(q.get()) || std::holds_alternative<tq::ternary_twn>(q.get());
    if (!tensor_wise && x.size() > 1) {
        const std::size_t half = x.size() / 2;
        std::vector<T> z(x.size());
        tq::quantize(q, std::span<T const>(x).first(half), std::span<T>(z).first(half));
        tq::apply_options o;
        o.index_offset = half;
        tq::quantize(q, std::span<T const>(x).subspan(half), std::span<T>(z).subspan(half), o);
        for (std::size_t i = 0; i < x.size(); ++i)
            require(same_value(y[i], z[i]),
                    q.to_string() + ": quantizing in pieces differs at element " + std::to_string(i));
    }
    check_results(q, x, y);
    // the canonical spelling parses to the same quantizer
    const auto back = tq::parse_quantizer(q.to_string(), {7, 3});
    require(back.to_string() == q.to_string(),
            "to_string is not canonical: " + q.to_string() + " -> " + back.to_string());
}

inline void quantizer(bytes in)
{
    if (in.empty()) return;
    const bool use_double = in[0] & 1;
    in = in.subspan(1);
    std::size_t end = 0;
    while (end < in.size() && in[end] != '\n') ++end;
    const std::string spec = as_text(in.first(end));
    const bytes values = end < in.size() ? in.subspan(end + 1) : bytes{};
    tq::any_quantizer q;
    try {
        q = tq::parse_quantizer(spec, {7, 3});
    } catch (tq::parse_error const&) {
        return;
    } catch (tq::format_error const&) {
        return;
    }
    // a format may exist for double but not for float (W > 24): a format_error then
    try {
        if (use_double)
            quantizer_values<double>(q, values);
        else
            quantizer_values<float>(q, values);
    } catch (tq::format_error const&) {
    }
}

inline std::vector<std::vector<std::uint8_t>> quantizer_seeds()
{
    std::vector<std::vector<std::uint8_t>> seeds;
    std::vector<double> dv{0.0, -0.0, 0.5, -0.5, 1.25, -3.75, 1e10, -1e-10, 2.5, 3.5, 127.9, -128.1};
    dv.push_back(std::numeric_limits<double>::infinity());
    dv.push_back(-std::numeric_limits<double>::infinity());
    dv.push_back(std::numeric_limits<double>::quiet_NaN());
    dv.push_back(std::numeric_limits<double>::denorm_min());
    std::vector<float> fv(dv.begin(), dv.end());
    auto add = [&](std::string_view spec) {
        for (int type = 0; type < 2; ++type) {
            std::vector<std::uint8_t> s{std::uint8_t(type)};
            s.insert(s.end(), spec.begin(), spec.end());
            s.push_back('\n');
            auto const* p = type ? reinterpret_cast<std::uint8_t const*>(dv.data())
                                 : reinterpret_cast<std::uint8_t const*>(fv.data());
            s.insert(s.end(), p, p + (type ? dv.size() * 8 : fv.size() * 4));
            seeds.push_back(std::move(s));
        }
    };
    tq::detail::for_each_type(tq::quantizer_registry{}, [&](auto t) {
        for (std::string_view e : decltype(t)::type::examples) add(e);
    });
    tq::detail::for_each_type(tq::block_quantizer_registry{}, [&](auto t) {
        for (std::string_view e : decltype(t)::type::examples) add(e);
    });
    for (auto r : tq::detail::names_of(tq::rounding::all{})) add(std::string(r) + ",8,4");
    add("nearest,8,4,wrap");
    add("stochastic,24,30,symmetric");
    add("minifloat,4,3,7,finite");
    add("minifloat,3,2,saturate,no_subnormals");
    add("nearest,8,4,"); // near-valid
    add("minifloat,12,3");
    return seeds;
}

inline std::string quantizer_dictionary()
{
    std::string d;
    auto word = [&](std::string_view w) {
        d += '"';
        d += w;
        d += "\"\n";
    };
    auto words_of = [&](auto registry) {
        tq::detail::for_each_type(registry, [&](auto t) {
            for (std::string_view e : decltype(t)::type::examples) word(e.substr(0, e.find(',')));
        });
    };
    words_of(tq::quantizer_registry{});
    words_of(tq::block_quantizer_registry{});
    for (auto r : tq::detail::names_of(tq::rounding::all{})) word(r);
    for (auto o : tq::detail::names_of(tq::overflow::all{})) word(o);
    for (auto w : {"signed", "unsigned", "none", "floor", "nearest_even", "to_infinity", "saturate", "subnormals",
                   "no_subnormals", "finite", "ieee", "divide", "block=", ",", "\\x0a"})
        word(w);
    return d;
}

// ---- JSON scope maps -------------------------------------------------------------------

inline void scope_map_json(bytes in)
{
    const std::string text = as_text(in);
    const auto m = tq::nn::scope_map::from_json(text, "fuzz.json");
    for (auto const& e : m.entries()) {
        require(!e.scope.empty() && e.scope.back() != '/', "scope '" + e.scope + "' kept a trailing slash");
        auto const* hit = m.match(e.scope);
        require(hit && hit->scope == e.scope, "scope '" + e.scope + "' does not match itself");
        const auto again = tq::parse_quantizer(e.quantizer.to_string());
        require(again.to_string() == e.quantizer.to_string(), "scope '" + e.scope + "': quantizer does not round-trip");
    }
}

inline std::vector<std::vector<std::uint8_t>> scope_map_seeds()
{
    std::vector<std::vector<std::uint8_t>> s;
    for (std::string_view t :
         {R"({"LeNet": "nearest,8,4", "LeNet/fc5": "stochastic,16,8"})",
          R"({"ResNet/block1": "minifloat,4,3,7,finite"})", R"({})", R"({"LeNet": 1e999})",
          R"({"LeNet": "nearest,8,4", "LeNet": "nearest,4,2"})", R"({"a/": "zero,4,2", "a": "down,4,2"})",
          R"(["nearest,8,4"])", R"({"x": "logarithmic,nearest,-8,8"})", R"({"x": "affine,0.1,3,-128,127"})",
          R"({"x": null})", R"({"x": "nearest,8,4")", "{\"\\u00e9\": \"nearest,8,4\"}"})
        s.push_back(as_bytes(t));
    return s;
}

inline std::string scope_map_dictionary()
{
    return "\"{\"\n\"}\"\n\"\\\"\"\n\":\"\n\",\"\n\"[\"\n\"]\"\n\"null\"\n\"true\"\n\"1e999\"\n\"\\\\u\"\n"
           "\"\\\"LeNet\\\"\"\n\"\\\"LeNet/fc5\\\"\"\n\"\\\"nearest,8,4\\\"\"\n\"\\\"stochastic,16,8\\\"\"\n";
}

// ---- .npy ------------------------------------------------------------------------------

inline std::string npy_file(std::string dict, std::size_t data_bytes, int version = 1, char fill = 0)
{
    const std::size_t preamble = version == 1 ? 10 : 12;
    dict.append((64 - (preamble + dict.size() + 1) % 64) % 64, ' ');
    dict += '\n';
    std::string b = std::string("\x93NUMPY", 6) + char(version) + '\0';
    for (std::size_t k = 0; k < preamble - 8; ++k) b += char((dict.size() >> (8 * k)) & 0xff);
    return b + dict + std::string(data_bytes, fill);
}

inline void npy(bytes in)
{
    const auto f = tq::parse_npy<float>(in, "fuzz.npy");
    std::size_t count = 1;
    for (auto d : f.shape) count *= d;
    require(f.values.size() == count, "the value count does not match the shape");
    const auto d = tq::parse_npy<double>(in, "fuzz.npy");
    require(d.shape == f.shape && d.values.size() == f.values.size(), "float and double reads disagree");
    for (std::size_t i = 0; i < f.values.size(); ++i)
        require(same_value(float(d.values[i]), f.values[i]) || std::isnan(f.values[i]),
                "float and double reads disagree at " + std::to_string(i));
}

inline std::vector<std::vector<std::uint8_t>> npy_seeds()
{
    std::vector<std::vector<std::uint8_t>> s;
    for (std::string_view shape : {"(2,)", "(2, 3)", "()", "(0, 4)", "(1, 1, 1, 2)"}) {
        std::size_t n = 1;
        for (char c : shape)
            if (c >= '0' && c <= '9') n *= std::size_t(c - '0');
        if (shape == "()") n = 1;
        s.push_back(as_bytes(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': " + std::string(shape) + ", }",
                                      4 * n, 1, '\x3f')));
        s.push_back(as_bytes(npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': " + std::string(shape) + ", }",
                                      8 * n, 2, '\x40')));
    }
    s.push_back(as_bytes(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (429496796, 4), }", 0)));
    s.push_back(as_bytes(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 0)));
    s.push_back(as_bytes(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", 0)));
    s.push_back(as_bytes(npy_file("{\"descr\": \"<f4\", \"shape\": (2,), \"fortran_order\": True}", 8, 3)));
    s.push_back(as_bytes(npy_file("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8)));
    return s;
}

inline std::string npy_dictionary()
{
    return "\"\\x93NUMPY\"\n\"'descr'\"\n\"'fortran_order'\"\n\"'shape'\"\n\"'<f4'\"\n\"'<f8'"
           "\"\n\"True\"\n\"False\"\n\"(\"\n\")\"\n"
           "\", \"\n\": \"\n\"{\"\n\"}\"\n\"\\x0a\"\n\"\\x01\\x00\"\n\"\\x02\\x00\"\n";
}

// ---- IDX (images and labels, gzip or plain) ----------------------------------------------
// Input: a 4-byte little-endian length of the images file, the images file, the labels file.

inline void idx(bytes in)
{
    if (in.size() < 4) return;
    const std::size_t n =
        std::size_t(in[0]) | std::size_t(in[1]) << 8 | std::size_t(in[2]) << 16 | std::size_t(in[3]) << 24;
    in = in.subspan(4);
    if (n > in.size()) return;
    const auto d = tq::data::parse_idx(in.first(n), "images.idx", in.subspan(n), "labels.idx", 10);
    require(d.images.dimension() == 4 && d.images.shape(3) == 1, "images are not N x rows x cols x 1");
    require(d.images.shape(0) == d.labels.size(), "image and label counts differ");
    for (float v : d.images) require(v >= 0 && v <= 1, "a pixel outside [0, 1]");
    for (auto l : d.labels) require(l < 10, "a label not below the class count");
}

inline std::vector<std::uint8_t> gzip(std::vector<std::uint8_t> const& plain)
{
    z_stream zs{};
    deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    std::vector<std::uint8_t> out(deflateBound(&zs, uLong(plain.size())) + 32);
    zs.next_in = const_cast<Bytef*>(plain.data());
    zs.avail_in = uInt(plain.size());
    zs.next_out = out.data();
    zs.avail_out = uInt(out.size());
    deflate(&zs, Z_FINISH);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

inline std::vector<std::uint8_t> idx_input(std::vector<std::uint8_t> const& images,
                                           std::vector<std::uint8_t> const& labels)
{
    std::vector<std::uint8_t> s(4 + images.size() + labels.size());
    for (int k = 0; k < 4; ++k) s[std::size_t(k)] = std::uint8_t(images.size() >> (8 * k));
    std::copy(images.begin(), images.end(), s.begin() + 4);
    std::copy(labels.begin(), labels.end(), s.begin() + 4 + std::ptrdiff_t(images.size()));
    return s;
}

inline std::vector<std::vector<std::uint8_t>> idx_seeds()
{
    // 3 images of 2x2, labels 0 1 9
    const std::vector<std::uint8_t> img{0, 0, 8, 3, 0, 0, 0,   3,   0, 0, 0,  2,  0,  0,
                                        0, 2, 0, 1, 2, 3, 255, 128, 7, 9, 10, 11, 12, 13};
    const std::vector<std::uint8_t> lab{0, 0, 8, 1, 0, 0, 0, 3, 0, 1, 9};
    auto gz_img = gzip(img), gz_lab = gzip(lab);
    std::vector<std::vector<std::uint8_t>> s{idx_input(img, lab), idx_input(gz_img, gz_lab), idx_input(gz_img, lab)};
    auto cut = gz_lab;
    cut.resize(cut.size() - 5); // a labels stream cut short
    s.push_back(idx_input(gz_img, cut));
    auto garbage = gz_lab;
    garbage.insert(garbage.end(), {'j', 'u', 'n', 'k'}); // a full member, then garbage
    s.push_back(idx_input(gz_img, garbage));
    auto two = gz_lab; // two members: the second adds bytes after the data
    two.insert(two.end(), gz_lab.begin(), gz_lab.end());
    s.push_back(idx_input(gz_img, two));
    s.push_back(
        idx_input({0, 0, 8, 3, 0, 0, 0, 0, 0xfc, 0xff, 0xff, 0xfa, 0xff, 0xff, 0xff, 0xfa}, {0, 0, 8, 1, 0, 0, 0, 0}));
    return s;
}

inline std::string idx_dictionary()
{
    return "\"\\x00\\x00\\x08\\x03\"\n\"\\x00\\x00\\x08\\x01\"\n\"\\x1f\\x8b\\x08\\x00\"\n\"\\x00\\x00\\x00\\x02\"\n";
}

// ---- network::load ---------------------------------------------------------------------
// Input: a byte choosing a parameter of a small network, then that parameter's .npy file;
// the others are valid. A failed load must leave every parameter as it was; a successful
// one must change exactly the chosen parameter, to the file's values.

inline tq::nn::network small_network()
{
    tq::nn::initializer init(5);
    tq::nn::network net("N");
    net.add("conv", init.conv2d(3, 1, 2));
    net.add("bn", tq::nn::initializer::batch_norm(2, tq::nn::activation::relu));
    net.add("flatten", tq::nn::flatten_layer{});
    net.add("fc", init.dense(8, 3));
    return net;
}

inline std::vector<std::vector<float>> snapshot(tq::nn::network& net)
{
    std::vector<std::vector<float>> all;
    for (auto const& n : net.nodes())
        for (auto const& p : tq::nn::parameters_of(net.layer_at(n.name))) all.emplace_back(p.data, p.data + p.size());
    return all;
}

inline std::vector<std::uint8_t> read_bytes(std::filesystem::path const& p)
{
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_file(std::filesystem::path const& p, bytes b)
{
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<char const*>(b.data()), std::streamsize(b.size()));
}

// The network saved once; each input replaces one file, which is put back afterwards.
struct load_fixture
{
    std::filesystem::path dir;
    tq::nn::network net = small_network();
    std::vector<std::filesystem::path> files;
    std::vector<std::vector<std::uint8_t>> file_bytes;
    std::vector<std::vector<float>> original;
    load_fixture()
    {
        dir = std::filesystem::temp_directory_path() / ("tq_fuzz_load_" + std::to_string(std::random_device{}()));
        std::filesystem::remove_all(dir);
        net.save(dir);
        for (auto const& n : net.nodes())
            for (auto const& p : tq::nn::parameters_of(net.layer_at(n.name))) {
                files.push_back(dir / n.name / (p.name + ".npy"));
                file_bytes.push_back(read_bytes(files.back()));
            }
        original = snapshot(net);
    }
    ~load_fixture() { std::filesystem::remove_all(dir); }
    void restore_parameters()
    {
        std::size_t i = 0;
        for (auto const& n : net.nodes())
            for (auto const& p : tq::nn::parameters_of(net.layer_at(n.name)))
                std::copy(original[i].begin(), original[i].end(), p.data), ++i;
    }
};

inline void network_load(bytes in)
{
    static load_fixture fx;
    if (in.empty()) return;
    const std::size_t which = in[0] % fx.files.size();
    const bytes file = in.subspan(1);
    write_file(fx.files[which], file);
    bool loaded = false;
    std::string error;
    try {
        fx.net.load(fx.dir);
        loaded = true;
    } catch (tq::error const& e) {
        error = e.what();
    }
    const auto now = snapshot(fx.net);
    // put the file and the parameters back for the next input before judging this one
    write_file(fx.files[which], fx.file_bytes[which]);
    if (loaded) fx.restore_parameters();
    for (std::size_t i = 0; i < now.size(); ++i) {
        if (!loaded || i != which) {
            require(now[i].size() == fx.original[i].size(), "a parameter changed size");
            for (std::size_t k = 0; k < now[i].size(); ++k)
                require(same_value(now[i][k], fx.original[i][k]),
                        loaded ? "a parameter that was not in the file changed"
                               : "a failed load changed parameter " + std::to_string(i) + " (" + error + ")");
        }
    }
    if (loaded) {
        const auto expect = tq::parse_npy<float>(file, "fuzz.npy");
        require(expect.values.size() == now[which].size(), "the loaded parameter has another size than its file");
        for (std::size_t k = 0; k < expect.values.size(); ++k)
            require(same_value(now[which][k], expect.values[k]), "the loaded parameter differs from its file");
    }
}

inline std::vector<std::vector<std::uint8_t>> network_load_seeds()
{
    std::vector<std::vector<std::uint8_t>> s;
    // conv weights 3x3x1x2 (the first parameter), valid and near-valid
    auto with = [](std::uint8_t which, std::string const& file) {
        std::vector<std::uint8_t> v(1 + file.size());
        v[0] = which;
        std::memcpy(v.data() + 1, file.data(), file.size());
        return v;
    };
    s.push_back(with(0, npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 3, 1, 2), }", 72, 1, '\x3e')));
    s.push_back(with(0, npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 3, 2, 1), }", 72)));
    s.push_back(with(1, npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16, 1, '\x3f')));
    s.push_back(with(255, npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 11)));
    s.push_back(with(2, npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, 1, '\x7f')));
    return s;
}

#if TQ_FUZZ_ONNX
// ---- ONNX models: onnx::load on any bytes ------------------------------------------------
// A model either loads, with its layers reading only earlier ones, or gives
// a documented error naming the file. (Running what loads is left out: a valid model may
// ask for any amount of memory.)

inline void onnx_model(bytes in)
{
    static const std::filesystem::path file = std::filesystem::temp_directory_path() / "tq_fuzz_model.onnx";
    {
        std::ofstream out(file, std::ios::binary);
        out.write(reinterpret_cast<char const*>(in.data()), std::streamsize(in.size()));
    }
    tq::onnx::model m;
    try {
        m = tq::onnx::load(file);
    } catch (tq::error const& e) {
        require(std::string(e.what()).find(file.string()) != std::string::npos,
                "an import error does not name the file: " + std::string(e.what()));
        throw;
    }
    if (m.constant_output) { // every input bound or unread: the output was folded
        require(m.net.nodes().empty(), "a model with a folded output has layers");
        require(m.constant_output->size() == std::size_t(std::accumulate(m.output_shape.begin(), m.output_shape.end(),
                                                                         std::int64_t(1), std::multiplies<>())),
                "a folded output does not fill its shape");
        return;
    }
    if (m.net.nodes().empty()) // only a pass-through graph has no layers: it gives its input
        require(m.input_shape == m.output_shape, "a model without layers changes the shape");
    require(!m.input_shape.empty() && !m.output_shape.empty(), "a model loaded without input or output shape");
    require(m.input_perm.size() == m.input_shape.size() && m.output_perm.size() == m.output_shape.size(),
            "a model's layouts do not match its shapes");
    for (auto const& n : m.net.nodes())
        for (int i : n.inputs)
            require(i >= -1 && i < int(&n - m.net.nodes().data()), "a layer reads a later one: " + n.name);
    for (auto const& e : m.qdq.entries())
        require(m.net.find(e.scope) >= 0, "a QDQ quantization point names no layer: " + e.scope);
    for (auto const* q : {&m.input_codes, &m.output_codes})
        if (*q)
            require(!(*q)->scales.empty() && (*q)->scales.size() == (*q)->zero_points.size() &&
                        (*q)->qmin <= (*q)->qmax,
                    "a model's integer codes have no consistent scales, zero points and range");
}

// Small models over the operators: conv (pads, groups), relu, pools, batch norm, concat,
// flatten, gemm, clip, softmax; QDQ and Mul; attention with shapes from Shape, layer norm and
// the GELU pattern; Pad, ConvTranspose, Resize, Split; embeddings and an expanded constant.
inline std::vector<std::vector<std::uint8_t>> onnx_model_seeds()
{
    using tq_test::model_builder;
    using tq_test::set_int;
    using tq_test::set_ints;
    auto model = [](auto build) {
        model_builder b(13);
        b.input("x", {-1, 2, 6, 6});
        build(b);
        const std::string bytes = b.m.SerializeAsString();
        return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
    };
    // an initializer of small repeating values
    auto init = [](model_builder& b, std::string const& name, std::vector<std::int64_t> dims) {
        std::int64_t n = 1;
        for (auto d : dims) n *= d;
        std::vector<float> v;
        for (std::int64_t i = 0; i < n; ++i) v.push_back(float(i % 7) * 0.25f - 0.5f);
        b.init_values(name, dims, v);
    };
    std::vector<std::vector<std::uint8_t>> s;
    s.push_back(model([&](model_builder& b) {
        init(b, "w", {4, 1, 3, 3});
        init(b, "b", {4});
        auto& c = b.node("Conv", "/c/Conv", {"x", "w", "b"}, "c");
        set_int(c, "group", 2);
        set_ints(c, "pads", {1, 0, 1, 1});
        b.node("Relu", "/r/Relu", {"c"}, "r");
        auto& p = b.node("MaxPool", "/p/MaxPool", {"r"}, "p");
        set_ints(p, "kernel_shape", {2, 2});
        set_ints(p, "strides", {2, 2});
        set_int(p, "ceil_mode", 1);
        b.node("Flatten", "/f/Flatten", {"p"}, "f");
        init(b, "fw", {3, 36});
        init(b, "fb", {3});
        set_int(b.node("Gemm", "/y/Gemm", {"f", "fw", "fb"}, "y"), "transB", 1);
        b.node("Softmax", "/out/Softmax", {"y"}, "out");
        b.g().add_output()->set_name("out");
    }));
    s.push_back(model([&](model_builder& b) {
        init(b, "scale", {2});
        init(b, "bias", {2});
        init(b, "mean", {2});
        b.init_values("var", {2}, {1.0f, 0.5f});
        b.node("BatchNormalization", "/n/BatchNormalization", {"x", "scale", "bias", "mean", "var"}, "n");
        auto& a = b.node("AveragePool", "/a/AveragePool", {"n"}, "a");
        set_ints(a, "kernel_shape", {3, 3});
        set_ints(a, "pads", {1, 1, 1, 1});
        set_int(b.node("Concat", "/k/Concat", {"a", "n"}, "k"), "axis", 1);
        init(b, "lo", {});
        b.node("Clip", "/r/Clip", {"k", "lo"}, "r");
        b.node("GlobalAveragePool", "/out/GlobalAveragePool", {"r"}, "out");
        b.g().add_output()->set_name("out");
    }));
    s.push_back(model([&](model_builder& b) { // QDQ: the input, an int8 weight, a Mul, a Clip
        b.init_values("s", {}, {0.125f});
        b.init_ints("z", {}, ::onnx::TensorProto::INT8, {3});
        b.init_ints("wq", {2, 2, 1, 1}, ::onnx::TensorProto::INT8, {1, -2, 127, -128});
        b.init_values("ws", {2}, {0.5f, 0.25f});
        b.init_values("lo", {}, {-0.75f});
        b.node("QuantizeLinear", "/q/QuantizeLinear", {"x", "s", "z"}, "q");
        b.node("DequantizeLinear", "/d/DequantizeLinear", {"q", "s", "z"}, "d");
        set_int(b.node("DequantizeLinear", "/w/DequantizeLinear", {"wq", "ws"}, "w"), "axis", 0);
        b.node("Conv", "/c/Conv", {"d", "w"}, "c");
        b.node("Mul", "/m/Mul", {"c", "s"}, "m");
        b.node("Clip", "/k/Clip", {"m", "lo", "s"}, "k");
        b.node("QuantizeLinear", "/out/QuantizeLinear", {"k", "s", "z"}, "out");
        b.g().add_output()->set_name("out");
    }));
    // the operators of today's networks
    s.push_back(model([&](model_builder& b) { // attention on tokens: shapes from Shape, MatMul of two activations
        init(b, "pw", {16, 8});
        b.node("Shape", "/s/Shape", {"x"}, "shape");
        b.init_ints("zero", {}, ::onnx::TensorProto::INT64, {0});
        b.node("Gather", "/g/Gather", {"shape", "zero"}, "n");
        b.init_ints("axes", {1}, ::onnx::TensorProto::INT64, {0});
        b.node("Unsqueeze", "/u/Unsqueeze", {"n", "axes"}, "n1");
        b.init_ints("rest", {2}, ::onnx::TensorProto::INT64, {4, -1});
        set_int(b.node("Concat", "/c/Concat", {"n1", "rest"}, "target"), "axis", 0);
        b.node("Reshape", "/r/Reshape", {"x", "target"}, "tokens"); // [N, 4, 18]
        init(b, "proj", {18, 16});
        b.node("MatMul", "/q/MatMul", {"tokens", "proj"}, "q");
        set_ints(b.node("Transpose", "/t/Transpose", {"q"}, "k"), "perm", {0, 2, 1});
        b.node("MatMul", "/a/MatMul", {"q", "k"}, "scores");
        set_int(b.node("Softmax", "/sm/Softmax", {"scores"}, "attn"), "axis", -1);
        b.node("MatMul", "/v/MatMul", {"attn", "q"}, "mixed");
        init(b, "ln_s", {16});
        init(b, "ln_b", {16});
        b.node("LayerNormalization", "/ln/LayerNormalization", {"mixed", "ln_s", "ln_b"}, "normed");
        b.init_values("sqrt2", {}, {1.4142135f});
        b.init_values("one", {}, {1.0f});
        b.init_values("half", {}, {0.5f});
        b.node("Div", "/gelu/Div", {"normed", "sqrt2"}, "g0");
        b.node("Erf", "/gelu/Erf", {"g0"}, "g1");
        b.node("Add", "/gelu/Add", {"g1", "one"}, "g2");
        b.node("Mul", "/gelu/Mul", {"normed", "g2"}, "g3");
        b.node("Mul", "/gelu/Mul_1", {"g3", "half"}, "g4");
        b.node("MatMul", "/out/MatMul", {"g4", "pw"}, "p");
        auto& r = b.node("ReduceMean", "/out/ReduceMean", {"p"}, "out");
        set_ints(r, "axes", {1});
        set_int(r, "keepdims", 0);
        b.g().add_output()->set_name("out");
    }));
    s.push_back(model([&](model_builder& b) { // padding, transposed convolution, resizing, splitting
        b.init_ints("pads", {8}, ::onnx::TensorProto::INT64, {0, 0, 1, 2, 0, 0, 2, 1});
        b.node("Pad", "/p/Pad", {"x", "pads"}, "padded");
        init(b, "w", {2, 3, 3, 3});
        auto& t = b.node("ConvTranspose", "/t/ConvTranspose", {"padded", "w"}, "up");
        set_ints(t, "strides", {2, 2});
        set_ints(t, "output_padding", {1, 0});
        b.init_values("scales", {4}, {1, 1, 0.5f, 0.5f});
        b.node("Resize", "/rs/Resize", {"up", "", "scales"}, "down");
        auto& sp = b.node("Split", "/sp/Split", {"down"}, "a");
        sp.add_output("b");
        sp.add_output("c");
        set_int(sp, "axis", 1);
        b.node("HardSwish", "/h/HardSwish", {"a"}, "ha");
        b.node("Mul", "/m/Mul", {"ha", "b"}, "m");
        b.node("Sub", "/s/Sub", {"m", "c"}, "out");
        b.g().add_output()->set_name("out");
    }));
    s.push_back([&] { // embeddings of int64 token ids, a class token expanded over the batch
        model_builder b(13);
        b.input("ids", {-1, 5}, ::onnx::TensorProto::INT64);
        init(b, "table", {10, 4});
        b.node("Gather", "/e/Gather", {"table", "ids"}, "emb");
        init(b, "cls", {1, 1, 4});
        b.node("Shape", "/s/Shape", {"emb"}, "shape");
        b.init_ints("first", {1}, ::onnx::TensorProto::INT64, {0});
        b.init_ints("second", {1}, ::onnx::TensorProto::INT64, {1});
        b.node("Slice", "/n/Slice", {"shape", "first", "second"}, "n");
        b.init_ints("rest", {2}, ::onnx::TensorProto::INT64, {1, 4});
        set_int(b.node("Concat", "/t/Concat", {"n", "rest"}, "target"), "axis", 0);
        b.node("Expand", "/x/Expand", {"cls", "target"}, "cls_n");
        set_int(b.node("Concat", "/c/Concat", {"cls_n", "emb"}, "seq"), "axis", 1);
        b.node("Tanh", "/a/Tanh", {"seq"}, "out");
        b.g().add_output()->set_name("out");
        const std::string bytes = b.m.SerializeAsString();
        return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
    }());
    return s;
}

inline std::string onnx_model_dictionary()
{
    std::vector<std::string> words;
    for (auto op : tq::onnx::supported_operators()) words.emplace_back(op);
    for (auto w : {"kernel_shape",
                   "strides",
                   "pads",
                   "dilations",
                   "group",
                   "auto_pad",
                   "SAME_UPPER",
                   "VALID",
                   "ceil_mode",
                   "count_include_pad",
                   "transA",
                   "transB",
                   "alpha",
                   "beta",
                   "epsilon",
                   "axis",
                   "min",
                   "max",
                   "training_mode",
                   "ai.onnx",
                   "perm",
                   "keepdims",
                   "axes",
                   "allowzero",
                   "mode",
                   "reflect",
                   "edge",
                   "linear",
                   "nearest",
                   "coordinate_transformation_mode",
                   "align_corners",
                   "output_padding",
                   "output_shape",
                   "split",
                   "to"})
        words.emplace_back(w);
    std::string d;
    for (auto const& w : words) { // appended piece by piece: GCC 12 warns (-Wrestrict) on a + chain here
        d += '"';
        d += w;
        d += "\"\n";
    }
    return d;
}
#endif

// ---- the table of targets ---------------------------------------------------------------

struct target
{
    char const* name;
    void (*run)(bytes);
    std::vector<std::vector<std::uint8_t>> (*seeds)();
    std::string (*dictionary)();
};

inline std::vector<target> const& targets()
{
    static const std::vector<target> all
    {
        {"quantizer", quantizer, quantizer_seeds, quantizer_dictionary},
            {"scope_map", scope_map_json, scope_map_seeds, scope_map_dictionary},
            {"npy", npy, npy_seeds, npy_dictionary}, {"idx", idx, idx_seeds, idx_dictionary},
            {"network_load", network_load, network_load_seeds, nullptr},
#if TQ_FUZZ_ONNX
            {"onnx_model", onnx_model, onnx_model_seeds, onnx_model_dictionary},
#endif
    };
    return all;
}

// The outcome of one input: empty when the library kept its promises (a result, or a
// documented error), else what went wrong.
inline std::string run_one(target const& t, bytes in)
{
    try {
        t.run(in);
    } catch (tq::error const&) {
    } catch (fuzz_failure const& f) {
        return std::string("broken promise: ") + f.what();
    } catch (std::exception const& e) {
        return std::string("undocumented exception: ") + typeid(e).name() + ": " + e.what();
    } catch (...) {
        return "undocumented exception of unknown type";
    }
    return {};
}

} // namespace tqfuzz
