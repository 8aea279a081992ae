// The BPE model of tokenizer.json ("model": {"type": "BPE", ...}), with HF tokenizers' exact merge
// order: a min-heap of (rank, position) over adjacent symbol pairs; stale entries are detected by
// the merged id, as HF's Word::merge_all does. Words are cached (word -> ids); with ignore_merges
// (Llama-3) a word that is itself in the vocabulary maps straight to its id.
#pragma once
#include <array>
#include <cstdint>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace densekv {

// Transparent string hash so maps keyed by std::string can be probed with a string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// The word cache of BpeModel: open addressing over slots, with all keys and ids in two arenas so
// a lookup touches few cache lines. Stops growing at `max_words`. Not synchronized.
class WordCache {
 public:
  explicit WordCache(size_t max_words) : max_words_(max_words) {}
  // Appends the cached ids of `word` to `out`; false when absent.
  bool find(std::string_view word, uint64_t hash, std::vector<int32_t>& out) const;
  // Adds `word` -> ids (a no-op when full or already present).
  void insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t n);
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t key = 0, val = 0;  // offsets into keys_ / vals_
    uint16_t key_len = 0, val_len = 0;
    bool used = false;
  };
  void grow();
  std::vector<Slot> slots_;  // power-of-two size, at most half full
  std::string keys_;
  std::vector<int32_t> vals_;
  size_t size_ = 0;
  size_t max_words_;
};

class BpeModel {
 public:
  // Builds from the "model" object; FileFormatError / UnsupportedModelError name the problem.
  explicit BpeModel(const nlohmann::json& model);
  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

  // Appends the ids of one pre-token (a word in the model's alphabet). Thread-safe.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  // Vocabulary lookups; -1 / nullptr when absent.
  int32_t token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;
  // One past the largest id in the vocabulary.
  int32_t id_limit() const { return static_cast<int32_t>(id_to_token_.size()); }
  size_t vocab_size() const { return vocab_.size(); }

 private:
  struct Merge {
    uint32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  const Merge* find_merge(int32_t a, int32_t b) const;
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;

  StringIdMap vocab_;
  std::vector<std::string> id_to_token_;        // [id_limit]; "" for holes
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> rank, merged id
  std::array<int32_t, 512> small_char_id_{};    // code point < 512 -> id, -1 absent
  bool ignore_merges_ = false;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;

  static constexpr size_t kCacheCapacity = 1 << 18;  // words; the cache stops growing when full
  static constexpr size_t kMaxCachedWord = 256;      // bytes
  mutable std::shared_mutex cache_mutex_;
  mutable WordCache cache_{kCacheCapacity};
};

}  // namespace densekv
