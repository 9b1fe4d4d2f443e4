// The teacher's outputs per training example: computed on demand, cached in memory, and saved to
// or loaded from a file so that a second distillation run does not run the teacher again.
//
// File layout (little-endian): "SHRKTCH1", u64 fingerprint, u32 output count K, per output u32
// rank r and r i64 dimensions (per example, without the batch dimension), u64 example count E,
// E i64 example indices (distinct, >= 0), then E rows of f32, each the K outputs concatenated.
#include <fmt/format.h>

#include <cstring>
#include <set>

#include "io/byte_cursor.h"
#include "shrink/compress/distill.h"
#include "shrink/core/atomic_file.h"
#include "shrink/core/mapped_file.h"
#include "shrink/nn/execute.h"

namespace shrink::compress {
namespace {

constexpr char kMagic[8] = {'S', 'H', 'R', 'K', 'T', 'C', 'H', '1'};
constexpr uint32_t kMaxOutputs = 16, kMaxRank = 8;

int64_t row_elements(const std::vector<Shape>& shapes) {
  int64_t total = 0;
  for (const Shape& s : shapes) total += s.numel();
  return total;
}

}  // namespace

std::vector<Tensor> TeacherOutputs::outputs(const train::Batch& batch) {
  bool all_cached = cache_ && !batch.indices.empty() && !per_example_.empty();
  for (size_t i = 0; all_cached && i < batch.indices.size(); ++i) all_cached = rows_.count(batch.indices[i]) > 0;
  if (!all_cached) {
    std::vector<Tensor> out = nn::forward(teacher_, batch.inputs);
    ++teacher_runs_;
    std::vector<Shape> shapes;
    for (Tensor& t : out) {
      t = t.contiguous();
      if (t.rank() < 1 || t.shape()[0] != batch.size)
        throw UsageError(fmt::format("the teacher's output {} does not lead with the batch of {}",
                                     t.shape().to_string(), batch.size), "distill");
      shapes.emplace_back(std::vector<int64_t>(t.shape().dims().begin() + 1, t.shape().dims().end()));
    }
    if (cache_ && !batch.indices.empty()) {
      if (per_example_.empty()) per_example_ = shapes;
      if (shapes != per_example_)
        throw UsageError("the teacher's outputs change shape between batches; run with --no-cache", "distill");
      for (int64_t i = 0; i < batch.size; ++i) {
        std::vector<float>& row = rows_[batch.indices[size_t(i)]];
        row.clear();
        for (size_t k = 0; k < out.size(); ++k) {
          int64_t per = per_example_[k].numel();
          row.insert(row.end(), out[k].data<float>() + i * per, out[k].data<float>() + (i + 1) * per);
        }
      }
    }
    return out;
  }
  std::vector<Tensor> out;
  int64_t offset = 0;
  for (const Shape& s : per_example_) {
    std::vector<int64_t> dims{batch.size};
    dims.insert(dims.end(), s.dims().begin(), s.dims().end());
    Tensor t = Tensor::empty(Shape(dims), DType::f32);
    int64_t per = s.numel();
    for (int64_t i = 0; i < batch.size; ++i) {
      const std::vector<float>& row = rows_.at(batch.indices[size_t(i)]);
      std::copy(row.begin() + offset, row.begin() + offset + per, t.mutable_data<float>() + i * per);
    }
    offset += per;
    out.push_back(std::move(t));
  }
  return out;
}

void TeacherOutputs::save(const std::string& path, uint64_t fingerprint) const {
  if (per_example_.empty()) return;  // nothing cached: leave any existing file alone
  AtomicFileWriter file(path);
  file.write(kMagic, sizeof kMagic);
  file.write(&fingerprint, sizeof fingerprint);
  uint32_t count = uint32_t(per_example_.size());
  file.write(&count, sizeof count);
  for (const Shape& s : per_example_) {
    uint32_t rank = uint32_t(s.rank());
    file.write(&rank, sizeof rank);
    file.write(s.dims().data(), s.dims().size() * sizeof(int64_t));
  }
  uint64_t examples = rows_.size();
  file.write(&examples, sizeof examples);
  for (const auto& [index, row] : rows_) file.write(&index, sizeof index);
  for (const auto& [index, row] : rows_) file.write(row.data(), row.size() * sizeof(float));
  file.commit();
}

bool TeacherOutputs::load(const std::string& path, uint64_t fingerprint) {
  auto source = map_file(path);
  const std::span<const std::byte> bytes = source->bytes();
  io::ByteCursor r(bytes, path);
  if (bytes.size() < sizeof kMagic || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    throw FormatError("not a shrink teacher-output cache", path);
  r.skip(sizeof kMagic, "the magic");
  if (r.read<uint64_t>("the fingerprint") != fingerprint) return false;
  uint32_t count = r.read<uint32_t>("the output count");
  if (count == 0 || count > kMaxOutputs) throw FormatError(fmt::format("{} outputs per example", count), path);
  std::vector<Shape> shapes;
  for (uint32_t k = 0; k < count; ++k) {
    uint32_t rank = r.read<uint32_t>("an output rank");
    if (rank > kMaxRank) throw FormatError(fmt::format("output {} has rank {}", k, rank), path);
    std::vector<int64_t> dims(rank);
    for (int64_t& d : dims) d = r.read<int64_t>("an output dimension");
    int64_t numel = 0;
    for (int64_t d : dims)
      if (d <= 0) throw FormatError(fmt::format("output {} has a dimension of {}", k, d), path);
    if (!checked_numel(dims, numel) || numel > (int64_t(1) << 40))
      throw FormatError(fmt::format("output {} is impossibly large", k), path);
    shapes.emplace_back(std::move(dims));
  }
  uint64_t examples = r.read<uint64_t>("the example count");
  uint64_t row_bytes = uint64_t(row_elements(shapes)) * sizeof(float);
  // The rest must hold exactly the indices and the rows; divide instead of multiplying to stay
  // clear of overflow with a lying count.
  if (examples > r.remaining() / (sizeof(int64_t) + row_bytes) ||
      examples * (sizeof(int64_t) + row_bytes) != r.remaining())
    throw FormatError(fmt::format("{} examples of {} bytes do not fit the {} bytes left", examples,
                                  row_bytes + sizeof(int64_t), r.remaining()),
                      path, "delete the cache file; the next run writes it again");
  std::vector<int64_t> indices(examples);
  std::set<int64_t> seen;
  for (int64_t& index : indices) {
    index = r.read<int64_t>("an example index");
    if (index < 0 || !seen.insert(index).second)
      throw FormatError(fmt::format("example index {} is negative or repeated", index), path);
  }
  std::map<int64_t, std::vector<float>> rows;
  for (int64_t index : indices) {
    std::vector<float>& row = rows[index];
    row.resize(row_bytes / sizeof(float));
    std::memcpy(row.data(), bytes.data() + r.position(), row_bytes);
    r.skip(row_bytes, "an example's outputs");
  }
  per_example_ = std::move(shapes);
  rows_ = std::move(rows);
  return true;
}

uint64_t teacher_fingerprint(const nn::Graph& teacher, const std::string& data_description) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  auto mix = [&](const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) hash = (hash ^ p[i]) * 0x100000001b3ULL;
  };
  for (const auto& [name, param] : teacher.named_params()) {
    mix(name.data(), name.size());
    Tensor v = param->value.contiguous();
    mix(v.raw_data(), size_t(v.nbytes()));
  }
  for (int id : teacher.outputs()) mix(teacher.values()[size_t(id)].name.data(), teacher.values()[size_t(id)].name.size());
  mix(data_description.data(), data_description.size());
  return hash;
}

}  // namespace shrink::compress
