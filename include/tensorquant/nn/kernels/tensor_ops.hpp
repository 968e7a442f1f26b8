// Conversions between the tape's dynamic-rank tensors and the layers' fixed-rank ones,
// and gradient accumulation.
#pragma once

#include "../../config.hpp"

#include "../../core/error.hpp"
#include "../../detail/xtensor_compat.hpp"
#include "geometry.hpp"

#include <algorithm>
#include <array>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn::kernels {

template <class T, std::size_t N>
xt::xtensor<T, N> as_fixed(xt::xarray<T> const& a)
{
    if (a.dimension() != N)
        throw shape_error("autograd: expected a tensor of rank " + std::to_string(N) + ", got " +
                          shape_string(a.shape()));
    std::array<std::size_t, N> s;
    std::copy(a.shape().begin(), a.shape().end(), s.begin());
    xt::xtensor<T, N> t = xt::xtensor<T, N>::from_shape(s);
    std::copy(a.data(), a.data() + a.size(), t.data());
    return t;
}
template <class E>
auto as_dynamic(E const& t)
{
    using T = typename E::value_type;
    xt::xarray<T> a = xt::xarray<T>::from_shape(std::vector<std::size_t>(t.shape().begin(), t.shape().end()));
    std::copy(t.data(), t.data() + t.size(), a.data());
    return a;
}
template <class T>
void accumulate(xt::xarray<T>& into, T const* from)
{
    T* d = into.data();
    for (std::size_t i = 0; i < into.size(); ++i) d[i] += from[i];
}

} // namespace tensorquant::inline TENSORQUANT_ABI::nn::kernels
