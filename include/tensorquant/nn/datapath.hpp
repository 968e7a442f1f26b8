// A layer's datapath: the formats of the steps of its multiply-accumulates, as hardware
// has them (hls4ml's weight_t / accum_t / result_t; int8 x int8 -> int32; FP8 x FP8 ->
// FP32). Any role may be absent, and that step is then exact. For output j of a dense or
// conv2d layer, with k running over the inputs in increasing order:
//
//   a_k = Q_input(x_k), w_k = Q_weights(w_kj), b = Q_accumulator(b_j)
//   p_k = Q_product(a_k w_k)                  (the exact product when there is no product format)
//   s_0 = 0, s_k = Q_accumulator(s_(k-1) + p_k)   (each sum exact, then rounded once)
//   y_j = Q_output(Q_accumulator(s_K + b))
//
// followed by the layer's fused activation, rounded to the output format. When the input
// and the weights are MX or BFP block formats the products are those of a block dot
// product instead (nn/kernels/block_dot.hpp): the exact sum of a block's products is one
// term, and the accumulator is FP32 unless one is named. A single format
// (TensorQuant's "nearest,8,4") is the datapath with that format in every role. In the
// intrinsic map's JSON a scope takes either a quantizer string or an object with the roles
// as keys: {"input": "nearest,8,4", "weights": "nearest,8,6", "accumulator":
// "nearest,24,10", "output": "nearest,8,4"}; a missing role or the value "exact" means
// exact. Layers without a multiply-accumulate (pooling, batch norm, add, activations)
// run intrinsic in the datapath's output format when it is fixed point; otherwise they
// run in float and their result is rounded to the output format (exact for max pooling,
// flatten, concat and ReLU, whose results are their inputs).
#pragma once

#include "../config.hpp"

#include "../core/error.hpp"
#include "../parse.hpp"

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

enum class datapath_role : std::uint8_t { input, weights, product, accumulator, output };

class datapath
{
public:
    static constexpr std::array<std::string_view, 5> role_names{"input", "weights", "product", "accumulator", "output"};
    static constexpr std::string_view exact_name = "exact";

    datapath() = default; // every step exact
    // TensorQuant's single format: every step rounds to q.
    static datapath uniform(any_quantizer const& q)
    {
        datapath d;
        for (auto& f : d.formats_) f = q;
        return d;
    }

    std::optional<any_quantizer> const& operator[](datapath_role r) const noexcept
    {
        return formats_[static_cast<std::size_t>(r)];
    }
    void set(datapath_role r, std::optional<any_quantizer> q) { formats_[static_cast<std::size_t>(r)] = std::move(q); }

    // The role named name ("input", ...), or a config_error listing the roles.
    static datapath_role role_of(std::string_view name)
    {
        for (std::size_t k = 0; k < role_names.size(); ++k)
            if (role_names[k] == name) return static_cast<datapath_role>(k);
        std::string list;
        for (auto n : role_names) (list += list.empty() ? "" : ", ") += n;
        throw config_error("datapath: unknown role '" + std::string(name) + "'; the roles are " + list);
    }

    // A role's format from its string: a quantizer string or "exact".
    void set(std::string_view role, std::string_view spec, rng_key key = {})
    {
        const datapath_role r = role_of(role);
        if (detail::trim(spec) == exact_name)
            set(r, std::nullopt);
        else {
            auto q = parse_quantizer(spec, key);
            if (is_block_format(q) && r != datapath_role::input && r != datapath_role::weights)
                throw config_error("datapath: '" + std::string(spec) + "' is a block format; only the input and " +
                                   "the weights take one (a block dot product, nn/kernels/block_dot.hpp)");
            set(r, std::move(q));
            block_keys_[static_cast<std::size_t>(r)] = key; // a block format's key, for rekeyed
        }
    }

    // A role's format as its string, "exact" when absent.
    std::string spec(datapath_role r) const
    {
        auto const& q = (*this)[r];
        return q ? q->to_string() : std::string(exact_name);
    }

    // The roles as the JSON object the scope maps read (every role, "exact" included).
    std::string to_string() const
    {
        // appended piece by piece: g++ 12 warns falsely (-Wrestrict) on "literal" + string
        std::string s = "{";
        for (std::size_t k = 0; k < role_names.size(); ++k) {
            if (k) s += ", ";
            s += '"';
            s += role_names[k];
            s += "\": \"";
            s += spec(static_cast<datapath_role>(k));
            s += '"';
        }
        s += '}';
        return s;
    }

    // The same datapath with every format's rng key replaced by f(key): a layer's own streams.
    template <class Fn>
    datapath rekeyed(Fn&& f) const
    {
        datapath d = *this;
        for (std::size_t r = 0; r < d.formats_.size(); ++r)
            if (auto& q = d.formats_[r]) {
                if (is_block_format(*q)) { // held as a user_quantizer: rebuilt from its string
                    d.block_keys_[r] = f(block_keys_[r]);
                    q = parse_quantizer(q->to_string(), d.block_keys_[r]);
                } else {
                    q = with_key(*q, f);
                }
            }
        return d;
    }

private:
    template <class Fn>
    static any_quantizer with_key(any_quantizer const& q, Fn&& f)
    {
        return std::visit(
            [&](auto const& v) -> any_quantizer {
                using V = std::decay_t<decltype(v)>;
                if constexpr (std::is_same_v<V, fixed_point_rt>)
                    return fixed_point_rt(v.format(), v.rounding(), v.overflow(), f(v.key()));
                else if constexpr (requires(V c) { c.key = rng_key{}; }) {
                    V c = v;
                    c.key = f(v.key);
                    return c;
                } else
                    return v;
            },
            q.get());
    }

    std::array<std::optional<any_quantizer>, 5> formats_;
    std::array<rng_key, 5> block_keys_{};
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
