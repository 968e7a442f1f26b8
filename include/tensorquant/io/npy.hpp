// NumPy .npy files (format versions 1, 2 and 3), so tensors move to and from PyTorch and
// NumPy. Reads little-endian float32 and float64 in C order, converting to the requested
// type; writes float32 or float64. Every problem is a file_error naming the file.
#pragma once

#include "../config.hpp"

#include "../core/error.hpp"
#include "../detail/xtensor_compat.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
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

template <class U>
U npy_load(unsigned char const* p) noexcept
{
    U u;
    std::memcpy(&u, p, sizeof u);
    return u;
}

[[noreturn]] inline void npy_fail(std::filesystem::path const& path, std::string const& what)
{
    throw file_error(path.string() + ": " + what);
}

inline std::string shape_text(std::vector<std::size_t> const& s)
{
    std::string r = "(";
    for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + (s.size() == 1 ? ",)" : ")");
}

// The header dict of a .npy file, read exactly as NumPy writes it: a Python dict literal
// with the keys 'descr' (a string), 'fortran_order' (True or False) and 'shape' (a tuple
// of non-negative integers), each once and nothing else, in any order.
struct npy_header
{
    std::string descr;
    bool fortran_order = false;
    std::vector<std::size_t> shape;
};

class npy_dict_reader
{
public:
    npy_dict_reader(std::string_view text, std::filesystem::path const& path) : t_(text), path_(path) {}

    npy_header read()
    {
        npy_header h;
        bool seen_descr = false, seen_order = false, seen_shape = false;
        expect('{');
        while (true) {
            skip_spaces();
            if (peek() == '}') break;
            const std::string key = string_literal();
            expect(':');
            auto once = [&](bool& seen) {
                if (seen) fail("the header dict gives '" + key + "' twice");
                seen = true;
            };
            if (key == "descr")
                once(seen_descr), h.descr = string_literal();
            else if (key == "fortran_order")
                once(seen_order), h.fortran_order = boolean();
            else if (key == "shape")
                once(seen_shape), h.shape = tuple();
            else
                fail("unexpected key '" + key + "' in the header dict");
            skip_spaces();
            if (peek() == ',')
                ++i_;
            else if (peek() != '}')
                fail("malformed header dict after '" + key + "'");
        }
        ++i_;
        skip_spaces();
        if (i_ != t_.size()) fail("junk after the header dict");
        if (!seen_descr || !seen_order || !seen_shape)
            fail(std::string("the header dict lacks ") + (!seen_descr   ? "'descr'"
                                                          : !seen_order ? "'fortran_order'"
                                                                        : "'shape'"));
        return h;
    }

private:
    [[noreturn]] void fail(std::string const& why) const { npy_fail(path_, why); }
    char peek() const { return i_ < t_.size() ? t_[i_] : '\0'; }
    void skip_spaces()
    {
        while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t')) ++i_;
    }
    void expect(char c)
    {
        skip_spaces();
        if (peek() != c) fail(std::string("malformed header dict: expected '") + c + "'");
        ++i_;
    }
    std::string string_literal()
    {
        skip_spaces();
        const char q = peek();
        if (q != '\'' && q != '"') fail("malformed header dict: expected a quoted string");
        const auto end = t_.find(q, i_ + 1);
        if (end == std::string_view::npos) fail("malformed header dict: unterminated string");
        std::string v(t_.substr(i_ + 1, end - i_ - 1));
        i_ = end + 1;
        return v;
    }
    bool boolean()
    {
        skip_spaces();
        if (t_.substr(i_, 4) == "True") return i_ += 4, true;
        if (t_.substr(i_, 5) == "False") return i_ += 5, false;
        fail("malformed header dict: 'fortran_order' must be True or False");
    }
    std::vector<std::size_t> tuple()
    {
        expect('(');
        std::vector<std::size_t> dims;
        while (true) {
            skip_spaces();
            if (peek() == ')') break;
            if (peek() == '-') fail("negative dimension in the shape");
            std::size_t v = 0;
            auto [p, ec] = std::from_chars(t_.data() + i_, t_.data() + t_.size(), v);
            if (ec != std::errc{} || p == t_.data() + i_) fail("malformed shape: expected a non-negative integer");
            i_ = std::size_t(p - t_.data());
            dims.push_back(v);
            skip_spaces();
            if (peek() == ',')
                ++i_;
            else if (peek() != ')')
                fail("malformed shape");
        }
        ++i_;
        return dims;
    }

    std::string_view t_;
    std::filesystem::path const& path_;
    std::size_t i_ = 0;
};

} // namespace detail

// Reads .npy content exactly as NumPy's format defines it (versions 1 to 3, little-endian
// float32 or float64, C order, the header padded to a multiple of 64 bytes and ending in
// a newline, no bytes after the data). Every size is checked against the content's before
// anything is allocated; every problem is a file_error starting with name.
template <class T>
npy_data<T> parse_npy(std::span<unsigned char const> bytes, std::string const& name)
{
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
    static_assert(std::endian::native == std::endian::little, ".npy reading assumes a little-endian machine");
    const std::filesystem::path path(name);
    const std::size_t size = bytes.size();
    auto at = [&](std::size_t i) { return std::uint32_t(bytes[i]); };
    if (size < 8 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0)
        detail::npy_fail(path, "not a .npy file (bad magic string)");
    const unsigned major = at(6);
    std::uint32_t header_len = 0;
    std::size_t preamble = 0;
    if (major == 1) {
        preamble = 10;
        if (size < preamble) detail::npy_fail(path, "truncated header");
        header_len = at(8) | (at(9) << 8);
    } else if (major == 2 || major == 3) {
        preamble = 12;
        if (size < preamble) detail::npy_fail(path, "truncated header");
        header_len = at(8) | (at(9) << 8) | (at(10) << 16) | (at(11) << 24);
    } else {
        detail::npy_fail(path, "unsupported .npy format version " + std::to_string(major));
    }
    if (header_len > size - preamble)
        detail::npy_fail(path, "truncated header: it announces " + std::to_string(header_len) + " bytes");
    if ((preamble + header_len) % 64 != 0) detail::npy_fail(path, "the header is not padded to a multiple of 64 bytes");
    std::string_view header(reinterpret_cast<char const*>(bytes.data()) + preamble, header_len);
    if (header.empty() || header.back() != '\n') detail::npy_fail(path, "the header does not end in a newline");
    header.remove_suffix(1);
    const auto h = detail::npy_dict_reader(header, path).read();

    // the element types read: floats, and integers (token ids, labels, 8-bit pixels)
    struct element
    {
        std::string_view descr;
        std::size_t width;
        double (*value)(unsigned char const*);
    };
    static constexpr std::array<element, 7> elements{
        element{"<f4", 4, [](unsigned char const* p) { return double(detail::npy_load<float>(p)); }},
        element{"<f8", 8, [](unsigned char const* p) { return detail::npy_load<double>(p); }},
        element{"<i8", 8, [](unsigned char const* p) { return double(detail::npy_load<std::int64_t>(p)); }},
        element{"<i4", 4, [](unsigned char const* p) { return double(detail::npy_load<std::int32_t>(p)); }},
        element{"|u1", 1, [](unsigned char const* p) { return double(*p); }},
        element{"|i1", 1, [](unsigned char const* p) { return double(std::int8_t(*p)); }},
        element{"|b1", 1, [](unsigned char const* p) { return *p ? 1.0 : 0.0; }},
    };
    auto const* kind =
        std::find_if(elements.begin(), elements.end(), [&](element const& e) { return e.descr == h.descr; });
    if (kind == elements.end())
        detail::npy_fail(path, "element type '" + h.descr +
                                   "' is not supported (little-endian float32 '<f4', float64 '<f8', int64 '<i8', "
                                   "int32 '<i4', uint8 '|u1', int8 '|i1' or bool '|b1')");
    if (h.fortran_order) detail::npy_fail(path, "Fortran-order arrays are not supported (save a C-contiguous array)");
    const std::size_t width = kind->width;
    // element and byte counts, overflow-checked, against what the content holds
    const std::size_t available = size - (preamble + header_len);
    std::size_t count = 1;
    const bool zero = std::find(h.shape.begin(), h.shape.end(), std::size_t(0)) != h.shape.end();
    if (!zero)
        for (auto d : h.shape) {
            if (count > std::numeric_limits<std::size_t>::max() / width / d)
                detail::npy_fail(path, "the shape " + detail::shape_text(h.shape) + " overflows the size of memory");
            count *= d;
        }
    if (zero) count = 0;
    const std::size_t data_bytes = count * width;
    if (data_bytes > available)
        detail::npy_fail(path, "truncated data: the header announces " + std::to_string(count) + " elements (" +
                                   std::to_string(data_bytes) + " bytes), the file holds " + std::to_string(available));
    if (data_bytes < available)
        detail::npy_fail(path, std::to_string(available - data_bytes) + " bytes after the data the header announces");
    npy_data<T> out;
    out.shape = h.shape;
    out.values.resize(count);
    unsigned char const* raw = bytes.data() + preamble + header_len;
    const bool integer = h.descr[1] == 'i' || h.descr[1] == 'u';
    for (std::size_t i = 0; i < count; ++i) {
        const double v = kind->value(raw + width * i);
        out.values[i] = static_cast<T>(v);
        if (integer && double(out.values[i]) != v)
            detail::npy_fail(path, "element " + std::to_string(i) + " (" + std::to_string(std::int64_t(v)) +
                                       ") is an integer the reader's float type does not hold exactly");
    }
    return out;
}

// The same from a file.
template <class T>
npy_data<T> read_npy(std::filesystem::path const& path)
{
    std::error_code ec;
    const std::uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec) detail::npy_fail(path, "cannot open the file (" + ec.message() + ")");
    if (size > std::numeric_limits<std::size_t>::max()) detail::npy_fail(path, "the file does not fit in memory");
    std::ifstream in(path, std::ios::binary);
    if (!in) detail::npy_fail(path, "cannot open the file");
    std::vector<unsigned char> bytes(static_cast<std::size_t>(size));
    if (size && !in.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(size)))
        detail::npy_fail(path, "cannot read the file");
    return parse_npy<T>(bytes, path.string());
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

} // namespace tensorquant::inline TENSORQUANT_ABI
