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

} // namespace tensorquant
