// Lockstep emulation of one CUDA warp on the host, for the fragment test: 32 threads run the same
// __host__ __device__ warp function; the warp primitives of kv_fragments.cuh (lane/warp index,
// shuffles, ldmatrix with and without .trans, mma.sync m16n8k16, movmatrix, vote.any) exchange
// operands through shared slots between two barriers, with the PTX ISA's fragment layouts. Include
// in exactly one .cu.
#pragma once
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "backend/cuda/kv_fragments.cuh"

namespace densekv::cuda::warp_emu {

// A reusable barrier of 32 threads (C++17: no std::barrier in the .cu standard).
class Barrier {
 public:
  void arrive_and_wait() {
    std::unique_lock lk(mu_);
    const uint64_t gen = gen_;
    if (++count_ == 32) {
      count_ = 0;
      ++gen_;
      cv_.notify_all();
    } else {
      cv_.wait(lk, [&] { return gen_ != gen; });
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
  uint64_t gen_ = 0;
};

struct WarpSim {
  explicit WarpSim(int w) : warp_index(w) {}
  Barrier bar;
  int warp_index;
  const void* addr[32] = {};
  float fv[32] = {};
  uint32_t a[32][4] = {}, b[32][2] = {};
};

inline thread_local int t_lane = 0;
inline thread_local WarpSim* t_sim = nullptr;

int lane() {
  return t_lane;
}
int warp() {
  return t_sim->warp_index;
}

float shfl(float v, int src_lane) {
  WarpSim& s = *t_sim;
  s.fv[t_lane] = v;
  s.bar.arrive_and_wait();
  const float r = s.fv[src_lane];
  s.bar.arrive_and_wait();
  return r;
}

// count 8x8 b16 matrices; matrix j's row r comes from the address of lane 8j + r. Without .trans
// lane l gets word l % 4 of row l / 4; with .trans the 16-bit column l / 4 of rows 2(l % 4)
// (low half) and 2(l % 4) + 1 (high half).
void ldsm(uint32_t* r, const void* p, int count, bool trans) {
  WarpSim& s = *t_sim;
  const int l = t_lane;
  s.addr[l] = p;
  s.bar.arrive_and_wait();
  for (int j = 0; j < count; ++j) {
    if (!trans) {
      std::memcpy(&r[j], static_cast<const uint8_t*>(s.addr[8 * j + l / 4]) + 4 * (l % 4), 4);
    } else {
      uint16_t lo, hi;
      std::memcpy(&lo, static_cast<const uint8_t*>(s.addr[8 * j + 2 * (l % 4)]) + 2 * (l / 4), 2);
      std::memcpy(&hi, static_cast<const uint8_t*>(s.addr[8 * j + 2 * (l % 4) + 1]) + 2 * (l / 4),
                  2);
      r[j] = lo | (static_cast<uint32_t>(hi) << 16);
    }
  }
  s.bar.arrive_and_wait();
}

inline float elem16(uint32_t w, int hi, bool bf16) {
  const uint16_t h = static_cast<uint16_t>(hi ? w >> 16 : w & 0xffff);
  if (bf16) {
    const uint32_t x = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &x, 4);
    return f;
  }
  return h16_to_f32(h);
}

// D[16x8] += A[16x16] B[16x8], fragments as in the PTX ISA (see mma_16816).
void mma(float* d, const uint32_t* a, const uint32_t* b, bool bf16) {
  WarpSim& s = *t_sim;
  const int l = t_lane;
  std::memcpy(s.a[l], a, 16);
  std::memcpy(s.b[l], b, 8);
  s.bar.arrive_and_wait();
  float A[16][16], B[16][8];
  for (int L = 0; L < 32; ++L) {
    const int g = L >> 2, t = L & 3;
    for (int hi = 0; hi < 2; ++hi) {
      A[g][2 * t + hi] = elem16(s.a[L][0], hi, bf16);
      A[g + 8][2 * t + hi] = elem16(s.a[L][1], hi, bf16);
      A[g][2 * t + 8 + hi] = elem16(s.a[L][2], hi, bf16);
      A[g + 8][2 * t + 8 + hi] = elem16(s.a[L][3], hi, bf16);
      B[2 * t + hi][g] = elem16(s.b[L][0], hi, bf16);
      B[2 * t + 8 + hi][g] = elem16(s.b[L][1], hi, bf16);
    }
  }
  const int g = l >> 2, t = l & 3;
  for (int i = 0; i < 4; ++i) {
    const int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
    double acc = d[i];
    for (int k = 0; k < 16; ++k) acc += static_cast<double>(A[row][k]) * B[k][col];
    d[i] = static_cast<float>(acc);
  }
  s.bar.arrive_and_wait();
}

// movmatrix.m8n8.trans.b16: lane (g, t) holds row g, columns 2t, 2t + 1 of M; it gets row g of
// M^T: M[2t][g] (low half) and M[2t + 1][g] (high half); M[r][c] is half c % 2 of lane (r, c / 2).
uint32_t movmatrix_t(uint32_t x) {
  WarpSim& s = *t_sim;
  const int l = t_lane, g = l >> 2, t = l & 3;
  s.b[l][0] = x;
  s.bar.arrive_and_wait();
  const int sh = 16 * (g % 2);
  const uint32_t lo = (s.b[4 * (2 * t) + g / 2][0] >> sh) & 0xffffu;
  const uint32_t hi = (s.b[4 * (2 * t + 1) + g / 2][0] >> sh) & 0xffffu;
  s.bar.arrive_and_wait();
  return lo | (hi << 16);
}

bool any(bool p) {
  WarpSim& s = *t_sim;
  s.fv[t_lane] = p ? 1.0f : 0.0f;
  s.bar.arrive_and_wait();
  bool r = false;
  for (int l = 0; l < 32; ++l) r = r || s.fv[l] != 0.0f;
  s.bar.arrive_and_wait();
  return r;
}

// Runs fn(lane) on the 32 lanes of warp `w` in lockstep.
inline void run_warp(int w, const std::function<void()>& fn) {
  WarpSim sim(w);
  std::vector<std::thread> lanes;
  for (int l = 0; l < 32; ++l) {
    lanes.emplace_back([&, l] {
      t_lane = l;
      t_sim = &sim;
      fn();
    });
  }
  for (auto& th : lanes) th.join();
}

}  // namespace densekv::cuda::warp_emu
