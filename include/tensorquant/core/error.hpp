// The errors tensorquant throws. Every one derives from tensorquant::error, so a caller
// can catch them all in one place; the subclasses say which kind of problem it was.
// Context (a file, a key, a layer) is added by rethrowing the same kind with a longer
// message, never by changing the type: a bad quantizer string inside a JSON map is still a
// parse_error, whose message names the file and the key.
#pragma once

#include "../config.hpp"

#include <stdexcept>
#include <string>
#include <utility>

namespace tensorquant::inline TENSORQUANT_ABI {

class error : public std::runtime_error
{
public:
    using std::runtime_error::runtime_error;
    // Throws an error of the same dynamic type whose message is "context: message".
    [[noreturn]] virtual void rethrow_with_context(std::string const& context) const = 0;
};

namespace detail {
template <class Derived>
class error_kind : public error
{
public:
    using error::error;
    [[noreturn]] void rethrow_with_context(std::string const& context) const override
    {
        throw Derived(context + ": " + what());
    }
};
} // namespace detail

// A quantizer format that cannot exist (W = 0, F outside its range, a format wider than
// the storage type). The message names the parameter and the value.
class format_error : public detail::error_kind<format_error>
{
public:
    using error_kind::error_kind;
};

// A quantizer string (TensorQuant's "nearest,8,4" form) that cannot be parsed.
class parse_error : public detail::error_kind<parse_error>
{
public:
    using error_kind::error_kind;
};

// Tensors whose shapes do not fit an operation, or a parameter tensor of the wrong shape.
// The message names the layer (when there is one) and both shapes.
class shape_error : public detail::error_kind<shape_error>
{
public:
    using error_kind::error_kind;
};

// A file that cannot be read or is malformed (.npy tensors, JSON maps, IDX data). The
// message names the file and what is wrong with it.
class file_error : public detail::error_kind<file_error>
{
public:
    using error_kind::error_kind;
};

// A network configuration that refers to something that does not exist (a scope that
// matches no layer, a quantizer a layer cannot use).
class config_error : public detail::error_kind<config_error>
{
public:
    using error_kind::error_kind;
};

// An operation of a number type that has no result in its format and no NaN to give
// (integer storage: division by zero, the square root of a negative number, NaN input).
class arithmetic_error : public detail::error_kind<arithmetic_error>
{
public:
    using error_kind::error_kind;
};

// A call whose arguments do not fit each other (spans of different lengths, an axis the
// tensor does not have).
class usage_error : public detail::error_kind<usage_error>
{
public:
    using error_kind::error_kind;
};

// A model that uses an operator or a feature the library does not have (an ONNX node it
// cannot import). The message names the node and says what is supported.
class unsupported_error : public detail::error_kind<unsupported_error>
{
public:
    using error_kind::error_kind;
};

namespace detail {
// Runs fn; a tensorquant::error escaping it is rethrown, same type, with the context.
template <class Fn>
decltype(auto) with_error_context(std::string const& context, Fn&& fn)
{
    try {
        return std::forward<Fn>(fn)();
    } catch (error const& e) {
        e.rethrow_with_context(context);
        throw; // not reached; GCC does not see a [[noreturn]] virtual as ending the function
    }
}
} // namespace detail

} // namespace tensorquant::inline TENSORQUANT_ABI
