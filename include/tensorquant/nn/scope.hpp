// Maps from TensorFlow-style scopes ("LeNet", "LeNet/conv1") to quantizers, built in code
// or read from TensorQuant's JSON files ({"LeNet/conv1": "nearest,8,4", ...}). A scope of
// the intrinsic map may also take a datapath (datapath.hpp), in JSON an object of roles:
// {"LeNet/fc5": {"input": "nearest,8,4", "weights": "nearest,8,6", "accumulator":
// "nearest,24,10", "output": "nearest,8,4"}}.
//
// Matching rule: a key matches a layer when it equals the layer's name or is a prefix of
// it ending at a '/' ("LeNet" matches "LeNet/conv1", "LeNet/conv" does not). Of the keys
// that match, the longest (most specific) wins, whatever the order in the file.
#pragma once

#include "../config.hpp"

#include "../core/error.hpp"
#include "../parse.hpp"
#include "datapath.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

struct scope_entry
{
    std::string scope;
    std::string spec;                     // the quantizer's canonical string, or the name of a user-defined one
    any_quantizer quantizer;              // for a datapath: its output format (identity when exact)
    std::shared_ptr<datapath const> path; // null: the single format quantizer
};

namespace detail {
template <class Q>
struct is_fixed_point : std::false_type
{
};
template <int W, int F, class R, class O, bool S>
struct is_fixed_point<fixed_point<W, F, R, O, S>> : std::true_type
{
};

// A quantizer given in code, as the map's runtime type: a built-in stays itself, a
// compile-time fixed-point format with built-in policies becomes the same runtime format
// (so it can also serve as an intrinsic format), anything else is held type-erased.
template <class Q>
any_quantizer to_any_quantizer(Q q)
{
    if constexpr (std::is_same_v<Q, any_quantizer>)
        return q;
    else if constexpr (std::is_constructible_v<any_quantizer::variant_type, Q>)
        return any_quantizer(std::move(q));
    else if constexpr (is_fixed_point<Q>::value && requires {
                           Q::rounding_policy::mode;
                           Q::overflow_policy::mode;
                       })
        return fixed_point_rt(Q::format, Q::rounding_policy::mode, Q::overflow_policy::mode, q.key);
    else
        return user_quantizer(std::move(q));
}
} // namespace detail

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

    // A quantizer string, as in TensorQuant's JSON files.
    void set(std::string scope, std::string const& spec, rng_key key = {})
    {
        set(std::move(scope), parse_quantizer(spec, key));
    }
    void set(std::string scope, char const* spec, rng_key key = {}) { set(std::move(scope), std::string(spec), key); }
    // Any quantizer built in code: a built-in, a compile-time format, compose(...), a user
    // struct or lambda. The report names it by its string, or by its name() if it has one.
    template <class Q>
        requires(!std::convertible_to<Q, std::string_view> && (Quantizer<Q, float> || Quantizer<Q, double>))
    void set(std::string scope, Q q)
    {
        any_quantizer a = detail::to_any_quantizer(std::move(q));
        std::string description = a.to_string();
        set(std::move(scope), std::move(a), std::move(description));
    }
    void set(std::string scope, any_quantizer q, std::string description)
    {
        add(std::move(scope), std::move(q), std::move(description), nullptr);
    }
    // A datapath: formats per step of the multiply-accumulates (intrinsic map only).
    void set(std::string scope, datapath d)
    {
        const auto& out = d[datapath_role::output];
        any_quantizer q = out ? *out : any_quantizer(identity{});
        std::string description = d.to_string();
        add(std::move(scope), std::move(q), std::move(description), std::make_shared<datapath const>(std::move(d)));
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
        std::vector<std::string> keys, roles; // roles: of the datapath object being read
        std::string duplicate;
        try {
            // JSON allows a key twice and the parser would keep one: a map where one entry
            // silently wins is a trap, so the keys of the top object (and of each datapath
            // object in it) are collected
            j = nlohmann::json::parse(text, [&](int depth, nlohmann::json::parse_event_t event,
                                                nlohmann::json& parsed) {
                if (event != nlohmann::json::parse_event_t::key || depth > 2) return true;
                // keys at depth 2 with no scope before them: the top is not an object, which
                // is rejected below
                if (depth == 2 && keys.empty()) return true;
                auto k = parsed.get<std::string>();
                auto& seen = depth == 1 ? keys : roles;
                if (depth == 1) roles.clear();
                if (duplicate.empty() && std::find(seen.begin(), seen.end(), k) != seen.end())
                    duplicate = depth == 1 ? "scope '" + k + "'" : "role '" + k + "' of scope '" + keys.back() + "'";
                seen.push_back(std::move(k));
                return true;
            });
        } catch (nlohmann::json::exception const& e) { // parse errors, and numbers out of range (1e999)
            throw file_error(source + ": not valid JSON: " + e.what());
        }
        if (!duplicate.empty()) throw file_error(source + ": " + duplicate + " is given twice (only one would count)");
        if (!j.is_object())
            throw file_error(source + ": expected a JSON object mapping scopes to quantizer strings, got a " +
                             std::string(j.type_name()));
        scope_map m;
        for (auto const& item : j.items()) {
            // (named copies: clang 14 cannot capture structured bindings)
            std::string const& scope = item.key();
            auto const& value = item.value();
            const std::string where = source + ": scope '" + scope + "'";
            if (value.is_object()) {
                if (value.empty())
                    throw file_error(where + ": the datapath object names no role; give at least one of input, "
                                             "weights, product, accumulator, output");
                tensorquant::detail::with_error_context(where, [&] {
                    datapath d;
                    for (auto const& role : value.items()) {
                        std::string const& name = role.key();
                        if (!role.value().is_string())
                            throw file_error("the value of role '" + name + "' must be a quantizer string or \"" +
                                             std::string(datapath::exact_name) + "\", got a " +
                                             std::string(role.value().type_name()));
                        tensorquant::detail::with_error_context(
                            "role '" + name + "'", [&] { d.set(name, role.value().get<std::string>(), key); });
                    }
                    m.set(scope, std::move(d));
                });
                continue;
            }
            if (!value.is_string())
                throw file_error(source + ": the value of '" + scope + "' must be a quantizer string such as " +
                                 "\"nearest,8,4\" or a datapath object, got a " + std::string(value.type_name()));
            tensorquant::detail::with_error_context(where, [&] { m.set(scope, value.get<std::string>(), key); });
        }
        return m;
    }

    // The map as the JSON object from_json reads: each scope and its quantizer's string
    // (or its datapath's object).
    std::string to_json() const
    {
        nlohmann::ordered_json j = nlohmann::ordered_json::object();
        for (auto const& e : entries_) {
            if (!e.path) {
                j[e.scope] = e.spec;
                continue;
            }
            auto& roles = j[e.scope] = nlohmann::ordered_json::object();
            for (std::size_t r = 0; r < datapath::role_names.size(); ++r)
                roles[std::string(datapath::role_names[r])] = e.path->spec(static_cast<datapath_role>(r));
        }
        return j.dump(2) + "\n";
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
    void add(std::string scope, any_quantizer q, std::string description, std::shared_ptr<datapath const> path)
    {
        while (!scope.empty() && scope.back() == '/') scope.pop_back();
        if (scope.empty()) throw config_error("scope map: an empty scope matches nothing; name the network scope");
        for (auto const& e : entries_)
            if (e.scope == scope) throw config_error("scope map: scope '" + scope + "' is given twice");
        entries_.push_back({std::move(scope), std::move(description), std::move(q), std::move(path)});
    }

    std::vector<scope_entry> entries_;
};

} // namespace tensorquant::inline TENSORQUANT_ABI::nn
