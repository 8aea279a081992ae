#include "text/byte_level.h"

#include <array>

#include "text/utf8.h"

namespace densekv {
namespace {

struct Tables {
  std::array<uint32_t, 256> to_cp{};     // byte -> code point
  std::array<int16_t, 512> from_cp{};    // code point (< 512) -> byte, or -1
  std::array<std::string, 256> encoded;  // byte -> UTF-8 of its code point

  Tables() {
    from_cp.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
      from_cp[to_cp[b]] = static_cast<int16_t>(b);
      utf8_append(to_cp[b], encoded[b]);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

uint32_t byte_level_codepoint(uint8_t b) {
  return tables().to_cp[b];
}

void byte_level_encode(std::string_view bytes, std::string& out) {
  const Tables& t = tables();
  for (char c : bytes) out += t.encoded[static_cast<uint8_t>(c)];
}

void byte_level_decode(std::string_view token, std::string& out) {
  const Tables& t = tables();
  size_t mark = out.size();
  size_t i = 0;
  while (i < token.size()) {
    size_t n = utf8_sequence_length(token, i);
    int byte = -1;
    if (n != 0) {
      size_t len = 0;
      uint32_t cp = utf8_decode(token, i, &len);
      if (cp < t.from_cp.size()) byte = t.from_cp[cp];
    }
    if (byte < 0) {  // not a byte-level symbol: keep the token text as it is
      out.resize(mark);
      out.append(token);
      return;
    }
    out.push_back(static_cast<char>(byte));
    i += n;
  }
}

}  // namespace densekv
