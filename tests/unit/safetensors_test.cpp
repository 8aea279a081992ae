#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>

#include "core/errors.h"
#include "safetensors_writer.h"

using namespace densekv;
using densekv::testing::expect_error;
using densekv::testing::FakeTensor;
using densekv::testing::fresh_dir;
using densekv::testing::make_safetensors;
using densekv::testing::safetensors_image;
using densekv::testing::write_file;
using nlohmann::json;

namespace {

std::vector<TensorInfo> parse(const std::string& image,
                              const std::string& file = "model.safetensors") {
  return parse_safetensors(reinterpret_cast<const uint8_t*>(image.data()), image.size(), file);
}

// A header with one tensor entry, and `data_bytes` bytes of data.
std::string one_tensor(const json& entry, size_t data_bytes) {
  return safetensors_image(json{{"x", entry}}.dump(), std::string(data_bytes, '\0'));
}

template <class E = FileFormatError>
void expect_parse_error(const std::string& image, const std::vector<std::string>& parts) {
  expect_error<E>([&] { parse(image); }, parts);
}

}  // namespace

TEST(Safetensors, ParsesValidFile) {
  std::string image = make_safetensors({{"a.weight", "BF16", {3, 4}},
                                        {"b", "F32", {5}},
                                        {"c", "F16", {2, 0, 7}},
                                        {"scalar", "F32", {}}},
                                       json{{"format", "pt"}});
  auto tensors = parse(image);
  ASSERT_EQ(tensors.size(), 4u);
  std::map<std::string, TensorInfo> by_name;
  for (auto& t : tensors) by_name[t.name] = t;
  const TensorInfo& a = by_name.at("a.weight");
  EXPECT_EQ(a.dtype, DType::BF16);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(a.offset, 0u);
  EXPECT_EQ(a.nbytes, 24u);
  EXPECT_EQ(a.numel(), 12);
  EXPECT_EQ(a.file, "model.safetensors");
  const TensorInfo& b = by_name.at("b");
  EXPECT_EQ(b.dtype, DType::F32);
  EXPECT_EQ(b.offset, 24u);
  EXPECT_EQ(b.nbytes, 20u);
  EXPECT_EQ(by_name.at("c").nbytes, 0u);
  EXPECT_EQ(by_name.at("scalar").numel(), 1);
  EXPECT_EQ(by_name.at("scalar").nbytes, 4u);
  // data points at the tensor's bytes: data byte i is (i * 7 + 1) & 0xff in the writer.
  const size_t data_start = image.size() - 48;
  EXPECT_EQ(static_cast<const void*>(a.data), static_cast<const void*>(image.data() + data_start));
  EXPECT_EQ(*static_cast<const uint8_t*>(b.data), (24 * 7 + 1) & 0xff);
}

TEST(Safetensors, HeaderMayHaveTrailingSpaces) {
  std::string header =
      json{{"x", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 8}}}}}.dump();
  EXPECT_EQ(parse(safetensors_image(header + "      ", std::string(8, '\0'))).size(), 1u);
}

TEST(Safetensors, TooShortOrEmpty) {
  expect_parse_error("", {"model.safetensors", "0 bytes"});
  expect_parse_error("abc", {"model.safetensors", "too short"});
}

TEST(Safetensors, HeaderLengthPastEndOfFile) {
  std::string image = make_safetensors({{"x", "F32", {2}}});
  image[0] = static_cast<char>(0xff);  // header length now larger than the file
  expect_parse_error(image, {"model.safetensors", "runs past the end of the file"});
  std::string huge(16, '\0');
  huge[5] = 1;  // 2^40 bytes
  expect_parse_error(huge, {"model.safetensors", "larger than 100 MB"});
}

TEST(Safetensors, InvalidHeaderJson) {
  expect_parse_error(safetensors_image("{\"x\": {\"dtype\": ", ""),
                     {"model.safetensors", "not valid JSON"});
  expect_parse_error(safetensors_image("[1, 2]", ""), {"model.safetensors", "not a JSON object"});
  expect_parse_error(safetensors_image("{\"__metadata__\": {\"a\": 1}}", ""), {"__metadata__"});
  expect_parse_error(safetensors_image("{\"x\": 5}", ""), {"tensor 'x'", "not a JSON object"});
}

TEST(Safetensors, TruncatedData) {
  std::string image = make_safetensors({{"a", "BF16", {4}}, {"b", "BF16", {8, 8}}});
  image.resize(image.size() - 3);
  expect_parse_error(image,
                     {"model.safetensors", "tensor 'b'", "outside the data section", "truncated"});
}

TEST(Safetensors, OffsetsOutOfRange) {
  json e = {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {8, 16}}};
  expect_parse_error(one_tensor(e, 8), {"tensor 'x'", "data_offsets [8, 16]", "8 bytes"});
  e["data_offsets"] = {8, 0};
  expect_parse_error(one_tensor(e, 8), {"tensor 'x'", "data_offsets [8, 0]"});
  e["data_offsets"] = {0};
  expect_parse_error(one_tensor(e, 8), {"tensor 'x'", "data_offsets"});
  e["data_offsets"] = {-1, 7};
  expect_parse_error(one_tensor(e, 8), {"tensor 'x'", "data_offsets"});
  e["data_offsets"] = {0, 8.0};
  expect_parse_error(one_tensor(e, 8), {"tensor 'x'", "data_offsets"});
}

TEST(Safetensors, ShapeTimesDtypeMismatch) {
  json e = {{"dtype", "BF16"}, {"shape", {3, 4}}, {"data_offsets", {0, 10}}};
  expect_parse_error(
      one_tensor(e, 32),
      {"model.safetensors: tensor 'x' data_offsets [0, 10] do not match shape [3,4] x "
       "BF16 = 24 bytes"});
}

TEST(Safetensors, BadShapes) {
  json e = {{"dtype", "F32"}, {"shape", {2, -1}}, {"data_offsets", {0, 8}}};
  expect_parse_error(one_tensor(e, 8), {"tensor 'x'", "shape entry -1"});
  e["shape"] = {2, "3"};
  expect_parse_error(one_tensor(e, 8), {"tensor 'x'", "shape entry \"3\""});
  e["shape"] = 2;
  expect_parse_error(one_tensor(e, 8), {"tensor 'x'", "shape"});
  // The product overflows 64 bits: must be caught, not wrap around to a small size.
  e["shape"] = {uint64_t{1} << 32, uint64_t{1} << 32, 4};
  expect_parse_error(one_tensor(e, 8), {"tensor 'x'", "too large"});
  e["shape"] = {uint64_t{1} << 62, 2};  // 2^63 elements x 4 bytes wraps to 0 without the check
  e["data_offsets"] = {0, 0};
  expect_parse_error(one_tensor(e, 8), {"tensor 'x'", "too large"});
  e["shape"] = {uint64_t{1} << 62, 0};  // a zero dimension: empty, whatever the others
  EXPECT_EQ(parse(one_tensor(e, 8))[0].nbytes, 0u);
}

TEST(Safetensors, OverlappingTensors) {
  json h = {{"a", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 16}}}},
            {"b", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {12, 20}}}}};
  expect_parse_error(safetensors_image(h.dump(), std::string(20, '\0')),
                     {"model.safetensors", "tensor 'b'", "overlap tensor 'a'"});
}

TEST(Safetensors, UnsupportedDtypeIsUnsupportedModel) {
  for (const char* d : {"I8", "U8", "I32", "F8_E4M3", "F8_E5M2", "F64", "BOOL"}) {
    std::string image = make_safetensors({{"w.qweight", d, {4, 4}}});
    expect_error<UnsupportedModelError>(
        [&] { parse(image, "shard.safetensors"); },
        {"tensor 'w.qweight' in shard.safetensors has dtype " + std::string(d),
         "quantized or non-float weights are not supported"});
  }
  json e = {{"dtype", "Q9"}, {"shape", {2}}, {"data_offsets", {0, 2}}};
  expect_parse_error(one_tensor(e, 2), {"tensor 'x'", "unknown dtype 'Q9'"});
}

// ---- files and folders ----

TEST(SafetensorsFile, MapsFileFromDisk) {
  auto dir = fresh_dir("st_file");
  write_file(dir / "model.safetensors", make_safetensors({{"w", "F32", {2, 3}}}));
  SafetensorsFile f((dir / "model.safetensors").string());
  ASSERT_EQ(f.tensors().size(), 1u);
  EXPECT_EQ(f.tensors()[0].nbytes, 24u);
  EXPECT_EQ(*static_cast<const uint8_t*>(f.tensors()[0].data), 1);
  EXPECT_EQ(f.tensors()[0].file, (dir / "model.safetensors").string());
}

TEST(SafetensorsFile, MissingEmptyAndCorruptFilesNameTheFile) {
  auto dir = fresh_dir("st_bad");
  const std::string missing = (dir / "nope.safetensors").string();
  expect_error<FileFormatError>([&] { SafetensorsFile f(missing); }, {missing, "No such file"});
  write_file(dir / "empty.safetensors", "");
  expect_error<FileFormatError>([&] { SafetensorsFile f((dir / "empty.safetensors").string()); },
                                {"empty.safetensors", "empty file"});
  std::string image = make_safetensors({{"w", "F32", {64}}});
  image.resize(image.size() - 1);
  write_file(dir / "trunc.safetensors", image);
  expect_error<FileFormatError>([&] { SafetensorsFile f((dir / "trunc.safetensors").string()); },
                                {"trunc.safetensors", "tensor 'w'"});
  expect_error<FileFormatError>([&] { SafetensorsFile f(dir.string()); }, {"not a regular file"});
}

namespace {

std::filesystem::path sharded_model(const std::string& name) {
  auto dir = fresh_dir(name);
  write_file(dir / "model-00001-of-00002.safetensors",
             make_safetensors({{"a", "BF16", {2, 2}}, {"b", "BF16", {3}}}));
  write_file(dir / "model-00002-of-00002.safetensors", make_safetensors({{"c", "F32", {5}}}));
  json index = {{"metadata", {{"total_size", 22}}},
                {"weight_map",
                 {{"a", "model-00001-of-00002.safetensors"},
                  {"b", "model-00001-of-00002.safetensors"},
                  {"c", "model-00002-of-00002.safetensors"}}}};
  write_file(dir / "model.safetensors.index.json", index.dump());
  return dir;
}

}  // namespace

TEST(ModelTensors, SingleFile) {
  auto dir = fresh_dir("mt_single");
  write_file(dir / "model.safetensors", make_safetensors({{"x", "F16", {4}}, {"y", "F32", {2}}}));
  write_file(dir / "ignored.safetensors", "garbage that must not be read");
  ModelTensors m(dir.string());
  EXPECT_EQ(m.all().size(), 2u);
  ASSERT_NE(m.find("y"), nullptr);
  EXPECT_EQ(m.find("y")->dtype, DType::F32);
  EXPECT_EQ(m.find("z"), nullptr);
  EXPECT_EQ(m.total_bytes(), 16u);
}

TEST(ModelTensors, ShardedIndex) {
  auto dir = sharded_model("mt_sharded");
  ModelTensors m(dir.string());
  EXPECT_EQ(m.all().size(), 3u);
  EXPECT_EQ(m.total_bytes(), 8u + 6u + 20u);
  EXPECT_EQ(m.find("c")->file, (dir / "model-00002-of-00002.safetensors").string());
  EXPECT_EQ(m.find("a")->shape, (std::vector<int64_t>{2, 2}));
}

TEST(ModelTensors, MissingShard) {
  auto dir = sharded_model("mt_missing_shard");
  std::filesystem::remove(dir / "model-00002-of-00002.safetensors");
  expect_error<FileFormatError>([&] { ModelTensors m(dir.string()); },
                                {"model-00002-of-00002.safetensors", "No such file"});
}

TEST(ModelTensors, TensorListedInIndexButMissingFromShard) {
  auto dir = sharded_model("mt_missing_tensor");
  json index = {
      {"weight_map",
       {{"a", "model-00001-of-00002.safetensors"}, {"c", "model-00001-of-00002.safetensors"}}}};
  write_file(dir / "model.safetensors.index.json", index.dump());
  expect_error<FileFormatError>(
      [&] { ModelTensors m(dir.string()); },
      {"tensor 'c'", "model-00001-of-00002.safetensors", "no such tensor"});
}

TEST(ModelTensors, DuplicateTensorAcrossShards) {
  auto dir = sharded_model("mt_duplicate");
  write_file(dir / "model-00002-of-00002.safetensors",
             make_safetensors({{"c", "F32", {5}}, {"a", "BF16", {2, 2}}}));
  expect_error<FileFormatError>([&] { ModelTensors m(dir.string()); },
                                {"tensor 'a' is stored twice", "model-00001-of-00002.safetensors",
                                 "model-00002-of-00002.safetensors"});
}

TEST(ModelTensors, BadIndex) {
  auto dir = sharded_model("mt_bad_index");
  write_file(dir / "model.safetensors.index.json", "{\"weight_map\": ");
  expect_error<FileFormatError>([&] { ModelTensors m(dir.string()); },
                                {"model.safetensors.index.json", "not valid JSON"});
  write_file(dir / "model.safetensors.index.json", R"({"weight_map": {"a": "../../etc/passwd"}})");
  expect_error<FileFormatError>([&] { ModelTensors m(dir.string()); },
                                {"outside the model folder"});
  write_file(dir / "model.safetensors.index.json", R"({"metadata": {}})");
  expect_error<FileFormatError>([&] { ModelTensors m(dir.string()); }, {"weight_map"});
}

TEST(ModelTensors, FolderOfShardsWithoutIndex) {
  auto dir = sharded_model("mt_no_index");
  std::filesystem::remove(dir / "model.safetensors.index.json");
  ModelTensors m(dir.string());
  EXPECT_EQ(m.all().size(), 3u);
}

TEST(ModelTensors, NoWeights) {
  auto dir = fresh_dir("mt_none");
  expect_error<FileFormatError>([&] { ModelTensors m(dir.string()); },
                                {"missing model.safetensors"});
  write_file(dir / "pytorch_model.bin", "x");
  expect_error<FileFormatError>([&] { ModelTensors m(dir.string()); },
                                {"missing model.safetensors", "pytorch_model.bin"});
  expect_error<FileFormatError>([&] { ModelTensors m((dir / "nope").string()); },
                                {"does not exist"});
}
