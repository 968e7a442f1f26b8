// Networks of reference layers with TensorFlow-style scoped names, and the three
// quantization maps of TensorQuant (SPEC section 2):
// - weights: applied to a layer's parameters before it runs;
// - intrinsic: every arithmetic step of the layer rounds (a fixed-point format);
// - extrinsic: the layer computes in float, its output is quantized.
// Activations flow as float NHWC tensors; dense layers see and give [N, 1, 1, features].
#pragma once

#include "../apply.hpp"
#include "../io/npy.hpp"
#include "layers.hpp"
#include "scope.hpp"

#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

namespace tensorquant::nn {

struct conv2d_layer
{
    tensor4<float> weights; // HWIO
    tensor1<float> bias;
    window_options options{};
    activation act = activation::none;
    double alpha = 0.2; // leaky ReLU slope
};
struct dense_layer
{
    tensor2<float> weights; // [IN, OUT]
    tensor1<float> bias;
    activation act = activation::none;
    double alpha = 0.2;
};
struct max_pool_layer
{
    pool_options options{};
};
struct avg_pool_layer
{
    pool_options options{};
};
struct global_avg_pool_layer
{
};
struct batch_norm_layer
{
    tensor1<float> gamma, beta, mean, variance;
    float epsilon = 1e-3f;
    activation act = activation::none;
    double alpha = 0.2;
};
struct activation_layer
{
    activation act = activation::relu;
    double alpha = 0.2;
};
struct add_layer
{
    activation act = activation::none;
    double alpha = 0.2;
};
struct concat_layer
{
};
struct flatten_layer
{
};
struct softmax_layer
{
};

using layer = std::variant<conv2d_layer, dense_layer, max_pool_layer, avg_pool_layer, global_avg_pool_layer,
                           batch_norm_layer, activation_layer, add_layer, concat_layer, flatten_layer, softmax_layer>;

struct network_node
{
    std::string name; // full scoped name
    layer op;
    std::vector<int> inputs; // node indices; -1 is the network input
};

// A named parameter tensor of a layer, viewed in place.
struct parameter_ref
{
    std::string name;
    float* data;
    std::vector<std::size_t> shape;
    std::size_t size() const noexcept
    {
        std::size_t n = 1;
        for (auto d : shape) n *= d;
        return n;
    }
};

// Measured on one quantized tensor when instrumentation is on. saturated counts
// reference values outside the range of a fixed-point format (-1 for other quantizers);
// sqnr_db = 10 log10(sum ref^2 / sum (ref - quantized)^2), +inf when they are equal.
// For intrinsic layers the reference is the same layer computed in float.
struct tensor_stats
{
    std::string layer;
    std::string tensor; // "weights", "bias", ..., "output (extrinsic)", "output (intrinsic)"
    std::size_t count = 0;
    long long saturated = -1;
    double sqnr_db = 0;
};

struct layer_quantization
{
    scope_entry const* intrinsic = nullptr;
    scope_entry const* extrinsic = nullptr;
    scope_entry const* weights = nullptr;
};

namespace detail {

template <class... F>
struct overloaded : F...
{
    using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

template <std::size_t N>
std::vector<std::size_t> shape_of(xt::xtensor<float, N> const& t)
{
    return std::vector<std::size_t>(t.shape().begin(), t.shape().end());
}

inline std::vector<parameter_ref> parameters_of(layer& op)
{
    auto ref = [](char const* n, auto& t) { return parameter_ref{n, t.data(), shape_of(t)}; };
    return std::visit(overloaded{[&](conv2d_layer& l) { return std::vector{ref("weights", l.weights), ref("bias", l.bias)}; },
                                 [&](dense_layer& l) { return std::vector{ref("weights", l.weights), ref("bias", l.bias)}; },
                                 [&](batch_norm_layer& l) {
                                     return std::vector{ref("gamma", l.gamma), ref("beta", l.beta), ref("mean", l.mean),
                                                        ref("variance", l.variance)};
                                 },
                                 [](auto&) { return std::vector<parameter_ref>{}; }},
                      op);
}

inline std::optional<fixed_point_rt> fixed_of(any_quantizer const& q)
{
    if (auto const* f = std::get_if<fixed_point_rt>(&q.get())) return *f;
    return std::nullopt;
}

// [lowest, max] of a fixed-point quantizer.
inline std::optional<std::pair<double, double>> fixed_range(any_quantizer const& q)
{
    auto f = fixed_of(q);
    if (!f) return std::nullopt;
    const auto fmt = f->format();
    const double step = std::ldexp(1.0, -fmt.frac);
    const double hi = (std::ldexp(1.0, fmt.is_signed ? fmt.width - 1 : fmt.width) - 1) * step;
    const double lo = fmt.is_signed ? (f->overflow() == overflow_mode::symmetric ? -hi : -hi - step) : 0.0;
    return std::pair{lo, hi};
}

inline tensor_stats measure(std::string layer, std::string tensor, float const* ref, float const* q, std::size_t n,
                            any_quantizer const& quantizer)
{
    tensor_stats s{std::move(layer), std::move(tensor), n, -1, 0};
    double signal = 0, noise = 0;
    for (std::size_t i = 0; i < n; ++i) {
        signal += double(ref[i]) * ref[i];
        noise += (double(ref[i]) - q[i]) * (double(ref[i]) - q[i]);
    }
    s.sqnr_db = noise == 0 ? std::numeric_limits<double>::infinity() : 10 * std::log10(signal / noise);
    if (auto range = fixed_range(quantizer)) {
        const auto [lo, hi] = *range;
        s.saturated = 0;
        for (std::size_t i = 0; i < n; ++i) s.saturated += (ref[i] > hi || ref[i] < lo) ? 1 : 0;
    }
    return s;
}

template <std::size_t N>
xt::xtensor<quantized_rt<float>, N> to_rt(xt::xtensor<float, N> const& x)
{
    auto y = xt::xtensor<quantized_rt<float>, N>::from_shape(x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) y.data()[i] = quantized_rt<float>(x.data()[i]);
    return y;
}
template <std::size_t N>
xt::xtensor<float, N> from_rt(xt::xtensor<quantized_rt<float>, N> const& x)
{
    auto y = xt::xtensor<float, N>::from_shape(x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) y.data()[i] = x.data()[i].value();
    return y;
}

inline tensor4<float> as4(tensor2<float>&& t)
{
    tensor4<float> y = tensor4<float>::from_shape({t.shape(0), 1, 1, t.shape(1)});
    std::copy(t.data(), t.data() + t.size(), y.data());
    return y;
}

} // namespace detail

class network
{
public:
    explicit network(std::string scope) : scope_(std::move(scope)) {}

    std::string const& scope() const noexcept { return scope_; }
    std::vector<network_node> const& nodes() const noexcept { return nodes_; }

    // Adds scope/local_name reading the given nodes (default: the previous node, or the
    // network input for the first). Returns the node's index.
    int add(std::string const& local_name, layer op, std::vector<int> inputs = {})
    {
        const std::string name = scope_ + "/" + local_name;
        if (find(name) >= 0) throw config_error("network '" + scope_ + "': layer name '" + name + "' is used twice");
        if (inputs.empty()) inputs.push_back(int(nodes_.size()) - 1);
        for (int i : inputs)
            if (i < -1 || i >= int(nodes_.size()))
                throw config_error("network '" + scope_ + "': layer '" + name + "' reads node " + std::to_string(i) +
                                   ", which does not exist yet");
        nodes_.push_back({name, std::move(op), std::move(inputs)});
        return int(nodes_.size()) - 1;
    }

    int find(std::string_view name) const noexcept
    {
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            if (nodes_[i].name == name) return int(i);
        return -1;
    }
    layer& layer_at(std::string_view name)
    {
        const int i = find(name);
        if (i < 0) throw config_error("network '" + scope_ + "' has no layer '" + std::string(name) + "'");
        return nodes_[std::size_t(i)].op;
    }

    std::vector<parameter_ref> parameters(std::string_view layer_name) { return detail::parameters_of(layer_at(layer_name)); }

    // ---- quantization -----------------------------------------------------------------

    // Assigns the three maps. A scope that matches no layer, a non-fixed-point intrinsic
    // quantizer or a layer with no intrinsic form is a config_error naming it.
    void set_quantization(scope_map intrinsic, scope_map extrinsic, scope_map weights)
    {
        auto check_keys = [&](scope_map const& m, char const* kind) {
            for (auto const& e : m.entries()) {
                bool used = false;
                for (auto const& n : nodes_) used = used || scope_matches(e.scope, n.name);
                if (!used)
                    throw config_error(std::string(kind) + " map: scope '" + e.scope + "' matches no layer of network '" +
                                       scope_ + "'");
            }
        };
        check_keys(intrinsic, "intrinsic");
        check_keys(extrinsic, "extrinsic");
        check_keys(weights, "weights");
        intrinsic_ = std::move(intrinsic), extrinsic_ = std::move(extrinsic), weights_ = std::move(weights);
        for (auto const& n : nodes_) {
            auto const* e = intrinsic_.match(n.name);
            if (!e) continue;
            auto f = detail::fixed_of(e->quantizer);
            auto fail = [&](std::string const& why) {
                throw config_error("intrinsic map: layer '" + n.name + "' gets '" + e->spec + "' from scope '" + e->scope +
                                   "', but " + why);
            };
            if (!f) fail("intrinsic emulation needs a fixed-point quantizer");
            if (f->format().width > 24) fail("float activations hold at most 24-bit words exactly");
            const bool stochastic = f->rounding() == rounding_mode::stochastic;
            std::visit(detail::overloaded{[&](softmax_layer const&) { fail("softmax has no intrinsic form (exp)"); },
                                          [&](avg_pool_layer const&) { if (stochastic) fail(no_stochastic); },
                                          [&](global_avg_pool_layer const&) { if (stochastic) fail(no_stochastic); },
                                          [&](batch_norm_layer const&) { if (stochastic) fail(no_stochastic); },
                                          [&](auto const& l) {
                                              if constexpr (requires { l.act; })
                                                  if (stochastic && l.act == activation::leaky_relu) fail(no_stochastic);
                                          }},
                       n.op);
        }
    }

    layer_quantization quantization_of(std::string_view layer_name) const
    {
        return {intrinsic_.match(layer_name), extrinsic_.match(layer_name), weights_.match(layer_name)};
    }

    // One line per layer: which quantizer each map gives it, and from which scope.
    std::string quantization_report() const
    {
        std::ostringstream out;
        auto show = [](scope_entry const* e) { return e ? e->spec + " (from " + e->scope + ")" : std::string("-"); };
        for (auto const& n : nodes_) {
            auto q = quantization_of(n.name);
            out << n.name << ": intrinsic " << show(q.intrinsic) << ", extrinsic " << show(q.extrinsic) << ", weights "
                << show(q.weights) << "\n";
        }
        return out.str();
    }

    // Per-tensor statistics of the next forward passes (off by default; costs nothing then).
    void set_instrumentation(bool on) noexcept { instrument_ = on; }
    std::vector<tensor_stats> const& stats() const noexcept { return stats_; }
    void clear_stats() noexcept { stats_.clear(); }

    // ---- inference --------------------------------------------------------------------

    tensor4<float> forward(tensor4<float> const& x)
    {
        if (nodes_.empty()) return x;
        std::vector<tensor4<float>> outs(nodes_.size());
        std::vector<std::size_t> last_use(nodes_.size(), 0);
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            for (int j : nodes_[i].inputs)
                if (j >= 0) last_use[std::size_t(j)] = i;
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            std::vector<tensor4<float> const*> in;
            for (int j : nodes_[i].inputs) in.push_back(j < 0 ? &x : &outs[std::size_t(j)]);
            outs[i] = run(i, in);
            for (int j : nodes_[i].inputs)
                if (j >= 0 && last_use[std::size_t(j)] == i && std::size_t(j) + 1 != nodes_.size()) outs[std::size_t(j)] = {};
        }
        return std::move(outs.back());
    }

    // Index of the largest output per sample.
    std::vector<int> classify(tensor4<float> const& x)
    {
        const auto y = forward(x);
        const std::size_t n = y.shape(0), k = y.size() / std::max<std::size_t>(n, 1);
        std::vector<int> labels(n);
        for (std::size_t r = 0; r < n; ++r)
            labels[r] = int(std::max_element(y.data() + r * k, y.data() + (r + 1) * k) - (y.data() + r * k));
        return labels;
    }

    // Node i's output for the given inputs under the layer's weight and intrinsic
    // quantizers, without the extrinsic one (quantization-aware training builds the rest
    // on its tape). The node must have an intrinsic quantizer.
    tensor4<float> intrinsic_output(std::size_t i, std::vector<tensor4<float> const*> const& in)
    {
        const auto q = quantization_of(nodes_.at(i).name);
        if (!q.intrinsic) throw config_error("layer '" + nodes_[i].name + "' has no intrinsic quantizer");
        return run_intrinsic(i, in, q, intrinsic_for(i, *q.intrinsic));
    }

    // ---- parameters as .npy files: dir/<layer name>/<parameter>.npy ------------------

    void save(std::filesystem::path const& dir)
    {
        for (auto& n : nodes_)
            for (auto const& p : detail::parameters_of(n.op)) {
                const auto file = dir / n.name / (p.name + ".npy");
                std::filesystem::create_directories(file.parent_path());
                write_npy(file, p.data, p.shape);
            }
    }

    void load(std::filesystem::path const& dir)
    {
        for (auto& n : nodes_)
            for (auto const& p : detail::parameters_of(n.op)) {
                const auto file = dir / n.name / (p.name + ".npy");
                if (!std::filesystem::exists(file))
                    throw file_error("layer '" + n.name + "': parameter '" + p.name + "' is missing: no file " + file.string());
                auto t = read_npy<float>(file);
                if (t.shape != p.shape)
                    throw shape_error("layer '" + n.name + "': " + file.string() + " holds shape " +
                                      detail::shape_string(t.shape) + " but " + p.name + " has shape " +
                                      detail::shape_string(p.shape));
                std::copy(t.values.begin(), t.values.end(), p.data);
            }
    }

private:
    static constexpr char const* no_stochastic =
        "this layer's intrinsic form divides or multiplies by constants, which the number type rounds "
        "deterministically only (use a deterministic rounding)";

    std::uint64_t stream_of(std::size_t node, int role) const noexcept { return std::uint64_t(node) * 3 + role; }

    fixed_point_rt intrinsic_for(std::size_t node, scope_entry const& e) const
    {
        const auto f = *detail::fixed_of(e.quantizer);
        const rng_key k = f.key();
        return fixed_point_rt(f.format(), f.rounding(), f.overflow(), rng_key{k.seed, k.stream + stream_of(node, 0)});
    }

    template <std::size_t N>
    void quantize_tensor(xt::xtensor<float, N>& t, scope_entry const& e, std::size_t node, int role, std::string const& what)
    {
        apply_options opt;
        opt.index_offset = stream_of(node, role) << 40;
        if (!instrument_ || !recording_) {
            quantize_inplace(e.quantizer, std::span<float>(t.data(), t.size()), opt);
            return;
        }
        const xt::xtensor<float, N> before = t;
        quantize_inplace(e.quantizer, std::span<float>(t.data(), t.size()), opt);
        stats_.push_back(detail::measure(nodes_[node].name, what, before.data(), t.data(), t.size(), e.quantizer));
    }

    template <class T>
    T weights_of(T const& t, layer_quantization const& q, std::size_t node, char const* what)
    {
        if (!q.weights || t.size() == 0) return t;
        T c = t;
        quantize_tensor(c, *q.weights, node, 1, what);
        return c;
    }

    static tensor4<float> activate_float(tensor4<float> y, activation a, double alpha)
    {
        return a == activation::none ? y : activate<float>(y, a, alpha);
    }

    // Activation of a layer's intrinsic output (already in the format): exact ones are
    // applied in float then rounded once; leaky ReLU's product goes through the number type.
    static tensor4<float> activate_intrinsic(tensor4<float> y, activation a, double alpha, fixed_point_rt const& q)
    {
        if (a == activation::none) return y;
        if (a == activation::leaky_relu) {
            number_scope scope(q);
            return detail::from_rt(activate<quantized_rt<float>>(detail::to_rt(y), a, alpha));
        }
        y = activate<float>(y, a, alpha);
        quantize_inplace(q, std::span<float>(y.data(), y.size()));
        return y;
    }

    static tensor4<float> quantized_input(tensor4<float> const& x, fixed_point_rt const& q)
    {
        tensor4<float> y = x;
        quantize_inplace(q, std::span<float>(y.data(), y.size()));
        return y;
    }

    tensor4<float> run(std::size_t i, std::vector<tensor4<float> const*> const& in)
    {
        auto const& node = nodes_[i];
        const auto q = quantization_of(node.name);
        std::optional<fixed_point_rt> qi;
        if (q.intrinsic) qi = intrinsic_for(i, *q.intrinsic);
        auto float_path = [&]() { return run_float(i, in, q); };
        tensor4<float> y = qi ? run_intrinsic(i, in, q, *qi) : float_path();
        if (qi && instrument_) {
            struct resume
            {
                bool& flag;
                ~resume() { flag = true; }
            } guard{recording_};
            recording_ = false; // the reference pass quantizes the same weights again
            const auto ref = float_path();
            stats_.push_back(detail::measure(node.name, "output (intrinsic)", ref.data(), y.data(), y.size(), q.intrinsic->quantizer));
        }
        if (q.extrinsic) quantize_tensor(y, *q.extrinsic, i, 2, "output (extrinsic)");
        return y;
    }

    tensor4<float> run_float(std::size_t i, std::vector<tensor4<float> const*> const& in, layer_quantization const& q)
    {
        tensor4<float> const& x = *in.front();
        return std::visit(
            detail::overloaded{
                [&](conv2d_layer const& l) {
                    return activate_float(conv2d(x, weights_of(l.weights, q, i, "weights"), weights_of(l.bias, q, i, "bias"), l.options),
                                          l.act, l.alpha);
                },
                [&](dense_layer const& l) {
                    return activate_float(detail::as4(dense(nn::flatten(x), weights_of(l.weights, q, i, "weights"),
                                                            weights_of(l.bias, q, i, "bias"))),
                                          l.act, l.alpha);
                },
                [&](max_pool_layer const& l) { return max_pool(x, l.options); },
                [&](avg_pool_layer const& l) { return avg_pool(x, l.options); },
                [&](global_avg_pool_layer const&) { return global_avg_pool(x); },
                [&](batch_norm_layer const& l) {
                    return activate_float(batch_norm(x, weights_of(l.gamma, q, i, "gamma"), weights_of(l.beta, q, i, "beta"),
                                                     weights_of(l.mean, q, i, "mean"), weights_of(l.variance, q, i, "variance"),
                                                     l.epsilon),
                                          l.act, l.alpha);
                },
                [&](activation_layer const& l) { return activate_float(x, l.act, l.alpha); },
                [&](add_layer const& l) { return activate_float(nn::add(x, *in.at(1)), l.act, l.alpha); },
                [&](concat_layer const&) { return concat(in); },
                [&](flatten_layer const&) { return detail::as4(nn::flatten(x)); },
                [&](softmax_layer const&) { return detail::as4(softmax(nn::flatten(x))); }},
            nodes_[i].op);
    }

    tensor4<float> run_intrinsic(std::size_t i, std::vector<tensor4<float> const*> const& in, layer_quantization const& q,
                                 fixed_point_rt const& qi)
    {
        tensor4<float> const& x = *in.front();
        auto via_number = [&](auto&& fn) {
            number_scope scope(qi);
            return detail::from_rt(fn(detail::to_rt(x)));
        };
        return std::visit(
            detail::overloaded{
                [&](conv2d_layer const& l) {
                    return activate_intrinsic(conv2d_intrinsic(x, weights_of(l.weights, q, i, "weights"),
                                                               weights_of(l.bias, q, i, "bias"), l.options, qi),
                                              l.act, l.alpha, qi);
                },
                [&](dense_layer const& l) {
                    return activate_intrinsic(detail::as4(dense_intrinsic(nn::flatten(x), weights_of(l.weights, q, i, "weights"),
                                                                          weights_of(l.bias, q, i, "bias"), qi)),
                                              l.act, l.alpha, qi);
                },
                [&](max_pool_layer const& l) { return max_pool(quantized_input(x, qi), l.options); },
                [&](avg_pool_layer const& l) { return via_number([&](auto const& v) { return avg_pool(v, l.options); }); },
                [&](global_avg_pool_layer const&) { return via_number([&](auto const& v) { return global_avg_pool(v); }); },
                [&](batch_norm_layer const& l) {
                    auto y = via_number([&](auto const& v) {
                        return batch_norm(v, detail::to_rt(weights_of(l.gamma, q, i, "gamma")),
                                          detail::to_rt(weights_of(l.beta, q, i, "beta")),
                                          detail::to_rt(weights_of(l.mean, q, i, "mean")),
                                          detail::to_rt(weights_of(l.variance, q, i, "variance")),
                                          quantized_rt<float>(l.epsilon));
                    });
                    return activate_intrinsic(std::move(y), l.act, l.alpha, qi);
                },
                [&](activation_layer const& l) { return activate_intrinsic(quantized_input(x, qi), l.act, l.alpha, qi); },
                [&](add_layer const& l) {
                    // the sum of two words of W <= 24 bits is exact in float: round once
                    auto y = nn::add(quantized_input(x, qi), quantized_input(*in.at(1), qi));
                    quantize_inplace(qi, std::span<float>(y.data(), y.size()));
                    return activate_intrinsic(std::move(y), l.act, l.alpha, qi);
                },
                [&](concat_layer const&) {
                    std::vector<tensor4<float>> parts;
                    for (auto const* p : in) parts.push_back(quantized_input(*p, qi));
                    std::vector<tensor4<float> const*> ptrs;
                    for (auto const& p : parts) ptrs.push_back(&p);
                    return concat(ptrs);
                },
                [&](flatten_layer const&) { return detail::as4(nn::flatten(quantized_input(x, qi))); },
                [&](softmax_layer const&) -> tensor4<float> {
                    throw config_error("layer '" + nodes_[i].name + "': softmax has no intrinsic form");
                }},
            nodes_[i].op);
    }

    std::string scope_;
    std::vector<network_node> nodes_;
    scope_map intrinsic_, extrinsic_, weights_;
    bool instrument_ = false;
    bool recording_ = true;
    std::vector<tensor_stats> stats_;
};

// ---------------------------------------------------------------------------------------
// Networks to start from. Parameters are drawn He-uniform from a seeded counter-based
// generator, so a seed gives the same network on every machine.

namespace detail {

struct param_init
{
    std::uint64_t state;
    double next() noexcept // uniform in [0, 1)
    {
        std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return double((z ^ (z >> 31)) >> 11) * 0x1p-53;
    }
    template <class E>
    void he_uniform(E& t, std::size_t fan_in)
    {
        const double a = std::sqrt(6.0 / double(fan_in));
        for (auto& v : t) v = float((2 * next() - 1) * a);
    }
};

inline conv2d_layer make_conv(param_init& init, std::size_t k, std::size_t in, std::size_t out, window_options o,
                              activation act)
{
    conv2d_layer l{tensor4<float>::from_shape({k, k, in / std::size_t(o.groups), out}), xt::zeros<float>({out}), o, act};
    init.he_uniform(l.weights, k * k * in / std::size_t(o.groups));
    return l;
}
inline dense_layer make_dense(param_init& init, std::size_t in, std::size_t out, activation act)
{
    dense_layer l{tensor2<float>::from_shape({in, out}), xt::zeros<float>({out}), act};
    init.he_uniform(l.weights, in);
    return l;
}
inline batch_norm_layer make_bn(std::size_t c, activation act)
{
    return {xt::ones<float>({c}), xt::zeros<float>({c}), xt::zeros<float>({c}), xt::ones<float>({c}), 1e-3f, act};
}

} // namespace detail

// LeNet-5 for 28x28x1 inputs, with ReLU and max pooling:
// conv1 5x5x6 same, pool1 2x2, conv2 5x5x16 valid, pool2 2x2, flatten, fc3 400-120,
// fc4 120-84, fc5 84-10 (logits).
inline network lenet5(std::uint64_t seed = 1)
{
    detail::param_init init{seed};
    network net("LeNet");
    window_options same;
    same.padding = padding_mode::same;
    net.add("conv1", detail::make_conv(init, 5, 1, 6, same, activation::relu));
    net.add("pool1", max_pool_layer{});
    net.add("conv2", detail::make_conv(init, 5, 6, 16, {}, activation::relu));
    net.add("pool2", max_pool_layer{});
    net.add("flatten", flatten_layer{});
    net.add("fc3", detail::make_dense(init, 400, 120, activation::relu));
    net.add("fc4", detail::make_dense(init, 120, 84, activation::relu));
    net.add("fc5", detail::make_dense(init, 84, 10, activation::none));
    return net;
}

// A small residual network for 28x28x1 inputs: a stem, two residual blocks with batch
// norm (the second downsamples with a 1x1 projection shortcut), global average pooling
// and a classifier.
inline network small_resnet(std::uint64_t seed = 1, std::size_t width = 8)
{
    detail::param_init init{seed};
    network net("ResNet");
    window_options same;
    same.padding = padding_mode::same;
    window_options down = same;
    down.stride = {2, 2};
    net.add("stem/conv", detail::make_conv(init, 3, 1, width, same, activation::none));
    const int stem = net.add("stem/bn", detail::make_bn(width, activation::relu));
    net.add("block1/conv1", detail::make_conv(init, 3, width, width, same, activation::none));
    net.add("block1/bn1", detail::make_bn(width, activation::relu));
    net.add("block1/conv2", detail::make_conv(init, 3, width, width, same, activation::none));
    const int b1 = net.add("block1/bn2", detail::make_bn(width, activation::none));
    const int out1 = net.add("block1/add", add_layer{activation::relu}, {b1, stem});
    net.add("block2/conv1", detail::make_conv(init, 3, width, 2 * width, down, activation::none));
    net.add("block2/bn1", detail::make_bn(2 * width, activation::relu));
    net.add("block2/conv2", detail::make_conv(init, 3, 2 * width, 2 * width, same, activation::none));
    const int b2 = net.add("block2/bn2", detail::make_bn(2 * width, activation::none));
    window_options proj;
    proj.stride = {2, 2};
    const int sc = net.add("block2/shortcut", detail::make_conv(init, 1, width, 2 * width, proj, activation::none), {out1});
    net.add("block2/add", add_layer{activation::relu}, {b2, sc});
    net.add("pool", global_avg_pool_layer{});
    net.add("fc", detail::make_dense(init, 2 * width, 10, activation::none));
    return net;
}

} // namespace tensorquant::nn
