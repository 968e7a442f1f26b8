// NumPy .npy files (format versions 1, 2 and 3), so tensors move to and from PyTorch and
// NumPy. Reads little-endian float32 and float64 in C order, converting to the requested
// type; writes float32 or float64. Every problem is a file_error naming the file.
#pragma once

#include "../config.hpp"

#include "../core/error.hpp"
#include "../detail/xtensor_compat.hpp"

#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <type_traits>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI {

template <class T>
struct npy_data
{
    std::vector<std::size_t> shape;
    std::vector<T> values;
};

namespace detail {

[[noreturn]] inline void npy_fail(std::filesystem::path const& path, std::string const& what)
{
    throw file_error(path.string() + ": " + what);
}

// Value of 'key' in the header dict, up to the next ',' or '}' at nesting depth 0.
inline std::string npy_field(std::string const& header, std::string const& key, std::filesystem::path const& path)
{
    const auto at = header.find("'" + key + "'");
    if (at == std::string::npos) npy_fail(path, "the .npy header has no '" + key + "' field");
    auto pos = header.find(':', at);
    if (pos == std::string::npos) npy_fail(path, "malformed .npy header near '" + key + "'");
    int depth = 0;
    std::string v;
    for (++pos; pos < header.size(); ++pos) {
        const char ch = header[pos];
        if (ch == '(') ++depth;
        if (ch == ')') --depth;
        if (depth == 0 && (ch == ',' || ch == '}')) break;
        v += ch;
    }
    const auto b = v.find_first_not_of(" "), e = v.find_last_not_of(" ");
    return b == std::string::npos ? std::string() : v.substr(b, e - b + 1);
}

} // namespace detail

template <class T>
npy_data<T> read_npy(std::filesystem::path const& path)
{
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
    static_assert(std::endian::native == std::endian::little, ".npy reading assumes a little-endian machine");
    std::ifstream in(path, std::ios::binary);
    if (!in) detail::npy_fail(path, "cannot open the file");
    char magic[8];
    if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
        detail::npy_fail(path, "not a .npy file (bad magic string)");
    const int major = static_cast<unsigned char>(magic[6]);
    std::uint32_t header_len = 0;
    if (major == 1) {
        unsigned char b[2];
        if (!in.read(reinterpret_cast<char*>(b), 2)) detail::npy_fail(path, "truncated header");
        header_len = b[0] | (b[1] << 8);
    } else if (major == 2 || major == 3) {
        unsigned char b[4];
        if (!in.read(reinterpret_cast<char*>(b), 4)) detail::npy_fail(path, "truncated header");
        header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (std::uint32_t(b[3]) << 24);
    } else {
        detail::npy_fail(path, "unsupported .npy format version " + std::to_string(major));
    }
    if (header_len > (1u << 20)) detail::npy_fail(path, "implausible header length " + std::to_string(header_len));
    std::string header(header_len, '\0');
    if (!in.read(header.data(), header_len)) detail::npy_fail(path, "truncated header");

    const std::string descr = detail::npy_field(header, "descr", path);
    const bool is_f4 = descr == "'<f4'", is_f8 = descr == "'<f8'";
    if (!is_f4 && !is_f8)
        detail::npy_fail(path, "element type " + descr + " is not supported (little-endian float32 '<f4' or float64 '<f8')");
    if (detail::npy_field(header, "fortran_order", path) != "False")
        detail::npy_fail(path, "Fortran-order arrays are not supported (save a C-contiguous array)");
    std::string shape_text = detail::npy_field(header, "shape", path);
    if (shape_text.size() < 2 || shape_text.front() != '(' || shape_text.back() != ')')
        detail::npy_fail(path, "malformed shape " + shape_text);
    npy_data<T> out;
    std::size_t count = 1;
    std::string item;
    for (char ch : shape_text.substr(1, shape_text.size() - 2) + ",") {
        if (ch == ',') {
            const auto b = item.find_first_not_of(' ');
            if (b != std::string::npos) {
                std::size_t used = 0, v = 0;
                try {
                    v = std::stoull(item.substr(b), &used);
                } catch (std::exception const&) {
                    detail::npy_fail(path, "malformed shape " + shape_text);
                }
                if (item.find_first_not_of(' ', b + used) != std::string::npos)
                    detail::npy_fail(path, "malformed shape " + shape_text);
                out.shape.push_back(v);
                count *= v;
            }
            item.clear();
        } else {
            item += ch;
        }
    }
    const std::size_t bytes = count * (is_f4 ? 4 : 8);
    std::vector<char> raw(bytes);
    if (bytes && !in.read(raw.data(), std::streamsize(bytes)))
        detail::npy_fail(path, "truncated data: the header announces " + std::to_string(count) + " elements");
    out.values.resize(count);
    for (std::size_t i = 0; i < count; ++i) {
        if (is_f4) {
            float v;
            std::memcpy(&v, raw.data() + 4 * i, 4);
            out.values[i] = static_cast<T>(v);
        } else {
            double v;
            std::memcpy(&v, raw.data() + 8 * i, 8);
            out.values[i] = static_cast<T>(v);
        }
    }
    return out;
}

template <class T>
void write_npy(std::filesystem::path const& path, T const* data, std::vector<std::size_t> const& shape)
{
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
    std::string dims;
    std::size_t count = 1;
    for (auto d : shape) dims += std::to_string(d) + ", ", count *= d;
    if (shape.size() > 1) dims.resize(dims.size() - 2);
    std::string header = std::string("{'descr': '") + (sizeof(T) == 4 ? "<f4" : "<f8") +
                         "', 'fortran_order': False, 'shape': (" + dims + "), }";
    const std::size_t total = 10 + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header += '\n';
    std::ofstream out(path, std::ios::binary);
    if (!out) detail::npy_fail(path, "cannot create the file");
    const char preamble[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
    out.write(preamble, 8);
    const char len[2] = {char(header.size() & 0xff), char(header.size() >> 8)};
    out.write(len, 2);
    out.write(header.data(), std::streamsize(header.size()));
    out.write(reinterpret_cast<char const*>(data), std::streamsize(count * sizeof(T)));
    if (!out) detail::npy_fail(path, "write failed");
}

} // namespace tensorquant
