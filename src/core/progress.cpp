#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace densekv {

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 1)),
      enabled_(isatty(STDERR_FILENO) == 1) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
  if (enabled_) draw(false);
}

Progress::~Progress() {
  finish();
}

void Progress::advance(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  done_ = std::min(done_ + n, total_);
  auto now = std::chrono::steady_clock::now();
  if (enabled_ && !finished_ && now - last_draw_ >= std::chrono::milliseconds(100)) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  finished_ = true;
  if (enabled_) draw(true);
}

void Progress::draw(bool final) {
  constexpr int kWidth = 30;
  const double frac = static_cast<double>(done_) / static_cast<double>(total_);
  const int filled = static_cast<int>(frac * kWidth);
  char bar[kWidth + 1];
  for (int i = 0; i < kWidth; ++i) bar[i] = i < filled ? '#' : '.';
  bar[kWidth] = '\0';
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double gb = 1e9;
  std::fprintf(stderr, "\r%s [%s] %3d%%  %.2f/%.2f GB  %.1fs\033[K%s", label_.c_str(), bar,
               static_cast<int>(frac * 100), done_ / gb, total_ / gb, secs, final ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace densekv
