// The libFuzzer driver of one target, chosen by TQ_FUZZ_TARGET at compile time. A broken
// promise or an undocumented exception aborts, so libFuzzer saves the input.
#include "targets.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#ifndef TQ_FUZZ_TARGET
#error "define TQ_FUZZ_TARGET as the name of a target in targets.hpp"
#endif

namespace {
tqfuzz::target const& the_target()
{
    static tqfuzz::target const* t = [] {
        for (auto const& c : tqfuzz::targets())
            if (std::strcmp(c.name, TQ_FUZZ_TARGET) == 0) return &c;
        std::fprintf(stderr, "no fuzz target named %s\n", TQ_FUZZ_TARGET);
        std::abort();
    }();
    return *t;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    const std::string problem = tqfuzz::run_one(the_target(), {data, size});
    if (!problem.empty()) {
        std::fprintf(stderr, "tensorquant fuzz target %s: %s\n", TQ_FUZZ_TARGET, problem.c_str());
        std::abort();
    }
    return 0;
}
