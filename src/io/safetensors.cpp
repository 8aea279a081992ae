#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/errors.h"

namespace densekv {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference implementation allows 100 MB

// Every dtype name the safetensors format defines, with its element size in bits: the ones we
// cannot compute with are named in an UnsupportedModelError, anything else is a corrupt file.
int foreign_dtype_bits(const std::string& name) {
  static const std::pair<const char*, int> kDtypes[] = {
      {"BOOL", 8}, {"U8", 8},      {"I8", 8},      {"F8_E4M3", 8}, {"F8_E5M2", 8}, {"F8_E8M0", 8},
      {"F4", 4},   {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"I16", 16},    {"U16", 16},    {"I32", 32},
      {"U32", 32}, {"I64", 64},    {"U64", 64},    {"F64", 64},    {"C64", 64},
  };
  for (const auto& [n, bits] : kDtypes) {
    if (name == n) return bits;
  }
  return 0;
}

bool parse_dtype(const std::string& name, DType* out) {
  if (name == "BF16")
    *out = DType::BF16;
  else if (name == "F16")
    *out = DType::F16;
  else if (name == "F32")
    *out = DType::F32;
  else
    return false;
  return true;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ","));
}

// A non-negative JSON integer, or -1.
int64_t as_index(const json& v) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    return u > static_cast<uint64_t>(INT64_MAX) ? -1 : static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>() >= 0 ? v.get<int64_t>() : -1;
  return -1;
}

const char* safetensors_dtype(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
  }
  return "?";
}

TensorInfo parse_entry(const std::string& name, const json& e, size_t data_size,
                       const std::string& file) {
  auto bad = [&](const std::string& what) {
    return FileFormatError(fmt::format("{}: tensor '{}' {}", file, name, what));
  };
  if (!e.is_object()) throw bad("is not a JSON object {dtype, shape, data_offsets}");
  TensorInfo t;
  t.name = name;
  t.file = file;

  auto dt = e.find("dtype");
  if (dt == e.end() || !dt->is_string()) throw bad("has no \"dtype\" string");
  const std::string dname = dt->get<std::string>();
  if (!parse_dtype(dname, &t.dtype)) {
    if (foreign_dtype_bits(dname) == 0) throw bad(fmt::format("has unknown dtype '{}'", dname));
    throw UnsupportedModelError(fmt::format(
        "tensor '{}' in {} has dtype {}: quantized or non-float weights are not supported "
        "(supported: BF16, F16, F32); use the unquantized bfloat16/float16 checkpoint",
        name, file, dname));
  }

  auto sh = e.find("shape");
  if (sh == e.end() || !sh->is_array()) throw bad("has no \"shape\" array");
  uint64_t numel = 1;
  bool overflow = false, has_zero = false;
  for (const json& d : *sh) {
    int64_t v = as_index(d);
    if (v < 0) {
      throw bad(fmt::format("has a shape entry {} that is not a non-negative integer", d.dump()));
    }
    t.shape.push_back(v);
    has_zero = has_zero || v == 0;
    overflow = overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(v), &numel);
  }
  uint64_t nbytes = 0;
  overflow = overflow || __builtin_mul_overflow(numel, dtype_size(t.dtype), &nbytes);
  if (has_zero) nbytes = 0, overflow = false;  // a zero dimension wins over any overflow
  if (overflow) throw bad(fmt::format("has shape {} that is too large", shape_str(t.shape)));

  auto off = e.find("data_offsets");
  if (off == e.end() || !off->is_array() || off->size() != 2 || as_index((*off)[0]) < 0 ||
      as_index((*off)[1]) < 0) {
    throw bad("has no \"data_offsets\" [begin, end] pair of non-negative integers");
  }
  const uint64_t begin = static_cast<uint64_t>(as_index((*off)[0]));
  const uint64_t end = static_cast<uint64_t>(as_index((*off)[1]));
  if (begin > end || end > data_size) {
    throw bad(
        fmt::format("data_offsets [{}, {}] are outside the data section of {} bytes "
                    "(file truncated?)",
                    begin, end, data_size));
  }
  if (end - begin != nbytes) {
    throw bad(fmt::format("data_offsets [{}, {}] do not match shape {} x {} = {} bytes", begin, end,
                          shape_str(t.shape), safetensors_dtype(t.dtype), nbytes));
  }
  t.offset = begin;
  t.nbytes = nbytes;
  return t;
}

// Opens and maps `path` read-only; returns the mapping (null for an empty file) and its size.
void* map_file(const std::string& path, size_t* size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw FileFormatError(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw FileFormatError(fmt::format("{} is not a regular file", path));
  }
  *size = static_cast<size_t>(st.st_size);
  if (*size == 0) {
    ::close(fd);
    throw FileFormatError(fmt::format("{}: empty file (expected a safetensors header)", path));
  }
  void* p = ::mmap(nullptr, *size, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (p == MAP_FAILED)
    throw FileFormatError(fmt::format("cannot map {}: {}", path, std::strerror(err)));
  return p;
}

}  // namespace

int64_t TensorInfo::numel() const {
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // no overflow: the parser checked numel x dtype size
  return n;
}

std::vector<TensorInfo> parse_safetensors(const uint8_t* bytes, size_t size,
                                          const std::string& file) {
  if (size < 8) {
    throw FileFormatError(
        fmt::format("{}: file of {} bytes is too short for a safetensors header "
                    "(empty or truncated file)",
                    file, size));
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];  // little-endian u64
  if (n > kMaxHeaderBytes) {
    throw FileFormatError(
        fmt::format("{}: header length {} is larger than 100 MB: not a "
                    "safetensors file",
                    file, n));
  }
  if (n > size - 8) {
    throw FileFormatError(
        fmt::format("{}: header length {} runs past the end of the file "
                    "({} bytes): truncated or not a safetensors file",
                    file, n, size));
  }
  const char* text = reinterpret_cast<const char*>(bytes + 8);
  json header = json::parse(text, text + n, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) {
    throw FileFormatError(fmt::format("{}: header is not valid JSON", file));
  }
  if (!header.is_object())
    throw FileFormatError(fmt::format("{}: header is not a JSON object", file));

  const uint8_t* data = bytes + 8 + n;
  const size_t data_size = size - 8 - n;
  std::vector<TensorInfo> tensors;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      bool ok = entry.is_object() && std::all_of(entry.begin(), entry.end(),
                                                 [](const json& v) { return v.is_string(); });
      if (!ok)
        throw FileFormatError(fmt::format("{}: __metadata__ is not an object of strings", file));
      continue;
    }
    TensorInfo t = parse_entry(name, entry, data_size, file);
    t.data = data + t.offset;
    tensors.push_back(std::move(t));
  }

  // No two tensors may share bytes (empty tensors overlap nothing).
  std::vector<const TensorInfo*> by_offset;
  for (const TensorInfo& t : tensors) {
    if (t.nbytes > 0) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& a = *by_offset[i - 1];
    const TensorInfo& b = *by_offset[i];
    if (b.offset < a.offset + a.nbytes) {
      throw FileFormatError(fmt::format(
          "{}: tensor '{}' data_offsets [{}, {}] overlap tensor '{}' data_offsets [{}, {}]", file,
          b.name, b.offset, b.offset + b.nbytes, a.name, a.offset, a.offset + a.nbytes));
    }
  }
  return tensors;
}

SafetensorsFile::SafetensorsFile(const std::string& path) {
  map_ = map_file(path, &size_);
  try {
    tensors_ = parse_safetensors(static_cast<const uint8_t*>(map_), size_, path);
  } catch (...) {
    ::munmap(map_, size_);
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, size_);
}

// ---- ModelTensors ----

namespace {

json read_json_file(const fs::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    throw FileFormatError(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  }
  std::string text;
  char buf[65536];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, got);
  std::fclose(f);
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw FileFormatError(fmt::format("{}: not valid JSON", path.string()));
  return j;
}

}  // namespace

ModelTensors::ModelTensors(const std::string& model_dir) {
  const fs::path dir(model_dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw FileFormatError(
        fmt::format("model folder {} does not exist or is not a folder", model_dir));
  }
  const fs::path index_path = dir / "model.safetensors.index.json";
  const fs::path single_path = dir / "model.safetensors";

  auto add_file = [&](const fs::path& path) -> const SafetensorsFile& {
    files_.push_back(std::make_unique<SafetensorsFile>(path.string()));
    for (const TensorInfo& t : files_.back()->tensors()) {
      auto [it, inserted] = by_name_.emplace(t.name, &t);
      if (!inserted) {
        throw FileFormatError(fmt::format("tensor '{}' is stored twice: in {} and in {}", t.name,
                                          it->second->file, t.file));
      }
    }
    return *files_.back();
  };

  if (fs::exists(index_path, ec)) {
    const json index = read_json_file(index_path);
    const std::string where = index_path.string();
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
      throw FileFormatError(fmt::format("{}: no \"weight_map\" object", where));
    }
    // Load each shard once (in sorted order), then check that every listed tensor is in its shard.
    std::map<std::string, const SafetensorsFile*> shards;
    for (const auto& [name, shard] : index["weight_map"].items()) {
      if (!shard.is_string()) {
        throw FileFormatError(
            fmt::format("{}: weight_map entry '{}' is not a file name", where, name));
      }
      const std::string s = shard.get<std::string>();
      if (s.empty() || fs::path(s).is_absolute() || s.find("..") != std::string::npos) {
        throw FileFormatError(fmt::format(
            "{}: weight_map entry '{}' names shard '{}' outside the model folder", where, name, s));
      }
      shards.emplace(s, nullptr);
    }
    for (auto& [s, file] : shards) file = &add_file(dir / s);
    for (const auto& [name, shard] : index["weight_map"].items()) {
      const SafetensorsFile* file = shards.at(shard.get<std::string>());
      const auto& in_shard = file->tensors();
      bool found = std::any_of(in_shard.begin(), in_shard.end(),
                               [&](const TensorInfo& t) { return t.name == name; });
      if (!found) {
        throw FileFormatError(fmt::format(
            "{}: tensor '{}' is listed in shard {} but {} has no such "
            "tensor",
            where, name, shard.get<std::string>(), (dir / shard.get<std::string>()).string()));
      }
    }
  } else if (fs::exists(single_path, ec)) {
    add_file(single_path);
  } else {
    // No index: every *.safetensors file of the folder (as vLLM does), in name order.
    std::vector<fs::path> found;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (e.is_regular_file(ec) && e.path().extension() == ".safetensors")
        found.push_back(e.path());
    }
    std::sort(found.begin(), found.end());
    if (found.empty()) {
      std::string hint;
      if (fs::exists(dir / "pytorch_model.bin", ec) ||
          fs::exists(dir / "pytorch_model.bin.index.json", ec)) {
        hint = " (pytorch_model.bin checkpoints are not supported: convert them to safetensors)";
      }
      throw FileFormatError(
          fmt::format("{}: missing model.safetensors (no model.safetensors.index.json "
                      "and no *.safetensors file){}",
                      model_dir, hint));
    }
    for (const fs::path& p : found) add_file(p);
  }
}

const TensorInfo* ModelTensors::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

size_t ModelTensors::total_bytes() const {
  size_t n = 0;
  for (const auto& [name, t] : by_name_) n += t->nbytes;
  return n;
}

}  // namespace densekv
