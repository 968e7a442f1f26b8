// Parameters as .npy files, one per tensor: dir/<layer name>/<parameter>.npy.
#pragma once

#include "../config.hpp"
#include "../core/error.hpp"
#include "../io/npy.hpp"
#include "graph.hpp"

#include <filesystem>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

inline void save_parameters(std::vector<network_node>& nodes, std::filesystem::path const& dir)
{
    for (auto& n : nodes)
        for (auto const& p : parameters_of(n.op)) {
            const auto file = dir / n.name / (p.name + ".npy");
            std::filesystem::create_directories(file.parent_path());
            write_npy(file, p.data, p.shape);
        }
}

// All or nothing: every file is read and checked before any parameter changes, so a failed
// load leaves the parameters as they were.
inline void load_parameters(std::vector<network_node>& nodes, std::filesystem::path const& dir)
{
    struct staged
    {
        float* into;
        std::vector<float> values;
    };
    std::vector<staged> all;
    for (auto& n : nodes)
        for (auto const& p : parameters_of(n.op)) {
            const auto file = dir / n.name / (p.name + ".npy");
            if (!std::filesystem::exists(file))
                throw file_error("layer '" + n.name + "': parameter '" + p.name + "' is missing: no file " +
                                 file.string());
            auto t = read_npy<float>(file);
            if (t.shape != p.shape)
                throw shape_error("layer '" + n.name + "': " + file.string() + " holds shape " +
                                  kernels::shape_string(t.shape) + " but " + p.name + " has shape " +
                                  kernels::shape_string(p.shape));
            all.push_back({p.data, std::move(t.values)});
        }
    for (auto& s : all) std::copy(s.values.begin(), s.values.end(), s.into);
}

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
