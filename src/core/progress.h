// A one-line progress bar on stderr, drawn only when stderr is a terminal (so logs and pipes stay
// clean). Thread-safe: several loader threads may call advance().
//   Progress p("loading weights", total_bytes); ... p.advance(n); ... p.finish();
#pragma once
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace densekv {

class Progress {
 public:
  Progress(std::string label, int64_t total_bytes);
  ~Progress();  // finish() if not called (e.g. on an exception)
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void advance(int64_t n);
  void finish();  // draws 100% and ends the line
  bool enabled() const { return enabled_; }

 private:
  void draw(bool final);  // caller holds mu_

  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  std::mutex mu_;
};

}  // namespace densekv
