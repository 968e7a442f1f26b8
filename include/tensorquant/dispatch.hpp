// Runtime dispatch of the bulk quantize to the widest SIMD kernels the CPU has, for
// programs built for a baseline such as generic x86-64.
//
// Why it needs help from the build: xsimd defines its AVX2 and AVX-512 batch types only in
// translation units compiled for those instruction sets, so a header cannot carry such
// kernels into a baseline translation unit. tensorquant_enable_dispatch(<target>) (CMake)
// adds two translation units to the target, compiled with -mavx2 -mfma and with the
// AVX-512 flags; each holds every built-in quantizer's kernels in its own ABI namespace
// (config.hpp) and offers them through a C table. dispatched_quantizer picks the table
// once, from xsimd::available_architectures(), and falls back to the including
// translation unit's own kernels (the baseline, or a user-defined quantizer). Results are
// bit-identical on every path (the SIMD and scalar kernels are one code).
#pragma once

#include "apply.hpp"
#include "config.hpp"
#include "parse.hpp"

#include <cstdint>
#include <memory>
#include <span>
#include <string>

extern "C" {
// One instruction set's kernels. make parses a quantizer string (seeded by seed, stream)
// into an opaque handle; run applies it.
struct tensorquant_dispatch_table
{
    char const* name;
    void* (*make)(char const* spec, std::uint64_t seed, std::uint64_t stream);
    void (*destroy)(void* handle);
    void (*run_float)(void const* handle, float const* in, float* out, std::size_t n, std::uint64_t index_offset,
                      unsigned threads);
    void (*run_double)(void const* handle, double const* in, double* out, std::size_t n, std::uint64_t index_offset,
                       unsigned threads);
};
#if defined(TENSORQUANT_DISPATCH_X86)
tensorquant_dispatch_table const* tensorquant_dispatch_avx2();
tensorquant_dispatch_table const* tensorquant_dispatch_avx512();
#endif
}

namespace tensorquant::inline TENSORQUANT_ABI {

namespace detail {
// The rng key a built-in quantizer was made with (none for the deterministic ones).
inline rng_key key_of(any_quantizer const& q)
{
    return std::visit(
        [](auto const& x) -> rng_key {
            if constexpr (requires { x.key(); })
                return x.key();
            else if constexpr (requires { x.key; })
                return x.key;
            else
                return {};
        },
        q.get());
}

inline tensorquant_dispatch_table const* best_table() noexcept
{
#if defined(TENSORQUANT_DISPATCH_X86)
    const auto a = xsimd::available_architectures();
    if (a.avx512bw && a.avx512dq && a.avx512cd) return tensorquant_dispatch_avx512();
    if (a.avx2 && a.fma3_avx2) return tensorquant_dispatch_avx2();
#endif
    return nullptr;
}
} // namespace detail

class dispatched_quantizer
{
public:
    explicit dispatched_quantizer(any_quantizer q) : q_(std::move(q))
    {
        if (std::holds_alternative<user_quantizer>(q_.get())) return; // runs where it was compiled
        if (auto const* t = detail::best_table()) {
            const rng_key k = detail::key_of(q_);
            handle_ = std::shared_ptr<void>(t->make(q_.to_string().c_str(), k.seed, k.stream), t->destroy);
            table_ = t;
        }
    }

    // The instruction set the kernels run with: "avx512", "avx2", or "baseline".
    std::string_view instruction_set() const noexcept { return table_ ? table_->name : "baseline"; }
    any_quantizer const& quantizer() const noexcept { return q_; }

    template <std::floating_point T>
    void operator()(std::span<T const> in, std::span<T> out, apply_options const& opt = {}) const
    {
        if (in.size() != out.size())
            throw usage_error("quantize: input has " + std::to_string(in.size()) + " elements, output " +
                              std::to_string(out.size()));
        if (!table_) {
            quantize(q_, in, out, opt);
            return;
        }
        if constexpr (sizeof(T) == 4)
            table_->run_float(handle_.get(), in.data(), out.data(), in.size(), opt.index_offset, opt.threads);
        else
            table_->run_double(handle_.get(), in.data(), out.data(), in.size(), opt.index_offset, opt.threads);
    }

private:
    any_quantizer q_;
    tensorquant_dispatch_table const* table_ = nullptr;
    std::shared_ptr<void> handle_;
};

} // namespace tensorquant::inline TENSORQUANT_ABI
