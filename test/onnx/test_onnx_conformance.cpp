// ONNX's own backend node tests (Debian's libonnx-testdata): every test whose operators
// the importer lists is imported and run, its output compared with ONNX's within float32
// tolerance (rtol 1e-3, atol 1e-7, as ONNX's backend test runner), and exactly (bit for bit)
// for QuantizeLinear and DequantizeLinear; the counts per operator, and why tests were
// skipped, are printed.
#include <doctest/doctest.h>

#include <tensorquant/onnx.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#ifndef TQ_ONNX_NODE_TESTS
#error "TQ_ONNX_NODE_TESTS names the folder of ONNX's node tests"
#endif

namespace tq = tensorquant;
namespace fs = std::filesystem;

namespace {

tq::onnx::constant read_tensor(fs::path const& p)
{
    std::ifstream in(p, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ::onnx::TensorProto t;
    if (!t.ParseFromString(bytes)) throw tq::file_error(p.string() + ": not a TensorProto");
    return tq::onnx::detail::to_constant(t, p.string());
}

xt::xarray<float> to_array(tq::onnx::constant const& c)
{
    std::vector<std::size_t> shape(c.shape.begin(), c.shape.end());
    xt::xarray<float> a = xt::xarray<float>::from_shape(shape);
    std::transform(c.values.begin(), c.values.end(), a.begin(), [](double v) { return float(v); });
    return a;
}

struct tally
{
    int ran = 0, passed = 0, skipped = 0;
    std::map<std::string, int> reasons;
};

// What an unsupported_error says once the file and node are taken off.
std::string reason_of(std::string const& what)
{
    auto pos = what.rfind("): ");
    std::string r = pos == std::string::npos ? what : what.substr(pos + 3);
    if (auto p = r.find(".onnx: "); p != std::string::npos) r = r.substr(p + 7);
    return r.size() > 110 ? r.substr(0, 110) + "..." : r;
}

} // namespace

TEST_CASE("ONNX node tests of the supported operators pass")
{
    const fs::path root = TQ_ONNX_NODE_TESTS;
    REQUIRE(fs::is_directory(root));
    const auto supported = tq::onnx::supported_operators();
    std::map<std::string, tally> by_op;
    std::vector<fs::path> dirs;
    for (auto const& e : fs::directory_iterator(root))
        if (fs::exists(e.path() / "model.onnx")) dirs.push_back(e.path());
    std::sort(dirs.begin(), dirs.end());
    int failures = 0;
    for (auto const& dir : dirs) {
        ::onnx::ModelProto m;
        {
            std::ifstream in(dir / "model.onnx", std::ios::binary);
            REQUIRE(m.ParseFromIstream(&in));
        }
        // a test belongs to the operator of its (first) node; it is a candidate when the
        // importer lists every operator it uses
        if (m.graph().node_size() == 0) continue;
        const std::string op = m.graph().node(0).op_type();
        // GlobalAveragePool and GlobalMaxPool have one definition (since opset 1), the same at
        // every opset; their only node tests import opset 1, so they run as opset 7
        if (op == "GlobalAveragePool" || op == "GlobalMaxPool")
            for (auto& o : *m.mutable_opset_import())
                if ((o.domain().empty() || o.domain() == "ai.onnx") && o.version() < 7) o.set_version(7);
        bool all_listed = true;
        for (auto const& n : m.graph().node())
            all_listed = all_listed && std::find(supported.begin(), supported.end(), n.op_type()) != supported.end();
        if (!all_listed) continue;
        auto& t = by_op[op];
        const std::string name = dir.filename().string();
        std::vector<fs::path> sets;
        for (auto const& e : fs::directory_iterator(dir))
            if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0)
                sets.push_back(e.path());
        std::sort(sets.begin(), sets.end());
        for (auto const& set : sets) {
            INFO(name, " ", set.filename().string());
            // input 0 is the data; the node tests give weights, shapes and bounds as further
            // inputs, which are bound as constants here
            std::vector<std::string> inputs;
            std::set<std::string> initializers;
            for (auto const& i : m.graph().initializer()) initializers.insert(i.name());
            for (auto const& i : m.graph().input())
                if (!initializers.count(i.name())) inputs.push_back(i.name());
            tq::onnx::load_options options;
            for (std::size_t k = 1; k < inputs.size(); ++k)
                options.bind[inputs[k]] = read_tensor(set / ("input_" + std::to_string(k) + ".pb"));
            tq::onnx::model model;
            try {
                model = tq::onnx::from_proto(m, name + "/model.onnx", options);
            } catch (tq::unsupported_error const& e) {
                ++t.skipped;
                ++t.reasons[reason_of(e.what())];
                continue;
            }
            ++t.ran;
            const auto x = to_array(read_tensor(set / "input_0.pb"));
            const auto expected = to_array(read_tensor(set / "output_0.pb"));
            xt::xarray<float> y;
            try {
                y = model.run(x);
            } catch (std::exception const& e) {
                FAIL_CHECK("running the model threw: ", e.what());
                ++failures;
                continue;
            }
            const bool exact = op == "QuantizeLinear" || op == "DequantizeLinear";
            bool same = y.shape() == expected.shape();
            double worst = 0;
            for (std::size_t i = 0; same && i < y.size(); ++i) {
                const double a = y.data()[i], b = expected.data()[i];
                const double excess =
                    exact ? (std::bit_cast<std::uint32_t>(float(a)) == std::bit_cast<std::uint32_t>(float(b))
                                 ? 0.0
                                 : std::abs(a - b) + 1e-30)
                          : std::abs(a - b) - (1e-7 + 1e-3 * std::abs(b));
                worst = std::max(worst, excess);
                if (!(excess <= 0)) same = false;
            }
            CHECK_MESSAGE(same, "output differs (shape or values); worst excess over tolerance ", worst);
            if (same)
                ++t.passed;
            else
                ++failures;
        }
    }
    std::ostringstream report;
    int ran = 0, passed = 0, skipped = 0;
    report << "ONNX node tests by operator (ran / passed / skipped):\n";
    for (auto const& [op, t] : by_op) {
        report << "  " << op << ": " << t.ran << " / " << t.passed << " / " << t.skipped << "\n";
        for (auto const& [why, count] : t.reasons) report << "      skipped " << count << "x: " << why << "\n";
        ran += t.ran, passed += t.passed, skipped += t.skipped;
    }
    report << "  total: " << ran << " ran, " << passed << " passed, " << skipped << " skipped\n";
    std::cout << report.str();
    CHECK(failures == 0);
    // these converters are each exercised by at least one of ONNX's own tests
    for (auto const* op :
         {"Conv", "Gemm", "MatMul", "Relu", "LeakyRelu", "Sigmoid", "Clip", "MaxPool", "AveragePool",
          "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "Flatten", "Softmax", "Identity", "Dropout"}) {
        INFO(std::string(op));
        CHECK(by_op[op].passed > 0);
    }
}
