// IDX files (the MNIST family's format), gzip-compressed or not, read through zlib, and
// Fashion-MNIST from Debian's dataset-fashion-mnist package. Images become float NHWC
// tensors scaled to [0, 1]. Every problem is a file_error naming the file and what is
// wrong; nothing here can crash on a malformed file, and nothing is allocated before the
// header's sizes are known to fit what the file can hold.
#pragma once

#include "../config.hpp"

#include "../core/error.hpp"
#include "../detail/xtensor_compat.hpp"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::data {

struct labeled_images
{
    xt::xtensor<float, 4> images; // [N, rows, cols, 1], values in [0, 1]
    std::vector<std::uint8_t> labels;
    std::size_t size() const noexcept { return labels.size(); }
};

namespace detail {

// The content of a file: gzip (one or more complete members, nothing after them) or, when
// it does not start with the gzip magic, the bytes themselves. Reads exactly what is asked
// and can tell whether anything follows, so a stream cut short, a corrupt member (zlib
// checks each member's CRC and length) and bytes after the data are all errors.
class byte_stream
{
public:
    byte_stream(std::span<unsigned char const> in, std::string name) : in_(in), name_(std::move(name))
    {
        gzip_ = in_.size() >= 2 && in_[0] == 0x1f && in_[1] == 0x8b;
        if (gzip_ && inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) fail("zlib cannot start inflating");
    }
    byte_stream(byte_stream const&) = delete;
    byte_stream& operator=(byte_stream const&) = delete;
    ~byte_stream()
    {
        if (gzip_) inflateEnd(&zs_);
    }

    // An upper bound of the bytes the stream can produce: deflate expands at most 1032:1.
    std::uint64_t max_size() const noexcept { return gzip_ ? std::uint64_t(in_.size()) * 1032u : in_.size(); }

    // Exactly n bytes, or a file_error saying the file is truncated.
    void read(unsigned char* out, std::size_t n, char const* what)
    {
        const std::size_t got = pull(out, n);
        if (got < n)
            fail(std::string("truncated ") + what + ": " + std::to_string(n) + " bytes expected, " +
                 std::to_string(got) + " found");
    }

    // Nothing may follow what has been read.
    void expect_end(std::string const& after)
    {
        unsigned char extra;
        if (pull(&extra, 1) != 0) fail("bytes after " + after);
    }

    [[noreturn]] void fail(std::string const& why) const { throw file_error(name_ + ": " + why); }

private:
    std::size_t pull(unsigned char* out, std::size_t n)
    {
        std::size_t produced = 0;
        while (produced < n) {
            if (!gzip_) {
                const std::size_t take = std::min(n - produced, in_.size() - pos_);
                if (take == 0) break;
                std::memcpy(out + produced, in_.data() + pos_, take);
                pos_ += take, produced += take;
                continue;
            }
            if (member_done_) {
                if (pos_ == in_.size()) break;
                if (in_.size() - pos_ < 2 || in_[pos_] != 0x1f || in_[pos_ + 1] != 0x8b)
                    fail(std::to_string(in_.size() - pos_) + " bytes of garbage after the gzip data");
                if (inflateReset(&zs_) != Z_OK) fail("zlib cannot restart inflating");
                member_done_ = false;
            }
            zs_.next_in = const_cast<Bytef*>(in_.data() + pos_);
            zs_.avail_in = uInt(std::min<std::size_t>(in_.size() - pos_, UINT_MAX));
            zs_.next_out = out + produced;
            zs_.avail_out = uInt(std::min<std::size_t>(n - produced, UINT_MAX));
            const uInt in_before = zs_.avail_in, out_before = zs_.avail_out;
            const int rc = inflate(&zs_, Z_NO_FLUSH);
            pos_ += in_before - zs_.avail_in;
            produced += out_before - zs_.avail_out;
            if (rc == Z_STREAM_END)
                member_done_ = true;
            else if (rc == Z_BUF_ERROR || (rc == Z_OK && in_before == zs_.avail_in && out_before == zs_.avail_out)) {
                if (pos_ == in_.size()) fail("the gzip stream is cut short (truncated file)");
                fail("corrupt gzip data (no progress)");
            } else if (rc != Z_OK) {
                fail(std::string("corrupt gzip data (") + (zs_.msg ? zs_.msg : "zlib error " + std::to_string(rc)) +
                     ")");
            }
        }
        return produced;
    }

    std::span<unsigned char const> in_;
    std::string name_;
    bool gzip_ = false, member_done_ = false;
    std::size_t pos_ = 0;
    z_stream zs_{};
};

inline std::vector<unsigned char> read_file_bytes(std::filesystem::path const& path, std::string const& missing_hint)
{
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw file_error(path.string() + ": no such file" + missing_hint);
    const std::uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec) throw file_error(path.string() + ": cannot read the file size (" + ec.message() + ")");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw file_error(path.string() + ": cannot open the file");
    std::vector<unsigned char> bytes(static_cast<std::size_t>(size));
    if (size && !in.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(size)))
        throw file_error(path.string() + ": cannot read the file");
    return bytes;
}

inline std::uint32_t big_endian(unsigned char const* p) noexcept
{
    return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3];
}

// The header of an unsigned-byte IDX array of dims dimensions: its shape, with the element
// count checked to fit a signed index (tensor strides) and what the stream can hold.
inline std::vector<std::size_t> idx_header(byte_stream& s, int dims, std::size_t& count)
{
    unsigned char head[4 + 4 * 3];
    s.read(head, 4, "IDX header");
    const std::uint32_t want = 0x0800u | std::uint32_t(dims), magic = big_endian(head);
    if (magic != want) {
        char got[16], expect[16];
        std::snprintf(got, sizeof got, "0x%08x", unsigned(magic));
        std::snprintf(expect, sizeof expect, "0x%08x", unsigned(want));
        s.fail(std::string("bad magic number ") + got + ", expected " + expect + " (IDX, unsigned bytes, " +
               std::to_string(dims) + " dimension" + (dims > 1 ? "s" : "") + ")");
    }
    s.read(head + 4, 4 * std::size_t(dims), "IDX header");
    std::vector<std::size_t> shape;
    std::size_t nonzero = 1;
    bool empty = false;
    constexpr std::size_t limit = std::size_t(PTRDIFF_MAX);
    for (int d = 0; d < dims; ++d) {
        shape.push_back(big_endian(head + 4 + 4 * d));
        if (shape.back() == 0) {
            empty = true;
        } else if (nonzero > limit / shape.back()) {
            std::string text;
            for (auto v : shape) text += (text.empty() ? "" : " x ") + std::to_string(v);
            s.fail("implausible IDX dimensions " + text + " (their product overflows)");
        } else {
            nonzero *= shape.back();
        }
    }
    count = empty ? 0 : nonzero;
    if (count > s.max_size())
        s.fail("truncated: the header announces " + std::to_string(count) +
               " bytes of data, more than the file can hold");
    return shape;
}

} // namespace detail

// An images file (IDX3) and its labels file (IDX1), given as their bytes (gzip or plain);
// the names are used in errors. classes bounds the labels.
inline labeled_images parse_idx(std::span<unsigned char const> images, std::string const& images_name,
                                std::span<unsigned char const> labels, std::string const& labels_name,
                                int classes = 256)
{
    detail::byte_stream is(images, images_name), ls(labels, labels_name);
    std::size_t pixels = 0, label_count = 0;
    const auto shape = detail::idx_header(is, 3, pixels);
    const auto lshape = detail::idx_header(ls, 1, label_count);
    if (shape[1] == 0 || shape[2] == 0) is.fail("images of size 0");
    if (lshape[0] != shape[0])
        ls.fail(std::to_string(lshape[0]) + " labels for the " + std::to_string(shape[0]) + " images of " +
                images_name);
    std::vector<unsigned char> px(pixels);
    is.read(px.data(), px.size(), "image data");
    is.expect_end("the " + std::to_string(pixels) + " bytes of image data the header announces");
    labeled_images out;
    out.labels.resize(label_count);
    ls.read(out.labels.data(), label_count, "label data");
    ls.expect_end("the " + std::to_string(label_count) + " labels the header announces");
    for (std::size_t i = 0; i < out.labels.size(); ++i)
        if (out.labels[i] >= classes)
            ls.fail("label " + std::to_string(out.labels[i]) + " of item " + std::to_string(i) + " is not below " +
                    std::to_string(classes));
    out.images = xt::xtensor<float, 4>::from_shape({shape[0], shape[1], shape[2], 1});
    for (std::size_t i = 0; i < px.size(); ++i) out.images.data()[i] = float(px[i]) / 255.0f;
    return out;
}

// The same from files.
inline labeled_images load_idx(std::filesystem::path const& images, std::filesystem::path const& labels,
                               std::string const& missing_hint = "", int classes = 256)
{
    const auto ib = detail::read_file_bytes(images, missing_hint);
    const auto lb = detail::read_file_bytes(labels, missing_hint);
    return parse_idx(ib, images.string(), lb, labels.string(), classes);
}

enum class split { train, test };

// 60000 training or 10000 test images of 28x28, 10 classes, from the folder that holds
// {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (Debian's dataset-fashion-mnist
// installs them in /usr/share/datasets/fashion-mnist).
inline labeled_images load_fashion_mnist(split which, std::filesystem::path const& dir)
{
    const std::string prefix = which == split::train ? "train" : "t10k";
    const auto images = dir / (prefix + "-images-idx3-ubyte.gz");
    auto d = load_idx(images, dir / (prefix + "-labels-idx1-ubyte.gz"),
                      " (Fashion-MNIST comes with Debian's package dataset-fashion-mnist: apt-get install "
                      "dataset-fashion-mnist)",
                      10);
    if (d.images.shape(1) != 28 || d.images.shape(2) != 28)
        throw file_error(images.string() + ": Fashion-MNIST images are 28x28, this file has " +
                         std::to_string(d.images.shape(1)) + "x" + std::to_string(d.images.shape(2)));
    return d;
}

} // namespace tensorquant::inline TENSORQUANT_ABI::data
