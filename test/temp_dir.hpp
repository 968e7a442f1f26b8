// A directory of its own for a test, removed with everything in it at the end.
#pragma once

#include <filesystem>
#include <random>
#include <string>

namespace tqtest {

struct temp_dir
{
    std::filesystem::path path;
    temp_dir()
    {
        path = std::filesystem::temp_directory_path() / ("tq_test_" + std::to_string(std::random_device{}()));
        std::filesystem::create_directories(path);
    }
    temp_dir(temp_dir const&) = delete;
    temp_dir& operator=(temp_dir const&) = delete;
    ~temp_dir() { std::filesystem::remove_all(path); }
};

} // namespace tqtest
