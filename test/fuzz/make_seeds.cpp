// Writes each fuzz target's seed corpus and dictionary: tq_fuzz_seeds <dir> makes
// <dir>/<target>/seed-NNN and <dir>/<target>.dict.
#include "targets.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>

int main(int argc, char** argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: tq_fuzz_seeds <output dir>\n");
        return 2;
    }
    const std::filesystem::path out = argv[1];
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
