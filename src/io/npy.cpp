#include "io/npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "core/errors.h"

namespace densekv {

static const char kMagic[] = "\x93NUMPY";

void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  std::string dims;
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dims += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) dims += ",";
    if (i + 1 < shape.size()) dims += " ";
    n *= shape[i];
  }
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // magic (6) + version (2) + header length (2) + header + '\n', padded to a multiple of 64.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  if (header.size() > 65535) throw InvalidArgumentError("npy header too long for " + path);
  std::ofstream f(path, std::ios::binary);
  if (!f) throw FileFormatError("cannot open " + path + " for writing");
  f.write(kMagic, 6);
  const char version[2] = {1, 0};
  f.write(version, 2);
  uint16_t hlen = static_cast<uint16_t>(header.size());
  const char len_bytes[2] = {static_cast<char>(hlen & 0xff), static_cast<char>(hlen >> 8)};
  f.write(len_bytes, 2);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n * sizeof(float)));
  if (!f) throw FileFormatError("failed writing " + path);
}

// The value text of `key` in the header dict, e.g. "'<f4'" or "(3, 4)".
static std::string header_field(const std::string& header, const std::string& key,
                                const std::string& path) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) throw FileFormatError(path + ": npy header lacks '" + key + "'");
  size_t colon = header.find(':', k);
  size_t start = header.find_first_not_of(' ', colon + 1);
  size_t end = header[start] == '(' ? header.find(')', start) + 1 : header.find(',', start);
  if (colon == std::string::npos || start == std::string::npos || end == std::string::npos) {
    throw FileFormatError(path + ": malformed npy header");
  }
  return header.substr(start, end - start);
}

NpyArray read_npy_f32(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw FileFormatError("cannot open " + path);
  char pre[8];
  if (!f.read(pre, 8) || std::memcmp(pre, kMagic, 6) != 0) {
    throw FileFormatError(path + ": not a .npy file (bad magic)");
  }
  uint32_t hlen = 0;
  if (pre[6] == 1) {
    unsigned char b[2];
    f.read(reinterpret_cast<char*>(b), 2);
    hlen = b[0] | (b[1] << 8);
  } else if (pre[6] == 2 || pre[6] == 3) {
    unsigned char b[4];
    f.read(reinterpret_cast<char*>(b), 4);
    hlen = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  } else {
    throw FileFormatError(path + ": unsupported npy version " + std::to_string(int(pre[6])));
  }
  std::string header(hlen, '\0');
  if (!f.read(header.data(), hlen)) throw FileFormatError(path + ": truncated npy header");
  if (header_field(header, "descr", path) != "'<f4'") {
    throw FileFormatError(path + ": expected float32 ('<f4') data, got " +
                          header_field(header, "descr", path));
  }
  if (header_field(header, "fortran_order", path) != "False") {
    throw FileFormatError(path + ": Fortran-order arrays are not supported");
  }
  NpyArray a;
  std::string dims = header_field(header, "shape", path);
  std::stringstream ss(dims.substr(1, dims.size() - 2));
  std::string item;
  int64_t n = 1;
  while (std::getline(ss, item, ',')) {
    if (item.find_first_not_of(' ') == std::string::npos) continue;
    int64_t d = -1;
    try {
      d = std::stoll(item);
    } catch (const std::exception&) {
    }
    if (d < 0) throw FileFormatError(path + ": bad shape " + dims);
    a.shape.push_back(d);
    n *= d;
  }
  a.data.resize(static_cast<size_t>(n));
  if (!f.read(reinterpret_cast<char*>(a.data.data()), static_cast<std::streamsize>(n * 4))) {
    throw FileFormatError(path + ": truncated npy data (expected " + std::to_string(n) +
                          " floats)");
  }
  return a;
}

}  // namespace densekv
