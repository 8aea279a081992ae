// libFuzzer target: parse_safetensors on arbitrary bytes must either return tensors whose byte
// ranges lie inside the input, or throw densekv::Error; never crash, read out of bounds (ASan) or
// hit undefined behaviour (UBSan). Run with scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>

#include "core/errors.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    for (const densekv::TensorInfo& t :
         densekv::parse_safetensors(data, size, "fuzz.safetensors")) {
      if (t.nbytes == 0) continue;
      // Touch the first and last byte: ASan reports a range that leaves the input buffer.
      const auto* p = static_cast<const volatile uint8_t*>(t.data);
      (void)p[0];
      (void)p[t.nbytes - 1];
      if (t.numel() * static_cast<int64_t>(densekv::dtype_size(t.dtype)) !=
          static_cast<int64_t>(t.nbytes)) {
        __builtin_trap();
      }
    }
  } catch (const densekv::Error&) {
  }
  return 0;
}
