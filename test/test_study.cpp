// The study: evaluation engine, records (resume, shards), the experiments on small tasks,
// the bottleneck rule, reports and plots.
#include <tensorquant/study.hpp>

#include "temp_dir.hpp"

#include <doctest/doctest.h>
#include <zlib.h>

#include <array>
#include <fstream>
#include <random>
#include <set>

namespace tq = tensorquant;
namespace nn = tensorquant::nn;
namespace st = tensorquant::study;

namespace {

// A network whose bottleneck is known by construction: "pre" keeps its values within
// a few units, "big" has weights scaled by 64, so its outputs (the logits) reach
// hundreds and saturate every format of fewer than about 10 bits.
nn::network bottleneck_network()
{
    nn::network net("Tiny");
    std::mt19937_64 gen(7);
    std::uniform_real_distribution<float> u(-1, 1);
    nn::dense_layer pre, big;
    pre.weights = nn::tensor2<float>::from_shape({8, 8});
    pre.bias = nn::tensor1<float>::from_shape({8});
    for (auto& w : pre.weights) w = u(gen) / 2;
    for (auto& b : pre.bias) b = u(gen) / 8;
    pre.act = nn::activation::relu;
    big.weights = nn::tensor2<float>::from_shape({8, 8});
    big.bias = nn::tensor1<float>::from_shape({8});
    for (auto& w : big.weights) w = 64 * u(gen);
    for (auto& b : big.bias) b = 0;
    net.add("flatten", nn::flatten_layer{});
    net.add("pre", pre);
    net.add("big", big);
    return net;
}

// Random images labelled by the network's own float predictions (float accuracy 1).
tq::data::labeled_images labelled_by(nn::network net, std::size_t n, std::uint64_t seed,
                                     std::array<std::size_t, 3> shape = {2, 2, 2})
{
    tq::data::labeled_images d;
    d.images = xt::xtensor<float, 4>::from_shape({n, shape[0], shape[1], shape[2]});
    std::mt19937_64 gen(seed);
    std::uniform_real_distribution<float> u(0, 1);
    for (auto& v : d.images) v = u(gen);
    for (int c : net.classify(d.images)) d.labels.push_back(std::uint8_t(c));
    return d;
}

// A record without what differs between runs (its time; whether the run watched the
// ranges, when asked).
std::string identity_of(st::record r, bool without_in_range = false)
{
    r.seconds = 0;
    if (without_in_range) r.extra.erase("in_range");
    return r.to_json().dump();
}

std::multiset<std::string> identities(std::vector<st::record> const& rs, bool without_in_range = false)
{
    std::multiset<std::string> out;
    for (auto const& r : rs) out.insert(identity_of(r, without_in_range));
    return out;
}

st::sweep_options small_sweep()
{
    st::sweep_options o;
    o.roundings = {"nearest", "stochastic"};
    o.widths = {4, 6, 8, 10, 12, 16};
    return o;
}

// Width, height and the number of distinct pixels of a PNG (8-bit RGB or RGBA, no
// interlacing: what pngcairo writes).
struct png_info
{
    unsigned width = 0, height = 0;
    std::size_t colours = 0;
};

png_info read_png(std::filesystem::path const& p)
{
    std::ifstream in(p, std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(s.size() > 33);
    REQUIRE(s.compare(1, 3, "PNG") == 0);
    auto be32 = [&](std::size_t at) {
        return (unsigned(std::uint8_t(s[at])) << 24) | (unsigned(std::uint8_t(s[at + 1])) << 16) |
               (unsigned(std::uint8_t(s[at + 2])) << 8) | unsigned(std::uint8_t(s[at + 3]));
    };
    png_info info;
    info.width = be32(16);
    info.height = be32(20);
    const int colour_type = std::uint8_t(s[25]);
    REQUIRE((colour_type == 2 || colour_type == 6));
    REQUIRE(std::uint8_t(s[24]) == 8);
    const std::size_t channels = colour_type == 6 ? 4 : 3;
    std::string idat;
    for (std::size_t at = 8; at + 8 <= s.size();) {
        const unsigned len = be32(at);
        const std::string type = s.substr(at + 4, 4);
        if (type == "IDAT") idat += s.substr(at + 8, len);
        at += 12 + len;
    }
    const std::size_t stride = info.width * channels;
    std::vector<unsigned char> raw((stride + 1) * info.height);
    uLongf size = uLongf(raw.size());
    REQUIRE(uncompress(raw.data(), &size, reinterpret_cast<Bytef const*>(idat.data()), uLong(idat.size())) == Z_OK);
    REQUIRE(size == raw.size());
    std::vector<unsigned char> prev(stride, 0), row(stride);
    std::set<std::uint32_t> colours;
    for (unsigned y = 0; y < info.height; ++y) {
        const unsigned char filter = raw[y * (stride + 1)];
        unsigned char const* line = &raw[y * (stride + 1) + 1];
        for (std::size_t x = 0; x < stride; ++x) {
            const int a = x >= channels ? row[x - channels] : 0, b = prev[x],
                      c = x >= channels ? prev[x - channels] : 0;
            int pred = 0;
            switch (filter) {
            case 1:
                pred = a;
                break;
            case 2:
                pred = b;
                break;
            case 3:
                pred = (a + b) / 2;
                break;
            case 4: {
                const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
                pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
                break;
            }
            default:
                break;
            }
            row[x] = static_cast<unsigned char>(line[x] + pred);
        }
        for (std::size_t x = 0; x < stride; x += channels)
            colours.insert(std::uint32_t(row[x]) << 16 | std::uint32_t(row[x + 1]) << 8 | row[x + 2]);
        prev = row;
    }
    info.colours = colours.size();
    return info;
}

} // namespace

TEST_CASE("subset picks the first images or a seeded sample")
{
    CHECK(st::subset{}.indices(5) == std::vector<std::size_t>{0, 1, 2, 3, 4});
    CHECK(st::subset{3, 0}.indices(5) == std::vector<std::size_t>{0, 1, 2});
    const auto a = st::subset{3, 9}.indices(100), b = st::subset{3, 9}.indices(100);
    CHECK(a == b);
    CHECK(a.size() == 3);
    CHECK(std::is_sorted(a.begin(), a.end()));
    CHECK(st::subset{3, 10}.indices(100) != a);
    CHECK(st::subset{500, 9}.indices(100).size() == 100);
}

TEST_CASE("forward_from on the prefix outputs equals the whole pass")
{
    for (auto net : {nn::lenet5(3), nn::small_resnet(3)}) {
        auto x = nn::tensor4<float>::from_shape({3, 28, 28, 1});
        std::mt19937_64 gen(1);
        std::uniform_real_distribution<float> u(0, 1);
        for (auto& v : x) v = u(gen);
        const std::string last = net.nodes().back().name;
        net.set_quantization(nn::scope_map{{last, "stochastic,8,4"}}, nn::scope_map{{last, "nearest,6,3"}}, {});
        for (std::size_t first : {std::size_t(1), net.nodes().size() / 2, net.nodes().size() - 1}) {
            const auto prefix = net.prefix_outputs(x, first, 5);
            const auto y = net.forward_from(first, x, prefix, 5);
            const auto ref = net.forward(x, 5);
            REQUIRE(y.shape() == ref.shape());
            CHECK(std::equal(y.begin(), y.end(), ref.begin()));
        }
        CHECK_THROWS_AS(net.forward_from(net.nodes().size() - 1, x, {}), tq::config_error);
    }
}

TEST_CASE("the evaluator measures against the float network")
{
    const auto net = bottleneck_network();
    const auto data = labelled_by(net, 250, 1);
    st::evaluation_options o;
    o.threads = 2;
    o.block = 64;
    st::evaluator ev(net, data, {}, o);
    REQUIRE(ev.images() == 250);
    CHECK(ev.float_accuracy() == 1.0);
    const auto f = ev.evaluate({});
    CHECK(f.accuracy == 1.0);
    CHECK(f.agreement == 1.0);
    st::quantization q;
    q.extrinsic.set("Tiny", "nearest,4,2");
    const auto e = ev.evaluate(q, true);
    CHECK(e.accuracy < 1.0);
    CHECK(e.relative_accuracy == doctest::Approx(e.accuracy / ev.float_accuracy()));
    CHECK(e.agreement == doctest::Approx(e.accuracy)); // labels are the float predictions
    REQUIRE(!e.stats.empty());
    std::size_t outputs = 0;
    for (auto const& s : e.stats)
        if (s.tensor == "output (extrinsic)") outputs += s.count;
    CHECK(outputs == 250 * (8 + 8 + 8)); // flatten, pre and big, merged over the blocks
    // an unknown scope names itself
    st::quantization bad;
    bad.extrinsic.set("Tiny/nothing", "nearest,4,2");
    CHECK_THROWS_WITH_AS(ev.evaluate(bad), doctest::Contains("Tiny/nothing"), tq::config_error);
    CHECK_THROWS_AS(st::evaluator(net, tq::data::labeled_images{}, {}, o), tq::config_error);
}

TEST_CASE("a network in range at W gives the same bits at every wider W")
{
    xt::xtensor<float, 4> x = xt::xtensor<float, 4>::from_shape({3, 28, 28, 1});
    tq::splitmix64 gen{4};
    for (auto& v : x) v = float(gen.uniform());
    for (auto const& net0 : {nn::lenet5(3), nn::small_resnet(3)}) {
        CAPTURE(net0.scope());
        for (std::string rounding : {"nearest", "down", "stochastic"})
            for (int f : {3, 7}) {
                CAPTURE(rounding);
                CAPTURE(f);
                auto run = [&](int w, bool* exceeded) {
                    nn::network net = net0;
                    const auto q =
                        st::detail::placed(net, net.scope(), "intrinsic", st::fixed_spec(rounding, w, f), {11, 0});
                    net.set_quantization(q.intrinsic, q.extrinsic, q.weights);
                    const tq::range_watch watch;
                    auto y = net.forward(x, 1);
                    if (exceeded) *exceeded = watch.exceeded();
                    return y;
                };
                int first_in_range = 0;
                for (int w = f + 1; w <= 24 && !first_in_range; ++w) {
                    bool exceeded = true;
                    const auto y = run(w, &exceeded);
                    if (!exceeded) {
                        first_in_range = w;
                        for (int wider : {w + 1, std::min(24, w + 6)}) CHECK(run(wider, nullptr) == y);
                    }
                }
                CHECK(first_in_range > f + 1); // the narrowest words do leave the range
                CHECK(first_in_range != 0);
            }
    }
}

TEST_CASE("records do not depend on the thread count or on reuse")
{
    const auto net = bottleneck_network();
    const auto data = labelled_by(net, 300, 2);
    tqtest::temp_dir dir;
    std::vector<std::multiset<std::string>> runs;
    std::vector<std::size_t> evaluations;
    for (auto [threads, reuse] : {std::pair{1u, true}, std::pair{2u, true}, std::pair{2u, false}}) {
        st::evaluation_options o;
        o.threads = threads;
        o.reuse_prefix = reuse;
        o.block = 50;
        st::evaluator ev(net, data, {}, o);
        st::results res(dir.path / ("t" + std::to_string(threads) + (reuse ? "r" : "n") + ".jsonl"));
        st::context ctx{"Tiny", ev, res};
        auto recs = st::rounding_sweep(ctx, small_sweep());
        const std::size_t before = ev.evaluations();
        st::layers_options lo;
        lo.widths = {4, 8, 12};
        lo.rounding = "stochastic";
        lo.reuse_in_range = reuse;
        std::size_t points = 0;
        for (auto& r : st::subunit_search(ctx, lo)) recs.push_back(r), ++points;
        lo.widths = {3, 5, 6, 7, 9, 12, 16};
        lo.rounding = "nearest";
        for (auto& r : st::subunit_search(ctx, lo)) recs.push_back(r), ++points;
        evaluations.push_back(ev.evaluations() - before);
        if (!reuse) CHECK(evaluations.back() == points); // every point ran
        runs.push_back(identities(recs, true));
        if (reuse) CHECK(ev.prefix_passes() == 4); // Tiny/pre and Tiny/big start after flatten, twice
    }
    CHECK(runs[0] == runs[1]);
    CHECK(runs[1] == runs[2]);
    // with reuse, the wider words of an in-range point did not run
    CHECK(evaluations[0] == evaluations[1]);
    CHECK(evaluations[0] < evaluations[2]);
}

TEST_CASE("a stochastic intrinsic ResNet gives the same predictions on any thread count")
{
    // every layer intrinsic: conv, batch norm, add, average pooling, dense
    const auto net = nn::small_resnet(5);
    const auto data = labelled_by(net, 48, 6, {28, 28, 1});
    std::vector<st::evaluation> runs;
    for (unsigned threads : {1u, 2u}) {
        st::evaluation_options o;
        o.threads = threads;
        o.block = 16;
        st::evaluator ev(net, data, {}, o);
        st::quantization q;
        q.intrinsic = nn::scope_map{{"ResNet", "stochastic,12,6"}};
        runs.push_back(ev.evaluate(q));
    }
    CHECK(runs[0].accuracy == runs[1].accuracy);
    CHECK(runs[0].agreement == runs[1].agreement);
    CHECK(runs[0].images == 48);
    // the stochastic formats are in effect: the same seed repeats, nearest rounding differs
    auto output = [&](std::string const& spec) {
        nn::network copy = net;
        copy.set_quantization(nn::scope_map{{"ResNet", spec}}, {}, {});
        const auto y = copy.forward(data.images, 1);
        return std::vector<float>(y.begin(), y.end());
    };
    CHECK(output("stochastic,12,6") == output("stochastic,12,6"));
    CHECK(output("stochastic,12,6") != output("nearest,12,6"));
}

TEST_CASE("sharded runs merged equal the unsharded run")
{
    const auto net = bottleneck_network();
    const auto data = labelled_by(net, 120, 3);
    tqtest::temp_dir dir;
    st::evaluator ev(net, data);
    auto run = [&](std::string const& file, st::shard part) {
        st::results res(dir.path / file);
        st::context ctx{"Tiny", ev, res, part};
        st::rounding_sweep(ctx, small_sweep());
        st::best_fractions(ctx, {"nearest", {4, 6}, 0, 0, {"extrinsic"}});
        return res.all();
    };
    const auto whole = run("whole.jsonl", {});
    std::vector<st::record> merged;
    for (std::size_t k = 1; k <= 3; ++k) {
        const auto part = run("part" + std::to_string(k) + ".jsonl", {k, 3});
        CHECK(!part.empty());
        CHECK(part.size() < whole.size());
        merged.insert(merged.end(), part.begin(), part.end());
    }
    CHECK(whole.size() == 2 * 2 * 6 + 5 + 7);
    CHECK(identities(merged) == identities(whole));
    CHECK(st::shard::parse("2/8").index == 2);
    CHECK_THROWS_AS(st::shard::parse("0/3"), tq::config_error);
    CHECK_THROWS_AS(st::shard::parse("4/3"), tq::config_error);
    CHECK_THROWS_AS(st::shard::parse("1/0"), tq::config_error);
    CHECK_THROWS_AS(st::shard::parse("1-3"), tq::config_error);
    CHECK_THROWS_AS(st::shard::parse("1/3x"), tq::config_error);
}

TEST_CASE("a run killed midway and restarted gives the records of one run")
{
    const auto net = bottleneck_network();
    const auto data = labelled_by(net, 120, 4);
    tqtest::temp_dir dir;
    st::evaluator ev(net, data);
    std::vector<st::record> whole;
    {
        st::results res(dir.path / "whole.jsonl");
        st::context ctx{"Tiny", ev, res};
        whole = st::rounding_sweep(ctx, small_sweep());
    }
    const auto path = dir.path / "killed.jsonl";
    {
        st::results res(path);
        st::context ctx{"Tiny", ev, res};
        struct killed
        {
        };
        ctx.progress = [](std::string const&, std::size_t done, std::size_t, std::string const&) {
            if (done == 9) throw killed{};
        };
        CHECK_THROWS_AS(st::rounding_sweep(ctx, small_sweep()), killed);
        CHECK(res.all().size() == 9);
    }
    {
        std::ofstream(path, std::ios::app) << R"({"experiment":"sweep","network":"Ti)";
    } // killed while writing
    std::size_t measured = 0;
    {
        st::results res(path);
        CHECK(res.all().size() == 9);
        st::context ctx{"Tiny", ev, res};
        ctx.progress = [&](std::string const&, std::size_t, std::size_t, std::string const& key) {
            if (!key.empty() && !res.find(key)) ++measured;
        };
        const auto again = st::rounding_sweep(ctx, small_sweep());
        CHECK(identities(again) == identities(whole));
    }
    CHECK(measured == whole.size() - 9);
    CHECK(identities(st::read_records(path)) == identities(whole));
    // a malformed line in the middle names the file and the line
    {
        std::ofstream(path, std::ios::app) << "not json\n{}\n";
    }
    CHECK_THROWS_WITH_AS(st::read_records(path),
                         doctest::Contains(("killed.jsonl:" + std::to_string(whole.size() + 1)).c_str()),
                         tq::file_error);
}

TEST_CASE("the bottleneck rule and its tie break")
{
    auto rec = [](std::string unit, int w, int f, double rel) {
        st::record r;
        r.experiment = "layers";
        r.subunit = std::move(unit);
        r.width = w;
        r.frac = f;
        r.relative_accuracy = rel;
        return r;
    };
    std::map<std::string, std::vector<st::record>> by;
    by["a"] = {rec("a", 8, 2, 1.0), rec("a", 8, 4, 1.0), rec("a", 6, 3, 0.95), rec("a", 12, 6, 1.0)};
    by["b"] = {rec("b", 8, 5, 1.0), rec("b", 8, 3, 0.99), rec("b", 4, 2, 0.92)};
    by["c"] = {rec("c", 4, 1, 1.0)};
    const std::vector<std::string> units{"a", "b", "c"};
    CHECK(st::smallest_reaching(by["a"], 1.0) == std::pair{8, 2});
    CHECK(st::smallest_reaching(by["a"], 0.9) == std::pair{6, 3});
    CHECK(!st::smallest_reaching(by["b"], 1.01));
    auto b = st::find_bottleneck(units, by, 1.0);
    REQUIRE(b);
    CHECK(b->subunit == "b"); // W 8 for a and b: the larger F (5 > 2) decides
    CHECK(b->width == 8);
    CHECK(b->frac == 5);
    b = st::find_bottleneck(units, by, 0.9);
    REQUIRE(b);
    CHECK(b->subunit == "a"); // (6,3) against (4,2) and (4,1)
    by["c"] = {rec("c", 4, 1, 0.5)};
    b = st::find_bottleneck(units, by, 0.9);
    REQUIRE(b);
    CHECK(b->subunit == "c");
    CHECK(!b->reached);

    SUBCASE("found on a network built to have it")
    {
        const auto net = bottleneck_network();
        const auto data = labelled_by(net, 200, 5);
        tqtest::temp_dir dir;
        st::evaluator ev(net, data);
        st::results res(dir.path / "layers.jsonl");
        st::context ctx{"Tiny", ev, res};
        st::layers_options o;
        o.subunits = {"Tiny/pre", "Tiny/big"};
        o.widths = {4, 6, 8, 10, 12, 14, 16};
        const auto recs = st::subunit_search(ctx, o);
        CHECK(recs.size() == 2 * (4 + 6 + 8 + 10 + 12 + 14 + 16));
        std::map<std::string, std::vector<st::record>> units_found;
        for (auto const& r : recs) units_found[r.subunit].push_back(r);
        const auto found = st::find_bottleneck(o.subunits, units_found, 1.0);
        REQUIRE(found);
        CHECK(found->subunit == "Tiny/big");
        CHECK(found->width >= 10); // outputs of hundreds need 9 integer bits and a sign
        const auto pre = st::smallest_reaching(units_found["Tiny/pre"], 1.0);
        REQUIRE(pre);
        CHECK(pre->first < found->width);
        CHECK_THROWS_WITH_AS(st::subunit_search(ctx, {{"Tiny/none"}}), doctest::Contains("Tiny/none"),
                             tq::config_error);
    }
}

TEST_CASE("subunits at a depth follow the scopes")
{
    const auto units = st::subunits_at_depth(nn::small_resnet(1), 1);
    CHECK(units ==
          std::vector<std::string>{"ResNet/stem", "ResNet/block1", "ResNet/block2", "ResNet/pool", "ResNet/fc"});
    CHECK(st::subunits_at_depth(nn::lenet5(1), 1).size() == 8);
    CHECK(st::subunits_at_depth(nn::small_resnet(1), 2).size() == nn::small_resnet(1).nodes().size());
}

TEST_CASE("the sweep and the fractions on a small task")
{
    const auto net = bottleneck_network();
    const auto data = labelled_by(net, 200, 6);
    tqtest::temp_dir dir;
    st::evaluator ev(net, data);
    st::results res(dir.path / "r.jsonl");
    st::context ctx{"Tiny", ev, res};
    const auto sweep = st::rounding_sweep(ctx, small_sweep());
    CHECK(sweep.size() == 2 * 2 * 6);
    for (auto const& r : sweep) {
        CHECK(r.frac == r.width / 2);
        CHECK(r.relative_accuracy == doctest::Approx(r.accuracy)); // float accuracy 1
        CHECK(r.images == 200);
        CHECK(r.version == st::version_string());
    }
    const auto fr = st::best_fractions(ctx, {"nearest", {4, 12}, 0, 0, {"intrinsic"}});
    CHECK(fr.size() == 5 + 13);
    const auto best = st::best_per_width(fr);
    REQUIRE(best.count(12));
    for (auto const& r : fr)
        if (r.width == 12) CHECK(r.relative_accuracy <= best.at(12).relative_accuracy);
    // the same point with F = W/2 is among the fractions: the best is at least as good
    for (auto const& r : sweep)
        if (r.width == 12 && r.rounding == "nearest" && r.placement == "intrinsic")
            CHECK(best.at(12).relative_accuracy >= r.relative_accuracy);
}

TEST_CASE("training experiments on a small task")
{
    const auto data = labelled_by(bottleneck_network(), 256, 8);
    const auto net = [] {
        nn::network n("Tiny");
        nn::initializer init(3);
        n.add("flatten", nn::flatten_layer{});
        n.add("fc1", init.dense(8, 16, nn::activation::relu));
        n.add("fc2", init.dense(16, 8));
        return n;
    };
    st::training_setup s;
    s.make = net;
    s.train_set = &data;
    s.epochs = 2;
    s.threads = 2;
    s.batch_size = 32;
    auto trained = st::train_from_scratch(s, {});
    tqtest::temp_dir dir;
    st::evaluator ev(trained, data);
    st::results res(dir.path / "r.jsonl");
    st::context ctx{"Tiny", ev, res};

    SUBCASE("gradients")
    {
        const auto recs = st::gradient_quantization(ctx, s, {"nearest", {{4, 2}, {16, 12}}});
        REQUIRE(recs.size() == 3);
        CHECK(recs[0].point == "float");
        CHECK(recs[0].relative_accuracy == 1.0);
        CHECK(recs[0].accuracy == doctest::Approx(ev.float_accuracy())); // the same training
        for (auto const& r : recs) CHECK(r.relative_accuracy == doctest::Approx(r.accuracy / recs[0].accuracy));
    }
    SUBCASE("sparsity")
    {
        st::sparsity_options o;
        o.widths = {2, 8};
        const auto recs = st::sparsity(ctx, s, o);
        REQUIRE(recs.size() == 4);
        REQUIRE(recs[0].extra["epochs"].size() == 2);
        auto zeros = [](st::record const& r, std::string const& layer, std::string const& tensor) {
            for (auto const& x : r.extra["layers"])
                if (x["layer"] == layer && x["tensor"] == tensor) return x["zeros"].get<double>();
            FAIL("no such row");
            return -1.0;
        };
        // nearest rounding keeps zeros: a coarser grid never has fewer
        CHECK(zeros(recs[1], "Tiny/fc1", "weights") >= zeros(recs[3], "Tiny/fc1", "weights"));
        // the float inference row counts the ReLU's zeros directly
        auto copy = trained;
        std::size_t z = 0, n = 0;
        copy.set_output_observer([&](std::size_t node, nn::tensor<float> const& y) {
            if (node != 1) return;
            for (float v : y) z += v == 0, ++n;
        });
        copy.forward(data.images);
        CHECK(zeros(recs[3], "Tiny/fc1", "output") == doctest::Approx(double(z) / double(n)));
    }
    SUBCASE("tqt")
    {
        st::tqt_options o;
        o.bits = {8};
        const auto recs = st::tqt_retraining(ctx, s, o);
        REQUIRE(recs.size() == 2);
        CHECK(recs[0].point == "calibrated");
        CHECK(recs[1].point == "retrained");
        CHECK(recs[1].extra["thresholds"].size() == 2 + 3); // weights of fc1 and fc2; three outputs
        CHECK_THROWS_AS(st::tqt_retraining(ctx, s, {{8}, 3}), tq::config_error);
    }
    SUBCASE("mixed")
    {
        st::mixed_options o;
        o.start_width = 8;
        o.min_width = 4;
        o.uniform_widths = {4, 8};
        o.stop_below = 0;
        const auto recs = st::mixed_precision(ctx, o);
        std::vector<st::record> steps;
        for (auto const& r : recs)
            if (r.extra["kind"] == "step") steps.push_back(r);
        const std::size_t tensors = 2 + 3;
        REQUIRE(steps.size() == 1 + tensors * 2); // from 8 to 4 bits in steps of 2, every tensor
        for (std::size_t i = 1; i < steps.size(); ++i)
            CHECK(steps[i].extra["average_bits"].get<double>() < steps[i - 1].extra["average_bits"].get<double>());
        // every step is a real measurement of its maps, and they load back
        st::write_mixed_maps(recs, dir.path);
        const auto where = dir.path / "mixed" / "Tiny" / st::detail::fmt(steps[3].extra["average_bits"].get<double>());
        st::quantization q;
        q.weights = nn::scope_map::from_json_file(where / "weights.json");
        q.extrinsic = nn::scope_map::from_json_file(where / "extrinsic.json");
        CHECK(ev.evaluate(q).accuracy == steps[3].accuracy);
    }
}

TEST_CASE("the format comparison on a small task")
{
    const auto net = bottleneck_network();
    const auto data = labelled_by(net, 120, 12);
    tqtest::temp_dir dir;
    st::evaluator ev(net, data);
    st::formats_options o;
    o.formats = {{"FP32", "minifloat,8,23"}, {"MXFP4", "mxfp4"}, {"INT4", "nearest,4,1"}, {"INT4", "nearest,4,2"}};
    std::vector<st::record> first;
    {
        st::results res(dir.path / "r.jsonl");
        st::context ctx{"Tiny", ev, res};
        first = st::format_comparison(ctx, o);
    }
    // the whole network, Tiny/flatten, Tiny/pre and Tiny/big; then MXFP4's block dot product
    REQUIRE(first.size() == 4 * 4 + 4);
    for (auto const& r : first) {
        CHECK(r.experiment == "formats");
        CHECK(r.placement == (r.point == "MXFP4 dot" ? "intrinsic" : "weights+extrinsic"));
        CHECK(r.images == 120);
        if (r.point == "FP32") CHECK(r.relative_accuracy == 1.0); // float32 itself: nothing changes
        if (r.point == "MXFP4 dot" && r.subunit == "Tiny/flatten") CHECK(r.relative_accuracy == 1.0); // no products
    }
    CHECK(first[16].subunit == "");
    CHECK(first[16].point == "MXFP4 dot");
    CHECK(first[0].subunit == "");
    CHECK(first[4].subunit == "Tiny/flatten");
    // resumed from the file: the same records, nothing measured again
    {
        st::results res(dir.path / "r.jsonl");
        st::context ctx{"Tiny", ev, res};
        CHECK(identities(st::format_comparison(ctx, o)) == identities(first));
    }
    const auto ts = st::tables(first);
    REQUIRE(ts.size() == 1);
    CHECK(ts[0].header == std::vector<std::string>{"subunit", "FP32", "MXFP4", "INT4", "MXFP4 dot"});
    REQUIRE(ts[0].rows.size() == 4);
    CHECK(ts[0].rows[0][0] == "whole network");
    CHECK(ts[0].rows[3][3].find("(nearest,4,") != std::string::npos); // the best F of the family
    MESSAGE("Tiny/big: MXFP4 " << ts[0].rows[3][2] << ", INT4 " << ts[0].rows[3][3]);
    // a format that does not parse is refused before any work, naming its label
    o.formats = {{"bad one", "mxfp5"}};
    st::results res(dir.path / "r2.jsonl");
    st::context ctx{"Tiny", ev, res};
    CHECK_THROWS_WITH(st::format_comparison(ctx, o), doctest::Contains("bad one"));
    o.formats = {{"FP32", "minifloat,8,23"}};
    o.subunits = {"Tiny/nothing"};
    CHECK_THROWS_AS(st::format_comparison(ctx, o), tq::config_error);
}

TEST_CASE("reports and plots")
{
    const auto net = bottleneck_network();
    const auto data = labelled_by(net, 100, 9);
    tqtest::temp_dir dir;
    st::evaluator ev(net, data);
    st::results res(dir.path / "r.jsonl");
    st::context ctx{"Tiny", ev, res};
    st::rounding_sweep(ctx, small_sweep());
    st::layers_options lo;
    lo.widths = {4, 8, 12, 16};
    st::subunit_search(ctx, lo);
    st::best_fractions(ctx, {"nearest", {8, 12, 16}, 0, 0, {"intrinsic"}});
    st::write_report(res.all(), dir.path / "report");
    std::ifstream md(dir.path / "report" / "report.md");
    const std::string text((std::istreambuf_iterator<char>(md)), std::istreambuf_iterator<char>());
    CHECK(text.find("figures 3 and 4") != std::string::npos);
    CHECK(text.find("tables 5 and 6") != std::string::npos);
    CHECK(text.find("table 1") != std::string::npos);
    CHECK(text.find("**") != std::string::npos); // the bottleneck marked
    CHECK(text.find("plots/sweep_Tiny.png") != std::string::npos);
    for (char const* name : {"sweep_Tiny", "layers_Tiny"}) {
        const auto png = read_png(dir.path / "report" / "plots" / (std::string(name) + ".png"));
        CHECK(png.width == 900);
        CHECK(png.height == 560);
        CHECK(png.colours > 8); // axes, labels and several series: not blank
        std::ifstream svg(dir.path / "report" / "plots" / (std::string(name) + ".svg"));
        const std::string s((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
        CHECK(s.find("width=\"900\"") != std::string::npos);
        CHECK(s.find("height=\"560\"") != std::string::npos);
        CHECK(s.find("<path") != std::string::npos);
    }
    const auto ts = st::tables(res.all());
    REQUIRE(ts.size() == 4);
    CHECK(ts[0].rows.size() == 4);             // two roundings, two placements
    CHECK(ts[2].rows.back()[1] == "Tiny/big"); // the bottleneck row
}
