// The ONNX component (tensorquant::onnx, needs libonnx and protobuf): the user's own
// network, imported from an ONNX file.
#pragma once

#include "onnx/load.hpp"
