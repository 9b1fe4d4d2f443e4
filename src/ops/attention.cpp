// Multi-head scaled dot-product attention over projected q, k, v (the projections are
// ordinary Linear nodes, so quantization and pruning see them): q (N, T, H*d), k and v
// (N, T, KV*d) -> (N, T, H*d). Causal (decoders) unless attr causal = false (BERT encoders: every
// token sees the whole sequence). Grouped key/value heads: query head h reads kv head h / (H/KV).
// Optional rotary position embedding (Su et al. 2021) in the "rotate half" layout of Hugging
// Face's Llama: pairs (i, i + d/2) turned by position * theta^(-2i/d).
#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>

#include "ops/attention.h"
#include "ops/op_support.h"
#include "shrink/core/max_value.h"
#include "shrink/core/parallel.h"

namespace shrink::nn::ops {

AttentionShape attention_shape(const Node& node, const Shape& q) {
  AttentionShape s{q[0], q[1], attr_int(node, "num_heads", -1), 0, 0, attr_bool(node, "rope", false),
                   attr_float(node, "rope_theta", 10000.0)};
  s.kv_heads = attr_int(node, "num_kv_heads", s.heads);
  s.causal = attr_bool(node, "causal", true);
  s.dim = s.heads > 0 && q[2] > 0 ? q[2] / s.heads : -1;
  return s;
}

namespace {

std::vector<ValueInfo> infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 3);
  for (const ValueInfo& v : in) {
    expect_f32(node, v, "q, k and v");
    expect_rank(node, v, 3, "q, k and v (N, T, features)");
  }
  AttentionShape s = attention_shape(node, in[0].shape);
  if (s.heads <= 0 || s.kv_heads <= 0 || s.heads % s.kv_heads)
    fail(node, "num_heads must be positive and a multiple of num_kv_heads");
  if (in[0].shape[2] < 0 || in[0].shape[2] % s.heads) fail(node, "q's width must be num_heads * head_dim");
  if (s.rope && s.dim % 2) fail(node, "rotary embedding needs an even head_dim");
  for (int i = 1; i < 3; ++i) {
    expect_dim(node, in[size_t(i)].shape[2], s.kv_heads * s.dim, "k/v width (num_kv_heads * head_dim)");
    expect_dim(node, in[size_t(i)].shape[0], in[0].shape[0], "k/v batch");
    expect_dim(node, in[size_t(i)].shape[1], in[0].shape[1], "k/v length");
  }
  return {in[0]};
}

}  // namespace

// The cosines and sines of one position for every pair i < d/2 (angle position * theta^(-2i/d)),
// computed once per (theta, d, position) for the whole process: every layer of a decoder and
// every call rotates with the same angles, and the double-precision pow/cos/sin per pair cost
// more than the rotation. Rows live in blocks of 256 positions that never move once made.
const float* rope_row(double theta, int64_t d, int64_t position) {
  struct Table {
    double theta;
    int64_t d;
    std::vector<std::unique_ptr<float[]>> blocks;  // 256 positions x (d/2 cosines, d/2 sines)
  };
  constexpr int64_t kBlock = 256;
  static std::mutex mutex;
  static std::vector<Table> tables;
  std::lock_guard<std::mutex> lock(mutex);
  auto table = std::find_if(tables.begin(), tables.end(), [&](const Table& t) { return t.theta == theta && t.d == d; });
  if (table == tables.end()) table = tables.insert(tables.end(), Table{theta, d, {}});
  const int64_t half = d / 2, block = position / kBlock;
  while (int64_t(table->blocks.size()) <= block) {
    const int64_t first = int64_t(table->blocks.size()) * kBlock;
    auto rows = std::make_unique<float[]>(static_cast<size_t>(kBlock * d));
    for (int64_t i = 0; i < half; ++i) {
      const double frequency = std::pow(theta, -2.0 * double(i) / double(d));
      for (int64_t p = 0; p < kBlock; ++p) {
        const double angle = double(first + p) * frequency;
        rows[size_t(p * d + i)] = float(std::cos(angle));
        rows[size_t(p * d + half + i)] = float(std::sin(angle));
      }
    }
    table->blocks.push_back(std::move(rows));
  }
  return table->blocks[size_t(block)].get() + (position % kBlock) * d;
}

// Rotates (direction +1) or un-rotates (-1) every head of x (N, T, heads*d) in place; row t of
// each sequence is at position start + t.
void apply_rope(float* x, int64_t n, int64_t t, int64_t heads, int64_t d, double theta, int direction, int64_t start) {
  if (start < 0) throw UsageError("rotary embedding: negative position");
  const int64_t half = d / 2;
  for (int64_t row = 0; row < t; ++row) {
    const float* angles = rope_row(theta, d, start + row);
    for (int64_t b = 0; b < n; ++b)
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + ((b * t + row) * heads + h) * d;
        for (int64_t i = 0; i < half; ++i) {
          const float cs = angles[i], sn = angles[half + i] * float(direction);
          const float a = v[i], c = v[i + half];
          v[i] = a * cs - c * sn;
          v[i + half] = a * sn + c * cs;
        }
      }
  }
}

// Where the keys and values of `attend` are: rows of width KV*d, or a cache's head-major runs.
struct KvLayout {
  int64_t row, head, sequence;  // floats between consecutive positions, kv heads and sequences
};

namespace {

constexpr int64_t kQueryBlock = 64;

// body(b, h, i0, rows) for every block of queries, one task per (sequence, head, block) in that
// order, so that the threads' halves of the list hold the same mix of short (early) and long
// (late) causal blocks (by whole heads, SmolLM2's 9 split 5:4).
template <class Body>
void for_query_blocks(int64_t n, int64_t heads, int64_t t, const Body& body) {
  const int64_t blocks = (t + kQueryBlock - 1) / kQueryBlock;
  parallel_for(0, n * heads * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t i0 = task % blocks * kQueryBlock;
      body(task / (heads * blocks), task / blocks % heads, i0, std::min(kQueryBlock, t - i0));
    }
  });
}

// Whether prompts take the fused kernel: where its AVX-512 variant runs (head widths a multiple
// of 16, up to 256). With AVX2 alone the GEMM path below was faster (699 tokens of SmolLM2's
// shape: 9.2-10.2 ms a layer against 12.2-12.9 for the AVX2 variant, OpenBLAS's Haswell kernels,
// SHRINK_ISA=avx2 on the Sapphire Rapids host).
bool fused_prompt_attention(int64_t dim) { return kernels().isa >= Isa::avx512 && dim % 16 == 0 && dim <= 256; }

// Positions a sequence's kv head has in attend_prompt_f32's key blocks.
int64_t padded_keys(int64_t length) { return (length + 31) / 32 * 32; }

// attend without probabilities: the keys of kv head g of sequence b at key_blocks + (b * kv_heads
// + g) * padded_keys(length) * dim, in attend_prompt_f32's blocks; values as `layout` says. Each
// block of queries is one call of the fused kernel (scores, online softmax and values without a
// round trip through memory): a 699-token prompt of SmolLM2's shape (9 heads, 3 kv heads, 64
// wide), 4.8 ms a layer with 2 threads against 5.9-7.3 for the two GEMMs and softmax passes
// below and 8.9-9.5 for them before this session's softmax changes (results.md).
void attend_key_blocks(int64_t n, const float* q, int64_t t, const float* key_blocks, const float* v, int64_t length,
                       int64_t offset, int64_t heads, int64_t kv_heads, int64_t dim, float* y, bool causal,
                       KvLayout layout) {
  const int64_t qw = heads * dim, group = heads / kv_heads, padded = padded_keys(length);
  const float scale = float(1.0 / std::sqrt(double(dim)));
  for_query_blocks(n, heads, t, [&](int64_t b, int64_t h, int64_t i0, int64_t rows) {
    const int64_t keys = causal ? std::min(length, offset + i0 + rows) : length;
    kernels().attend_prompt_f32(rows, q + (b * t + i0) * qw + h * dim, qw,
                                key_blocks + (b * kv_heads + h / group) * padded * dim,
                                v + b * layout.sequence + (h / group) * layout.head, layout.row, keys, dim, scale,
                                causal ? offset + i0 : keys - 1, y + (b * t + i0) * qw + h * dim, qw);
  });
}

// exp(row - max) over the row's first `count` entries (scores already scaled), in place, and
// zeros on to `end`; returns the entries' sum.
float exp_row(float* row, int64_t count, int64_t end) {
  const float top = max_value(row, count);
  for (int64_t j = 0; j < count; ++j) row[j] -= top;
  kernels().exp_f32(row, row, count);
  constexpr int64_t kLanes = 16;
  float partial[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= count; j += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) partial[l] += row[j + l];
  float sum = 0.f;
  for (; j < count; ++j) sum += row[j];
  for (float part : partial) sum += part;
  std::fill(row + count, row + end, 0.f);
  return sum;
}

}  // namespace

// n sequences, every head: queries (t rows of width H*d per sequence) at positions offset ..
// offset+t-1 over keys and values (length positions per sequence, laid out as `layout` says);
// query i sees keys j <= offset + i (every key when not causal). probs, when given, receives (n,
// H, t, length) probabilities. Queries go in blocks of 64; under the causal mask a block sees only
// the keys before its last query.
void attend(int64_t n, const float* q, int64_t t, const float* k, const float* v, int64_t length, int64_t offset,
            int64_t heads, int64_t kv_heads, int64_t dim, float* y, float* probs, bool causal, KvLayout layout) {
  if (!probs && fused_prompt_attention(dim)) {  // the keys into blocks, then the fused kernel
    const int64_t padded = padded_keys(length);
    std::vector<float> key_blocks(static_cast<size_t>(n * kv_heads * padded * dim));
    for (int64_t b = 0; b < n; ++b)
      for (int64_t g = 0; g < kv_heads; ++g) {
        const float* from = k + b * layout.sequence + g * layout.head;
        float* to = key_blocks.data() + (b * kv_heads + g) * padded * dim;
        for (int64_t j = 0; j < length; ++j)
          for (int64_t d = 0; d < dim; ++d)
            to[key_block_index(j, d, dim)] = from[j * layout.row + d];
      }
    attend_key_blocks(n, q, t, key_blocks.data(), v, length, offset, heads, kv_heads, dim, y, causal, layout);
    return;
  }
  // Two GEMMs per block of queries around a softmax pass: when recording (training: every
  // probability kept), and where the fused kernel would be slower. Without probabilities the
  // output rows are divided by the sums instead of every probability.
  const int64_t qw = heads * dim, group = heads / kv_heads;
  const float scale = float(1.0 / std::sqrt(double(dim)));
  for_query_blocks(n, heads, t, [&](int64_t b, int64_t h, int64_t i0, int64_t rows) {
    thread_local std::vector<float> scratch;  // the block's scores and probabilities, without probs
    const float* kh = k + b * layout.sequence + (h / group) * layout.head;
    const float* vh = v + b * layout.sequence + (h / group) * layout.head;
    const int64_t keys = causal ? std::min(length, offset + i0 + rows) : length;
    if (!probs) scratch.resize(static_cast<size_t>(rows * length));
    float* p = probs ? probs + ((b * heads + h) * t + i0) * length : scratch.data();
    kernels().gemm_f32(false, true, rows, keys, dim, scale, q + (b * t + i0) * qw + h * dim, qw, kh, layout.row, 0.f, p,
                       length);
    float inverse[kQueryBlock];
    for (int64_t i = 0; i < rows; ++i) {  // row i sees keys < offset + i0 + i + 1 under the causal mask
      float* row = p + i * length;
      const int64_t count = causal ? std::min(length, offset + i0 + i + 1) : length;
      inverse[i] = 1.f / exp_row(row, count, probs ? length : keys);  // the product reads `keys` columns
      if (probs)
        for (int64_t j = 0; j < count; ++j) row[j] *= inverse[i];
    }
    float* out = y + (b * t + i0) * qw + h * dim;
    gemm(false, false, rows, dim, keys, p, length, vh, layout.row, 0.f, out, qw);
    if (!probs)
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t d = 0; d < dim; ++d) out[i * qw + d] *= inverse[i];
  });
}

namespace {

// data (kv_heads runs of `capacity` positions) regrown to runs of `grown`, each run kept whole
// (row or key-block layout alike: positions stay where they were within their head's run).
template <class T>
void regrow(std::vector<T>& data, int64_t kv_heads, int64_t capacity, int64_t grown, int64_t dim) {
  std::vector<T> bigger(static_cast<size_t>(kv_heads * grown * dim));
  for (int64_t h = 0; h < kv_heads; ++h)
    std::copy_n(data.data() + h * capacity * dim, capacity * dim, bigger.data() + h * grown * dim);
  data.swap(bigger);
}

}  // namespace

void KvCache::prefetch(int64_t positions) {
  warm = 0;
  if (positions > kWarmPositions || positions > capacity) return;
  const int64_t blocks = (positions + kKeyBlock - 1) / kKeyBlock * kKeyBlock;
  const int64_t bytes = std::min(capacity, blocks) * dim * int64_t(half ? sizeof(uint16_t) : sizeof(float));
  for (int64_t h = 0; h < kv_heads; ++h) {
    const char* k = half ? reinterpret_cast<const char*>(head_keys<uint16_t>(h)) : reinterpret_cast<const char*>(head_keys<float>(h));
    const char* v = half ? reinterpret_cast<const char*>(head_values<uint16_t>(h)) : reinterpret_cast<const char*>(head_values<float>(h));
    for (int64_t b = 0; b < bytes; b += 64) {
      __builtin_prefetch(k + b, 0, 3);  // prefetcht0: a hint for L2 (prefetcht1) did much less here
      __builtin_prefetch(v + b, 0, 3);
    }
  }
  warm = positions;
}

void KvCache::append(const float* k, const float* v, int64_t t) {
  if (length + t > capacity) {
    int64_t grown = std::max({length + t, capacity + capacity / 2, int64_t(64), reserved});
    grown = (grown + kKeyBlock - 1) / kKeyBlock * kKeyBlock;  // whole key blocks
    if (half) {
      regrow(keys16, kv_heads, capacity, grown, dim);
      regrow(values16, kv_heads, capacity, grown, dim);
    } else {
      regrow(keys, kv_heads, capacity, grown, dim);
      regrow(values, kv_heads, capacity, grown, dim);
    }
    capacity = grown;
  }
  const int64_t kw = kv_heads * dim;
  thread_local std::vector<uint16_t> key;  // one key in f16, then scattered into its block
  key.resize(static_cast<size_t>(half ? dim : 0));
  for (int64_t i = 0; i < t; ++i)
    for (int64_t h = 0; h < kv_heads; ++h) {
      const int64_t from = i * kw + h * dim, position = length + i, to = (h * capacity + position) * dim;
      if (half) {
        kernels().convert_f32_to_f16(k + from, key.data(), dim);
        uint16_t* head = keys16.data() + h * capacity * dim;
        for (int64_t d = 0; d < dim; ++d) head[key_block_index(position, d, dim)] = key[size_t(d)];
        kernels().convert_f32_to_f16(v + from, values16.data() + to, dim);
      } else {
        std::copy_n(k + from, dim, keys.data() + to);
        std::copy_n(v + from, dim, values.data() + to);
      }
    }
  length += t;
}

namespace {

void check_cache(const Node& node, const AttentionShape& s, KvCache& cache) {
  if (s.n != 1) throw UsageError("cached attention runs one sequence at a time", node.name);
  if (!s.causal) throw UsageError("a key/value cache serves causal attention only", node.name);
  if (cache.kv_heads == 0) cache.kv_heads = s.kv_heads, cache.dim = s.dim;
  if (cache.kv_heads != s.kv_heads || cache.dim != s.dim)
    throw UsageError("the KV cache belongs to another layer shape", node.name);
}

}  // namespace

AttentionShape cached_attention_row_shape(const Node& node, int64_t q_width) {
  AttentionShape s = attention_shape(node, Shape{1, 1, q_width});
  if (s.heads <= 0 || s.kv_heads <= 0 || s.heads % s.kv_heads || s.dim <= 0 || s.heads * s.dim != q_width)
    fail(node, "q's width must be num_heads * head_dim, num_heads a multiple of num_kv_heads");
  return s;
}

Tensor cached_attention(const Node& node, const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, KvCache& cache) {
  AttentionShape s = attention_shape(node, q_in.shape());
  if (s.t == 1) {  // cached_attention_row checks the cache
    const Tensor q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
    Tensor y = uninitialized_f32(q.shape());
    cached_attention_row(node, s, f32(q), f32(k), f32(v), cache, f32(y));
    return y;
  }
  check_cache(node, s, cache);
  Tensor q = q_in.contiguous().clone(), k = k_in.contiguous().clone();
  const Tensor v = v_in.contiguous();
  if (s.rope) {
    apply_rope(f32(q), 1, s.t, s.heads, s.dim, s.theta, 1, cache.length);
    apply_rope(f32(k), 1, s.t, s.kv_heads, s.dim, s.theta, 1, cache.length);
  }
  const int64_t offset = cache.length;
  cache.append(f32(k), v.data<float>(), s.t);
  Tensor y = new_f32(q.shape());
  if (!cache.half) {
    attend(1, f32(q), s.t, cache.keys.data(), cache.values.data(), cache.length, offset, s.heads, s.kv_heads, s.dim,
           f32(y), nullptr, true, KvLayout{s.dim, cache.capacity * s.dim, 0});
    return y;
  }
  // A prompt's attention is compute-bound: the f16 cache is widened once, the keys straight
  // into the fused kernel's blocks (the cache's own layout in f32), or out of their blocks
  // into rows for the GEMM path.
  const int64_t length = cache.length, dim = s.dim, padded = padded_keys(length);
  const bool fused = fused_prompt_attention(dim);
  std::vector<float> keys(static_cast<size_t>(s.kv_heads * (fused ? padded : length) * dim));
  std::vector<float> values(static_cast<size_t>(s.kv_heads * length * dim));
  std::vector<float> block(static_cast<size_t>(fused ? 0 : kKeyBlock * dim));
  for (int64_t h = 0; h < s.kv_heads; ++h) {
    if (fused) {
      kernels().convert_f16_to_f32(cache.head_keys<uint16_t>(h), keys.data() + h * padded * dim,
                                   (length + kKeyBlock - 1) / kKeyBlock * kKeyBlock * dim);
    } else {
      for (int64_t j0 = 0; j0 < length; j0 += kKeyBlock) {
        kernels().convert_f16_to_f32(cache.head_keys<uint16_t>(h) + j0 * dim, block.data(), kKeyBlock * dim);
        for (int64_t j = j0; j < std::min(length, j0 + kKeyBlock); ++j)
          for (int64_t d = 0; d < dim; ++d)
            keys[size_t((h * length + j) * dim + d)] = block[size_t(d * kKeyBlock + j - j0)];
      }
    }
    kernels().convert_f16_to_f32(cache.head_values<uint16_t>(h), values.data() + h * length * dim, length * dim);
  }
  const KvLayout rows{dim, length * dim, 0};
  if (fused)
    attend_key_blocks(1, f32(q), s.t, keys.data(), values.data(), length, offset, s.heads, s.kv_heads, dim, f32(y),
                      true, rows);
  else
    attend(1, f32(q), s.t, keys.data(), values.data(), length, offset, s.heads, s.kv_heads, dim, f32(y), nullptr,
           true, rows);
  return y;
}

void cached_attention_row(const Node& node, const AttentionShape& s, const float* q_row, const float* k_row,
                          const float* v_row, KvCache& cache, float* y) {
  check_cache(node, s, cache);
  thread_local std::vector<float> rotated;  // q and k, rotated (the inputs stay as they are)
  rotated.assign(q_row, q_row + s.heads * s.dim);
  rotated.insert(rotated.end(), k_row, k_row + s.kv_heads * s.dim);
  float* q = rotated.data();
  float* k = q + s.heads * s.dim;
  if (s.rope) {
    apply_rope(q, 1, 1, s.heads, s.dim, s.theta, 1, cache.length);
    apply_rope(k, 1, 1, s.kv_heads, s.dim, s.theta, 1, cache.length);
  }
  cache.append(k, v_row, 1);
  // One new token sees every cached position: per kv head, its query heads through the
  // single-query kernel, each key and value read once for the group. Once the work passes 2^15
  // multiply-adds per value row (SmolLM2: ~57 cached positions) the positions are split between
  // the threads (flash-decoding: each range's softmax result and log-sum-exp, merged after), so
  // that every thread reads an equal share of the cache, which per kv head it could not (SmolLM2
  // has 3 kv heads for 2 threads). Below that the fork, join and merge cost more than they save:
  // SmolLM2's shape with the cache cold (4 MB read between calls), one thread against two,
  // alternating: 6.7/8.4 us at 32 positions, 8.5/9.5 at 48, 10.0/9.9 at 64, 13.5/11.8 at 96.
  // When the decoder's plan asked for the keys and values as the q/k/v product started
  // (KvCache::prefetch, up to kWarmPositions), one thread reads them from its own caches: on the
  // 2-core Zen 5 host, SmolLM2 at 26-90 positions, the attention took ~11,000 cycles a call
  // against ~17,000 split and unprefetched (cold alone ~8,100 with the L2 hint, ~5,700 with the
  // L1 one, 3,000-3,200 with everything in cache).
  const int64_t group = s.heads / s.kv_heads, length = cache.length;
  const float scale = float(1.0 / std::sqrt(double(s.dim)));
  const auto attend_range = [&](int64_t lo, int64_t hi, float* out, float* lse) {
    thread_local std::vector<float> scratch;  // the running thread's (the reference kernel's probabilities)
    scratch.resize(static_cast<size_t>(group * (hi - lo)));
    for (int64_t h = 0; h < s.kv_heads; ++h) {
      float* lse_h = lse ? lse + h * group : nullptr;
      if (cache.half)
        kernels().attend_f16kv(group, q + h * group * s.dim, s.dim, cache.head_keys<uint16_t>(h) + lo * s.dim,
                               cache.head_values<uint16_t>(h) + lo * s.dim, s.dim, hi - lo, s.dim, scale,
                               out + h * group * s.dim, s.dim, scratch.data(), lse_h);
      else
        kernels().attend_f32(group, q + h * group * s.dim, s.dim, cache.head_keys<float>(h) + lo * s.dim,
                             cache.head_values<float>(h) + lo * s.dim, s.dim, hi - lo, s.dim, scale,
                             out + h * group * s.dim, s.dim, scratch.data(), lse_h);
    }
  };
  constexpr int64_t kMinPositionsPerRange = 16;
  const bool warm = cache.warm >= length;
  cache.warm = 0;
  const int64_t ranges = !warm && s.heads * length * s.dim > (int64_t(1) << 15)
                             ? std::clamp<int64_t>(length / kMinPositionsPerRange, 1, num_threads())
                             : 1;
  if (ranges == 1) {
    attend_range(0, length, y, nullptr);
    return;
  }
  const int64_t row = s.heads * s.dim;
  // Range r's first position, a whole number of key blocks in (the f16 cache's keys are read by
  // block); ranges >= kMinPositionsPerRange apart before rounding stay >= kKeyBlock apart after.
  const auto boundary = [&](int64_t r) { return r == ranges ? length : length * r / ranges / kKeyBlock * kKeyBlock; };
  thread_local std::vector<float> partial_buffer, lse_buffer;  // the caller's, shared with the workers
  std::vector<float>& partial = partial_buffer;
  std::vector<float>& lse = lse_buffer;
  partial.resize(static_cast<size_t>(ranges * row));  // every range writes its rows in full
  lse.resize(static_cast<size_t>(ranges * s.heads));
  parallel_for(0, ranges, 1, [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r)
      attend_range(boundary(r), boundary(r + 1), partial.data() + r * row, lse.data() + r * s.heads);
  });
  thread_local std::vector<float> weight;
  weight.resize(static_cast<size_t>(ranges));
  for (int64_t h = 0; h < s.heads; ++h) {
    float top = -INFINITY, total = 0.f;
    for (int64_t r = 0; r < ranges; ++r) top = std::max(top, lse[size_t(r * s.heads + h)]);
    for (int64_t r = 0; r < ranges; ++r) total += weight[size_t(r)] = std::exp(lse[size_t(r * s.heads + h)] - top);
    float* out = y + h * s.dim;
    std::fill(out, out + s.dim, 0.f);
    for (int64_t r = 0; r < ranges; ++r) {
      const float w = weight[size_t(r)] / total;
      const float* from = partial.data() + r * row + h * s.dim;
      for (int64_t d = 0; d < s.dim; ++d) out[d] += w * from[d];
    }
  }
}

namespace {

// Saved: rotated q and k, and the attention probabilities P (N, H, T, T).
void forward(ForwardContext& c) {
  Tensor q = c.inputs[0].contiguous().clone(), k = c.inputs[1].contiguous().clone();
  const Tensor v = c.inputs[2].contiguous();
  AttentionShape s = attention_shape(c.node, q.shape());
  if (s.rope) {
    apply_rope(f32(q), s.n, s.t, s.heads, s.dim, s.theta, 1, 0);
    apply_rope(f32(k), s.n, s.t, s.kv_heads, s.dim, s.theta, 1, 0);
  }
  Tensor y = new_f32(q.shape());
  Tensor probs = c.record ? uninitialized_f32(Shape{s.n, s.heads, s.t, s.t}) : Tensor();
  const int64_t kw = s.kv_heads * s.dim;
  attend(s.n, f32(q), s.t, f32(k), f32(v), s.t, 0, s.heads, s.kv_heads, s.dim, f32(y),
         c.record ? f32(probs) : nullptr, s.causal, KvLayout{kw, s.dim, s.t * kw});
  c.outputs[0] = y;
  if (c.record) c.saved = {q, k, probs};
}

void backward(BackwardContext& c) {
  if (!c.grad_outputs[0].defined()) return;
  const Tensor &q = c.saved.at(0), &k = c.saved.at(1), &probs = c.saved.at(2);
  const Tensor v = c.inputs[2].contiguous(), dy = c.grad_outputs[0].contiguous();
  AttentionShape s = attention_shape(c.node, q.shape());
  int64_t qw = s.heads * s.dim, kw = s.kv_heads * s.dim, group = s.heads / s.kv_heads;
  float scale = float(1.0 / std::sqrt(double(s.dim)));
  Tensor dq = new_f32(q.shape()), dk = new_f32(k.shape()), dv = new_f32(v.shape());
  // One task per (batch, kv head): the query heads of a group add into the same dk and dv.
  parallel_for(0, s.n * s.kv_heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> dp(static_cast<size_t>(s.t * s.t));
    for (int64_t index = begin; index < end; ++index) {
      int64_t b = index / s.kv_heads, kvh = index % s.kv_heads;
      for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
        const float* p = f32(probs) + (b * s.heads + h) * s.t * s.t;
        const float* dyh = f32(dy) + b * s.t * qw + h * s.dim;
        const float* qh = f32(q) + b * s.t * qw + h * s.dim;
        const float* kh = f32(k) + b * s.t * kw + kvh * s.dim;
        const float* vh = f32(v) + b * s.t * kw + kvh * s.dim;
        // dv += P^T dy; dP = dy v^T
        gemm(true, false, s.t, s.dim, s.t, p, s.t, dyh, qw, 1.f, f32(dv) + b * s.t * kw + kvh * s.dim, kw);
        gemm(false, true, s.t, s.t, s.dim, dyh, qw, vh, kw, 0.f, dp.data(), s.t);
        for (int64_t i = 0; i < s.t; ++i) {  // dS = P * (dP - sum_j P dP) * scale
          float* row = dp.data() + i * s.t;
          const float* prow = p + i * s.t;
          const int64_t last = s.causal ? i : s.t - 1;
          double dot = 0;
          for (int64_t j = 0; j <= last; ++j) dot += double(prow[j]) * row[j];
          for (int64_t j = 0; j < s.t; ++j) row[j] = j <= last ? prow[j] * float(row[j] - dot) * scale : 0.f;
        }
        // dq = dS k; dk += dS^T q
        gemm(false, false, s.t, s.dim, s.t, dp.data(), s.t, kh, kw, 0.f, f32(dq) + b * s.t * qw + h * s.dim, qw);
        gemm(true, false, s.t, s.dim, s.t, dp.data(), s.t, qh, qw, 1.f, f32(dk) + b * s.t * kw + kvh * s.dim, kw);
      }
    }
  });
  if (s.rope) {
    apply_rope(f32(dq), s.n, s.t, s.heads, s.dim, s.theta, -1, 0);
    apply_rope(f32(dk), s.n, s.t, s.kv_heads, s.dim, s.theta, -1, 0);
  }
  c.grad_inputs = {dq, dk, dv};
}

}  // namespace

extern const OpRules attention_rules{"Attention", infer, forward, backward};

}  // namespace shrink::nn::ops
