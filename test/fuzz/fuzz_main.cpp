// One libFuzzer binary for every target: it runs the target its name says (tq_fuzz_<target>,
// the build makes one link per target, or TQ_FUZZ_TARGET=<target>), so the targets
// compile once. Called as tq_fuzz_seeds <dir>, it writes each target's seed corpus
// (<dir>/<target>/seed-NNN) and dictionary (<dir>/<target>.dict) instead. A broken promise
// or an undocumented exception aborts, so libFuzzer saves the input.
#include "targets.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

tqfuzz::target const* chosen = nullptr;

int write_seeds(std::filesystem::path const& out)
{
    for (auto const& t : tqfuzz::targets()) {
        std::filesystem::create_directories(out / t.name);
        int k = 0;
        for (auto const& s : t.seeds()) {
            char name[32];
            std::snprintf(name, sizeof name, "seed-%03d", k++);
            std::ofstream(out / t.name / name, std::ios::binary)
                .write(reinterpret_cast<char const*>(s.data()), std::streamsize(s.size()));
        }
        if (t.dictionary) std::ofstream(out / (std::string(t.name) + ".dict")) << t.dictionary();
    }
    return 0;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv)
{
    std::string name = std::filesystem::path((*argv)[0]).filename().string();
    if (name == "tq_fuzz_seeds") {
        if (*argc != 2) {
            std::fprintf(stderr, "usage: tq_fuzz_seeds <output dir>\n");
            std::exit(2);
        }
        std::exit(write_seeds((*argv)[1]));
    }
    const std::string prefix = "tq_fuzz_";
    if (name.rfind(prefix, 0) == 0)
        name = name.substr(prefix.size());
    else if (char const* env = std::getenv("TQ_FUZZ_TARGET"))
        name = env;
    std::string known;
    for (auto const& t : tqfuzz::targets()) {
        if (name == t.name) chosen = &t;
        known += std::string(known.empty() ? "" : ", ") + t.name;
    }
    if (!chosen) {
        std::fprintf(stderr, "no fuzz target '%s'; run tq_fuzz_<target> or set TQ_FUZZ_TARGET (targets: %s)\n",
                     name.c_str(), known.c_str());
        std::exit(2);
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size)
{
    const std::string problem = tqfuzz::run_one(*chosen, {data, size});
    if (!problem.empty()) {
        std::fprintf(stderr, "tensorquant fuzz target %s: %s\n", chosen->name, problem.c_str());
        std::abort();
    }
    return 0;
}
