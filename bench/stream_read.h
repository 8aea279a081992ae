// A streaming read of device memory: the simplest kernel that reads a given number of bytes (each
// byte once, 16-byte loads, nothing written back), the roofline a decode attention launch of the
// same bytes is compared with (bench/attention_bench.cpp): it has the launch, ramp-up and drain
// of one kernel and no other cost.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace densekv {

// Reads bytes (a multiple of 16) at src (16-byte aligned) on `stream`; `sink` (one word of device
// memory) is written only if the bytes XOR to a value they never do here, so that the loads stay.
void stream_read(const void* src, size_t bytes, unsigned* sink, int sm_count, cudaStream_t stream);

}  // namespace densekv
