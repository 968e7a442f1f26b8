// The study's results: one JSON object per evaluation, one per line (JSON Lines), appended
// as each finishes. A record's key names its point of the grid (experiment, network,
// subunit, placement, rounding, W, F and what the experiment adds), so a run that was
// interrupted skips the points already in its file, and a grid can be split into shards
// whose files, concatenated, hold the records of the whole grid.
#pragma once

#include "../config.hpp"

#include "../core/error.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::study {

inline std::string version_string()
{
    return std::to_string(TENSORQUANT_VERSION_MAJOR) + "." + std::to_string(TENSORQUANT_VERSION_MINOR) + "." +
           std::to_string(TENSORQUANT_VERSION_PATCH);
}

struct record
{
    std::string experiment; // sweep, fractions, layers, gradients, sparsity, tqt, mixed
    std::string network;
    std::string subunit;   // the scope quantized ("" for the whole network)
    std::string placement; // intrinsic, extrinsic, weights+extrinsic, gradients, ...
    std::string rounding;
    int width = 0, frac = 0; // W, F (0 when the point has none)
    std::string point;       // what else tells this point from the others of its experiment
    double accuracy = 0, relative_accuracy = 0, agreement = 0;
    std::size_t images = 0;
    double seconds = 0;
    std::uint64_t seed = 0;
    std::string version = version_string();
    nlohmann::ordered_json extra = nlohmann::ordered_json::object(); // per experiment

    // The point of the grid this record belongs to.
    std::string key() const
    {
        return experiment + "|" + network + "|" + subunit + "|" + placement + "|" + rounding + "|" +
               std::to_string(width) + "|" + std::to_string(frac) + "|" + point;
    }

    nlohmann::ordered_json to_json() const
    {
        nlohmann::ordered_json j;
        j["experiment"] = experiment;
        j["network"] = network;
        j["subunit"] = subunit;
        j["placement"] = placement;
        j["rounding"] = rounding;
        j["W"] = width;
        j["F"] = frac;
        j["point"] = point;
        j["accuracy"] = accuracy;
        j["relative_accuracy"] = relative_accuracy;
        j["agreement"] = agreement;
        j["images"] = images;
        j["seconds"] = seconds;
        j["seed"] = seed;
        j["version"] = version;
        j["extra"] = extra;
        return j;
    }

    // source and line name the place in error messages.
    static record from_json(nlohmann::ordered_json const& j, std::string const& source)
    {
        record r;
        try {
            r.experiment = j.at("experiment").get<std::string>();
            r.network = j.at("network").get<std::string>();
            r.subunit = j.at("subunit").get<std::string>();
            r.placement = j.at("placement").get<std::string>();
            r.rounding = j.at("rounding").get<std::string>();
            r.width = j.at("W").get<int>();
            r.frac = j.at("F").get<int>();
            r.point = j.at("point").get<std::string>();
            r.accuracy = j.at("accuracy").get<double>();
            r.relative_accuracy = j.at("relative_accuracy").get<double>();
            r.agreement = j.at("agreement").get<double>();
            r.images = j.at("images").get<std::size_t>();
            r.seconds = j.at("seconds").get<double>();
            r.seed = j.at("seed").get<std::uint64_t>();
            r.version = j.at("version").get<std::string>();
            if (j.contains("extra")) r.extra = j.at("extra");
        } catch (nlohmann::json::exception const& e) {
            throw file_error(source + ": not a study record: " + e.what());
        }
        return r;
    }
};

// Every record of a JSON Lines file (none if it does not exist). A line that is not a
// record is a file_error naming the file and line, except a last line without its
// newline: that is what a run killed while writing leaves, and it is dropped.
inline std::vector<record> read_records(std::filesystem::path const& path)
{
    std::vector<record> out;
    std::ifstream in(path, std::ios::binary);
    if (!in) return out;
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::size_t pos = 0, line = 0;
    while (pos < text.size()) {
        ++line;
        const std::size_t end = text.find('\n', pos);
        if (end == std::string::npos) break; // an unfinished last line
        const std::string_view row(text.data() + pos, end - pos);
        pos = end + 1;
        if (row.find_first_not_of(" \t\r") == std::string_view::npos) continue;
        const std::string where = path.string() + ":" + std::to_string(line);
        nlohmann::ordered_json j;
        try {
            j = nlohmann::ordered_json::parse(row);
        } catch (nlohmann::json::exception const& e) {
            throw file_error(where + ": not valid JSON: " + e.what());
        }
        out.push_back(record::from_json(j, where));
    }
    return out;
}

// Which part of a grid a run does: points whose index i (in the grid's fixed order)
// has i % count == index - 1.
struct shard
{
    std::size_t index = 1, count = 1;
    bool owns(std::size_t point) const noexcept { return point % count == index - 1; }

    // "k/N" with 1 <= k <= N.
    static shard parse(std::string const& text)
    {
        const auto slash = text.find('/');
        shard s;
        try {
            if (slash == std::string::npos) throw std::invalid_argument("no slash");
            std::size_t used = 0;
            s.index = std::stoul(text.substr(0, slash), &used);
            if (used != slash) throw std::invalid_argument("junk");
            s.count = std::stoul(text.substr(slash + 1), &used);
            if (used != text.size() - slash - 1) throw std::invalid_argument("junk");
        } catch (std::exception const&) {
            throw config_error("shard '" + text + "': expected k/N, such as 2/8");
        }
        if (s.count == 0 || s.index == 0 || s.index > s.count)
            throw config_error("shard '" + text + "': expected 1 <= k <= N");
        return s;
    }
};

// The records of one run: those already in its file, and new ones appended (and flushed)
// one line at a time. Thread-safe.
class results
{
public:
    explicit results(std::filesystem::path path) : path_(std::move(path))
    {
        for (auto& r : read_records(path_)) {
            const auto k = r.key();
            if (!index_.count(k)) {
                index_[k] = records_.size();
                records_.push_back(std::move(r));
            }
        }
        if (!path_.parent_path().empty()) std::filesystem::create_directories(path_.parent_path());
        drop_unfinished_line();
        out_.open(path_, std::ios::app | std::ios::binary);
        if (!out_) throw file_error(path_.string() + ": cannot open for appending");
    }

    std::filesystem::path const& path() const noexcept { return path_; }
    std::vector<record> const& all() const noexcept { return records_; }

    record const* find(std::string const& key) const
    {
        std::lock_guard lock(mutex_);
        auto it = index_.find(key);
        return it == index_.end() ? nullptr : &records_[it->second];
    }

    void add(record r)
    {
        std::lock_guard lock(mutex_);
        const auto k = r.key();
        if (index_.count(k)) return;
        out_ << r.to_json().dump() << '\n';
        out_.flush();
        if (!out_) throw file_error(path_.string() + ": cannot write");
        index_[k] = records_.size();
        records_.push_back(std::move(r));
    }

private:
    // A run killed while writing leaves a line without its newline: cut it off, so that
    // the next record starts on its own line.
    void drop_unfinished_line()
    {
        std::error_code ec;
        const auto size = std::filesystem::file_size(path_, ec);
        if (ec || size == 0) return;
        std::ifstream in(path_, std::ios::binary);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (text.back() == '\n') return;
        const auto keep = text.rfind('\n');
        std::filesystem::resize_file(path_, keep == std::string::npos ? 0 : keep + 1);
    }

    std::filesystem::path path_;
    std::vector<record> records_;
    std::map<std::string, std::size_t> index_;
    std::ofstream out_;
    mutable std::mutex mutex_;
};

} // namespace tensorquant::inline TENSORQUANT_ABI::study
