// Conv2d over NCHW: x (N, C, H, W) -> y (N, OC, OH, OW), weight (OC, C/groups, KH, KW), bias (OC)
// optional; stride, padding, dilation and groups (depthwise when groups == C). im2col over chunks
// of samples and one GEMM per group; backward recomputes the columns and runs the transposed
// GEMMs and col2im.
#include <memory>
#include <vector>

#include "ops/op_support.h"
#include "shrink/core/parallel.h"

namespace shrink::nn::ops {
namespace {

struct ConvGeometry {
  int64_t n, c, h, w, oc, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, groups;
  int64_t plane() const { return oh * ow; }
  int64_t col_rows() const { return c * kh * kw; }
};

ConvGeometry geometry(const Node& node, const Shape& x) {
  const ConvAttrs a = conv_attrs(node, x[1], x[2], x[3], DType::f32);
  return {x[0], x[1], x[2], x[3], a.oc, a.out_h(x[2]), a.out_w(x[3]), a.kh, a.kw, a.sh, a.sw, a.ph, a.pw,
          a.dh, a.dw, a.groups};
}

std::vector<ValueInfo> infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_f32(node, in[0], "input");
  expect_rank(node, in[0], 4, "input (N, C, H, W)");
  const ConvGeometry g = geometry(node, in[0].shape);
  return {{Shape{g.n, g.oc, g.oh, g.ow}, DType::f32}};
}

// Output columns [first, last) whose input column ox*sw - pw + j*dw lies inside the image.
std::pair<int64_t, int64_t> valid_columns(const ConvGeometry& g, int64_t j) {
  int64_t offset = j * g.dw - g.pw;  // ix = ox*sw + offset
  int64_t first = offset >= 0 ? 0 : (-offset + g.sw - 1) / g.sw;
  int64_t last = g.w - offset <= 0 ? 0 : (g.w - offset + g.sw - 1) / g.sw;
  last = std::min(last, g.ow);
  return {std::min(first, last), last};
}

// Columns of a chunk of samples [n0, n1): col (C*KH*KW, (n1-n0)*P),
// col[(c*KH + i)*KW + j][(n-n0)*P + oy*OW + ox] = x[n, c, oy*sh - ph + i*dh, ox*sw - pw + j*dw] or 0.
void im2col(const ConvGeometry& g, const float* x, int64_t n0, int64_t n1, float* col) {
  const int64_t cols = (n1 - n0) * g.plane();
  for (int64_t row = 0; row < g.col_rows(); ++row) {
    int64_t c = row / (g.kh * g.kw), i = row / g.kw % g.kh, j = row % g.kw;
    auto [first, last] = valid_columns(g, j);
    int64_t offset = j * g.dw - g.pw;
    float* out = col + row * cols;
    for (int64_t n = n0; n < n1; ++n) {
      const float* plane = x + (n * g.c + c) * g.h * g.w;
      for (int64_t oy = 0; oy < g.oh; ++oy, out += g.ow) {
        int64_t iy = oy * g.sh - g.ph + i * g.dh;
        if (iy < 0 || iy >= g.h) {
          for (int64_t ox = 0; ox < g.ow; ++ox) out[ox] = 0.f;
          continue;
        }
        // Plain loops: rows are short (7-28 values), where library calls cost more than the copy.
        const float* src = plane + iy * g.w + offset;
        for (int64_t ox = 0; ox < first; ++ox) out[ox] = 0.f;
        if (g.sw == 1)
          for (int64_t ox = first; ox < last; ++ox) out[ox] = src[ox];
        else
          for (int64_t ox = first; ox < last; ++ox) out[ox] = src[ox * g.sw];
        for (int64_t ox = last; ox < g.ow; ++ox) out[ox] = 0.f;
      }
    }
  }
}

// The adjoint of im2col for the same chunk: dx[n, c, y, x] += every col entry that copied it.
void col2im(const ConvGeometry& g, const float* col, int64_t n0, int64_t n1, float* dx) {
  const int64_t cols = (n1 - n0) * g.plane();
  for (int64_t row = 0; row < g.col_rows(); ++row) {
    int64_t c = row / (g.kh * g.kw), i = row / g.kw % g.kh, j = row % g.kw;
    auto [first, last] = valid_columns(g, j);
    int64_t offset = j * g.dw - g.pw;
    const float* in = col + row * cols;
    for (int64_t n = n0; n < n1; ++n) {
      float* plane = dx + (n * g.c + c) * g.h * g.w;
      for (int64_t oy = 0; oy < g.oh; ++oy, in += g.ow) {
        int64_t iy = oy * g.sh - g.ph + i * g.dh;
        if (iy < 0 || iy >= g.h) continue;
        float* dst = plane + iy * g.w + offset;
        for (int64_t ox = first; ox < last; ++ox) dst[ox * g.sw] += in[ox];
      }
    }
  }
}

// Samples are processed in chunks of about 256 output positions, so that a chunk's columns and
// outputs stay in cache (one batched im2col over the whole batch was memory-bound: 3x slower).
int64_t chunk_samples(const ConvGeometry& g) { return std::max<int64_t>(1, 256 / std::max<int64_t>(g.plane(), 1)); }

std::unique_ptr<float[]> uninitialized_floats(int64_t count) { return std::unique_ptr<float[]>(new float[size_t(count)]); }

// y (N, OC, P) for samples [n0, n1) from a chunk result (OC, (n1-n0)*P), plus bias; or the
// reverse for gradients.
void scatter_chunk(const ConvGeometry& g, const float* chunk, const float* bias, int64_t n0, int64_t n1, float* y) {
  int64_t p = g.plane(), cols = (n1 - n0) * p;
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t o = 0; o < g.oc; ++o) {
      const float* src = chunk + o * cols + (n - n0) * p;
      float* dst = y + (n * g.oc + o) * p;
      float b = bias ? bias[o] : 0.f;
      for (int64_t q = 0; q < p; ++q) dst[q] = src[q] + b;
    }
}
void gather_chunk(const ConvGeometry& g, const float* dy, int64_t n0, int64_t n1, float* chunk) {
  int64_t p = g.plane(), cols = (n1 - n0) * p;
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t o = 0; o < g.oc; ++o)
      std::copy(dy + (n * g.oc + o) * p, dy + (n * g.oc + o + 1) * p, chunk + o * cols + (n - n0) * p);
}

void forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  ConvGeometry g = geometry(c.node, x.shape());
  const Tensor weight = compute_weight(c.node);
  const float* w = f32(weight);
  const Param* bias = c.node.find_param("bias");
  Tensor y = uninitialized_f32(Shape{g.n, g.oc, g.oh, g.ow});
  int64_t per = chunk_samples(g), chunks = (g.n + per - 1) / per;
  int64_t ocg = g.oc / g.groups, kg = g.col_rows() / g.groups;
  parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    // Written in full before they are read (im2col, then the GEMM with beta 0): not zero-filled,
    // and sized for the samples there are. Zero-filling buffers for 64 samples had been a fifth
    // of a batch-1 pass of Silero VAD's convolutions.
    const int64_t samples = std::min(per, g.n);
    const auto col = uninitialized_floats(g.col_rows() * samples * g.plane());
    const auto out = uninitialized_floats(g.oc * samples * g.plane());
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      int64_t n0 = chunk * per, n1 = std::min(g.n, n0 + per), cols = (n1 - n0) * g.plane();
      im2col(g, f32(x), n0, n1, col.get());
      for (int64_t grp = 0; grp < g.groups; ++grp)
        gemm(false, false, ocg, cols, kg, w + grp * ocg * kg, kg, col.get() + grp * kg * cols, cols,
             0.f, out.get() + grp * ocg * cols, cols);
      scatter_chunk(g, out.get(), bias ? f32(bias->value) : nullptr, n0, n1, f32(y));
    }
  });
  c.outputs[0] = y;
}

// Weight and bias gradients are summed in a fixed number of buckets of chunks, then the buckets
// in order: the result does not depend on the number of threads.
constexpr int64_t kGradientBuckets = 8;

void backward(BackwardContext& c) {
  if (!c.grad_outputs[0].defined()) return;
  const Tensor x = c.inputs[0].contiguous();
  ConvGeometry g = geometry(c.node, x.shape());
  const Tensor w = compute_weight(c.node);
  const Tensor dy = c.grad_outputs[0].contiguous();
  int64_t per = chunk_samples(g), chunks = (g.n + per - 1) / per;
  int64_t ocg = g.oc / g.groups, kg = g.col_rows() / g.groups;
  int64_t buckets = std::min(kGradientBuckets, chunks);
  std::vector<Tensor> dw_parts, db_parts;
  for (int64_t b = 0; b < buckets; ++b) {
    dw_parts.push_back(new_like(w));
    db_parts.push_back(new_f32(Shape{g.oc}));
  }
  Tensor dx = new_f32(x.shape());
  parallel_for(0, buckets, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> col(static_cast<size_t>(g.col_rows() * per * g.plane()));
    std::vector<float> dcol(col.size());
    std::vector<float> grad(static_cast<size_t>(g.oc * per * g.plane()));
    for (int64_t bucket = begin; bucket < end; ++bucket) {
      float* dw = f32(dw_parts[size_t(bucket)]);
      float* db = f32(db_parts[size_t(bucket)]);
      for (int64_t chunk = chunks * bucket / buckets; chunk < chunks * (bucket + 1) / buckets; ++chunk) {
        int64_t n0 = chunk * per, n1 = std::min(g.n, n0 + per), cols = (n1 - n0) * g.plane();
        im2col(g, f32(x), n0, n1, col.data());
        gather_chunk(g, f32(dy), n0, n1, grad.data());
        for (int64_t o = 0; o < g.oc; ++o) {
          double sum = 0;
          for (int64_t q = 0; q < cols; ++q) sum += grad[size_t(o * cols + q)];
          db[o] += float(sum);
        }
        for (int64_t grp = 0; grp < g.groups; ++grp) {
          const float* dyg = grad.data() + grp * ocg * cols;
          gemm(false, true, ocg, kg, cols, dyg, cols, col.data() + grp * kg * cols, cols, 1.f,
               dw + grp * ocg * kg, kg);
          gemm(true, false, kg, cols, ocg, f32(w) + grp * ocg * kg, kg, dyg, cols, 0.f,
               dcol.data() + grp * kg * cols, cols);
        }
        col2im(g, dcol.data(), n0, n1, f32(dx));
      }
    }
  });
  c.grad_inputs[0] = dx;
  for (int64_t b = 1; b < buckets; ++b)
    for (auto* parts : {&dw_parts, &db_parts}) {
      float* total = f32((*parts)[0]);
      const float* part = f32((*parts)[size_t(b)]);
      for (int64_t i = 0; i < (*parts)[0].numel(); ++i) total[i] += part[i];
    }
  set_param_grad(c, "weight", dw_parts[0]);
  set_param_grad(c, "bias", db_parts[0]);
}

}  // namespace

extern const OpRules conv2d_rules{"Conv2d", infer, forward, backward};

}  // namespace shrink::nn::ops
