// Typed exceptions for load and request validation. Each message names the problem and the fix.
// Broken internal invariants use CHECK (check.h) instead and abort.
#pragma once
#include <stdexcept>
#include <string>

namespace densekv {

// Base of every expected, user-facing failure.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A model folder we cannot serve correctly (unknown architecture, bad head_dim, quantized weights,
// missing tensor, ...). `densekv check` and every start exit 2 with this message.
struct UnsupportedModelError : Error {
  using Error::Error;
};

// A file that is corrupt, truncated or unreadable (safetensors, config.json, tokenizer.json).
struct FileFormatError : Error {
  using Error::Error;
};

// Bad command-line or request input (the HTTP layer maps it to a 400).
struct InvalidArgumentError : Error {
  using Error::Error;
};

}  // namespace densekv
