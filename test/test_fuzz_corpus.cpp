// Replays every fuzz target's seeds and its regression corpus (test/fuzz/regressions/
// <target>/: the inputs that once broke a promise), so every compiler's build checks them.
#include "fuzz/targets.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#ifndef TQ_FUZZ_REGRESSIONS
#error "TQ_FUZZ_REGRESSIONS names the regression corpus folder"
#endif

namespace {
std::vector<std::uint8_t> file_bytes(std::filesystem::path const& p)
{
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
} // namespace

TEST_CASE("fuzz seeds and regressions keep every promise")
{
    const std::filesystem::path root = TQ_FUZZ_REGRESSIONS;
    REQUIRE(std::filesystem::is_directory(root));
    for (auto const& t : tqfuzz::targets()) {
        SUBCASE(t.name)
        {
            for (auto const& s : t.seeds()) CHECK(tqfuzz::run_one(t, s) == "");
            const auto dir = root / t.name;
            REQUIRE(std::filesystem::is_directory(dir));
            std::vector<std::filesystem::path> files;
            for (auto const& e : std::filesystem::directory_iterator(dir)) files.push_back(e.path());
            std::sort(files.begin(), files.end());
            CHECK(!files.empty());
            for (auto const& f : files) {
                INFO(f.string());
                CHECK(tqfuzz::run_one(t, file_bytes(f)) == "");
            }
        }
    }
}
