// Maps from TensorFlow-style scopes ("LeNet", "LeNet/conv1") to quantizers, built in code
// or read from TensorQuant's JSON files ({"LeNet/conv1": "nearest,8,4", ...}).
//
// Matching rule: a key matches a layer when it equals the layer's name or is a prefix of
// it ending at a '/' ("LeNet" matches "LeNet/conv1", "LeNet/conv" does not). Of the keys
// that match, the longest (most specific) wins, whatever the order in the file.
#pragma once

#include "../core/error.hpp"
#include "../parse.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace tensorquant::nn {

struct scope_entry
{
    std::string scope;
    std::string spec; // the quantizer string, or a description for quantizers built in code
    any_quantizer quantizer;
};

inline bool scope_matches(std::string_view scope, std::string_view layer) noexcept
{
    return layer.size() >= scope.size() && layer.substr(0, scope.size()) == scope &&
           (layer.size() == scope.size() || layer[scope.size()] == '/');
}

class scope_map
{
public:
    scope_map() = default;
    // {{"LeNet", "nearest,8,4"}, {"LeNet/fc5", "nearest,16,8"}}
    scope_map(std::initializer_list<std::pair<std::string, std::string>> specs, rng_key key = {})
    {
        for (auto const& [scope, spec] : specs) set(scope, spec, key);
    }

    void set(std::string scope, std::string const& spec, rng_key key = {})
    {
        set(std::move(scope), parse_quantizer(spec, key), spec);
    }
    void set(std::string scope, any_quantizer q, std::string description)
    {
        while (!scope.empty() && scope.back() == '/') scope.pop_back();
        if (scope.empty()) throw config_error("scope map: an empty scope matches nothing; name the network scope");
        for (auto const& e : entries_)
            if (e.scope == scope) throw config_error("scope map: scope '" + scope + "' is given twice");
        entries_.push_back({std::move(scope), std::move(description), std::move(q)});
    }

    // The most specific entry for a layer, or nullptr.
    scope_entry const* match(std::string_view layer) const noexcept
    {
        scope_entry const* best = nullptr;
        for (auto const& e : entries_)
            if (scope_matches(e.scope, layer) && (!best || e.scope.size() > best->scope.size())) best = &e;
        return best;
    }

    std::vector<scope_entry> const& entries() const noexcept { return entries_; }
    bool empty() const noexcept { return entries_.empty(); }

    // source names the text in error messages (a file name).
    static scope_map from_json(std::string_view text, std::string const& source, rng_key key = {})
    {
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(text);
        } catch (nlohmann::json::parse_error const& e) {
            throw file_error(source + ": not valid JSON: " + e.what());
        }
        if (!j.is_object())
            throw file_error(source + ": expected a JSON object mapping scopes to quantizer strings, got a " +
                             std::string(j.type_name()));
        scope_map m;
        for (auto const& [scope, value] : j.items()) {
            if (!value.is_string())
                throw file_error(source + ": the value of '" + scope + "' must be a quantizer string such as " +
                                 "\"nearest,8,4\", got a " + std::string(value.type_name()));
            detail::with_error_context(source + ": scope '" + scope + "'",
                                       [&] { m.set(scope, value.get<std::string>(), key); });
        }
        return m;
    }

    static scope_map from_json_file(std::filesystem::path const& path, rng_key key = {})
    {
        std::ifstream in(path);
        if (!in) throw file_error(path.string() + ": cannot open the file");
        std::stringstream text;
        text << in.rdbuf();
        return from_json(text.str(), path.string(), key);
    }

private:
    std::vector<scope_entry> entries_;
};

} // namespace tensorquant::nn
