// The pieces of a network graph: nodes (a scoped name, a layer, the nodes it reads) and
// views of their parameter tensors.
#pragma once

#include "../config.hpp"
#include "layers/list.hpp"

#include <string>
#include <variant>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

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
    bool trainable = true;
    bool decays = false;
    std::size_t size() const noexcept
    {
        std::size_t n = 1;
        for (auto d : shape) n *= d;
        return n;
    }
};

// The parameters of a layer, in its order.
inline std::vector<parameter_ref> parameters_of(layer& op)
{
    std::vector<parameter_ref> refs;
    std::visit(
        [&](auto& l) {
            for_each_parameter(l, [&](parameter_info const& info, auto& t) {
                refs.push_back({std::string(info.name), t.data(),
                                std::vector<std::size_t>(t.shape().begin(), t.shape().end()), info.trainable,
                                info.decays});
            });
        },
        op);
    return refs;
}

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
