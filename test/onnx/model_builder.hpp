// Building small ONNX models in tests with ONNX's own protobuf classes (no PyTorch in CI).
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace tq_test {

struct model_builder
{
    ::onnx::ModelProto m;
    std::mt19937 rng{12345};

    explicit model_builder(int opset)
    {
        m.set_ir_version(opset >= 13 ? 7 : 5);
        m.set_producer_name("tensorquant tests");
        auto* o = m.add_opset_import();
        o->set_domain("");
        o->set_version(opset);
    }
    ::onnx::GraphProto& g() { return *m.mutable_graph(); }

    static void set_type(::onnx::ValueInfoProto* v, std::vector<std::int64_t> const& shape,
                         int element_type = ::onnx::TensorProto::FLOAT)
    {
        auto* t = v->mutable_type()->mutable_tensor_type();
        t->set_elem_type(element_type);
        for (auto d : shape) {
            auto* dim = t->mutable_shape()->add_dim();
            if (d < 0)
                dim->set_dim_param("N");
            else
                dim->set_dim_value(d);
        }
    }
    void input(std::string const& name, std::vector<std::int64_t> const& shape,
               int element_type = ::onnx::TensorProto::FLOAT)
    {
        auto* v = g().add_input();
        v->set_name(name);
        set_type(v, shape, element_type);
    }
    void output(std::string const& name)
    {
        g().add_output()->set_name(name);
        set_type(g().mutable_output(0), {});
    }
    // An initializer of the given values, or of random ones in [lo, hi].
    std::vector<float> init(std::string const& name, std::vector<std::int64_t> const& shape, float lo = -1,
                            float hi = 1)
    {
        std::int64_t n = 1;
        for (auto d : shape) n *= d;
        std::uniform_real_distribution<float> u(lo, hi);
        std::vector<float> v(static_cast<std::size_t>(n));
        for (auto& x : v) x = u(rng);
        init_values(name, shape, v);
        return v;
    }
    void init_values(std::string const& name, std::vector<std::int64_t> const& shape, std::vector<float> const& v)
    {
        auto* t = g().add_initializer();
        t->set_name(name);
        t->set_data_type(::onnx::TensorProto::FLOAT);
        for (auto d : shape) t->add_dims(d);
        for (float x : v) t->add_float_data(x);
    }
    // A float initializer in raw_data (as exporters write large ones).
    void init_raw(std::string const& name, std::vector<std::int64_t> const& shape, std::vector<float> const& v)
    {
        auto* t = g().add_initializer();
        t->set_name(name);
        t->set_data_type(::onnx::TensorProto::FLOAT);
        for (auto d : shape) t->add_dims(d);
        t->mutable_raw_data()->assign(reinterpret_cast<char const*>(v.data()), v.size() * sizeof(float));
    }
    // An integer initializer (INT8, UINT8, INT32: ONNX keeps them in int32_data).
    void init_ints(std::string const& name, std::vector<std::int64_t> const& shape, int element_type,
                   std::vector<std::int32_t> const& v)
    {
        auto* t = g().add_initializer();
        t->set_name(name);
        t->set_data_type(element_type);
        for (auto d : shape) t->add_dims(d);
        for (auto x : v) t->add_int32_data(x);
    }
    ::onnx::NodeProto& node(std::string const& op, std::string const& name, std::vector<std::string> const& in,
                            std::string const& out)
    {
        auto* n = g().add_node();
        n->set_op_type(op);
        n->set_name(name);
        for (auto const& i : in) n->add_input(i);
        n->add_output(out);
        return *n;
    }
};

inline void set_ints(::onnx::NodeProto& n, std::string const& name, std::vector<std::int64_t> const& v)
{
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(::onnx::AttributeProto::INTS);
    for (auto x : v) a->add_ints(x);
}
inline void set_int(::onnx::NodeProto& n, std::string const& name, std::int64_t v)
{
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(::onnx::AttributeProto::INT);
    a->set_i(v);
}
inline void set_float(::onnx::NodeProto& n, std::string const& name, float v)
{
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(::onnx::AttributeProto::FLOAT);
    a->set_f(v);
}

} // namespace tq_test
