// Element-wise binary operators with numpy broadcasting: Add, Sub, Mul, Div, Max, Min, Pow
// (layers on computed tensors, folded on constants), and the comparisons and logic of
// shape arithmetic (Equal, Less, Greater, LessOrEqual, GreaterOrEqual, Not, And, Or, Xor,
// Where, Mod, Floor, Ceil, Round, Sign), folded on constants. A per-channel constant added
// right after a Conv, Gemm or MatMul becomes its bias.
#pragma once

#include "../../config.hpp"

#include "folding.hpp"
#include "importer.hpp"
#include "ops_shape.hpp"

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail {

// a op b on folded elements (integer types divide toward zero, as onnxruntime does).
inline sym_value fold_arith(importer const& im, nn::binary_op op, sym_value a, sym_value b, int type)
{
    if (a.n == 0 && b.n == 0) {
        if (op == nn::binary_op::div && is_integer_type(type)) {
            if (b.v == 0) im.malformed("an integer division by zero");
            return {std::trunc(a.v / b.v), 0};
        }
        return {nn::kernels::apply_binary(a.v, b.v, op), 0};
    }
    switch (op) {
    case nn::binary_op::add:
    case nn::binary_op::sub: {
        const std::int64_t n = op == nn::binary_op::add ? a.n + b.n : a.n - b.n;
        if ((a.n == 0 && a.v != 0) || (b.n == 0 && b.v != 0) || n < 0) break;
        return {0, n};
    }
    case nn::binary_op::mul:
        if (a.n && b.n) break;
        if (a.n && b.v == std::floor(b.v) && b.v >= 0) return {0, a.n * std::int64_t(b.v)};
        if (b.n && a.v == std::floor(a.v) && a.v >= 0) return {0, b.n * std::int64_t(a.v)};
        break;
    case nn::binary_op::div:
        if (a.n && b.n == 0 && b.v >= 1 && b.v == std::floor(b.v) && a.n % std::int64_t(b.v) == 0)
            return {0, a.n / std::int64_t(b.v)};
        if (a.n && b.n && a.n % b.n == 0) return {double(a.n / b.n), 0};
        break;
    case nn::binary_op::max:
    case nn::binary_op::min: // k N >= k >= 1
        if (a.n && b.n == 0 && b.v <= 1) return op == nn::binary_op::max ? a : b;
        if (b.n && a.n == 0 && a.v <= 1) return op == nn::binary_op::max ? b : a;
        break;
    default:
        break;
    }
    batch_unfollowable(im);
}

// Whether a op b holds (0 or 1), with k N >= k for N >= 1.
inline sym_value fold_compare(importer const& im, std::string_view op, sym_value a, sym_value b)
{
    if ((a.n == 0 && std::isnan(a.v)) || (b.n == 0 && std::isnan(b.v))) return {0, 0};
    int order = 0; // -1: a < b, 1: a > b
    if (a.n == 0 && b.n == 0)
        order = a.v < b.v ? -1 : a.v > b.v ? 1 : 0;
    else if (a.n && b.n)
        order = a.n < b.n ? -1 : a.n > b.n ? 1 : 0;
    else if (a.n && b.v < double(a.n))
        order = 1;
    else if (b.n && a.v < double(b.n))
        order = -1;
    else
        batch_unfollowable(im);
    const bool r = op == "Equal"         ? order == 0
                   : op == "Less"        ? order < 0
                   : op == "Greater"     ? order > 0
                   : op == "LessOrEqual" ? order <= 0
                                         : order >= 0;
    return {r ? 1.0 : 0.0, 0};
}

// The per-channel values of a constant that broadcasts along one axis of a value of this
// rank (a bias), or none when it varies along another axis.
inline std::optional<std::vector<double>> per_channel(constant const& c, std::int64_t n, std::size_t rank,
                                                      std::size_t axis)
{
    if (c.symbolic()) return std::nullopt;
    if (c.size() == 1) return std::vector<double>(std::size_t(n), c.values[0]);
    if (c.size() != std::size_t(n) || c.shape.size() > rank) return std::nullopt;
    const std::size_t offset = rank - c.shape.size();
    for (std::size_t d = 0; d < c.shape.size(); ++d)
        if (c.shape[d] != 1 && d + offset != axis) return std::nullopt;
    return c.values;
}

// A constant added to the output of the Conv, Gemm or MatMul right before it, as its bias
// (the sum of two float32 biases rounded once, as the exported graph computes it).
inline bool fold_bias(importer& im, int value_input)
{
    auto const& x = im.input_any(value_input, "input");
    auto const& c = im.input_constant(1 - value_input, "bias");
    if (x.node < 0 || x.dequantized || x.codes || x.integer || x.zero_pads || x.flattened_chw ||
        std::size_t(x.node) + 1 != im.net().nodes().size() || im.uses().at(im.input_name(value_input)) != 1)
        return false;
    auto& op = im.net().layer_at(im.net().nodes()[std::size_t(x.node)].name);
    std::optional<std::vector<double>> values;
    nn::tensor1<float>* bias = nullptr;
    if (auto* conv = std::get_if<nn::conv2d_layer>(&op); conv && conv->act == nn::activation::none && x.rank() == 4) {
        values = per_channel(c, x.shape[1], 4, 1);
        bias = &conv->bias;
    } else if (auto* dense = std::get_if<nn::dense_layer>(&op);
               dense && dense->act == nn::activation::none && x.perm.back() == x.rank() - 1) {
        values = per_channel(c, x.shape.back(), x.rank(), x.rank() - 1);
        bias = &dense->bias;
    }
    if (!values || broadcast_dims(im, x.shape, c.shape) != x.shape) return false;
    if (bias->size() == 0) *bias = nn::tensor1<float>(std::array<std::size_t, 1>{values->size()}, 0.0f);
    for (std::size_t j = 0; j < bias->size(); ++j) (*bias)(j) = float(double((*bias)(j)) + (*values)[j]);
    im.set_output(x);
    return true;
}

// Two values in layouts the binary layer can broadcast between (each with the other's
// leading axes of size 1 added): the smaller one follows the larger, else both go plain.
inline std::pair<value_info, value_info> aligned(importer& im, value_info a, value_info b, std::size_t rank)
{
    auto fits = [&](value_info const& lead, value_info const& other) -> std::optional<std::vector<std::size_t>> {
        const auto w = with_leading_axes(lead, rank - lead.rank());
        const std::size_t extra = rank - other.rank();
        std::vector<std::size_t> perm;
        for (std::size_t i = 0; i < rank; ++i) {
            if (i < extra) {
                if (w.perm[i] != i) return std::nullopt;
            } else {
                if (w.perm[i] < extra) return std::nullopt;
                perm.push_back(w.perm[i] - extra);
            }
        }
        return perm;
    };
    const bool a_larger =
        size_of(a.shape).power > size_of(b.shape).power ||
        (size_of(a.shape).power == size_of(b.shape).power && size_of(a.shape).coef >= size_of(b.shape).coef);
    if (a_larger) {
        if (auto p = fits(a, b)) return {a, im.in_layout(b, *p)};
    } else if (auto p = fits(b, a)) {
        return {im.in_layout(a, *p), b};
    }
    return {im.in_plain_layout(a), im.in_plain_layout(b)};
}

template <nn::binary_op Op>
void convert_binary(importer& im)
{
    const int arity = im.node().input_size();
    constexpr bool variadic = Op == nn::binary_op::max || Op == nn::binary_op::min;
    if (arity < 1 || (!variadic && arity != 2)) im.malformed("has " + std::to_string(arity) + " inputs");
    if (arity == 1) {
        if (im.is_constant(0)) return im.set_output_constant(im.input_constant(0, "input"));
        return im.set_output(im.input_value(0, "input"));
    }
    if (im.all_constant()) {
        constant r = im.input_constant(0, "input");
        for (int k = 1; k < arity; ++k) {
            auto const& b = im.input_constant(k, "input");
            const int type = r.element_type;
            r = fold_binary(im, r, b, type, [&](sym_value x, sym_value y) { return fold_arith(im, Op, x, y, type); });
        }
        return im.set_output_constant(std::move(r));
    }
    if (arity > 2) im.unsupported("Max and Min of more than two computed inputs are not supported");
    const bool c0 = im.is_constant(0), c1 = im.is_constant(1);
    if (Op == nn::binary_op::add && (c0 || c1) && fold_bias(im, c0 ? 1 : 0)) return;
    nn::binary_layer l;
    l.op = Op;
    if (c0 || c1) {
        const auto x = im.input_held(c0 ? 1 : 0, "input");
        auto const& c = im.input_constant(c0 ? 0 : 1, "operand");
        if (c.symbolic()) im.unsupported("an operand that follows the batch size is a shape, not data");
        const dims shape = broadcast_dims(im, x.shape, c.shape);
        const auto wide = with_leading_axes(x, shape.size() - x.rank());
        l.constant = constant_in_layout(c, shape.size(), wide.perm);
        l.constant_first = c0;
        im.add(std::move(l), {x.node}, shape, wide.perm);
        return;
    }
    const auto a = im.input_held(0, "first input"), b = im.input_held(1, "second input");
    const dims shape = broadcast_dims(im, a.shape, b.shape);
    const auto [pa, pb] = aligned(im, a, b, shape.size());
    im.add(std::move(l), {pa.node, pb.node}, shape, with_leading_axes(pa, shape.size() - pa.rank()).perm);
}

inline void convert_add(importer& im) { convert_binary<nn::binary_op::add>(im); }
inline void convert_sub(importer& im) { convert_binary<nn::binary_op::sub>(im); }
inline void convert_mul(importer& im) { convert_binary<nn::binary_op::mul>(im); }
inline void convert_div(importer& im) { convert_binary<nn::binary_op::div>(im); }
inline void convert_max(importer& im) { convert_binary<nn::binary_op::max>(im); }
inline void convert_min(importer& im) { convert_binary<nn::binary_op::min>(im); }
inline void convert_pow(importer& im) { convert_binary<nn::binary_op::pow>(im); }

// ---- folded only --------------------------------------------------------------------------

inline void require_constants(importer& im)
{
    if (!im.all_constant())
        im.unsupported("on computed tensors this operator is not supported (only on constants and shapes, "
                       "which are folded at import)");
}

inline void convert_compare(importer& im)
{
    require_constants(im);
    const std::string op = im.node().op_type();
    im.set_output_constant(fold_binary(im, im.input_constant(0, "A"), im.input_constant(1, "B"),
                                       ::onnx::TensorProto::BOOL,
                                       [&](sym_value a, sym_value b) { return fold_compare(im, op, a, b); }));
}

inline void convert_logic(importer& im)
{
    require_constants(im);
    const std::string op = im.node().op_type();
    auto const& a = im.input_constant(0, "A");
    if (a.symbolic()) batch_unfollowable(im);
    if (op == "Not")
        return im.set_output_constant(fold_unary(a, ::onnx::TensorProto::BOOL, [](sym_value x) {
            return sym_value{x.v == 0 ? 1.0 : 0.0, 0};
        }));
    im.set_output_constant(
        fold_binary(im, a, im.input_constant(1, "B"), ::onnx::TensorProto::BOOL, [&](sym_value x, sym_value y) {
            const bool p = x.v != 0, q = y.v != 0;
            const bool r = op == "And" ? p && q : op == "Or" ? p || q : p != q;
            return sym_value{r ? 1.0 : 0.0, 0};
        }));
}

inline void convert_where(importer& im)
{
    require_constants(im);
    auto const& cond = im.input_constant(0, "condition");
    auto const& x = im.input_constant(1, "X");
    auto const& y = im.input_constant(2, "Y");
    const dims shape = broadcast_dims(im, broadcast_dims(im, cond.shape, x.shape), y.shape);
    const std::vector<std::size_t> to(shape.begin(), shape.end());
    auto spread = [&](constant const& c) { return nn::kernels::expanded(index_tensor(c), to); };
    const auto ic = spread(cond), ix = spread(x), iy = spread(y);
    constant r = make_constant(shape, x.element_type);
    for (std::size_t i = 0; i < r.size(); ++i) {
        const auto c = element_of(cond, std::size_t(ic.data()[i]));
        if (c.n) batch_unfollowable(im);
        set_element(r, i,
                    c.v != 0 ? element_of(x, std::size_t(ix.data()[i])) : element_of(y, std::size_t(iy.data()[i])));
    }
    im.set_output_constant(std::move(r));
}

inline void convert_mod(importer& im)
{
    require_constants(im);
    const bool fmod = im.attr_int("fmod", 0) != 0;
    auto const& a = im.input_constant(0, "A");
    im.set_output_constant(fold_binary(im, a, im.input_constant(1, "B"), a.element_type, [&](sym_value x, sym_value y) {
        if (x.n || y.n) batch_unfollowable(im);
        if (y.v == 0) im.malformed("a modulus of zero");
        double r = std::fmod(x.v, y.v);
        if (!fmod && r != 0 && ((r < 0) != (y.v < 0))) r += y.v; // the divisor's sign (integers)
        return sym_value{r, 0};
    }));
}

// Floor, Ceil, Round (half to even), Sign on constants.
inline void convert_rounding(importer& im)
{
    require_constants(im);
    const std::string op = im.node().op_type();
    auto const& a = im.input_constant(0, "X");
    im.set_output_constant(fold_unary(a, a.element_type, [&](sym_value x) {
        if (x.n) return op == "Sign" ? sym_value{1, 0} : x;
        const double v = op == "Floor"  ? std::floor(x.v)
                         : op == "Ceil" ? std::ceil(x.v)
                         : op == "Sign" ? double((x.v > 0) - (x.v < 0))
                                        : std::nearbyint(x.v);
        return sym_value{v, 0};
    }));
}

} // namespace tensorquant::inline TENSORQUANT_ABI::onnx::detail
