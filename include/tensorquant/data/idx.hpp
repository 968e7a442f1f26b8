// IDX files (the MNIST family's format), gzip-compressed or not, read through zlib, and
// Fashion-MNIST from Debian's dataset-fashion-mnist package. Images become float NHWC
// tensors scaled to [0, 1]. Every problem is a file_error naming the file and what is
// wrong; nothing here can crash on a malformed file.
#pragma once

#include "../config.hpp"

#include "../core/error.hpp"
#include "../detail/xtensor_compat.hpp"

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
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

struct gz_closer
{
    void operator()(gzFile_s* f) const noexcept { gzclose(f); }
};

// The whole decompressed content (zlib reads plain files unchanged).
inline std::vector<unsigned char> read_gz(std::filesystem::path const& path, std::string const& missing_hint)
{
    if (!std::filesystem::exists(path)) throw file_error(path.string() + ": no such file" + missing_hint);
    std::unique_ptr<gzFile_s, gz_closer> f(gzopen(path.c_str(), "rb"));
    if (!f) throw file_error(path.string() + ": cannot open the file");
    std::vector<unsigned char> out;
    unsigned char buf[1 << 16];
    for (;;) {
        const int n = gzread(f.get(), buf, sizeof buf);
        if (n < 0) {
            int code = 0;
            const char* msg = gzerror(f.get(), &code);
            throw file_error(path.string() + ": corrupt gzip data (" + (msg ? msg : "unknown zlib error") + ")");
        }
        if (n == 0) break;
        out.insert(out.end(), buf, buf + n);
    }
    return out;
}

inline std::uint32_t big_endian(unsigned char const* p) noexcept
{
    return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3];
}

// The unsigned-byte IDX array of dims dimensions: its shape, and the offset of the data.
inline std::vector<std::size_t> idx_header(std::vector<unsigned char> const& bytes, int dims,
                                           std::filesystem::path const& path)
{
    const std::uint32_t want = 0x0800u | std::uint32_t(dims);
    if (bytes.size() < 4 || big_endian(bytes.data()) != want) {
        char got[16] = "(none)";
        if (bytes.size() >= 4) std::snprintf(got, sizeof got, "0x%08x", unsigned(big_endian(bytes.data())));
        char expect[16];
        std::snprintf(expect, sizeof expect, "0x%08x", unsigned(want));
        throw file_error(path.string() + ": bad magic number " + got + ", expected " + expect + " (IDX, unsigned bytes, " +
                         std::to_string(dims) + " dimension" + (dims > 1 ? "s" : "") + ")");
    }
    if (bytes.size() < 4 + 4 * std::size_t(dims)) throw file_error(path.string() + ": truncated IDX header");
    std::vector<std::size_t> shape;
    // the product of the non-zero dimensions must fit a signed index (tensor strides), and
    // is computed without overflow
    std::size_t nonzero = 1;
    bool empty = false;
    constexpr std::size_t limit = std::size_t(PTRDIFF_MAX);
    for (int d = 0; d < dims; ++d) {
        shape.push_back(big_endian(bytes.data() + 4 + 4 * d));
        if (shape.back() == 0) {
            empty = true;
        } else if (nonzero > limit / shape.back()) {
            std::string s;
            for (auto v : shape) s += (s.empty() ? "" : " x ") + std::to_string(v);
            throw file_error(path.string() + ": implausible IDX dimensions " + s + " (their product overflows)");
        } else {
            nonzero *= shape.back();
        }
    }
    const std::size_t count = empty ? 0 : nonzero;
    const std::size_t have = bytes.size() - 4 - 4 * std::size_t(dims);
    if (have < count)
        throw file_error(path.string() + ": truncated: the header announces " + std::to_string(count) + " bytes of data, the file has " +
                         std::to_string(have));
    if (have > count)
        throw file_error(path.string() + ": " + std::to_string(have - count) + " bytes after the data the header announces");
    return shape;
}

} // namespace detail

// An images file (IDX3) and its labels file (IDX1). classes bounds the labels.
inline labeled_images load_idx(std::filesystem::path const& images, std::filesystem::path const& labels,
                               std::string const& missing_hint = "", int classes = 256)
{
    const auto ib = detail::read_gz(images, missing_hint);
    const auto shape = detail::idx_header(ib, 3, images);
    const auto lb = detail::read_gz(labels, missing_hint);
    const auto lshape = detail::idx_header(lb, 1, labels);
    if (shape[1] == 0 || shape[2] == 0) throw file_error(images.string() + ": images of size 0");
    if (lshape[0] != shape[0])
        throw file_error(labels.string() + ": " + std::to_string(lshape[0]) + " labels for the " + std::to_string(shape[0]) +
                         " images of " + images.string());
    labeled_images out;
    out.images = xt::xtensor<float, 4>::from_shape({shape[0], shape[1], shape[2], 1});
    const unsigned char* px = ib.data() + 16;
    for (std::size_t i = 0; i < out.images.size(); ++i) out.images.data()[i] = float(px[i]) / 255.0f;
    out.labels.assign(lb.begin() + 8, lb.end());
    for (std::size_t i = 0; i < out.labels.size(); ++i)
        if (out.labels[i] >= classes)
            throw file_error(labels.string() + ": label " + std::to_string(out.labels[i]) + " of item " + std::to_string(i) +
                             " is not below " + std::to_string(classes));
    return out;
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

} // namespace tensorquant::data
