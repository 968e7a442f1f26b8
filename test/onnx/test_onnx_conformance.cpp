// ONNX's own backend node tests (Debian's libonnx-testdata): every test whose operators
// the importer lists is imported and run, each of its outputs compared with ONNX's within
// float32 tolerance (rtol 1e-3, atol 1e-7, as ONNX's backend test runner), and exactly (bit
// for bit) for QuantizeLinear and DequantizeLinear. Input 0 is the network's input, the
// others are bound as constants; a test the importer cannot run so (an operator it only
// folds, such as Equal or Range) runs again with every input bound, which checks the
// constant folding. The counts per operator (tests of one node; graphs of several nodes,
// ONNX's expanded functions, are counted apart), and why tests were skipped, are printed.
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
#include <optional>
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
    int failures = 0, folded = 0;
    for (auto const& dir : dirs) {
        ::onnx::ModelProto m;
        {
            std::ifstream in(dir / "model.onnx", std::ios::binary);
            REQUIRE(m.ParseFromIstream(&in));
        }
        // a test of one node belongs to its operator; a candidate when the importer lists
        // every operator the graph uses
        if (m.graph().node_size() == 0) continue;
        const std::string op =
            m.graph().node_size() == 1 ? m.graph().node(0).op_type() : std::string("(graphs of several nodes)");
        // these operators have had one definition since an opset before 7 (GlobalAveragePool,
        // GlobalMaxPool and Not since 1, HardSigmoid since 6); their node tests import that
        // opset, so they run as opset 7
        if (op == "GlobalAveragePool" || op == "GlobalMaxPool" || op == "Not" || op == "HardSigmoid")
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
        std::vector<std::string> inputs;
        std::set<std::string> initializers;
        for (auto const& i : m.graph().initializer()) initializers.insert(i.name());
        for (auto const& i : m.graph().input())
            if (!initializers.count(i.name())) inputs.push_back(i.name());
        for (auto const& set : sets)
            for (int out = 0; out < m.graph().output_size(); ++out) {
                INFO(name, " ", set.filename().string(), " output ", out);
                // the graph with this one output (the importer's networks have one)
                ::onnx::ModelProto one = m;
                one.mutable_graph()->clear_output();
                *one.mutable_graph()->add_output() = m.graph().output(out);
                tq::onnx::model model;
                std::optional<xt::xarray<float>> x;
                xt::xarray<float> expected;
                std::vector<tq::onnx::constant> given;
                bool loaded = false;
                std::string why;
                try { // the test's own tensors (a type the test reader does not take: skipped)
                    const auto want = read_tensor(set / ("output_" + std::to_string(out) + ".pb"));
                    if (m.graph().output(out).type().tensor_type().elem_type() != want.element_type)
                        throw tq::unsupported_error("the data of the output is of another type than the output");
                    expected = to_array(want);
                    for (std::size_t k = 0; k < inputs.size(); ++k) {
                        given.push_back(read_tensor(set / ("input_" + std::to_string(k) + ".pb")));
                        for (auto const& i : m.graph().input()) // bfloat16 data given as its uint16 bits
                            if (i.name() == inputs[k] &&
                                i.type().tensor_type().elem_type() != given.back().element_type)
                                throw tq::unsupported_error("the data of input '" + inputs[k] +
                                                            "' is of another type than the input");
                    }
                } catch (tq::error const& e) {
                    ++t.skipped;
                    ++t.reasons["its data: " + reason_of(e.what())];
                    continue;
                }
                for (std::size_t bound_from : {std::size_t(1), std::size_t(0)}) {
                    tq::onnx::load_options options;
                    for (std::size_t k = bound_from; k < inputs.size(); ++k) options.bind[inputs[k]] = given[k];
                    try {
                        model = tq::onnx::from_proto(one, name + "/model.onnx", options);
                        if (bound_from == 0) ++folded;
                        loaded = true;
                        break;
                    } catch (tq::unsupported_error const& e) {
                        if (why.empty()) why = reason_of(e.what());
                    }
                }
                if (loaded && !inputs.empty() && !model.constant_output) x = to_array(given[0]);
                if (!loaded) {
                    ++t.skipped;
                    ++t.reasons[why];
                    continue;
                }
                ++t.ran;
                xt::xarray<float> y;
                try {
                    y = model.run(x ? *x : xt::xarray<float>());
                } catch (std::exception const& e) {
                    FAIL_CHECK("running the model threw: ", e.what());
                    ++failures;
                    continue;
                }
                const bool exact = op == "QuantizeLinear" || op == "DequantizeLinear";
                bool same = y.dimension() == expected.dimension() && y.size() == expected.size() &&
                            std::equal(y.shape().begin(), y.shape().end(), expected.shape().begin());
                double worst = 0;
                for (std::size_t i = 0; same && i < y.size(); ++i) {
                    const double a = y.data()[i], b = expected.data()[i];
                    if (std::isnan(a) && std::isnan(b)) continue;
                    const double excess =
                        exact    ? (std::bit_cast<std::uint32_t>(float(a)) == std::bit_cast<std::uint32_t>(float(b))
                                        ? 0.0
                                        : std::abs(a - b) + 1e-30)
                        : a == b ? 0.0 // infinities
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
    report << "ONNX node tests by operator (ran / passed / skipped; an output of a test data set each):\n";
    for (auto const& [op, t] : by_op) {
        report << "  " << op << ": " << t.ran << " / " << t.passed << " / " << t.skipped << "\n";
        for (auto const& [why, count] : t.reasons) report << "      skipped " << count << "x: " << why << "\n";
        ran += t.ran, passed += t.passed, skipped += t.skipped;
    }
    report << "  total: " << ran << " ran (" << folded << " of them folded at import), " << passed << " passed, "
           << skipped << " skipped\n";
    std::cout << report.str();
    CHECK(failures == 0);
    // these converters are each exercised by at least one of ONNX's own tests
    for (auto const* op : {"Conv",
                           "ConvTranspose",
                           "Gemm",
                           "MatMul",
                           "Add",
                           "Sub",
                           "Mul",
                           "Div",
                           "Max",
                           "Min",
                           "Pow",
                           "Relu",
                           "LeakyRelu",
                           "Sigmoid",
                           "HardSigmoid",
                           "HardSwish",
                           "Tanh",
                           "Erf",
                           "Sqrt",
                           "Reciprocal",
                           "Neg",
                           "Abs",
                           "Clip",
                           "Softmax",
                           "LogSoftmax",
                           "MaxPool",
                           "AveragePool",
                           "GlobalAveragePool",
                           "GlobalMaxPool",
                           "Resize",
                           "BatchNormalization",
                           "LayerNormalization",
                           "ReduceMean",
                           "ReduceSum",
                           "ReduceMax",
                           "Identity",
                           "Dropout",
                           "Shape",
                           "Cast",
                           "Reshape",
                           "Flatten",
                           "Squeeze",
                           "Unsqueeze",
                           "Transpose",
                           "Concat",
                           "Split",
                           "Slice",
                           "Gather",
                           "Expand",
                           "Pad",
                           "ConstantOfShape",
                           "Range",
                           "Equal",
                           "Where"}) {
        INFO(std::string(op));
        CHECK(by_op[op].passed > 0);
    }
}
