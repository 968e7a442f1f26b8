// xtensor and xtl customisation for the number types, so that what float code does with
// xtensor containers also works on containers of quantized numbers: xt::where and
// xt::maximum (xtl::select needs scalars), xt::amax, and printing (operator<<).
// xt::isclose and xt::allclose in xtensor 0.24 call xt::math::isnan by qualified name,
// which no user type can extend: compare xt::cast<double>(a) instead (exact for every
// format that fits double).
#pragma once

#include "../config.hpp"

#include "../detail/xtensor_compat.hpp"
#include "../number/quantized.hpp"

#include <xtl/xtype_traits.hpp>

#include <type_traits>

template <class T, class Q>
struct xtl::is_scalar<tensorquant::quantized<T, Q>> : std::true_type
{
};
template <class T>
struct xtl::is_scalar<tensorquant::quantized_rt<T>> : std::true_type
{
};
