// Threads for the layers' kernels. The count is a setting of the calling thread
// (nn::compute_threads), so a study that already runs one network per worker keeps one
// thread per worker. Work is cut into tasks whose results depend only on the task (an
// image, a row of output pixels), never on the worker that ran it, so every thread count
// gives the same bits.
#pragma once

#include "../../config.hpp"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <thread>
#include <vector>

namespace tensorquant::inline TENSORQUANT_ABI::nn {

namespace kernels {
inline unsigned& thread_setting() noexcept
{
    thread_local unsigned threads = 1;
    return threads;
}
} // namespace kernels

// The layers run by this thread use `threads` threads (0: one per hardware thread) while
// the scope lives; workers themselves run single-threaded.
class compute_threads
{
public:
    explicit compute_threads(unsigned threads) noexcept : previous_(kernels::thread_setting())
    {
        if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
        kernels::thread_setting() = threads;
    }
    ~compute_threads() { kernels::thread_setting() = previous_; }
    compute_threads(compute_threads const&) = delete;
    compute_threads& operator=(compute_threads const&) = delete;

private:
    unsigned previous_;
};

namespace kernels {

// fn(task, worker) for every task in [0, tasks), workers taking the next task when free;
// the first exception is rethrown once all have stopped.
template <class Fn>
void parallel_for(std::size_t tasks, Fn&& fn)
{
    const unsigned threads = unsigned(std::min<std::size_t>(thread_setting(), tasks));
    if (threads <= 1) {
        for (std::size_t t = 0; t < tasks; ++t) fn(t, 0u);
        return;
    }
    std::atomic<std::size_t> next{0};
    std::vector<std::exception_ptr> errors(threads);
    auto work = [&](unsigned worker) {
        try {
            for (std::size_t t; (t = next.fetch_add(1)) < tasks;) fn(t, worker);
        } catch (...) {
            errors[worker] = std::current_exception();
            next = tasks;
        }
    };
    std::vector<std::thread> pool;
    pool.reserve(threads - 1);
    for (unsigned w = 1; w < threads; ++w) pool.emplace_back(work, w);
    work(0);
    for (auto& t : pool) t.join();
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

// The number of workers parallel_for(tasks, ...) may use: per-worker scratch is sized by it.
inline unsigned worker_count(std::size_t tasks) noexcept
{
    return unsigned(std::max<std::size_t>(1, std::min<std::size_t>(thread_setting(), tasks)));
}

} // namespace kernels
} // namespace tensorquant::inline TENSORQUANT_ABI::nn
