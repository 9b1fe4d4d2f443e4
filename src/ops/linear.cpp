// Linear: x (..., in) -> y (..., out) = x W^T + b, W (out, in), b (out) optional; weight_bits fake-quantizes W (QAT);
// sparse_2of4 (set by the pruner) runs decoding through the 2:4 sparse kernel.
// DynamicQuantLinear: the same with per-channel int8 weights (weight i8 (out, in), weight_scale f32
// (out)) and activations quantized per row at run time; bias stays f32; attribute weight_only
// (an LLM's int8 head) keeps prompts in f32 activations and decodes with Q8_0 activations (see
// weight_only_prompt, weight_only_decode). Inference only.
// Int4Linear: 4-bit group-wise weights in the int4 kernels' layout (nibbles u8 (out, in / 2),
// scales and mins f16 (out, in / group_size); weight = q * scale + min). Prompts: the weights
// dequantized to f32 once per call, then the f32 GEMM; 1-4 rows (decoding): int8 activations
// (per row) times the int4 weights, as llama.cpp pairs Q4 weights with Q8 activations.
// Optionally mixed precision: salient_columns i32 (k) and salient_weight f16 (out, k) add
// x[:, columns] salient_weight^T (input channels kept 16-bit; their nibbles hold zeros).
// Inference only.
#include "ops/linear.h"

#include <optional>

#include "core/weight_arena.h"
#include "kernels/int4_decode_layout.h"
#include "ops/op_support.h"
#include "shrink/core/half.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/ggml_formats.h"
#include "shrink/kernels/int4_gemm.h"
#include "shrink/kernels/registry.h"
#include "shrink/kernels/sparse_2of4.h"
#include "shrink/quant/int8_linear.h"

namespace shrink::nn::ops {
namespace {

std::vector<ValueInfo> infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_f32(node, in[0], "input");
  if (in[0].shape.rank() < 1) fail(node, "input needs at least one dimension");
  int64_t out = attr_int(node, "out_features", -1), features = attr_int(node, "in_features", -1);
  if (out <= 0 || features <= 0) fail(node, "needs positive in_features and out_features");
  expect_dim(node, in[0].shape[in[0].shape.rank() - 1], features, "input's last dimension");
  const bool quantized = node.kind == "DynamicQuantLinear";
  if (node.kind == "Int4Linear") {
    int64_t group = attr_int(node, "group_size", -1);
    if (group <= 0 || group % 32 || features % group) fail(node, "group_size must be a multiple of 32 dividing in_features");
    expect_param(node, "nibbles", Shape{out, features / 2}, DType::u8);
    expect_param(node, "scales", Shape{out, features / group}, DType::f16);
    expect_param(node, "mins", Shape{out, features / group}, DType::f16);
    if (const Param* columns = node.find_param("salient_columns")) {
      const int64_t k = columns->value.numel();
      expect_param(node, "salient_columns", Shape{k}, DType::i32);
      expect_param(node, "salient_weight", Shape{out, k}, DType::f16);
      if (k > features) fail(node, "more salient columns than inputs");
    } else if (node.find_param("salient_weight")) {
      fail(node, "salient_weight without salient_columns");
    }
  } else {
    expect_param(node, "weight", Shape{out, features}, quantized ? DType::i8 : DType::f32);
  }
  if (quantized) expect_param(node, "weight_scale", Shape{out});
  if (node.find_param("bias")) expect_param(node, "bias", Shape{out});
  Shape shape = in[0].shape;
  shape[shape.rank() - 1] = out;
  return {{shape, DType::f32}};
}

// y (rows x n, rows ldy apart) = x (rows x k) w^T (w: n x k) + bias (n; may be null): the f32
// product of Linear, and of the int4 and weight-only int8 layers' prompts after dequantization.
void linear_f32(int64_t rows, int64_t n, int64_t k, const float* x, const float* w, const float* bias, float* y,
                int64_t ldy) {
  if (bias)
    for (int64_t r = 0; r < rows; ++r) std::copy(bias, bias + n, y + r * ldy);
  gemm(false, true, rows, n, k, x, k, w, k, bias ? 1.f : 0.f, y, ldy);
}

// Inference on a few rows (decoding) with weights the pruner marked 2:4: the packed form (built
// once; the trainer drops packed copies after every optimizer step), about half the bytes to read.
bool runs_2of4(const ForwardContext& c, int64_t rows, int64_t features) {
  return !c.training && !c.record && rows <= 4 && features % 8 == 0 && attr_int(c.node, "weight_bits", 0) == 0 &&
         c.node.attrs.value("sparse_2of4", false);
}

void forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  const Tensor w = compute_weight(c.node);
  int64_t out = w.shape()[0], features = w.shape()[1], rows = x.numel() / features;
  Shape shape = x.shape();
  shape[shape.rank() - 1] = out;
  Tensor y = new_f32(shape);
  float* yd = f32(y);
  if (runs_2of4(c, rows, features)) {
    const Sparse2of4Storage& s = prepared<Sparse2of4Storage>(c.node, [&] { return pack_2of4(f32(w), out, features); });
    const Param* b = c.node.find_param("bias");
    kernels().gemm_f32_2of4(rows, f32(x), features, s.view(), b ? f32(b->value) : nullptr, yd, out);
    c.outputs[0] = y;
    return;
  }
  const Param* b = c.node.find_param("bias");
  linear_f32(rows, out, features, f32(x), f32(w), b ? f32(b->value) : nullptr, yd, out);
  c.outputs[0] = y;
}

void backward(BackwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  const Tensor w = compute_weight(c.node);
  const Tensor dy = grad_or_zeros(c.grad_outputs[0], c.outputs[0]).contiguous();
  int64_t out = w.shape()[0], features = w.shape()[1], rows = x.numel() / features;
  Tensor dx = new_like(x), dw = new_like(w);
  gemm(false, false, rows, features, out, f32(dy), out, f32(w), features, 0.f, f32(dx), features);
  gemm(true, false, out, features, rows, f32(dy), out, f32(x), features, 0.f, f32(dw), features);
  c.grad_inputs[0] = dx;
  set_param_grad(c, "weight", dw);
  if (c.node.find_param("bias")) {
    Tensor db = new_f32(Shape{out});
    float* dbd = f32(db);
    const float* g = f32(dy);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o) dbd[o] += g[r * out + o];
    set_param_grad(c, "bias", db);
  }
}

const PackedInt8Matrix& packed_int8(Node& node) {
  return prepared<PackedInt8Matrix>(
      node, [&] { return PackedInt8Matrix(node.param("weight").value, node.param("weight_scale").value); });
}

// weight_only (an LLM's int8 output layer, `--int8-head`): prompts of more than 4 rows multiply
// f32 activations with the weights dequantized for the call, as Int4Linear does; the 7-bit
// per-row activations of the dynamic path cost SmolLM2 +1.7% perplexity at the head (the int8
// weights alone +0.3%). Decoding (1-4 rows): weight_only_decode.
bool weight_only(const Node& node) { return node.attrs.value("weight_only", false); }

bool weight_only_prompt(const ForwardContext& c, const Tensor& x) {
  const int64_t k = attr_int(c.node, "in_features", -1);
  return weight_only(c.node) && k > 0 && x.numel() / k > 4;
}

// Decoding rows of a weight-only layer go through weight_only_decode (Q8_0 blocks need k % 32 == 0).
bool weight_only_decodes(const Node& node) { return weight_only(node) && attr_int(node, "in_features", -1) % 32 == 0; }

// In blocks of 256 output rows per task: each block's weights are dequantized into a buffer that
// stays in cache and multiplied at once, so the f32 copy of the whole matrix (113 MB for SmolLM2's
// head) is never written out.
void weight_only_forward(ForwardContext& c, const Tensor& x) {
  const Tensor q = c.node.param("weight").value.contiguous(), scale = c.node.param("weight_scale").value.contiguous();
  const int64_t n = q.shape()[0], k = q.shape()[1], rows = x.numel() / k;
  Shape shape = x.shape();
  shape[shape.rank() - 1] = n;
  Tensor y = uninitialized_f32(shape);
  const Param* bias = c.node.find_param("bias");
  constexpr int64_t kBlock = 256;
  parallel_for(0, (n + kBlock - 1) / kBlock, 1, [&](int64_t first, int64_t last) {
    std::vector<float> dense(static_cast<size_t>(kBlock * k));
    for (int64_t b = first; b < last; ++b) {
      const int64_t r0 = b * kBlock, count = std::min(kBlock, n - r0);
      for (int64_t r = 0; r < count; ++r) {
        const int8_t* from = q.data<int8_t>() + (r0 + r) * k;
        const float s = f32(scale)[r0 + r];
        for (int64_t j = 0; j < k; ++j) dense[size_t(r * k + j)] = float(from[j]) * s;
      }
      linear_f32(rows, count, k, f32(x), dense.data(), bias ? f32(bias->value) + r0 : nullptr, f32(y) + r0, n);
    }
  });
  c.outputs[0] = y;
}

// A weight-only int8 layer's rows in 4-row panels for decoding (built once; never saved).
// In 2 MB pages (core/weight_arena.h).
const weight_arena::Block& int8_row_panels(Node& node) {
  return prepared<weight_arena::Block>(node, [&] {
    const Tensor& q = node.param("weight").value;
    if (!q.is_contiguous()) fail(node, "int8 weights must be contiguous");
    weight_arena::Block panels = weight_arena::take(static_cast<size_t>(q.numel()));
    pack_row_panels(reinterpret_cast<const uint8_t*>(q.data<int8_t>()), q.shape()[0], q.shape()[1], panels.as<uint8_t>());
    return panels;
  });
}

// weight_only decoding (1-4 rows): the activations as Q8_0 blocks (s8 with a scale per 32 values,
// as llama.cpp pairs its weights with) times the int8 rows (a 4-row panel copy, one stream per
// thread), and the per-block scales keep a few large channels from coarsening the rest.
void weight_only_decode(ForwardContext& c, const Tensor& x) {
  const Tensor& q = c.node.param("weight").value;
  const Tensor& scale = c.node.param("weight_scale").value;
  if (!scale.is_contiguous()) fail(c.node, "weight_scale must be contiguous");
  const int64_t n = q.shape()[0], k = q.shape()[1], rows = x.numel() / k;
  const weight_arena::Block& panels = int8_row_panels(c.node);
  std::vector<BlockQ8_0> blocks(static_cast<size_t>(rows * k / 32));
  kernels().quantize_q8_0(f32(x), blocks.data(), rows * k);
  Shape shape = x.shape();
  shape[shape.rank() - 1] = n;
  Tensor y = uninitialized_f32(shape);
  const Param* bias = c.node.find_param("bias");
  kernels().gemm_q8_0_i8(rows, blocks.data(), q.data<int8_t>(), panels.as<const int8_t>(),
                         f32(scale), n, k, bias ? f32(bias->value) : nullptr, f32(y), n);
  c.outputs[0] = y;
}

void dynamic_quant_forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  if (weight_only_prompt(c, x)) return weight_only_forward(c, x);
  if (weight_only_decodes(c.node)) return weight_only_decode(c, x);
  const PackedInt8Matrix& w = packed_int8(c.node);
  const int64_t rows = x.numel() / w.k();
  Shape shape = x.shape();
  shape[shape.rank() - 1] = w.n();
  Tensor y = uninitialized_f32(shape);
  const Param* bias = c.node.find_param("bias");
  w.matmul_dynamic(f32(x), rows, w.k(), bias ? f32(bias->value) : nullptr, f32(y), w.n());
  c.outputs[0] = y;
}

// What an Int4Linear prepares once (its params do not change once quantized): its weights as the
// kernels take them, with the param tensors they point into kept alive, its bias, the salient
// columns and their weights in f32 (mixed precision), and, on its first decoding call, its decode
// layout (kernels/int4_decode_layout.h; prompts never read it). Looking the attributes and params
// up by name on every call, and the small allocations the shared-input product made (below), had
// cost 3.0-3.9 us of serial work per set of layers, 120 sets per SmolLM2 token (1.7-2.2 us after;
// the allocations were the larger part).
struct Int4Prepared {
  Tensor nibbles, scales, mins, bias;
  Int4Weights weights;  // without the decode layouts (int4_decode_weights)
  Tensor salient_columns, salient_weight;  // i32 (columns) and f32 (out, columns), when mixed
  mutable std::optional<Int4DecodeLayout> decode;  // made on the first decoded token
};

const Int4Prepared& int4_prepared(Node& node) {
  return prepared<Int4Prepared>(node, [&] {
    Int4Prepared p;
    p.nibbles = node.param("nibbles").value;
    p.scales = node.param("scales").value;
    p.mins = node.param("mins").value;
    if (!p.nibbles.is_contiguous() || !p.scales.is_contiguous() || !p.mins.is_contiguous())
      fail(node, "int4 parameters must be contiguous");
    p.weights = {p.nibbles.data<uint8_t>(), reinterpret_cast<const uint16_t*>(p.scales.raw_data()),
                 reinterpret_cast<const uint16_t*>(p.mins.raw_data()), attr_int(node, "out_features", -1),
                 attr_int(node, "in_features", -1), attr_int(node, "group_size", -1)};
    if (const Param* bias = node.find_param("bias")) p.bias = bias->value.contiguous();
    if (const Param* columns = node.find_param("salient_columns")) {
      p.salient_columns = columns->value.contiguous();
      p.salient_weight = node.param("salient_weight").value.to(DType::f32).contiguous();
    }
    return p;
  });
}

// The weights with their decode layouts (panels, scales and mins in one span of 2 MB pages; the
// scales in the panels' order at groups of 32), made on the first call.
Int4Weights int4_decode_weights(Node& node) {
  const Int4Prepared& p = int4_prepared(node);
  if (!p.decode) p.decode = make_int4_decode_layout(p.weights);
  return p.decode->weights;
}

// y += x[:, columns] W_s^T for a mixed-precision Int4Linear.
void add_salient(Node& node, const float* x, int64_t rows, int64_t k, float* y, int64_t n) {
  const Int4Prepared& p = int4_prepared(node);
  const int64_t count = p.salient_columns.numel();
  const int32_t* c = p.salient_columns.data<int32_t>();
  for (int64_t i = 0; i < count; ++i)
    if (c[i] < 0 || c[i] >= k) fail(node, "a salient column index is outside the inputs");
  const Tensor& w = p.salient_weight;
  std::vector<float> gathered(static_cast<size_t>(rows * count));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < count; ++i) gathered[size_t(r * count + i)] = x[r * k + c[i]];
  gemm(false, true, rows, n, count, gathered.data(), count, w.data<float>(), count, 1.f, y, n);
}

// Prompts: dequantize the weights once (reading 4.5 bits per weight) and run the f32 GEMM, which
// beats dequantizing inside the product for hundreds of rows.
void int4_prompt(const Int4Weights& w, const float* x, int64_t rows, const float* b, float* y) {
  const int64_t n = w.n, k = w.k, group = w.group;
  Tensor dense = uninitialized_f32(Shape{n, k});
  float* dd = f32(dense);
  const int64_t groups = k / group;
  parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      for (int64_t block = 0; block < k / 32; ++block) {
        const int64_t g = r * groups + block * 32 / group;
        const float scale = f16_to_f32(w.scales[g]), offset = f16_to_f32(w.mins[g]);
        const uint8_t* bytes = w.nibbles + r * (k / 2) + block * 16;
        float* out = dd + r * k + block * 32;
        for (int j = 0; j < 16; ++j) {
          out[j] = float(bytes[j] & 15) * scale + offset;
          out[j + 16] = float(bytes[j] >> 4) * scale + offset;
        }
      }
  });
  linear_f32(rows, n, k, x, dd, b, y, n);
}

}  // namespace

void prepare_for_decoding(Node& node) {
  if (node.kind == "Int4Linear") int4_decode_weights(node);
  if (node.kind == "DynamicQuantLinear") {
    if (weight_only_decodes(node)) int8_row_panels(node);
    else packed_int8(node);
  }
}

std::span<const std::byte> decoding_weight_bytes(Node& node) {
  if (node.kind == "DynamicQuantLinear") {
    if (weight_only_decodes(node)) {
      const weight_arena::Block& panels = int8_row_panels(node);
      return {panels.data(), panels.size()};
    }
    const PackedInt8Matrix& w = packed_int8(node);
    return {reinterpret_cast<const std::byte*>(w.packed()), int8_packed_bytes(w.n(), w.k())};
  }
  if (node.kind != "Int4Linear") return {};
  const Int4Prepared& p = int4_prepared(node);
  if (!p.decode || p.decode->memory.empty()) return {};
  return {p.decode->memory.data(), p.decode->memory.size()};
}

bool int4_linears_share_input(std::span<Node* const> nodes) {
  if (nodes.empty()) return false;
  for (Node* node : nodes)
    if (node->kind != "Int4Linear") return false;
  const Int4Weights& first = int4_prepared(*nodes[0]).weights;
  for (Node* node : nodes) {
    const Int4Weights& w = int4_prepared(*node).weights;
    if (w.k != first.k || w.group != first.group) return false;
  }
  return true;
}

namespace {

// prepare_int4_row_set into `set`, reusing its vectors' room; the nodes already checked.
void fill_int4_row_set(std::span<Node* const> nodes, Int4RowSet& set) {
  set.nodes.assign(nodes.begin(), nodes.end());
  set.weights.clear();
  set.bias.clear();
  set.salient = false;
  for (Node* node : nodes) {
    const Int4Prepared& p = int4_prepared(*node);
    set.weights.push_back(int4_decode_weights(*node));
    set.bias.push_back(p.bias.defined() ? f32(p.bias) : nullptr);
    set.salient = set.salient || p.salient_columns.defined();
  }
  set.k = set.weights[0].k;
  set.group = set.weights[0].group;
  // The layers' steps of `unit` rows (the kernels' unit: a row block's 8 or 16 rows, else 4;
  // a layer's last step may hold fewer rows), end to end, split into one contiguous share per
  // thread; the kernel runs serially inside the share. Every share starts a layer at a whole
  // step, so each row runs through the same kernel however the shares fall (they move with the
  // threads' measured speeds).
  set.unit = 4;
  for (const Int4Weights& one : set.weights) set.unit = std::max(set.unit, int4_slice_rows(one));
  set.first_step.assign(1, 0);
  for (const Int4Weights& one : set.weights) set.first_step.push_back(set.first_step.back() + (one.n + set.unit - 1) / set.unit);
  // Sets of one shape (every layer's q/k/v) split alike, and unevenly: the share that spans the
  // end of q, k and v is slower than the one inside q.
  uint64_t shape = speeds_key(0x494e'5434'5345'5453ull, set.k);  // "INT4SETS": apart from other work of these sizes
  for (const Int4Weights& one : set.weights) shape = speeds_key(shape, one.n);
  set.speeds = &thread_speeds(speeds_key(shape, set.unit));
}

}  // namespace

Int4RowSet prepare_int4_row_set(std::span<Node* const> nodes) {
  if (!int4_linears_share_input(nodes)) throw UsageError("int4 layers run together: not Int4Linear layers of one input width");
  Int4RowSet set;
  fill_int4_row_set(nodes, set);
  return set;
}

void int4_row_set_forward(const Int4RowSet& set, const float* x, int64_t rows, float* const* y) {
  // Scratch kept per thread: a decoded token runs this 120 times (SmolLM2), and the few small
  // allocations a call made had cost about as much as its activation quantization.
  struct Scratch {
    std::vector<int8_t> q;
    std::vector<float> scale;
    std::vector<int32_t> sums;
  };
  thread_local Scratch scratch;
  const int64_t k = set.k;
  std::vector<int8_t>& q = scratch.q;
  std::vector<float>& scale = scratch.scale;
  std::vector<int32_t>& sums = scratch.sums;
  q.resize(static_cast<size_t>(rows * k));  // every value written by quantize_rows_s8
  scale.resize(static_cast<size_t>(rows));
  sums.resize(static_cast<size_t>(rows * (k / set.group)));
  kernels().quantize_rows_s8(x, rows, k, set.group, q.data(), scale.data(), sums.data());
  const std::vector<Int4Weights>& w = set.weights;
  parallel_for_balanced(0, set.first_step.back(), 1, *set.speeds, [&](int64_t s0, int64_t s1) {
    for (size_t i = 0; i < w.size(); ++i) {
      const int64_t lo = set.unit * (std::max(s0, set.first_step[i]) - set.first_step[i]);
      const int64_t hi = std::min(w[i].n, set.unit * (std::min(s1, set.first_step[i + 1]) - set.first_step[i]));
      if (lo >= hi) continue;
      const float* b = set.bias[i];
      kernels().gemm_q4s8(rows, q.data(), scale.data(), sums.data(), int4_rows(w[i], lo, hi), b ? b + lo : nullptr,
                          y[i] + lo, w[i].n);
    }
  });
  if (set.salient)
    for (size_t i = 0; i < w.size(); ++i)
      if (int4_prepared(*set.nodes[i]).salient_columns.defined()) add_salient(*set.nodes[i], x, rows, k, y[i], w[i].n);
}

std::vector<Tensor> int4_linears_shared_input(std::span<Node* const> nodes, const Tensor& x_in, bool s8_activations) {
  if (!int4_linears_share_input(nodes)) throw UsageError("int4_linears_shared_input: not Int4Linear layers of one input width");
  const Tensor x = x_in.contiguous();
  std::vector<Tensor> y;
  y.reserve(nodes.size());
  for (Node* node : nodes) {
    Shape shape = x.shape();
    shape[shape.rank() - 1] = int4_prepared(*node).weights.n;
    y.push_back(uninitialized_f32(shape));
  }
  const int64_t k = int4_prepared(*nodes[0]).weights.k, rows = x.numel() / k;
  if (rows > 4 && !s8_activations) {
    for (size_t i = 0; i < nodes.size(); ++i) {
      const Int4Prepared& p = int4_prepared(*nodes[i]);
      int4_prompt(p.weights, f32(x), rows, p.bias.defined() ? f32(p.bias) : nullptr, f32(y[i]));
      if (p.salient_columns.defined()) add_salient(*nodes[i], f32(x), rows, k, f32(y[i]), p.weights.n);
    }
    return y;
  }
  // Kept per thread, as the quantized activations are: a call then allocates only its outputs.
  thread_local Int4RowSet set;
  thread_local std::vector<float*> outputs;
  fill_int4_row_set(nodes, set);
  outputs.clear();
  for (Tensor& t : y) outputs.push_back(f32(t));
  int4_row_set_forward(set, f32(x), rows, outputs.data());
  return y;
}

namespace {

void int4_forward(ForwardContext& c) {
  Node* node = &c.node;
  c.outputs[0] = int4_linears_shared_input(std::span<Node* const>(&node, 1), c.inputs[0]).at(0);
}

}  // namespace

extern const OpRules int4_linear_rules{"Int4Linear", infer, int4_forward, nullptr};
extern const OpRules linear_rules{"Linear", infer, forward, backward};
extern const OpRules dynamic_quant_linear_rules{"DynamicQuantLinear", infer, dynamic_quant_forward, nullptr};

}  // namespace shrink::nn::ops
