#include "kv/block_pool.h"

#include <xxhash.h>

#include <cstring>

#include "core/check.h"
#include "core/errors.h"

namespace densekv {

uint64_t block_hash(uint64_t parent, std::span<const int32_t> tokens) {
  // One contiguous buffer so the hash is a single XXH3_64bits call over documented bytes.
  std::vector<uint8_t> buf(8 + 4 * tokens.size());
  std::memcpy(buf.data(), &parent, 8);
  if (!tokens.empty()) std::memcpy(buf.data() + 8, tokens.data(), 4 * tokens.size());
  return XXH3_64bits(buf.data(), buf.size());
}

BlockPool::BlockPool(int num_blocks) {
  if (num_blocks <= 0) {
    throw InvalidArgumentError("the KV block pool needs at least one block, got " +
                               std::to_string(num_blocks));
  }
  ref_.assign(num_blocks, 0);
  cached_.assign(num_blocks, 0);
  hash_.assign(num_blocks, 0);
  free_.reserve(num_blocks);
  for (int b = num_blocks - 1; b >= 0; --b) free_.push_back(b);  // hand out 0, 1, 2, ...
  prev_.assign(num_blocks + 1, num_blocks);
  next_.assign(num_blocks + 1, num_blocks);
}

void BlockPool::lru_push_back(int id) {
  const int s = num_blocks();
  prev_[id] = prev_[s];
  next_[id] = s;
  next_[prev_[s]] = id;
  prev_[s] = id;
  ++lru_size_;
}

void BlockPool::lru_unlink(int id) {
  next_[prev_[id]] = next_[id];
  prev_[next_[id]] = prev_[id];
  prev_[id] = next_[id] = num_blocks();
  --lru_size_;
}

int BlockPool::allocate() {
  int id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else if (lru_size_ > 0) {  // evict the least recently used cached block
    id = next_[num_blocks()];
    lru_unlink(id);
    index_.erase(hash_[id]);
    cached_[id] = 0;
  } else {
    return -1;
  }
  CHECK(ref_[id] == 0);
  ref_[id] = 1;
  return id;
}

void BlockPool::retain(int id) {
  CHECK(id >= 0 && id < num_blocks() && ref_[id] > 0);
  ++ref_[id];
}

void BlockPool::release(int id) {
  CHECK(id >= 0 && id < num_blocks() && ref_[id] > 0);
  if (--ref_[id] > 0) return;
  if (cached_[id]) {
    lru_push_back(id);
  } else {
    free_.push_back(id);
  }
}

int BlockPool::lookup(uint64_t hash) {
  auto it = index_.find(hash);
  if (it == index_.end()) return -1;
  const int id = it->second;
  if (ref_[id] == 0) lru_unlink(id);
  ++ref_[id];
  return id;
}

int BlockPool::publish(int id, uint64_t hash) {
  CHECK(id >= 0 && id < num_blocks() && ref_[id] > 0 && !cached_[id]);
  auto [it, inserted] = index_.emplace(hash, id);
  if (!inserted) return it->second;
  cached_[id] = 1;
  hash_[id] = hash;
  return id;
}

void BlockPool::check_invariants() const {
  const int n = num_blocks();
  std::vector<int> seen(n, 0);
  for (int id : free_) {
    CHECK(id >= 0 && id < n && ref_[id] == 0 && !cached_[id]);
    ++seen[id];
  }
  int lru = 0;
  for (int id = next_[n]; id != n; id = next_[id]) {
    CHECK(id >= 0 && id < n && ref_[id] == 0 && cached_[id]);
    CHECK(prev_[next_[id]] == id);
    ++seen[id];
    CHECK(++lru <= n);
  }
  CHECK(lru == lru_size_);
  int cached = 0;
  for (int id = 0; id < n; ++id) {
    CHECK(ref_[id] >= 0);
    if (ref_[id] > 0) ++seen[id];
    CHECK_MSG(seen[id] == 1, "a block is in more or fewer than one state");
    if (cached_[id]) {
      ++cached;
      auto it = index_.find(hash_[id]);
      CHECK(it != index_.end() && it->second == id);
    }
  }
  CHECK(cached == static_cast<int>(index_.size()));
}

}  // namespace densekv
