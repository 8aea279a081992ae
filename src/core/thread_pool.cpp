#include "core/thread_pool.h"

#include <algorithm>

namespace densekv {

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0)
    n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  n_threads_ = n_threads;
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

// Chunk c of n items split into n_chunks: [c * n / n_chunks, (c + 1) * n / n_chunks).
static void run_chunk(const std::function<void(int64_t, int64_t)>& fn, int64_t n, int n_chunks,
                      int c) {
  int64_t begin = n * c / n_chunks;
  int64_t end = n * (c + 1) / n_chunks;
  if (begin < end) fn(begin, end);
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                              int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int n_chunks = static_cast<int>(std::min<int64_t>(n_threads_, (n + grain - 1) / grain));
  if (n_chunks <= 1) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fn_ = &fn;
    n_ = n;
    n_chunks_ = n_chunks;
    next_chunk_ = 0;
    chunks_done_ = 0;
    ++generation_;
  }
  work_cv_.notify_all();
  // The calling thread takes chunks too.
  for (;;) {
    int c;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (next_chunk_ >= n_chunks_) break;
      c = next_chunk_++;
    }
    run_chunk(fn, n, n_chunks, c);
    std::lock_guard<std::mutex> lock(mutex_);
    ++chunks_done_;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  done_cv_.wait(lock, [&] { return chunks_done_ == n_chunks_; });
  fn_ = nullptr;
}

void ThreadPool::worker_loop(int /*index*/) {
  uint64_t seen = 0;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || (generation_ != seen && next_chunk_ < n_chunks_); });
    if (stop_) return;
    seen = generation_;
    while (next_chunk_ < n_chunks_) {
      int c = next_chunk_++;
      const auto* fn = fn_;
      int64_t n = n_;
      int n_chunks = n_chunks_;
      lock.unlock();
      run_chunk(*fn, n, n_chunks, c);
      lock.lock();
      if (++chunks_done_ == n_chunks_) done_cv_.notify_all();
    }
  }
}

}  // namespace densekv
