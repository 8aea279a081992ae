// Bookkeeping of a fixed set of KV blocks (ids 0 .. num_blocks-1): reference counts, a free list
// and the prefix cache index. The bytes live elsewhere (the cache's storage buffer); this is ids,
// hashes, ref counts and LRU order only. Owned and used by the engine thread alone.
//
// Every block is in exactly one state:
//   referenced   ref > 0 (held by one or more sequences; may also be in the prefix index)
//   cached       ref == 0, in the prefix index, on the LRU list (reusable on a hit, evictable)
//   free         ref == 0, not in the index, on the free list
// allocate() takes a free block first and evicts the least recently used cached block only when
// the free list is empty, so released prefixes stay reusable for as long as memory allows.
#pragma once
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace densekv {

// Chained hash of one full block: XXH3_64bits over the little-endian bytes of
// [parent (u64), tokens (i32 each)]. The first block of a sequence uses parent = kRootBlockHash.
constexpr uint64_t kRootBlockHash = 0x6b766361636865ull;  // "kvcache"
uint64_t block_hash(uint64_t parent, std::span<const int32_t> tokens);

class BlockPool {
 public:
  explicit BlockPool(int num_blocks);

  int num_blocks() const { return static_cast<int>(ref_.size()); }
  // Blocks allocate() can hand out now: free ones plus unreferenced cached ones.
  int num_available() const { return static_cast<int>(free_.size()) + lru_size_; }
  int num_cached() const { return static_cast<int>(index_.size()); }
  int ref_count(int id) const { return ref_[id]; }
  bool is_cached(int id) const { return cached_[id]; }

  // A block with ref count 1 and no hash, or -1 when every block is referenced.
  int allocate();
  void retain(int id);  // ref++ of a referenced block
  // ref--; at 0 the block goes to the LRU's most recent end if cached, else to the free list.
  void release(int id);

  // The cached block for `hash`, retained (ref++, off the LRU), or -1.
  int lookup(uint64_t hash);
  // Enters referenced block `id` (full and immutable from now on) into the index under `hash`.
  // When another block already has this hash, nothing changes and that block's id is returned
  // (the caller keeps its own copy, which goes back to the free list when released); else `id`.
  int publish(int id, uint64_t hash);

  // CHECK-fails unless every block is in exactly one state and the index, LRU and free list
  // agree. Linear time: for tests and debug builds.
  void check_invariants() const;

 private:
  void lru_push_back(int id);
  void lru_unlink(int id);

  std::vector<int> ref_;                     // [num_blocks]
  std::vector<uint8_t> cached_;              // [num_blocks] in the index
  std::vector<uint64_t> hash_;               // [num_blocks] valid when cached
  std::vector<int> free_;                    // stack of free ids
  std::unordered_map<uint64_t, int> index_;  // hash -> block id
  // Doubly linked LRU of cached, unreferenced blocks; node num_blocks is the sentinel.
  std::vector<int> prev_, next_;
  int lru_size_ = 0;
};

}  // namespace densekv
