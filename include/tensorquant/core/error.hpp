#pragma once

#include <stdexcept>
#include <string>

namespace tensorquant {

// A quantizer format given at run time that cannot exist (for instance W = 0, or F
// outside its documented range). The message names the parameter and the value.
class format_error : public std::invalid_argument
{
public:
    using std::invalid_argument::invalid_argument;
};

// A quantizer string (TensorQuant's "nearest,8,4" form) that cannot be parsed.
class parse_error : public std::invalid_argument
{
public:
    using std::invalid_argument::invalid_argument;
};

// Tensors whose shapes do not fit a layer, or a parameter tensor of the wrong shape. The
// message names the layer (when there is one) and both shapes.
class shape_error : public std::invalid_argument
{
public:
    using std::invalid_argument::invalid_argument;
};

// A file that cannot be read or is malformed (.npy tensors, JSON quantizer maps). The
// message names the file and what is wrong with it.
class file_error : public std::runtime_error
{
public:
    using std::runtime_error::runtime_error;
};

// A network configuration that refers to something that does not exist (a scope that
// matches no layer, a quantizer a layer cannot use).
class config_error : public std::invalid_argument
{
public:
    using std::invalid_argument::invalid_argument;
};

} // namespace tensorquant
