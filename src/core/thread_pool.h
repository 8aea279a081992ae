// A small fixed pool of worker threads for data-parallel loops (the CPU backend's ops).
// parallel_for splits [0, n) into contiguous ranges, runs them on the workers and the calling
// thread, and returns when all are done. Calls from several threads at once are serialized.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace densekv {

class ThreadPool {
 public:
  // n_threads <= 0: one per hardware thread. The calling thread counts as one of them.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(begin, end) over disjoint ranges covering [0, n); at least `grain` items per range.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);

 private:
  void worker_loop(int index);

  int n_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one parallel_for at a time
  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int n_chunks_ = 0;
  int next_chunk_ = 0;
  int chunks_done_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

}  // namespace densekv
