// The ONNX importer: a one-node model (Relu) built with ONNX's protobuf classes, imported
// and run.
#include <tensorquant/onnx.hpp>

#include <cstdio>

int main()
{
    namespace tq = tensorquant;
    ::onnx::ModelProto m;
    m.set_ir_version(7);
    m.add_opset_import()->set_version(13);
    auto* g = m.mutable_graph();
    auto* in = g->add_input();
    in->set_name("x");
    auto* t = in->mutable_type()->mutable_tensor_type();
    t->set_elem_type(::onnx::TensorProto::FLOAT);
    for (int d : {1, 4}) t->mutable_shape()->add_dim()->set_dim_value(d);
    auto* n = g->add_node();
    n->set_op_type("Relu");
    n->set_name("/act/Relu");
    n->add_input("x");
    n->add_output("y");
    g->add_output()->set_name("y");
    auto model = tq::onnx::from_proto(m, "inline");
    xt::xarray<float> x = {{-1.0f, 2.0f, -3.0f, 4.0f}};
    const auto y = model.run(x);
    const bool ok = model.net.find("model/act") == 0 && y == xt::xarray<float>{{0.0f, 2.0f, 0.0f, 4.0f}};
    std::printf("consumer (onnx): %s\n", ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
