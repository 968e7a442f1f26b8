// The patch matrix of a convolution (im2col) and its adjoint (col2im), shared by the
// forward pass and the gradient.
#pragma once

#include "../../config.hpp"

#include "geometry.hpp"

#include <algorithm>
#include <cstddef>

namespace tensorquant::inline TENSORQUANT_ABI::nn::kernels {

// Copies n elements; runs of up to 8 (a 5x5 kernel on one channel copies 5) are
// unrolled, since a memmove call costs more than such a copy.
template <class V, class Out>
inline void copy_run(V const* src, std::size_t n, Out* dst)
{
    switch (n) {
    case 8:
        dst[7] = static_cast<Out>(src[7]);
        [[fallthrough]];
    case 7:
        dst[6] = static_cast<Out>(src[6]);
        [[fallthrough]];
    case 6:
        dst[5] = static_cast<Out>(src[5]);
        [[fallthrough]];
    case 5:
        dst[4] = static_cast<Out>(src[4]);
        [[fallthrough]];
    case 4:
        dst[3] = static_cast<Out>(src[3]);
        [[fallthrough]];
    case 3:
        dst[2] = static_cast<Out>(src[2]);
        [[fallthrough]];
    case 2:
        dst[1] = static_cast<Out>(src[1]);
        [[fallthrough]];
    case 1:
        dst[0] = static_cast<Out>(src[0]);
        [[fallthrough]];
    case 0:
        return;
    default:
        std::copy(src, src + n, dst);
    }
}

// Patch rows of image img, group g: row (oy, ox), column (kh, kw, ic); padding reads 0.
// With one group and no dilation, a patch row (kw, ic) is contiguous in the image.
template <class V, class Out>
void im2col(V const* x, conv_geometry const& g, std::size_t img, std::size_t group, Out* col)
{
    const std::size_t K = g.k(), run = g.kw * g.cg;
    const bool contiguous = g.groups == 1 && g.dw == 1;
    for (std::size_t oy = 0; oy < g.oh; ++oy)
        for (std::size_t ox = 0; ox < g.ow; ++ox) {
            Out* row = col + (oy * g.ow + ox) * K;
            const long ix0 = long(ox) * g.sw - g.pad_left;
            const bool inside_x = ix0 >= 0 && ix0 + long(g.kw - 1) * g.dw < long(g.w);
            for (std::size_t ky = 0; ky < g.kh; ++ky) {
                const long iy = long(oy) * g.sh + long(ky) * g.dh - g.pad_top;
                Out* dst = row + ky * run;
                if (iy < 0 || iy >= long(g.h)) {
                    std::fill(dst, dst + run, Out(0));
                    continue;
                }
                V const* line = x + (img * g.h + std::size_t(iy)) * g.w * g.c + group * g.cg;
                if (contiguous && inside_x) {
                    copy_run(line + std::size_t(ix0) * g.c, run, dst);
                    continue;
                }
                for (std::size_t kx = 0; kx < g.kw; ++kx) {
                    const long ix = ix0 + long(kx) * g.dw;
                    Out* d = dst + kx * g.cg;
                    if (ix < 0 || ix >= long(g.w))
                        std::fill(d, d + g.cg, Out(0));
                    else
                        std::copy(line + std::size_t(ix) * g.c, line + std::size_t(ix) * g.c + g.cg, d);
                }
            }
        }
}

// The adjoint of im2col over every image: adds each patch-matrix entry (rows of all
// images in turn) to the image position it was read from.
template <class T>
void col2im_add(T const* col, conv_geometry const& g, std::size_t group, T* x)
{
    const std::size_t K = g.k(), run = g.kw * g.cg;
    const bool contiguous = g.groups == 1 && g.dw == 1;
    for (std::size_t img = 0; img < g.n; ++img)
        for (std::size_t oy = 0; oy < g.oh; ++oy)
            for (std::size_t ox = 0; ox < g.ow; ++ox) {
                T const* row = col + ((img * g.oh + oy) * g.ow + ox) * K;
                const long ix0 = long(ox) * g.sw - g.pad_left;
                const bool inside_x = ix0 >= 0 && ix0 + long(g.kw - 1) * g.dw < long(g.w);
                for (std::size_t ky = 0; ky < g.kh; ++ky) {
                    const long iy = long(oy) * g.sh + long(ky) * g.dh - g.pad_top;
                    if (iy < 0 || iy >= long(g.h)) continue;
                    T* line = x + (img * g.h + std::size_t(iy)) * g.w * g.c + group * g.cg;
                    T const* src = row + ky * run;
                    if (contiguous && inside_x) {
                        T* dst = line + std::size_t(ix0) * g.c;
                        for (std::size_t i = 0; i < run; ++i) dst[i] += src[i];
                        continue;
                    }
                    for (std::size_t kx = 0; kx < g.kw; ++kx) {
                        const long ix = ix0 + long(kx) * g.dw;
                        if (ix < 0 || ix >= long(g.w)) continue;
                        T* dst = line + std::size_t(ix) * g.c;
                        for (std::size_t c = 0; c < g.cg; ++c) dst[c] += src[kx * g.cg + c];
                    }
                }
            }
}

} // namespace tensorquant::inline TENSORQUANT_ABI::nn::kernels
