// tensorquant-study: the TensorQuant experiments on LeNet-5 and the small residual network
// (or their weights from a directory), or on the user's own ONNX model, on Fashion-MNIST,
// as one command. docs/guide.md ("The study") describes each subcommand;
// `tensorquant-study --help` lists the options.
#include <tensorquant/study.hpp>
#if TQ_HAVE_ONNX
#include <tensorquant/onnx.hpp>
#endif

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace tq = tensorquant;
namespace nn = tensorquant::nn;
namespace st = tensorquant::study;
namespace fs = std::filesystem;

namespace {

constexpr char const* debian_fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";

struct settings
{
    std::vector<std::string> networks;
    std::string weights;
    std::string data = debian_fashion_mnist_dir;
    std::size_t images = 1000, layer_images = 500, final_images = 0;
    std::uint64_t sample_seed = 0;
    unsigned threads = 0;
    std::string out = "study";
    std::string models;
    std::string shard = "1/1";
    std::string results;
    std::vector<std::string> result_files;
    std::string widths, fractions, roundings = "nearest,zero,down,stochastic", subunits, thresholds = "1,0.99,0.9";
    int depth = 1, epochs = 4, gradient_epochs = 2, tqt_epochs = 1, frac_step = 1;
    std::string experiments = "sweep,fractions,layers,gradients,sparsity,tqt,mixed,formats";
    std::string formats; // LABEL=SPEC;LABEL=SPEC (empty: formats_options' list)
    std::string bits = "8,4", gradient_formats = "2,1;4,2;6,3;8,4;10,5;12,6";
    double budget = 0, stop_below = 0.9;
    std::uint64_t seed = 1;
    bool plots = true, reuse = true;
    // an imported model, and the normalisation of its input
    std::string model;
    std::optional<double> mean, std_dev;
    bool list = false;
    // predict
    std::string maps, input, output, intrinsic_map, extrinsic_map, weights_map;
};

#if TQ_HAVE_ONNX
// The model of --model, loaded once; its network is the study's (its scope: the file's stem).
std::optional<tq::onnx::model>& imported()
{
    static std::optional<tq::onnx::model> m;
    return m;
}
void import_model(settings const& s)
{
    tq::onnx::load_options o;
    o.scope.clear();
    for (char c : fs::path(s.model).stem().string()) o.scope += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    if (o.scope.empty()) o.scope = "model";
    imported() = tq::onnx::load(s.model, o);
}
#endif

// "4:20" (step 1), "4:20:2", or "4,8,12".
std::vector<int> parse_ints(std::string const& text, char const* what)
{
    std::vector<int> out;
    auto fail = [&] {
        throw tq::config_error(std::string(what) + " '" + text +
                               "': expected a list such as 4,8,12 or a range 4:20[:2]");
    };
    try {
        if (text.find(':') != std::string::npos) {
            std::vector<int> parts;
            std::stringstream in(text);
            std::string p;
            while (std::getline(in, p, ':')) parts.push_back(std::stoi(p));
            if (parts.size() < 2 || parts.size() > 3) fail();
            const int step = parts.size() == 3 ? parts[2] : 1;
            if (step <= 0 || parts[1] < parts[0]) fail();
            for (int v = parts[0]; v <= parts[1]; v += step) out.push_back(v);
        } else {
            std::stringstream in(text);
            std::string p;
            while (std::getline(in, p, ',')) {
                std::size_t used = 0;
                out.push_back(std::stoi(p, &used));
                if (used != p.size()) fail();
            }
        }
    } catch (std::logic_error const&) {
        fail();
    }
    if (out.empty()) fail();
    return out;
}

std::vector<std::string> split(std::string const& text, char sep)
{
    std::vector<std::string> out;
    std::stringstream in(text);
    std::string p;
    while (std::getline(in, p, sep))
        if (!p.empty()) out.push_back(p);
    return out;
}

// The progress of the current experiment: a bar with ETA on a terminal, a line per tenth
// otherwise.
class progress
{
public:
    void operator()(std::string const& experiment, std::size_t done, std::size_t total, std::string const& label)
    {
        if (experiment != experiment_ || done < last_done_) {
            experiment_ = experiment;
            start_ = std::chrono::steady_clock::now();
            last_tenth_ = -1;
        }
        last_done_ = done;
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        const double eta = done ? s / double(done) * double(total - done) : 0;
        if (tty_) {
            const int width = 28, filled = total ? int(width * done / total) : width;
            std::fprintf(stderr, "\r\033[K%s%-10s [%s%s] %zu/%zu  %s  ETA %s  %.40s", prefix.c_str(),
                         experiment.c_str(), std::string(std::size_t(filled), '#').c_str(),
                         std::string(std::size_t(width - filled), '.').c_str(), done, total, clock(s).c_str(),
                         done ? clock(eta).c_str() : "?", label.c_str());
            if (done == total) std::fprintf(stderr, "\n");
        } else {
            const int tenth = total ? int(10 * done / total) : 10;
            if (tenth != last_tenth_) {
                std::fprintf(stderr, "%s%s: %zu/%zu points, %s elapsed\n", prefix.c_str(), experiment.c_str(), done,
                             total, clock(s).c_str());
                last_tenth_ = tenth;
            }
        }
    }
    std::string prefix;

private:
    static std::string clock(double s)
    {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%d:%02d", int(s) / 60, int(s) % 60);
        return buf;
    }
    bool tty_ = isatty(fileno(stderr));
    std::string experiment_;
    std::size_t last_done_ = 0;
    int last_tenth_ = -1;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

nn::network fresh(std::string const& name, std::uint64_t seed)
{
#if TQ_HAVE_ONNX
    if (imported() && name == imported()->net.scope()) return imported()->net; // its own weights
#endif
    if (name == "lenet5") return nn::lenet5(seed);
    if (name == "small_resnet") return nn::small_resnet(seed);
    throw tq::config_error("network '" + name + "': expected lenet5 or small_resnet");
}

struct data_sets
{
    tq::data::labeled_images train, test;
};

// Training a fresh network of this name on the training set.
st::training_setup training(settings const& s, std::string const& name, data_sets const& d, int epochs)
{
    st::training_setup t;
    t.make = [name, seed = s.seed] { return fresh(name, seed); };
    t.train_set = &d.train;
    t.epochs = epochs;
    t.threads = s.threads;
    t.seed = s.seed;
    return t;
}

// The float network: from --weights, or the checkpoint in the models directory, or
// trained now (and saved there).
nn::network float_network(settings const& s, std::string const& name, data_sets const& d)
{
    nn::network net = fresh(name, s.seed);
    if (!s.model.empty()) return net; // an imported model is trained already
    if (!s.weights.empty()) {
        net.load(s.weights);
        return net;
    }
    const fs::path dir = fs::path(s.models.empty() ? s.out + "/models" : s.models) / name;
    if (fs::exists(dir / "epochs.txt")) {
        net.load(dir);
        std::fprintf(stderr, "%s: float weights from %s\n", name.c_str(), dir.c_str());
        return net;
    }
    const auto t = training(s, name, d, s.epochs);
    const auto t0 = std::chrono::steady_clock::now();
    std::fprintf(stderr, "%s: training in float for %d epochs ...\n", name.c_str(), s.epochs);
    net = st::train_from_scratch(t, {});
    net.save(dir);
    std::ofstream(dir / "epochs.txt") << s.epochs << '\n';
    std::fprintf(stderr, "%s: trained in %.0f s, saved to %s\n", name.c_str(),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), dir.c_str());
    return net;
}

// Every experiment's options, parsed and checked before any work starts.
struct plan
{
    st::sweep_options sweep;
    st::fractions_options fractions;
    st::layers_options layers;
    st::gradients_options gradients;
    st::sparsity_options sparsity;
    st::tqt_options tqt;
    st::mixed_options mixed;
    st::formats_options formats;
};

double parse_double(std::string const& text, char const* what)
{
    try {
        std::size_t used = 0;
        const double v = std::stod(text, &used);
        if (used == text.size()) return v;
    } catch (std::logic_error const&) {
    }
    throw tq::config_error(std::string(what) + ": '" + text + "' is not a number");
}

plan make_plan(settings const& s, std::string const& command)
{
    plan p;
    p.sweep.roundings = split(s.roundings, ',');
    if (p.sweep.roundings.empty()) throw tq::config_error("--roundings: give at least one rounding method");
    for (auto const& r : p.sweep.roundings)
        tq::detail::with_error_context("--roundings '" + r + "'", [&] { tq::parse_quantizer(r + ",8,4"); });
    if (!s.widths.empty()) {
        const auto w = parse_ints(s.widths, "--widths");
        for (int x : w)
            if (x < 1 || x > 24) throw tq::config_error("--widths: " + std::to_string(x) + " is not in 1..24");
        p.sweep.widths = p.fractions.widths = w;
        if (command == "layers" || command == "all") p.layers.widths = w;
    }
    p.layers.depth = s.depth;
    if (s.depth < 1) throw tq::config_error("--depth: expected 1 or more");
    p.layers.subunits = split(s.subunits, ',');
    p.layers.frac_step = s.frac_step;
    p.layers.reuse_in_range = s.reuse;
    if (s.frac_step < 1) throw tq::config_error("--frac-step: expected 1 or more");
    p.layers.thresholds.clear();
    if (split(s.thresholds, ',').empty()) throw tq::config_error("--thresholds: give at least one");
    for (auto const& t : split(s.thresholds, ',')) {
        const double v = parse_double(t, "--thresholds");
        if (!(v > 0 && v <= 2)) throw tq::config_error("--thresholds: " + t + " is not a relative accuracy in (0, 2]");
        p.layers.thresholds.push_back(v);
    }
    p.gradients.formats.clear();
    for (auto const& f : split(s.gradient_formats, ';')) {
        const auto wf = parse_ints(f, "--gradient-formats");
        if (wf.size() != 2) throw tq::config_error("--gradient-formats '" + f + "': expected W,F;W,F;...");
        tq::detail::with_error_context("--gradient-formats '" + f + "'",
                                       [&] { tq::parse_quantizer(st::fixed_spec("nearest", wf[0], wf[1])); });
        p.gradients.formats.push_back({wf[0], wf[1]});
    }
    p.tqt.bits = parse_ints(s.bits, "--bits");
    for (int b : p.tqt.bits)
        if (b < 2 || b > 16) throw tq::config_error("--bits: " + std::to_string(b) + " is not in 2..16");
    p.tqt.epochs = s.tqt_epochs;
    if (s.tqt_epochs < 0 || s.tqt_epochs > 2) throw tq::config_error("--tqt-epochs: at most 2 epochs of retraining");
    p.formats.depth = s.depth;
    p.formats.subunits = p.layers.subunits;
    if (!s.formats.empty()) {
        p.formats.formats.clear();
        for (auto const& f : split(s.formats, ';')) {
            const auto eq = f.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == f.size())
                throw tq::config_error("--formats '" + f + "': expected LABEL=QUANTIZER;LABEL=QUANTIZER;...");
            const std::string label = f.substr(0, eq), spec = f.substr(eq + 1);
            tq::detail::with_error_context("--formats '" + f + "'", [&] { tq::parse_quantizer(spec); });
            p.formats.formats.push_back({label, spec});
        }
    }
    p.mixed.budget_average_bits = s.budget;
    p.mixed.stop_below = s.stop_below;
    if (s.epochs < 0 || s.gradient_epochs < 0) throw tq::config_error("--epochs: expected 0 or more");
    // the subunits must name layers of every network studied
    for (auto const& name : s.networks) {
        const auto net = fresh(name, 1);
        for (auto const& u : p.layers.subunits) {
            bool any = false;
            for (auto const& n : net.nodes()) any = any || nn::scope_matches(u, n.name);
            if (!any) throw tq::config_error("subunit '" + u + "' matches no layer of network '" + net.scope() + "'");
        }
    }
    return p;
}

// The maps of predict: DIR/{intrinsic,extrinsic,weights}.json, each optional, or the
// files --intrinsic, --extrinsic, --weights-map (which take precedence).
st::quantization load_maps(settings const& s)
{
    st::quantization q;
    const std::string& dir = s.maps;
    if (!dir.empty() && !fs::is_directory(dir)) throw tq::file_error(dir + ": no such directory of maps");
    auto load = [&](std::string const& given, char const* file) {
        if (!given.empty()) {
            if (!fs::exists(given)) throw tq::file_error(given + ": no such map file");
            return nn::scope_map::from_json_file(given, {s.seed, 0});
        }
        const fs::path p = fs::path(dir) / file;
        return !dir.empty() && fs::exists(p) ? nn::scope_map::from_json_file(p, {s.seed, 0}) : nn::scope_map{};
    };
    q.intrinsic = load(s.intrinsic_map, "intrinsic.json");
    q.extrinsic = load(s.extrinsic_map, "extrinsic.json");
    q.weights = load(s.weights_map, "weights.json");
    return q;
}

// The images normalised as --mean and --std say: (x - mean) / std.
void normalise(settings const& s, float* x, std::size_t n)
{
    const double mean = s.mean.value_or(0.0), sd = s.std_dev.value_or(1.0);
    if (mean == 0.0 && sd == 1.0) return;
    for (std::size_t i = 0; i < n; ++i) x[i] = float((double(x[i]) - mean) / sd);
}

// layers --list: every layer with its kind, then the scope prefixes a map can name.
void list_layers(nn::network const& net)
{
    std::set<std::string> prefixes;
    std::printf("%s: %zu layers\n", net.scope().c_str(), net.nodes().size());
    for (auto const& n : net.nodes()) {
        const auto kind = std::visit([](auto const& l) { return std::string(l.kind); }, n.op);
        std::printf("  %-40s %s\n", n.name.c_str(), kind.c_str());
        for (std::size_t p = n.name.find('/'); p != std::string::npos; p = n.name.find('/', p + 1))
            prefixes.insert(n.name.substr(0, p));
    }
    std::printf("scopes:\n");
    for (auto const& p : prefixes) {
        std::size_t count = 0;
        for (auto const& n : net.nodes()) count += nn::scope_matches(p, n.name) ? 1 : 0;
        std::printf("  %-40s %zu layer%s\n", p.c_str(), count, count == 1 ? "" : "s");
    }
}

int run(std::string const& command, settings s)
{
    if (s.std_dev && !(*s.std_dev > 0)) throw tq::config_error("--std: expected a positive number");
    if (!s.model.empty()) {
        if (!s.networks.empty() || !s.weights.empty())
            throw tq::config_error("--model is the network studied: give it without --network and --weights");
#if TQ_HAVE_ONNX
        import_model(s);
        auto const& m = *imported();
        s.networks = {m.net.scope()};
        // the study's data set is Fashion-MNIST: 28 x 28 grey images, ten classes
        const bool takes =
            m.input_shape.size() == 4 && m.input_shape[1] == 1 && m.input_shape[2] == 28 && m.input_shape[3] == 28;
        const bool gives = m.output_shape.size() == 2 && m.output_shape[1] == 10;
        if (command != "predict" && !s.list && (!takes || !gives))
            throw tq::config_error(s.model + ": the model takes " + tq::onnx::detail::shape_text(m.input_shape) +
                                   " and gives " + tq::onnx::detail::shape_text(m.output_shape) +
                                   "; the study's Fashion-MNIST needs [N, 1, 28, 28] and [N, 10]");
#else
        throw tq::config_error("--model: this tensorquant-study was built without the ONNX importer (libonnx-dev)");
#endif
    }
    if (s.networks.empty()) s.networks = {"lenet5", "small_resnet"};
    if (!s.weights.empty() && s.networks.size() != 1)
        throw tq::config_error("--weights names the weights of one network: give exactly one --network");
    for (auto const& n : s.networks) fresh(n, 1); // names checked before any work
    if (s.list) {
        for (auto const& n : s.networks) list_layers(fresh(n, 1));
#if TQ_HAVE_ONNX
        if (imported() && !imported()->qdq.empty())
            std::printf("QDQ quantization points (the extrinsic map of predict unless one is given):\n%s\n",
                        imported()->qdq.to_json().c_str());
#endif
        return 0;
    }
#if TQ_HAVE_ONNX
    if (command == "predict" && imported()) {
        // an imported model takes and gives tensors in its own (ONNX) layout
        if (s.input.empty() || s.output.empty()) throw tq::config_error("predict needs --images and --out");
        const auto q = load_maps(s);
        auto& m = *imported();
        // a QDQ model's quantization points are its extrinsic map unless one is given
        m.net.set_quantization(q.intrinsic, q.extrinsic.empty() ? m.qdq : q.extrinsic, q.weights);
        auto x = tq::read_npy<float>(s.input);
        normalise(s, x.values.data(), x.values.size());
        xt::xarray<float> batch = xt::adapt(x.values, x.shape);
        const auto y = tq::detail::with_error_context(s.input, [&] { return m.run(batch); });
        tq::write_npy(s.output, y.data(), std::vector<std::size_t>(y.shape().begin(), y.shape().end()));
        std::fprintf(stderr, "wrote the outputs of %zu inputs to %s\n", std::size_t(y.shape(0)), s.output.c_str());
        return 0;
    }
#endif
    const auto part = st::shard::parse(s.shard);
    const plan p = make_plan(s, command);
    const auto chosen = split(s.experiments, ',');
    for (auto const& e : chosen)
        if (e != "sweep" && e != "fractions" && e != "layers" && e != "gradients" && e != "sparsity" && e != "tqt" &&
            e != "mixed" && e != "formats")
            throw tq::config_error("--experiments: unknown experiment '" + e + "'");
    const fs::path out = s.out;
    const fs::path results_path =
        !s.results.empty() ? fs::path(s.results)
        : part.count == 1
            ? out / "results.jsonl"
            : out / ("results." + std::to_string(part.index) + "of" + std::to_string(part.count) + ".jsonl");

    if (command == "report") {
        std::vector<st::record> all;
        std::set<std::string> seen;
        auto add_file = [&](fs::path const& p) {
            for (auto& r : st::read_records(p))
                if (seen.insert(r.key()).second) all.push_back(std::move(r));
        };
        if (!s.result_files.empty()) {
            for (auto const& f : s.result_files) {
                if (!fs::exists(f)) throw tq::file_error(f + ": no such file");
                add_file(f);
            }
        } else {
            if (!fs::is_directory(out))
                throw tq::file_error(out.string() + ": no such directory (run the study first)");
            std::vector<fs::path> files;
            for (auto const& e : fs::directory_iterator(out))
                if (e.path().extension() == ".jsonl") files.push_back(e.path());
            std::sort(files.begin(), files.end());
            for (auto const& f : files) add_file(f);
        }
        if (all.empty()) throw tq::file_error(out.string() + ": no records to report on");
        st::report_options ro;
        ro.thresholds = p.layers.thresholds;

        st::write_report(all, out, s.plots, ro);
        std::ifstream txt(out / "report.txt");
        std::cout << txt.rdbuf();
        std::fprintf(stderr, "wrote %s and %s\n", (out / "report.md").c_str(), (out / "report.txt").c_str());
        return 0;
    }

    if (!fs::exists(fs::path(s.data) / "t10k-images-idx3-ubyte.gz") &&
        !fs::exists(fs::path(s.data) / "t10k-images-idx3-ubyte"))
        throw tq::file_error(s.data +
                             ": no Fashion-MNIST here (install Debian's dataset-fashion-mnist or give --data)");
    data_sets d;
    d.test = tq::data::load_fashion_mnist(tq::data::split::test, s.data);
    normalise(s, d.test.images.data(), d.test.images.size());

    if (command == "predict") {
        if (s.input.empty() || s.output.empty()) throw tq::config_error("predict needs --input and --output");
        const auto q = load_maps(s);
        fresh(s.networks.front(), s.seed).set_quantization(q.intrinsic, q.extrinsic, q.weights); // checked first
        auto x = tq::read_npy<float>(s.input);
        normalise(s, x.values.data(), x.values.size());
        if (s.weights.empty()) {
            d.train = tq::data::load_fashion_mnist(tq::data::split::train, s.data);
            normalise(s, d.train.images.data(), d.train.images.size());
        }
        auto net = float_network(s, s.networks.front(), d);
        net.set_quantization(q.intrinsic, q.extrinsic, q.weights);
        if (x.shape.size() != 3 && x.shape.size() != 4)
            throw tq::file_error(s.input + ": expected images shaped (N, 28, 28) or (N, 28, 28, 1), got " +
                                 tq::detail::shape_text(x.shape));
        const std::size_t channels = x.shape.size() == 4 ? x.shape[3] : 1;
        auto batch = nn::tensor4<float>::from_shape({x.shape[0], x.shape[1], x.shape[2], channels});
        std::copy(x.values.begin(), x.values.end(), batch.data());
        const auto y = net.forward(batch);
        tq::write_npy(s.output, y.data(), {y.shape(0), y.size() / std::max<std::size_t>(y.shape(0), 1)});
        std::fprintf(stderr, "wrote the logits of %zu images to %s\n", std::size_t(y.shape(0)), s.output.c_str());
        return 0;
    }

    static const std::set<std::string> experiments{"sweep", "fractions", "layers",  "gradients", "sparsity",
                                                   "tqt",   "mixed",     "formats", "all",       "train"};
    if (!experiments.count(command)) throw tq::config_error("unknown command '" + command + "'");
    d.train = tq::data::load_fashion_mnist(tq::data::split::train, s.data);
    normalise(s, d.train.images.data(), d.train.images.size());
    st::results res(results_path);
    progress bar;
    auto wants = [&](std::string const& e) {
        return command == e || (command == "all" && std::find(chosen.begin(), chosen.end(), e) != chosen.end());
    };
    for (auto const& name : s.networks) {
        const auto net = float_network(s, name, d);
        if (command == "train") continue;
        bar.prefix = net.scope() + " ";
        st::evaluation_options eo;
        eo.threads = s.threads;
        eo.reuse_prefix = s.reuse;
        const auto t0 = std::chrono::steady_clock::now();
        st::evaluator search(net, d.test, {s.images, s.sample_seed}, eo);
        st::evaluator layers(net, d.test, {s.layer_images, s.sample_seed}, eo);
        std::fprintf(stderr, "%s: float accuracy %.4f on %zu images (%.4f on the %zu of the layer search), %.1f s\n",
                     net.scope().c_str(), search.float_accuracy(), search.images(), layers.float_accuracy(),
                     layers.images(), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        st::context ctx{net.scope(), search, res, part, s.seed, std::ref(bar)};
        st::context layer_ctx{net.scope(), layers, res, part, s.seed, std::ref(bar)};
        const auto train = training(s, name, d, s.gradient_epochs);
        if (wants("sweep")) st::rounding_sweep(ctx, p.sweep);
        if (wants("fractions")) st::best_fractions(ctx, p.fractions);
        if (wants("layers")) st::subunit_search(layer_ctx, p.layers);
        if (wants("gradients")) st::gradient_quantization(ctx, train, p.gradients);
        if (wants("sparsity")) st::sparsity(ctx, train, p.sparsity);
        if (wants("tqt")) st::tqt_retraining(ctx, train, p.tqt);
        if (wants("mixed")) st::mixed_precision(layer_ctx, p.mixed);
        if (wants("formats")) st::format_comparison(layer_ctx, p.formats);
    }
    std::fprintf(stderr, "records in %s\n", results_path.c_str());
    if (command == "all" && part.count == 1) {
        st::report_options ro;
        ro.thresholds = p.layers.thresholds;
        st::write_report(res.all(), out, s.plots, ro);
        std::ifstream txt(out / "report.txt");
        std::cout << txt.rdbuf();
        std::fprintf(stderr, "wrote %s\n", (out / "report.md").c_str());
    }
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    CLI::App app{"tensorquant-study: how few bits a network tolerates, where, and with which rounding "
                 "(the experiments of the TensorQuant papers)"};
    app.require_subcommand(1, 1);
    settings s;
    auto common = [&](CLI::App* c, bool predict) {
        c->add_option("--network", s.networks, "lenet5 or small_resnet (repeatable; default both)");
        c->add_option("--model", s.model, "an ONNX model to study instead (a CNN classifier of 28x28 grey images)");
        c->add_option("--mean", s.mean, "normalise the images: (x - mean) / std, x in [0, 1] (default none)");
        c->add_option("--std", s.std_dev, "see --mean");
        c->add_option("--weights", s.weights, "directory of the network's .npy weights (<scope>/<layer>/<name>.npy)");
        c->add_option("--data", s.data, "Fashion-MNIST directory")->capture_default_str();
        if (!predict) c->add_option("--images", s.images, "test images for the sweeps (0: all)")->capture_default_str();
        c->add_option("--layer-images", s.layer_images, "test images for the layer and mixed searches (0: all)")
            ->capture_default_str();
        c->add_option("--sample-seed", s.sample_seed, "draw the images with this seed (0: the first ones)");
        c->add_option("--threads", s.threads, "threads (0: every core)")->capture_default_str();
        if (!predict) c->add_option("--out", s.out, "output directory")->capture_default_str();
        c->add_option("--models", s.models, "where float checkpoints are kept (default OUT/models)");
        c->add_option("--shard", s.shard, "run shard k of N of each grid (k/N)")->capture_default_str();
        c->add_option("--results", s.results, "records file (default OUT/results.jsonl, OUT/results.KofN.jsonl)");
        c->add_option("--widths", s.widths, "word sizes: 4:20, 4:24:2 or 4,8,12");
        c->add_option("--roundings", s.roundings, "rounding methods of the sweep")->capture_default_str();
        c->add_option("--subunits", s.subunits, "subunits (scope prefixes, comma separated) for layers");
        c->add_option("--depth", s.depth, "subunit depth below the network scope")->capture_default_str();
        c->add_option("--frac-step", s.frac_step, "step of F in the layer search")->capture_default_str();
        c->add_option("--thresholds", s.thresholds, "relative accuracy thresholds")->capture_default_str();
        c->add_option("--epochs", s.epochs, "epochs of the float training (when no checkpoint)")->capture_default_str();
        c->add_option("--gradient-epochs", s.gradient_epochs, "epochs of each gradient and sparsity training")
            ->capture_default_str();
        c->add_option("--gradient-formats", s.gradient_formats, "gradient formats W,F;W,F")->capture_default_str();
        c->add_option("--tqt-epochs", s.tqt_epochs, "epochs of TQT retraining (at most 2)")->capture_default_str();
        c->add_option("--bits", s.bits, "TQT bit widths")->capture_default_str();
        c->add_option("--budget", s.budget, "mixed: stop at this average of bits (0: none)");
        c->add_option("--stop-below", s.stop_below, "mixed: stop below this relative accuracy")->capture_default_str();
        c->add_option("--formats", s.formats, "formats: LABEL=QUANTIZER;... (default MXFP4, NVFP4, INT4, ...)");
        c->add_option("--experiments", s.experiments, "what all runs")->capture_default_str();
        c->add_option("--seed", s.seed, "seed of networks, training and stochastic rounding")->capture_default_str();
        c->add_flag("!--no-plots", s.plots, "no gnuplot plots");
        c->add_flag("!--no-reuse", s.reuse,
                    "measure every point: recompute the float layers before a quantized subunit, and rerun wider words "
                    "that cannot differ");
    };
    std::string chosen;
    const std::vector<std::pair<char const*, char const*>> commands{
        {"sweep", "rounding methods against word size, F = W/2, intrinsic and extrinsic (figures 3 and 4)"},
        {"fractions", "best F per word size with the whole network quantized (tables 2 to 4)"},
        {"layers", "one subunit at a time: smallest (W, F) per accuracy threshold, bottleneck (tables 1, 5, 6)"},
        {"gradients", "training with quantized gradients (table 7)"},
        {"sparsity", "zeros in outputs, weights and gradients, per epoch and per word size (2018)"},
        {"tqt", "retraining with trained power-of-two thresholds at 8 and 4 bits (2019)"},
        {"mixed", "word size per layer under a budget by greedy search; the Pareto frontier"},
        {"formats", "MX, NVFP4 and block floating point against fixed point, one subunit at a time"},
        {"all", "every experiment, then the report"},
        {"train", "train (or reuse) the float networks only"},
        {"report", "tables (report.md, report.txt) and plots from the records"},
        {"predict", "logits of a .npy batch of images under given maps, as .npy"}};
    for (auto const& [name, help] : commands) {
        auto* c = app.add_subcommand(name, help);
        const bool predict = std::string(name) == "predict";
        common(c, predict);
        if (std::string(name) == "layers") c->add_flag("--list", s.list, "print the layers and scopes, and stop");
        if (std::string(name) == "report")
            c->add_option("--from", s.result_files, "records files (default: every .jsonl in OUT)");
        if (std::string(name) == "predict") {
            c->add_option("--maps", s.maps, "directory with intrinsic.json, extrinsic.json, weights.json");
            c->add_option("--intrinsic", s.intrinsic_map, "intrinsic map (JSON file)");
            c->add_option("--extrinsic", s.extrinsic_map, "extrinsic map (JSON file)");
            c->add_option("--weights-map", s.weights_map, "weight quantization map (JSON file)");
            c->add_option("--input,--images", s.input,
                          "inputs as .npy, float32: (N, 28, 28[, 1]) images, or an ONNX model's input (N, C, H, W)");
            c->add_option("--output,--out", s.output, "outputs as .npy: logits (N, 10), or the model's output");
        }
        c->callback([&chosen, name = std::string(name)] { chosen = name; });
    }
    if (argc > 1 && argv[1][0] != '-') {
        bool known = false;
        for (auto const& c : commands) known = known || std::string(argv[1]) == c.first;
        if (!known) {
            std::string list;
            for (auto const& c : commands) list += std::string(list.empty() ? "" : ", ") + c.first;
            std::fprintf(stderr, "tensorquant-study: unknown command '%s' (expected one of %s)\n", argv[1],
                         list.c_str());
            return 2;
        }
    }
    try {
        app.parse(argc, argv);
    } catch (CLI::CallForHelp const& e) {
        return app.exit(e);
    } catch (CLI::CallForAllHelp const& e) {
        return app.exit(e);
    } catch (CLI::ParseError const& e) {
        std::fprintf(stderr, "tensorquant-study: %s\n", e.what());
        return 2;
    }
    try {
        return run(chosen, s);
    } catch (tq::error const& e) {
        std::fprintf(stderr, "%stensorquant-study: %s\n", isatty(fileno(stderr)) ? "\r\033[K" : "", e.what());
        return 2;
    } catch (std::exception const& e) {
        std::fprintf(stderr, "%stensorquant-study: %s\n", isatty(fileno(stderr)) ? "\r\033[K" : "", e.what());
        return 1;
    }
}
