// .npy round trip, plus reading the files numpy wrote for the golden tests.
#include "io/npy.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/errors.h"

using namespace densekv;

TEST(Npy, WriteThenReadRoundTrips) {
  std::string path = testing::TempDir() + "/npy_roundtrip.npy";
  std::vector<float> v = {1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, -7.0f};
  write_npy_f32(path, v.data(), {2, 3});
  NpyArray a = read_npy_f32(path);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.data, v);
  // Header: magic, version 1.0, total header size a multiple of 64 (as numpy writes it).
  std::ifstream f(path, std::ios::binary);
  std::string head(128, '\0');
  f.read(head.data(), 128);
  EXPECT_EQ(head.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  size_t hlen = static_cast<unsigned char>(head[8]) | (static_cast<unsigned char>(head[9]) << 8);
  EXPECT_EQ((10 + hlen) % 64, 0u);
  EXPECT_NE(head.find("'shape': (2, 3)"), std::string::npos);
  EXPECT_EQ(std::filesystem::file_size(path), 10 + hlen + v.size() * 4);
  write_npy_f32(path, v.data(), {6});
  EXPECT_EQ(read_npy_f32(path).shape, (std::vector<int64_t>{6}));
  std::remove(path.c_str());
}

TEST(Npy, ReadsNumpyWrittenGolden) {
  std::string path =
      std::string(DENSEKV_SOURCE_DIR) + "/tests/data/models/llama31-tiny/logits_1.npy";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "missing " << path;
  NpyArray a = read_npy_f32(path);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{5, 512}));
  EXPECT_EQ(a.data.size(), 5u * 512);
}

TEST(Npy, RejectsBadFiles) {
  std::string path = testing::TempDir() + "/npy_bad.npy";
  {
    std::ofstream f(path, std::ios::binary);
    f << "not numpy";
  }
  EXPECT_THROW(read_npy_f32(path), FileFormatError);
  {
    std::ofstream f(path, std::ios::binary);
    std::string h = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
    f.write("\x93NUMPY\x01\x00", 8);
    char len[2] = {static_cast<char>(h.size()), 0};
    f.write(len, 2);
    f << h;
  }
  EXPECT_THROW(read_npy_f32(path), FileFormatError);  // float64
  std::vector<float> v(4, 1.0f);
  write_npy_f32(path, v.data(), {4});
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 4);
  EXPECT_THROW(read_npy_f32(path), FileFormatError);  // truncated
  EXPECT_THROW(read_npy_f32(path + ".missing"), FileFormatError);
  std::remove(path.c_str());
}
