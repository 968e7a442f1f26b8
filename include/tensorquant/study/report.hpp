// Reports from the study's records: the papers' tables as Markdown and as plain text,
// plots drawn by gnuplot (PNG through pngcairo, and SVG), the mixed-precision frontier's
// scope maps as JSON, and report.md linking them.
#pragma once

#include "../config.hpp"

#include "experiments.hpp"
#include "records.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::study {

// A table with a title, rendered as Markdown or aligned plain text.
struct table
{
    std::string title;
    std::vector<std::string> header;
    std::vector<std::vector<std::string>> rows;
    std::string note;

    std::string markdown() const
    {
        std::ostringstream o;
        o << "**" << title << "**\n\n|";
        for (auto const& h : header) o << ' ' << h << " |";
        o << "\n|";
        for (std::size_t i = 0; i < header.size(); ++i) o << (i == 0 ? " --- |" : " ---: |");
        o << '\n';
        for (auto const& r : rows) {
            o << '|';
            for (auto const& c : r) o << ' ' << c << " |";
            o << '\n';
        }
        if (!note.empty()) o << '\n' << note << '\n';
        return o.str();
    }

    std::string text() const
    {
        std::vector<std::size_t> width(header.size(), 0);
        auto plain = [](std::string s) { // Markdown emphasis off
            std::string out;
            for (char c : s)
                if (c != '*') out += c;
            return out;
        };
        for (std::size_t i = 0; i < header.size(); ++i) width[i] = plain(header[i]).size();
        for (auto const& r : rows)
            for (std::size_t i = 0; i < r.size() && i < width.size(); ++i)
                width[i] = std::max(width[i], plain(r[i]).size());
        std::ostringstream o;
        o << title << '\n';
        auto line = [&](std::vector<std::string> const& cells) {
            for (std::size_t i = 0; i < cells.size() && i < width.size(); ++i) {
                const auto c = plain(cells[i]);
                if (i == 0)
                    o << c << std::string(width[i] - c.size(), ' ');
                else
                    o << "  " << std::string(width[i] - c.size(), ' ') << c;
            }
            o << '\n';
        };
        line(header);
        for (auto const& r : rows) line(r);
        if (!note.empty()) o << plain(note) << '\n';
        return o.str();
    }
};

namespace detail {

inline std::string fmt(double v, int digits = 2)
{
    std::ostringstream o;
    o << std::fixed << std::setprecision(digits) << v;
    return o.str();
}

inline std::vector<record> select(std::vector<record> const& all, std::string const& experiment,
                                  std::string const& network)
{
    std::vector<record> out;
    for (auto const& r : all)
        if (r.experiment == experiment && r.network == network) out.push_back(r);
    return out;
}

inline std::vector<std::string> networks_of(std::vector<record> const& all)
{
    std::vector<std::string> out;
    for (auto const& r : all)
        if (std::find(out.begin(), out.end(), r.network) == out.end()) out.push_back(r.network);
    return out;
}

template <class T>
std::vector<T> sorted_unique(std::vector<T> v)
{
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
}

// The subunits of layer-search records in their order, and each one's records.
inline std::pair<std::vector<std::string>, std::map<std::string, std::vector<record>>>
group_by_subunit(std::vector<record> const& recs)
{
    std::pair<std::vector<std::string>, std::map<std::string, std::vector<record>>> out;
    for (auto const& r : recs) {
        if (!out.second.count(r.subunit)) out.first.push_back(r.subunit);
        out.second[r.subunit].push_back(r);
    }
    return out;
}

inline std::string threshold_name(double t) { return fmt(100 * t, t * 100 == std::floor(t * 100) ? 0 : 1) + "%"; }

// The paper's rows for LeNet on MNIST (docs/reference.md; ours is Fashion-MNIST).
inline std::map<int, std::string> paper_lenet_table4()
{
    return {{4, "0.40, 3"}, {8, "0.90, 4"}, {12, "1.00, 6"}, {16, "1.00, 8"}, {20, "1.00, 8"}};
}
inline std::map<std::pair<int, int>, std::string> paper_lenet_table7()
{
    return {{{2, 1}, "0.87"}, {{4, 2}, "0.97"},  {{6, 3}, "0.99"},
            {{8, 4}, "0.99"}, {{10, 5}, "1.00"}, {{12, 6}, "1.00"}};
}

} // namespace detail

struct report_options
{
    std::vector<double> thresholds{1.0, 0.99, 0.90};
};

// Every table the records allow, network by network.
inline std::vector<table> tables(std::vector<record> const& all, report_options const& o = {})
{
    using namespace detail;
    std::vector<table> out;
    for (auto const& net : networks_of(all)) {
        // 1. sweep
        if (auto recs = select(all, "sweep", net); !recs.empty()) {
            std::vector<int> ws;
            for (auto const& r : recs) ws.push_back(r.width);
            ws = sorted_unique(ws);
            table t{
                net + ": relative accuracy per rounding, F = W/2 (figures 3 and 4)", {"rounding, placement"}, {}, {}};
            for (int w : ws) t.header.push_back(std::to_string(w));
            std::vector<std::pair<std::string, std::string>> series;
            for (auto const& r : recs)
                if (std::find(series.begin(), series.end(), std::pair{r.rounding, r.placement}) == series.end())
                    series.push_back({r.rounding, r.placement});
            for (auto const& [rounding, placement] : series) {
                std::vector<std::string> row{rounding + ", " + placement};
                for (int w : ws) {
                    std::string cell = "-";
                    for (auto const& r : recs)
                        if (r.rounding == rounding && r.placement == placement && r.width == w)
                            cell = fmt(r.relative_accuracy);
                    row.push_back(cell);
                }
                t.rows.push_back(row);
            }
            t.note = "W = word size; images: " + std::to_string(recs.front().images) + ".";
            out.push_back(t);
        }
        // 2. fractions
        std::map<std::string, std::map<int, record>> best_all;
        if (auto recs = select(all, "fractions", net); !recs.empty()) {
            std::vector<std::string> placements;
            for (auto const& r : recs)
                if (std::find(placements.begin(), placements.end(), r.placement) == placements.end())
                    placements.push_back(r.placement);
            std::vector<int> ws;
            for (auto const& r : recs) ws.push_back(r.width);
            ws = sorted_unique(ws);
            table t{net + ": best (relative accuracy, F) per word size, whole network (tables 2 to 4)",
                    {"placement"},
                    {},
                    {}};
            for (int w : ws) t.header.push_back(std::to_string(w) + " bit");
            for (auto const& p : placements) {
                std::vector<record> of;
                for (auto const& r : recs)
                    if (r.placement == p) of.push_back(r);
                best_all[p] = best_per_width(of);
                std::vector<std::string> row{p};
                for (int w : ws) {
                    auto it = best_all[p].find(w);
                    row.push_back(it == best_all[p].end()
                                      ? "-"
                                      : fmt(it->second.relative_accuracy) + ", " + std::to_string(it->second.frac));
                }
                t.rows.push_back(row);
            }
            if (net == "LeNet") {
                std::vector<std::string> row{"paper, LeNet on MNIST, intrinsic (table 4)"};
                const auto paper = paper_lenet_table4();
                for (int w : ws) row.push_back(paper.count(w) ? paper.at(w) : "");
                t.rows.push_back(row);
            }
            t.note = "Entries: the largest relative accuracy over F, and that F. Images: " +
                     std::to_string(recs.front().images) + ".";
            out.push_back(t);
        }
        // 3. subunits
        if (auto recs = select(all, "layers", net); !recs.empty()) {
            const auto [units, by_unit] = group_by_subunit(recs);
            table t{net + ": smallest (W, F) per subunit reaching each relative accuracy (tables 5 and 6)",
                    {"subunit"},
                    {},
                    {}};
            for (double th : o.thresholds) t.header.push_back(threshold_name(th));
            std::vector<std::optional<bottleneck>> bn;
            for (double th : o.thresholds) bn.push_back(find_bottleneck(units, by_unit, th));
            for (auto const& u : units) {
                std::vector<std::string> row{u};
                for (std::size_t k = 0; k < o.thresholds.size(); ++k) {
                    const auto wf = smallest_reaching(by_unit.at(u), o.thresholds[k]);
                    std::string cell =
                        wf ? std::to_string(wf->first) + "," + std::to_string(wf->second) : "not reached";
                    if (bn[k] && bn[k]->subunit == u) cell = "**" + cell + "**";
                    row.push_back(cell);
                }
                t.rows.push_back(row);
            }
            std::vector<std::string> row{"bottleneck"};
            for (auto const& b : bn) row.push_back(b ? b->subunit : "-");
            t.rows.push_back(row);
            t.note = "Subunits quantized one at a time (" + recs.front().placement + ", " + recs.front().rounding +
                     "), the rest in float; bold: the bottleneck (largest W, ties: largest F). Images: " +
                     std::to_string(recs.front().images) + ".";
            out.push_back(t);
            // table 1: all at once against one subunit at a time
            if (best_all.count(recs.front().placement)) {
                auto const& whole = best_all[recs.front().placement];
                table t1{net + ": all layers at once against one subunit at a time (table 1)", {"method"}, {}, {}};
                std::vector<int> ws;
                for (auto const& [w, r] : whole)
                    for (auto const& x : recs)
                        if (x.width == w) {
                            ws.push_back(w);
                            break;
                        }
                for (int w : ws) t1.header.push_back(std::to_string(w) + " bit");
                std::vector<std::string> all_row{"all"}, single_row{"single"};
                for (int w : ws) {
                    all_row.push_back(fmt(whole.at(w).relative_accuracy) + ", " + std::to_string(whole.at(w).frac));
                    // the weakest subunit's best at this W
                    std::optional<record> worst;
                    for (auto const& u : units) {
                        std::vector<record> at;
                        for (auto const& x : by_unit.at(u))
                            if (x.width == w) at.push_back(x);
                        const auto b = best_per_width(at);
                        if (b.count(w) && (!worst || b.at(w).relative_accuracy < worst->relative_accuracy))
                            worst = b.at(w);
                    }
                    single_row.push_back(worst ? fmt(worst->relative_accuracy) + ", " + std::to_string(worst->frac)
                                               : "-");
                }
                t1.rows = {all_row, single_row};
                t1.note = "single: the lowest, over the subunits, of the best relative accuracy when only that "
                          "subunit is quantized at W, with its F.";
                out.push_back(t1);
            }
        }
        // 4. gradients
        if (auto recs = select(all, "gradients", net); !recs.empty()) {
            table t{net + ": training with quantized gradients, accuracy relative to float training (table 7)",
                    {"(W,F)"},
                    {},
                    {}};
            std::vector<std::string> row{"relative accuracy"}, acc{"accuracy"};
            std::vector<std::pair<int, int>> formats;
            double float_acc = 0;
            for (auto const& r : recs)
                if (r.point == "float") float_acc = r.accuracy;
            for (auto const& r : recs) {
                if (r.point == "float") continue;
                formats.push_back({r.width, r.frac});
                t.header.push_back(std::to_string(r.width) + "," + std::to_string(r.frac));
                row.push_back(fmt(r.relative_accuracy));
                acc.push_back(fmt(r.accuracy, 3));
            }
            t.rows = {row, acc};
            if (net == "LeNet") {
                std::vector<std::string> paper{"paper, LeNet on MNIST"};
                const auto p = paper_lenet_table7();
                for (auto const& f : formats) paper.push_back(p.count(f) ? p.at(f) : "");
                t.rows.push_back(paper);
            }
            t.note = "Float training: accuracy " + fmt(float_acc, 3) + ", " +
                     std::to_string(recs.front().extra.value("epochs", 0)) + " epochs.";
            out.push_back(t);
        }
        // 5. sparsity
        if (auto recs = select(all, "sparsity", net); !recs.empty()) {
            for (auto const& r : recs) {
                if (r.point != "training" || !r.extra.contains("epochs") || r.extra["epochs"].empty()) continue;
                auto const& last = r.extra["epochs"].back();
                table t{net + ": share of exact zeros per layer after training (sparsity, 2018)",
                        {"layer", "output", "output |x|<" + fmt(r.extra.value("small", 0.0), 4), "weights",
                         "weight gradient"},
                        {},
                        {}};
                std::map<std::string, std::map<std::string, std::pair<double, double>>> cells;
                std::vector<std::string> layers;
                for (auto const& x : last["layers"]) {
                    const auto layer = x["layer"].get<std::string>();
                    if (std::find(layers.begin(), layers.end(), layer) == layers.end()) layers.push_back(layer);
                    cells[layer][x["tensor"].get<std::string>()] = {x["zeros"].get<double>(), x["small"].get<double>()};
                }
                for (auto const& l : layers) {
                    auto cell = [&](char const* tensor, bool small) {
                        auto it = cells[l].find(tensor);
                        return it == cells[l].end() ? std::string("-")
                                                    : fmt(small ? it->second.second : it->second.first, 3);
                    };
                    t.rows.push_back({l, cell("output", false), cell("output", true), cell("weights", false),
                                      cell("weight gradient", false)});
                }
                // per epoch: all outputs together
                table e{net + ": share of exact zeros in all layer outputs, per epoch",
                        {"epoch", "outputs", "weight gradients"},
                        {},
                        {}};
                for (auto const& ep : r.extra["epochs"]) {
                    double z = 0, n = 0, gz = 0, gn = 0;
                    for (auto const& x : ep["layers"]) {
                        const double c = x["count"].get<double>();
                        if (x["tensor"] == "output") z += c * x["zeros"].get<double>(), n += c;
                        if (x["tensor"] == "weight gradient") gz += c * x["zeros"].get<double>(), gn += c;
                    }
                    e.rows.push_back(
                        {std::to_string(ep["epoch"].get<int>()), fmt(n ? z / n : 0, 3), fmt(gn ? gz / gn : 0, 3)});
                }
                t.note = "Outputs on " + std::to_string(r.images) +
                         " images at the last epoch; weight gradients over its batches.";
                out.push_back(t);
                out.push_back(e);
            }
            table q{net + ": share of exact zeros at inference with outputs and weights in fixed point (W, W/2)",
                    {"W", "outputs", "weights", "relative accuracy"},
                    {},
                    {}};
            for (auto const& r : recs) {
                if (!r.extra.contains("layers")) continue;
                double z = 0, n = 0, wz = 0, wn = 0;
                for (auto const& x : r.extra["layers"]) {
                    const double c = x["count"].get<double>();
                    if (x["tensor"] == "output") z += c * x["zeros"].get<double>(), n += c;
                    if (x["tensor"] == "weights") wz += c * x["zeros"].get<double>(), wn += c;
                }
                q.rows.push_back({r.width ? std::to_string(r.width) : "float", fmt(n ? z / n : 0, 3),
                                  fmt(wn ? wz / wn : 0, 3), fmt(r.relative_accuracy)});
            }
            if (!q.rows.empty()) out.push_back(q);
        }
        // 6. TQT
        if (auto recs = select(all, "tqt", net); !recs.empty()) {
            table t{net + ": TQT, power-of-two thresholds on weights and outputs (2019)",
                    {"bits", "stage", "epochs", "accuracy", "relative accuracy"},
                    {},
                    {}};
            for (auto const& r : recs)
                t.rows.push_back({std::to_string(r.width), r.point, std::to_string(r.extra.value("epochs", 0)),
                                  fmt(r.accuracy, 3), fmt(r.relative_accuracy, 3)});
            out.push_back(t);
            table th{net + ": learned log2 thresholds after retraining", {"layer", "tensor"}, {}, {}};
            std::map<std::pair<std::string, std::string>, std::vector<std::string>> cells;
            std::vector<std::pair<std::string, std::string>> order;
            for (auto const& r : recs) {
                if (r.point != "retrained") continue;
                th.header.push_back(std::to_string(r.width) + " bit");
                for (auto const& x : r.extra["thresholds"]) {
                    std::pair<std::string, std::string> k{x["layer"].get<std::string>(),
                                                          x["tensor"].get<std::string>()};
                    if (!cells.count(k)) order.push_back(k);
                    cells[k].push_back(fmt(x["log2_threshold"].get<double>(), 2));
                }
            }
            for (auto const& k : order) {
                std::vector<std::string> row{k.first, k.second};
                for (auto const& c : cells[k]) row.push_back(c);
                th.rows.push_back(row);
            }
            if (!th.rows.empty()) out.push_back(th);
        }
        // 7. mixed
        if (auto recs = select(all, "mixed", net); !recs.empty()) {
            table t{net + ": mixed precision, accuracy against model bits (Pareto frontier of the greedy search)",
                    {"kind", "average bits", "weight bits", "relative accuracy", "maps"},
                    {},
                    {}};
            std::vector<record> pts;
            for (auto const& r : recs)
                if (r.extra.value("kind", "") != "candidate") pts.push_back(r);
            for (auto const& r : pts) {
                bool dominated = false;
                for (auto const& s : pts)
                    dominated = dominated ||
                                (s.extra["average_bits"].get<double>() <= r.extra["average_bits"].get<double>() &&
                                 s.relative_accuracy > r.relative_accuracy) ||
                                (s.extra["average_bits"].get<double>() < r.extra["average_bits"].get<double>() &&
                                 s.relative_accuracy >= r.relative_accuracy);
                const std::string kind = r.extra.value("kind", "");
                if (dominated && kind != "uniform") continue;
                t.rows.push_back({kind == "uniform" ? "uniform W=" + std::to_string(r.width) : "greedy",
                                  fmt(r.extra["average_bits"].get<double>(), 2),
                                  fmt(r.extra["weight_bits"].get<double>(), 0), fmt(r.relative_accuracy, 3),
                                  kind == "uniform"
                                      ? ""
                                      : "mixed/" + net + "/" + fmt(r.extra["average_bits"].get<double>(), 2) + "/"});
            }
            t.note = "Greedy rows are the frontier's points (dominated steps left out); uniform rows for "
                     "comparison. Each greedy row's maps are weights.json and extrinsic.json in its folder.";
            out.push_back(t);
        }
        // 8. formats
        if (auto recs = select(all, "formats", net); !recs.empty()) {
            const auto [units, by_unit] = group_by_subunit(recs);
            table t{net + ": number formats as weight and extrinsic quantizers (or block dot products) of one "
                          "subunit at a time",
                    {"subunit"},
                    {},
                    {}};
            std::vector<std::string> labels;
            for (auto const& r : recs)
                if (std::find(labels.begin(), labels.end(), r.point) == labels.end()) labels.push_back(r.point);
            for (auto const& l : labels) t.header.push_back(l);
            for (auto const& u : units) {
                std::vector<std::string> row{u.empty() ? "whole network" : u};
                for (auto const& l : labels) {
                    record const* best = nullptr; // the family's best (ties: the first)
                    for (auto const& r : by_unit.at(u))
                        if (r.point == l && (!best || r.relative_accuracy > best->relative_accuracy)) best = &r;
                    std::string cell = best ? fmt(best->relative_accuracy, 3) : "";
                    std::size_t family = 0;
                    for (auto const& r : by_unit.at(u)) family += r.point == l;
                    if (best && family > 1) cell += " (" + best->rounding + ")";
                    row.push_back(cell);
                }
                t.rows.push_back(row);
            }
            t.note = "Relative accuracy; block formats (MX, NVFP4, BFP) in blocks along the reduction axis of the "
                     "weights and the channels of the outputs, fixed point and E2M1 per element without a scale; "
                     "where a label has several formats (fixed point with each F) the best, and which. Columns "
                     "\"... dot\": the format's block dot product instead (intrinsic: the inputs and weights of "
                     "every dense and conv2d layer in blocks along the reduction axis, exact block sums, FP32 "
                     "accumulation; nothing extrinsic).";
            out.push_back(t);
        }
    }
    return out;
}

namespace detail {

// Runs gnuplot on script; a clear error when it is missing or fails.
inline void run_gnuplot(std::filesystem::path const& script)
{
    const std::string cmd = "gnuplot '" + script.string() + "' 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) throw file_error("cannot run gnuplot (install Debian's gnuplot-nox)");
    std::string output;
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) output += buf;
    const int rc = pclose(p);
    if (rc != 0)
        throw file_error("gnuplot failed on " + script.string() + " (is Debian's gnuplot-nox installed?): " + output);
}

inline std::string terminal(bool png, std::filesystem::path const& file)
{
    return png ? "set terminal pngcairo size 900,560 font ',10'\nset output '" + file.string() + "'\n"
               : "set terminal svg size 900,560 font 'sans,10'\nset output '" + file.string() + "'\n";
}

inline std::string safe(std::string s)
{
    for (auto& c : s)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return s;
}

} // namespace detail

// Draws every plot the records allow into dir (PNG and SVG each); returns the PNG names.
inline std::vector<std::string> write_plots(std::vector<record> const& all, std::filesystem::path const& dir,
                                            report_options const& o = {})
{
    using namespace detail;
    std::filesystem::create_directories(dir / "data");
    std::vector<std::string> made;
    auto draw = [&](std::string const& name, std::string const& body) {
        for (bool png : {true, false}) {
            const auto file = dir / (name + (png ? ".png" : ".svg"));
            const auto script = dir / "data" / (name + (png ? ".png.gp" : ".svg.gp"));
            std::ofstream(script) << terminal(png, file) << body;
            run_gnuplot(script);
        }
        made.push_back(name + ".png");
    };
    for (auto const& net : networks_of(all)) {
        // relative accuracy against W per rounding; intrinsic dots, extrinsic triangles
        if (auto recs = select(all, "sweep", net); !recs.empty()) {
            std::map<std::pair<std::string, std::string>, std::vector<record>> series;
            for (auto const& r : recs) series[{r.rounding, r.placement}].push_back(r);
            std::string plot;
            std::map<std::string, int> colour;
            for (auto const& [k, rs] : series) {
                const auto data = dir / "data" / ("sweep_" + safe(net) + "_" + k.first + "_" + k.second + ".dat");
                std::ofstream f(data);
                auto sorted = rs;
                std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.width < b.width; });
                for (auto const& r : sorted) f << r.width << ' ' << r.relative_accuracy << '\n';
                if (!colour.count(k.first)) colour[k.first] = int(colour.size()) + 1;
                plot += std::string(plot.empty() ? "plot " : ", ") + "'" + data.string() +
                        "' using 1:2 with linespoints pt " + (k.second == "intrinsic" ? "7" : "9") + " ps 1.2 lc " +
                        std::to_string(colour[k.first]) + " title '" + k.first + " (" + k.second + ")'";
            }
            draw("sweep_" + safe(net), "set title '" + net +
                                           ": relative accuracy per rounding, F = W/2'\n"
                                           "set xlabel 'word size W'\nset ylabel 'relative accuracy'\n"
                                           "set yrange [0:1.05]\nset key bottom right\nset grid\n" +
                                           plot + "\n");
        }
        // required W per subunit at each threshold (bars)
        if (auto recs = select(all, "layers", net); !recs.empty()) {
            const auto [units, by_unit] = group_by_subunit(recs);
            std::vector<double> const& ths = o.thresholds;
            std::string more_columns;
            for (std::size_t k = 1; k < ths.size(); ++k)
                more_columns +=
                    ", '' using " + std::to_string(k + 2) + " title columnhead(" + std::to_string(k + 2) + ")";
            const auto data = dir / "data" / ("layers_" + safe(net) + ".dat");
            std::ofstream f(data);
            f << "subunit";
            for (double t : ths) f << " \"" << threshold_name(t) << '"';
            f << '\n';
            for (auto const& u : units) {
                std::string label = u.substr(u.find('/') == std::string::npos ? 0 : u.find('/') + 1);
                f << '"' << label << '"';
                for (double t : ths) {
                    const auto wf = smallest_reaching(by_unit.at(u), t);
                    f << ' ' << (wf ? wf->first : 0);
                }
                f << '\n';
            }
            f.close();
            draw("layers_" + safe(net), "set title '" + net +
                                            ": word size each subunit needs (0: not reached)'\n"
                                            "set style data histograms\nset style histogram clustered gap 1\n"
                                            "set style fill solid 0.8 border -1\nset ylabel 'W'\nset yrange [0:*]\n"
                                            "set xtics rotate by -30\nset key top left\nset grid ytics\n"
                                            "plot '" +
                                            data.string() + "' using 2:xtic(1) title columnhead(2)" + more_columns +
                                            "\n");
        }
        // zeros per layer output
        for (auto const& r : select(all, "sparsity", net)) {
            if (r.point != "training" || !r.extra.contains("epochs") || r.extra["epochs"].empty()) continue;
            const auto data = dir / "data" / ("sparsity_" + safe(net) + ".dat");
            std::ofstream f(data);
            f << "layer output weights\n";
            std::map<std::string, std::pair<double, double>> cells;
            std::vector<std::string> layers;
            for (auto const& x : r.extra["epochs"].back()["layers"]) {
                const auto layer = x["layer"].get<std::string>();
                if (std::find(layers.begin(), layers.end(), layer) == layers.end()) layers.push_back(layer);
                if (x["tensor"] == "output") cells[layer].first = x["zeros"].get<double>();
                if (x["tensor"] == "weights") cells[layer].second = x["zeros"].get<double>();
            }
            for (auto const& l : layers)
                f << '"' << l.substr(l.find('/') + 1) << "\" " << cells[l].first << ' ' << cells[l].second << '\n';
            f.close();
            draw("sparsity_" + safe(net), "set title '" + net +
                                              ": share of exact zeros after training'\n"
                                              "set style data histograms\nset style histogram clustered gap 1\n"
                                              "set style fill solid 0.8 border -1\nset yrange [0:1]\n"
                                              "set xtics rotate by -30\nset grid ytics\nset key top left\n"
                                              "plot '" +
                                              data.string() +
                                              "' using 2:xtic(1) title 'outputs', '' using 3 "
                                              "title 'weights'\n");
        }
        // mixed precision: accuracy against average bits
        if (auto recs = select(all, "mixed", net); !recs.empty()) {
            const auto greedy = dir / "data" / ("mixed_" + safe(net) + "_greedy.dat");
            const auto uniform = dir / "data" / ("mixed_" + safe(net) + "_uniform.dat");
            std::ofstream g(greedy), u(uniform);
            for (auto const& r : recs) {
                const auto kind = r.extra.value("kind", "");
                if (kind == "candidate") continue;
                (kind == "uniform" ? u : g)
                    << r.extra["average_bits"].get<double>() << ' ' << r.relative_accuracy << '\n';
            }
            g.close(), u.close();
            draw("mixed_" + safe(net), "set title '" + net +
                                           ": relative accuracy against average bits'\n"
                                           "set xlabel 'average bits per value'\nset ylabel 'relative accuracy'\n"
                                           "set yrange [0:1.05]\nset grid\nset key bottom right\n"
                                           "plot '" +
                                           greedy.string() +
                                           "' using 1:2 with linespoints pt 7 title "
                                           "'greedy mixed precision', '" +
                                           uniform.string() + "' using 1:2 with linespoints pt 5 title 'uniform W'\n");
        }
    }
    return made;
}

// The scope maps of every greedy frontier point: dir/mixed/<network>/<average bits>/.
inline void write_mixed_maps(std::vector<record> const& all, std::filesystem::path const& dir)
{
    for (auto const& r : all) {
        if (r.experiment != "mixed" || r.extra.value("kind", "") != "step") continue;
        const auto where = dir / "mixed" / r.network / detail::fmt(r.extra["average_bits"].get<double>(), 2);
        std::filesystem::create_directories(where);
        std::ofstream(where / "weights.json") << r.extra["weights"].dump(2) << '\n';
        std::ofstream(where / "extrinsic.json") << r.extra["extrinsic"].dump(2) << '\n';
    }
}

// report.md (tables, plots), report.txt (the tables as text), the plots and the maps.
inline void write_report(std::vector<record> const& all, std::filesystem::path const& dir, bool plots = true,
                         report_options const& o = {})
{
    std::filesystem::create_directories(dir);
    const auto ts = tables(all, o);
    std::vector<std::string> pngs;
    if (plots) pngs = write_plots(all, dir / "plots", o);
    write_mixed_maps(all, dir);
    std::ofstream md(dir / "report.md"), txt(dir / "report.txt");
    md << "# tensorquant study\n\nFrom " << all.size() << " records (tensorquant "
       << (all.empty() ? version_string() : all.front().version)
       << "). Relative accuracy is the quantized network's top-1 accuracy over the float network's on the same "
          "images.\n\n";
    for (auto const& t : ts) md << t.markdown() << '\n';
    if (!pngs.empty()) {
        md << "## Plots\n\n";
        for (auto const& p : pngs) md << "![" << p << "](plots/" << p << ")\n\n";
    }
    for (auto const& t : ts) txt << t.text() << '\n';
    if (!md || !txt) throw file_error((dir / "report.md").string() + ": cannot write");
}

} // namespace tensorquant::inline TENSORQUANT_ABI::study
