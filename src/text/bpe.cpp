#include "text/bpe.h"

#include <algorithm>
#include <mutex>

#include <fmt/format.h>
#include <xxhash.h>

#include "core/errors.h"
#include "text/utf8.h"

namespace densekv {
namespace {

std::string opt_string(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  if (!it->is_string())
    throw FileFormatError(fmt::format("tokenizer.json: model.{} is not a string", key));
  return it->get<std::string>();
}

}  // namespace

bool WordCache::find(std::string_view word, uint64_t hash, std::vector<int32_t>& out) const {
  if (slots_.empty()) return false;
  size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (!s.used) return false;
    if (s.hash == hash && s.key_len == word.size() &&
        std::string_view(keys_).substr(s.key, s.key_len) == word) {
      out.insert(out.end(), vals_.begin() + s.val, vals_.begin() + s.val + s.val_len);
      return true;
    }
  }
}

void WordCache::grow() {
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.resize(old.empty() ? 4096 : old.size() * 2);
  size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (!s.used) continue;
    size_t i = s.hash & mask;
    while (slots_[i].used) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

void WordCache::insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t n) {
  if (size_ >= max_words_ || word.size() > UINT16_MAX || n > UINT16_MAX) return;
  if (keys_.size() + word.size() > UINT32_MAX || vals_.size() + n > UINT32_MAX) return;
  if (2 * (size_ + 1) > slots_.size()) grow();
  size_t mask = slots_.size() - 1;
  size_t i = hash & mask;
  for (; slots_[i].used; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.hash == hash && std::string_view(keys_).substr(s.key, s.key_len) == word) return;
  }
  Slot& s = slots_[i];
  s = Slot{hash,
           static_cast<uint32_t>(keys_.size()),
           static_cast<uint32_t>(vals_.size()),
           static_cast<uint16_t>(word.size()),
           static_cast<uint16_t>(n),
           true};
  keys_.append(word);
  vals_.insert(vals_.end(), ids, ids + n);
  ++size_;
}

BpeModel::BpeModel(const nlohmann::json& model) {
  if (!model.is_object())
    throw FileFormatError("tokenizer.json: 'model' is missing or not an object");
  std::string type = model.value("type", "BPE");  // old files omit the type of a BPE model
  if (type != "BPE") {
    throw UnsupportedModelError(fmt::format(
        "tokenizer.json: model type '{}' is not supported by densekv (only BPE)", type));
  }
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      model["dropout"].get<double>() != 0.0) {
    throw UnsupportedModelError(
        "tokenizer.json: BPE dropout is not supported (it makes encoding random)");
  }
  if (model.value("byte_fallback", false)) {
    throw UnsupportedModelError("tokenizer.json: BPE byte_fallback is not supported by densekv");
  }
  if (!opt_string(model, "continuing_subword_prefix").empty() ||
      !opt_string(model, "end_of_word_suffix").empty()) {
    throw UnsupportedModelError(
        "tokenizer.json: BPE continuing_subword_prefix / end_of_word_suffix are not supported");
  }
  ignore_merges_ = model.value("ignore_merges", false);
  fuse_unk_ = model.value("fuse_unk", false);

  auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) {
    throw FileFormatError("tokenizer.json: model.vocab is missing or not an object");
  }
  vocab_.reserve(vocab->size());
  int32_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > INT32_MAX) {
      throw FileFormatError(fmt::format("tokenizer.json: vocab entry {:?} has a bad id", it.key()));
    }
    int32_t id = it.value().get<int32_t>();
    vocab_[it.key()] = id;
    max_id = std::max(max_id, id);
  }
  id_to_token_.assign(static_cast<size_t>(max_id + 1), std::string());
  for (const auto& [token, id] : vocab_) id_to_token_[id] = token;

  small_char_id_.fill(-1);
  for (const auto& [token, id] : vocab_) {
    size_t len = 0;
    if (!token.empty() && utf8_sequence_length(token, 0) == token.size()) {
      uint32_t cp = utf8_decode(token, 0, &len);
      if (cp < small_char_id_.size()) small_char_id_[cp] = id;
    }
  }

  std::string unk = opt_string(model, "unk_token");
  if (!unk.empty()) {
    unk_id_ = token_to_id(unk);
    if (unk_id_ < 0)
      throw FileFormatError("tokenizer.json: unk_token '" + unk + "' is not in the vocab");
  }

  auto merges = model.find("merges");
  if (merges == model.end() || !merges->is_array()) {
    throw FileFormatError("tokenizer.json: model.merges is missing or not an array");
  }
  merges_.reserve(merges->size() * 2);
  uint32_t rank = 0;
  for (const auto& m : *merges) {
    std::string a, b;
    if (m.is_string()) {  // "a b"
      const std::string& s = m.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        throw FileFormatError(fmt::format("tokenizer.json: merge {:?} is not two tokens", s));
      }
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {  // [a, b]
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      throw FileFormatError(
          fmt::format("tokenizer.json: merge #{} is neither \"a b\" nor [a, b]", rank));
    }
    int32_t ia = token_to_id(a), ib = token_to_id(b), inew = token_to_id(a + b);
    if (ia < 0 || ib < 0 || inew < 0) {
      throw FileFormatError(
          fmt::format("tokenizer.json: merge #{} ({:?} {:?}) uses a token that is not "
                      "in the vocab",
                      rank, a, b));
    }
    merges_[pair_key(ia, ib)] = Merge{rank, inew};  // a repeated pair keeps its last rank, as in HF
    ++rank;
  }
}

int32_t BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || id >= id_limit()) return nullptr;
  const std::string& s = id_to_token_[id];
  if (s.empty() && token_to_id(s) != id) return nullptr;  // a hole in the id range
  return &s;
}

const BpeModel::Merge* BpeModel::find_merge(int32_t a, int32_t b) const {
  auto it = merges_.find(pair_key(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // neighbour indices, -1 at the ends
    bool removed;
  };
  struct Entry {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
  };
  thread_local std::vector<Symbol> sym;
  thread_local std::vector<Entry> heap;
  sym.clear();
  heap.clear();

  // Initial symbols: one per character; characters absent from the vocab become unk (fused when
  // fuse_unk) or, without an unk token, are dropped -- exactly HF's merge_word.
  bool pending_unk = false;
  auto add = [&](int32_t id) {
    int32_t n = static_cast<int32_t>(sym.size());
    sym.push_back({id, n - 1, -1, false});
    if (n > 0) sym[n - 1].next = n;
  };
  for (size_t i = 0; i < word.size();) {
    size_t len = 0;
    uint32_t cp = utf8_decode(word, i, &len);  // the word is valid UTF-8 (checked by encode)
    int32_t id = cp < small_char_id_.size() ? small_char_id_[cp] : token_to_id(word.substr(i, len));
    if (id >= 0) {
      if (pending_unk) add(unk_id_);
      pending_unk = false;
      add(id);
    } else if (unk_id_ >= 0) {
      if (pending_unk && !fuse_unk_) add(unk_id_);
      pending_unk = true;
    }
    i += len;
  }
  if (pending_unk) add(unk_id_);

  // Min-heap on (rank, pos).
  auto greater = [](const Entry& x, const Entry& y) {
    return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
  };
  for (size_t k = 0; k + 1 < sym.size(); ++k) {
    if (const Merge* m = find_merge(sym[k].id, sym[k + 1].id)) {
      heap.push_back({m->rank, static_cast<int32_t>(k), m->new_id});
    }
  }
  std::make_heap(heap.begin(), heap.end(), greater);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), greater);
    Entry top = heap.back();
    heap.pop_back();
    Symbol& cur = sym[top.pos];
    if (cur.removed || cur.next < 0) continue;
    int32_t right = cur.next;
    const Merge* m = find_merge(cur.id, sym[right].id);
    if (m == nullptr || m->new_id != top.new_id) continue;  // stale entry
    cur.id = top.new_id;
    cur.next = sym[right].next;
    sym[right].removed = true;
    if (cur.next >= 0) sym[cur.next].prev = top.pos;
    if (cur.prev >= 0) {
      if (const Merge* pm = find_merge(sym[cur.prev].id, cur.id)) {
        heap.push_back({pm->rank, cur.prev, pm->new_id});
        std::push_heap(heap.begin(), heap.end(), greater);
      }
    }
    if (cur.next >= 0) {
      if (const Merge* nm = find_merge(cur.id, sym[cur.next].id)) {
        heap.push_back({nm->rank, top.pos, nm->new_id});
        std::push_heap(heap.begin(), heap.end(), greater);
      }
    }
  }
  for (const Symbol& s : sym) {
    if (!s.removed) out.push_back(s.id);
  }
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    int32_t id = token_to_id(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  uint64_t hash = XXH3_64bits(word.data(), word.size());
  {
    std::shared_lock lock(cache_mutex_);
    if (cache_.find(word, hash, out)) return;
  }
  size_t first = out.size();
  merge_word(word, out);
  if (word.size() <= kMaxCachedWord) {
    std::unique_lock lock(cache_mutex_);
    cache_.insert(word, hash, out.data() + first, out.size() - first);
  }
}

}  // namespace densekv
