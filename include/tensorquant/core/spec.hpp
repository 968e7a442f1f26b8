// The pieces of a quantizer string ("nearest,8,4"): comma-separated fields, spaces around
// them ignored. Each quantizer parses its own fields with a spec_reader and prints itself
// with format_number, so that parse and to_string live beside the quantizer they describe.
#pragma once

#include "../config.hpp"

#include "error.hpp"

#include <charconv>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::detail {

inline std::string_view trim(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

class spec_reader
{
public:
    explicit spec_reader(std::string_view text) : text_(text)
    {
        std::string_view rest = text;
        while (true) {
            auto c = rest.find(',');
            fields_.push_back(trim(rest.substr(0, c)));
            if (c == std::string_view::npos) break;
            rest.remove_prefix(c + 1);
        }
        for (auto f : fields_)
            if (f.empty()) fail("empty field");
    }

    std::string_view text() const noexcept { return text_; }
    std::string_view kind() const noexcept { return fields_[0]; }
    std::size_t size() const noexcept { return fields_.size(); }
    std::string_view operator[](std::size_t k) const noexcept { return fields_[k]; }

    [[noreturn]] void fail(std::string const& why) const
    {
        throw parse_error("invalid quantizer \"" + std::string(text_) + "\": " + why);
    }

    int integer(std::size_t k, char const* what) const
    {
        if (k >= fields_.size()) fail(std::string("missing ") + what);
        int v = 0;
        auto f = fields_[k];
        auto [p, ec] = std::from_chars(f.data(), f.data() + f.size(), v);
        if (ec != std::errc{} || p != f.data() + f.size())
            fail(std::string(what) + " must be an integer, got \"" + std::string(f) + "\"");
        return v;
    }
    double number(std::size_t k, char const* what) const
    {
        if (k >= fields_.size()) fail(std::string("missing ") + what);
        std::string_view f = fields_[k];
        if (f.size() > 1 && f[0] == '+' && f[1] != '-') f.remove_prefix(1); // from_chars takes no '+'
        double v = 0;
        auto [p, ec] = std::from_chars(f.data(), f.data() + f.size(), v);
        if (ec != std::errc{} || p != f.data() + f.size())
            fail(std::string(what) + " must be a number, got \"" + std::string(fields_[k]) + "\"");
        return v;
    }
    void at_most(std::size_t n, std::string_view form) const
    {
        if (fields_.size() > n)
            fail("unexpected field \"" + std::string(fields_[n]) + "\"; the form is \"" + std::string(form) + "\"");
    }

    // Runs fn, turning a format_error of the quantizer's constructor into a parse_error
    // that quotes the string.
    template <class Fn>
    auto build(Fn&& fn) const
    {
        try {
            return fn();
        } catch (format_error const& e) {
            fail(e.what());
        }
    }

private:
    std::string_view text_;
    std::vector<std::string_view> fields_;
};

// The shortest decimal that reads back as the same double.
inline std::string format_number(double v)
{
    char buf[64];
    auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, ec == std::errc{} ? p : buf);
}

} // namespace tensorquant::inline TENSORQUANT_ABI::detail
