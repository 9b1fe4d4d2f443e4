// Shape, Tensor views, copies, conversions and read-only mapped storage.
#include <gtest/gtest.h>

#include <cmath>

#include "shrink/core/tensor.h"
#include "test_support.h"

namespace shrink {
namespace {

Tensor iota(const Shape& shape) {
  Tensor t = Tensor::empty(shape, DType::f32);
  float* data = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) data[i] = float(i);
  return t;
}

TEST(Shape, CountsElementsAndRejectsOverflow) {
  EXPECT_EQ(Shape({2, 3, 4}).numel(), 24);
  EXPECT_EQ(Shape({}).numel(), 1);
  EXPECT_EQ(Shape({5, 0}).numel(), 0);
  EXPECT_THROW(Shape({int64_t(1) << 40, int64_t(1) << 40}).numel(), UsageError);
  EXPECT_THROW(Shape({-1, 3}).numel(), UsageError);
  EXPECT_EQ(Shape({2, 3}).to_string(), "[2, 3]");
  EXPECT_EQ(contiguous_strides(Shape({2, 3, 4})), (std::vector<int64_t>{12, 4, 1}));
}

TEST(Tensor, EmptyIsZeroedAndAligned) {
  Tensor t = Tensor::empty({3, 5}, DType::i32);
  EXPECT_EQ(t.nbytes(), 60u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(t.data<int32_t>()[i], 0);
  EXPECT_THROW(t.data<float>(), UsageError);
}

TEST(Tensor, SliceSelectTransposeShareStorage) {
  Tensor t = iota({3, 4});
  Tensor column = t.select(1, 2);  // [2, 6, 10]
  EXPECT_EQ(column.shape(), Shape({3}));
  EXPECT_FALSE(column.is_contiguous());
  Tensor copy = column.contiguous();
  EXPECT_EQ(copy.data<float>()[0], 2.f);
  EXPECT_EQ(copy.data<float>()[2], 10.f);
  Tensor rows = t.slice(0, 1, 3);
  EXPECT_TRUE(rows.is_contiguous());
  EXPECT_EQ(rows.data<float>()[0], 4.f);
  Tensor transposed = t.transpose(0, 1).contiguous();  // (4, 3)
  EXPECT_EQ(transposed.shape(), Shape({4, 3}));
  EXPECT_EQ(transposed.data<float>()[1], 4.f);   // t[1][0]
  EXPECT_EQ(transposed.data<float>()[5], 9.f);   // t[2][1]
  t.mutable_data<float>()[6] = -1.f;             // views see writes to shared storage
  EXPECT_EQ(column.contiguous().data<float>()[1], -1.f);
  EXPECT_THROW(t.slice(0, 2, 4), UsageError);
  EXPECT_THROW(t.select(2, 0), UsageError);
}

TEST(Tensor, ReshapeInfersOneDimension) {
  Tensor t = iota({2, 6});
  EXPECT_EQ(t.reshape({3, -1}).shape(), Shape({3, 4}));
  EXPECT_THROW(t.reshape({5, -1}), UsageError);
  Tensor transposed = t.transpose(0, 1).reshape({12});  // copies a non-contiguous view
  EXPECT_EQ(transposed.data<float>()[1], 6.f);
}

TEST(Tensor, ConvertsBetweenTypes) {
  Tensor t = iota({2, 3});
  t.mutable_data<float>()[5] = 1.5f;
  Tensor half = t.to(DType::f16);
  Tensor back = half.to(DType::f32);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(back.data<float>()[i], t.data<float>()[i]);
  Tensor ints = t.to(DType::i8);
  EXPECT_EQ(ints.data<int8_t>()[4], 4);
  Tensor wide = Tensor::empty({3}, DType::f32);
  wide.mutable_data<float>()[0] = 1000.f;
  wide.mutable_data<float>()[1] = -5.f;
  wide.mutable_data<float>()[2] = NAN;
  Tensor bytes = wide.to(DType::u8);  // saturates; nan becomes 0
  EXPECT_EQ(bytes.data<uint8_t>()[0], 255);
  EXPECT_EQ(bytes.data<uint8_t>()[1], 0);
  EXPECT_EQ(bytes.data<uint8_t>()[2], 0);
  Tensor bf = t.transpose(0, 1).to(DType::bf16).to(DType::f32);  // strided source
  EXPECT_EQ(bf.data<float>()[1], 3.f);
}

TEST(Tensor, BorrowedStorageIsReadOnlyAndBoundsChecked) {
  std::vector<std::byte> bytes(64);
  bytes[6] = std::byte{0x80};
  bytes[7] = std::byte{0x3f};  // 1.0f little-endian at offset 4..7 is 00 00 80 3f
  auto source = memory_source(bytes, "buffer");
  auto storage = Storage::borrow(source, 4, 8);
  Tensor t = Tensor::from_storage(storage, 0, {2}, DType::f32);
  EXPECT_FALSE(t.writable());
  EXPECT_EQ(t.data<float>()[0], 1.0f);
  EXPECT_THROW(t.mutable_data<float>(), UsageError);
  EXPECT_THROW(Storage::borrow(source, 60, 8), FormatError);
  EXPECT_THROW(Storage::borrow(source, UINT64_MAX, 2), FormatError);
  EXPECT_THROW(Tensor::from_storage(storage, 0, {3}, DType::f32), UsageError);
  Tensor copy = t.clone();
  EXPECT_TRUE(copy.writable());
}

TEST(Tensor, MapIsZeroCopyOnlyWhenAligned) {
  std::vector<std::byte> bytes(64);
  bytes[6] = std::byte{0x80};
  bytes[7] = std::byte{0x3f};
  bytes[11] = std::byte{0x40};  // 2.0f at 8..11
  auto source = memory_source(bytes, "buffer");
  const Tensor aligned = Tensor::map(source, 4, {2}, DType::f32);
  EXPECT_FALSE(aligned.writable());  // a view
  EXPECT_EQ(aligned.data<float>()[1], 2.0f);
  const Tensor odd = Tensor::map(source, 2, {2}, DType::f32);  // 00 00 | 00 00 80 3f -> copy
  EXPECT_TRUE(odd.writable());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(odd.raw_data()) % 4, 0u);
  EXPECT_EQ(odd.data<float>()[0], 0.0f);
  EXPECT_THROW(Tensor::map(source, 60, {2}, DType::f32), FormatError);
}

TEST(MappedFile, MapsFilesAndRefusesOthers) {
  testing::ScratchDir dir;
  testing::write_bytes(dir.file("a.bin"), {std::byte{1}, std::byte{2}, std::byte{3}});
  auto source = map_file(dir.file("a.bin"));
  ASSERT_EQ(source->size(), 3u);
  EXPECT_EQ(source->bytes()[2], std::byte{3});
  testing::write_bytes(dir.file("empty.bin"), {});
  EXPECT_EQ(map_file(dir.file("empty.bin"))->size(), 0u);
  EXPECT_THROW(map_file(dir.file("missing.bin")), IoError);
  EXPECT_THROW(map_file(dir.path()), IoError);
}

TEST(ErrorMessage, SaysWhatWhereAndWhatToDo) {
  const Error error("tensor offset past the end", "model.gguf", "fetch the file again");
  EXPECT_STREQ(error.what(), "model.gguf: tensor offset past the end (fetch the file again)");
  EXPECT_EQ(error.location(), "model.gguf");
  EXPECT_STREQ(Error("plain").what(), "plain");
}

// Found by fuzzing an IDX header (0 x 3758096383 x 2543291005): the strides of an empty tensor
// with huge other dimensions overflowed int64 (undefined; the sanitizer build reports it).
TEST(Tensor, EmptyShapesWithHugeDimensionsHaveStrides) {
  const Shape shape{0, 3758096383, 2543291005};
  EXPECT_EQ(shape.numel(), 0);
  EXPECT_EQ(contiguous_strides(shape).size(), 3u);
  EXPECT_EQ(Tensor::empty(shape, DType::u8).numel(), 0);
  EXPECT_THROW(contiguous_strides(Shape{3758096383, 3758096383, 3}), UsageError);
}

// Shapes and strides are held inline (no allocation per tensor view), up to kMaxRank entries.
TEST(Tensor, DimsHoldUpToMaxRankInline) {
  Dims d{4, 5, 6};
  EXPECT_EQ(d.size(), 3u);
  d.erase(1);
  EXPECT_EQ(d, (std::vector<int64_t>{4, 6}));
  EXPECT_THROW(d.at(2), std::out_of_range);
  EXPECT_THROW(d.erase(2), std::out_of_range);
  EXPECT_EQ(Dims(size_t(kMaxRank), 7).size(), size_t(kMaxRank));
  EXPECT_THROW(Dims(size_t(kMaxRank) + 1, 7), UsageError);
  EXPECT_THROW(Shape(std::vector<int64_t>(size_t(kMaxRank) + 1, 1)), UsageError);
  // A view selected out of a rank-3 tensor drops the axis from both its shape and its strides.
  Tensor t = Tensor::empty(Shape{2, 3, 4}, DType::f32);
  const Tensor row = t.select(1, 2);
  EXPECT_EQ(row.shape(), (Shape{2, 4}));
  EXPECT_EQ(row.strides(), (std::vector<int64_t>{12, 1}));
  EXPECT_EQ(t.transpose(0, 2).strides(), (std::vector<int64_t>{1, 4, 12}));
}

// Found by fuzzing a GGUF with a zero-length dimension: cloning an empty tensor passed a null
// pointer to memcpy (undefined even for 0 bytes; the sanitizer build reports it).
TEST(Tensor, CloneOfAnEmptyTensorIsEmpty) {
  for (const Shape& shape : {Shape{0}, Shape{0, 3}, Shape{4, 0}}) {
    const Tensor copy = Tensor::empty(shape, DType::f32).clone();
    EXPECT_EQ(copy.numel(), 0);
    EXPECT_EQ(copy.shape(), shape);
  }
}

}  // namespace
}  // namespace shrink

