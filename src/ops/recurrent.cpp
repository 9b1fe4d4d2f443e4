// LSTM and GRU, multi-layer, batch-first, zero initial state, PyTorch's parameter names and gate
// order: weight_ih_l{k} (G*H, in), weight_hh_l{k} (G*H, H), bias_ih_l{k}, bias_hh_l{k} (G*H);
// LSTM gates i, f, g, o (G = 4); GRU gates r, z, n (G = 3).
// x (N, T, input_size) -> y (N, T, hidden_size), the last layer's hidden states.
// The input-side products of all time steps are one GEMM; each step adds h_{t-1} W_hh^T.
// DynamicQuantLSTM / DynamicQuantGRU run the same recurrence with per-channel int8 weights
// (weight_ih_l{k} i8 plus weight_ih_l{k}_scale f32 (G*H), the same for hh; biases f32) and
// activations quantized per row at each product. Inference only.
#include <cmath>
#include <functional>

#include "ops/op_support.h"
#include "shrink/core/parallel.h"
#include "shrink/quant/int8_linear.h"

namespace shrink::nn::ops {
namespace {

struct RnnShape {
  int64_t n, t, input, hidden, layers, gates;
};

RnnShape rnn_shape(const Node& node, const Shape& x) {
  return {x[0], x[1], attr_int(node, "input_size", -1), attr_int(node, "hidden_size", -1),
          attr_int(node, "num_layers", 1), node.kind.ends_with("LSTM") ? 4 : 3};
}

std::string layer_param(const char* base, int64_t layer) { return fmt::format("{}_l{}", base, layer); }

bool is_quantized(const Node& node) { return node.kind.starts_with("DynamicQuant"); }

std::vector<ValueInfo> infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  expect_f32(node, in[0], "input");
  expect_rank(node, in[0], 3, "input (N, T, input_size)");
  RnnShape s = rnn_shape(node, in[0].shape);
  if (s.input <= 0 || s.hidden <= 0 || s.layers <= 0)
    fail(node, "needs input_size, hidden_size and num_layers > 0");
  expect_dim(node, in[0].shape[2], s.input, "input features");
  for (int64_t l = 0; l < s.layers; ++l) {
    int64_t width = l == 0 ? s.input : s.hidden;
    const DType weight_type = is_quantized(node) ? DType::i8 : DType::f32;
    expect_param(node, layer_param("weight_ih", l).c_str(), Shape{s.gates * s.hidden, width}, weight_type);
    expect_param(node, layer_param("weight_hh", l).c_str(), Shape{s.gates * s.hidden, s.hidden}, weight_type);
    if (is_quantized(node)) {
      expect_param(node, (layer_param("weight_ih", l) + "_scale").c_str(), Shape{s.gates * s.hidden});
      expect_param(node, (layer_param("weight_hh", l) + "_scale").c_str(), Shape{s.gates * s.hidden});
    }
    expect_param(node, layer_param("bias_ih", l).c_str(), Shape{s.gates * s.hidden});
    expect_param(node, layer_param("bias_hh", l).c_str(), Shape{s.gates * s.hidden});
  }
  return {{Shape{in[0].shape[0], in[0].shape[1], s.hidden}, DType::f32}};
}


// out (rows, G*H) = x W^T + b with layer l's input-side (hidden_side false) or hidden-side weights;
// x has rows of the layer's input width at stride ldx.
using Project = std::function<void(bool hidden_side, int64_t layer, const float* x, int64_t rows, int64_t ldx,
                                   float* out)>;

Project f32_projection(const Node& node) {
  return [&node](bool hidden_side, int64_t l, const float* x, int64_t rows, int64_t ldx, float* out) {
    const Tensor& w = node.param(layer_param(hidden_side ? "weight_hh" : "weight_ih", l)).value;
    const float* b = f32(node.param(layer_param(hidden_side ? "bias_hh" : "bias_ih", l)).value);
    const int64_t gh = w.shape()[0], width = w.shape()[1];
    for (int64_t r = 0; r < rows; ++r) std::copy(b, b + gh, out + r * gh);
    gemm(false, true, rows, gh, width, x, ldx, f32(w), width, 1.f, out, gh);
  };
}

// The packed int8 weights of each layer: [2l] input side, [2l + 1] hidden side.
using PackedLayers = std::vector<PackedInt8Matrix>;

Project int8_projection(Node& node, int64_t layers) {
  const PackedLayers& packed = prepared<PackedLayers>(node, [&] {
    PackedLayers all;
    for (int64_t l = 0; l < layers; ++l)
      for (const char* side : {"weight_ih", "weight_hh"}) {
        const std::string name = layer_param(side, l);
        all.emplace_back(node.param(name).value, node.param(name + "_scale").value);
      }
    return all;
  });
  return [&node, &packed](bool hidden_side, int64_t l, const float* x, int64_t rows, int64_t ldx, float* out) {
    const PackedInt8Matrix& w = packed[size_t(2 * l + (hidden_side ? 1 : 0))];
    const float* b = f32(node.param(layer_param(hidden_side ? "bias_hh" : "bias_ih", l)).value);
    w.matmul_dynamic(x, rows, ldx, b, out, w.n());
  };
}

// Per layer we keep: its output h (N, T, H); LSTM: gate activations (N, T, 4H) and cells
// (N, T, H); GRU: gate activations r, z, n (N, T, 3H) and W_hn h + b_hn (N, T, H).
void forward(ForwardContext& c) {
  const Tensor x = c.inputs[0].contiguous();
  RnnShape s = rnn_shape(c.node, x.shape());
  const Project project = is_quantized(c.node) ? int8_projection(c.node, s.layers) : f32_projection(c.node);
  int64_t rows = s.n * s.t, h = s.hidden, gh = s.gates * h;
  Tensor layer_in = x;
  std::vector<Tensor> saved;
  for (int64_t l = 0; l < s.layers; ++l) {
    int64_t width = l == 0 ? s.input : h;
    Tensor gates = uninitialized_f32(Shape{rows, gh});  // pre (N*T, G*H) = x W_ih^T + b_ih
    project(false, l, f32(layer_in), rows, width, f32(gates));
    // Every value of out and extra is written below (h_out and the cell or W_hn h, all n and t).
    Tensor out = uninitialized_f32(Shape{s.n, s.t, h}), extra = uninitialized_f32(Shape{s.n, s.t, h});
    std::vector<float> recurrent(static_cast<size_t>(s.n * gh)), zeros(static_cast<size_t>(s.n * h), 0.f);
    for (int64_t t = 0; t < s.t; ++t) {
      const float* h_prev = t ? f32(out) + (t - 1) * h : zeros.data();
      int64_t ld_prev = t ? s.t * h : h;
      project(true, l, h_prev, s.n, ld_prev, recurrent.data());
      const float* rec_all = recurrent.data();
      parallel_for(0, s.n, std::max<int64_t>(1, 4096 / gh), [&](int64_t first, int64_t last) {
        const KernelTable& k = kernels();
        for (int64_t n = first; n < last; ++n) {
          float* a = f32(gates) + (n * s.t + t) * gh;  // pre-activations in, activations out
          const float* rec = rec_all + n * gh;
          float* h_out = f32(out) + (n * s.t + t) * h;
          float* e = f32(extra) + (n * s.t + t) * h;
          const float* hp = h_prev + n * ld_prev;
          if (s.gates == 4) {  // gates activated in place, the cell into extra
            const float* c_prev = t ? f32(extra) + (n * s.t + t - 1) * h : zeros.data();
            k.lstm_cell_f32(a, rec, c_prev, e, h_out, h);
          } else {
            for (int64_t j = 0; j < 2 * h; ++j) a[j] += rec[j];
            k.sigmoid_f32(a, a, 2 * h);  // r, z
            for (int64_t j = 0; j < h; ++j) {
              e[j] = rec[2 * h + j];  // W_hn h + b_hn
              a[2 * h + j] += a[j] * e[j];
            }
            k.tanh_f32(a + 2 * h, a + 2 * h, h);  // n
            for (int64_t j = 0; j < h; ++j) h_out[j] = (1 - a[h + j]) * a[2 * h + j] + a[h + j] * hp[j];
          }
        }
      });
    }
    if (c.record) saved.insert(saved.end(), {layer_in, gates, extra, out});
    layer_in = out;
  }
  c.outputs[0] = layer_in;
  if (c.record) c.saved = std::move(saved);
}

void backward(BackwardContext& c) {
  if (!c.grad_outputs[0].defined()) return;
  RnnShape s = rnn_shape(c.node, c.inputs[0].shape());
  int64_t rows = s.n * s.t, h = s.hidden, gh = s.gates * h;
  Tensor dy = c.grad_outputs[0].contiguous().clone();
  for (int64_t l = s.layers - 1; l >= 0; --l) {
    const float* w_ih = f32(c.node.param(layer_param("weight_ih", l)).value);
    const float* w_hh = f32(c.node.param(layer_param("weight_hh", l)).value);
    int64_t width = l == 0 ? s.input : h;
    const Tensor &layer_in = c.saved[size_t(4 * l)], &gates = c.saved[size_t(4 * l + 1)];
    const Tensor &extra = c.saved[size_t(4 * l + 2)], &out = c.saved[size_t(4 * l + 3)];
    Tensor d_in_side = new_f32(Shape{rows, gh});  // gradient of the input-side pre-activations
    Tensor d_hh = new_f32(Shape{s.gates * h, h}), d_bhh = new_f32(Shape{gh});
    std::vector<float> d_rec(static_cast<size_t>(s.n * gh)), dh_next(static_cast<size_t>(s.n * h), 0.f),
        dc_next(static_cast<size_t>(s.n * h), 0.f), zeros(static_cast<size_t>(s.n * h), 0.f);
    for (int64_t t = s.t - 1; t >= 0; --t) {
      const float* h_prev = t ? f32(out) + (t - 1) * h : zeros.data();
      int64_t ld_prev = t ? s.t * h : h;
      for (int64_t n = 0; n < s.n; ++n) {
        const float* a = f32(gates) + (n * s.t + t) * gh;
        const float* e = f32(extra) + (n * s.t + t) * h;
        const float* hp = h_prev + n * ld_prev;
        float* dx_side = f32(d_in_side) + (n * s.t + t) * gh;
        float* dr = d_rec.data() + n * gh;
        float* dhn = dh_next.data() + n * h;
        const float* dyt = f32(dy) + (n * s.t + t) * h;
        for (int64_t j = 0; j < h; ++j) {
          float dh = dyt[j] + dhn[j];
          if (s.gates == 4) {
            float i = a[j], f = a[h + j], g = a[2 * h + j], o = a[3 * h + j];
            float c_prev = t ? f32(extra)[(n * s.t + t - 1) * h + j] : 0.f, tc = std::tanh(e[j]);
            float dc = dh * o * (1 - tc * tc) + dc_next[size_t(n * h + j)];
            dc_next[size_t(n * h + j)] = dc * f;
            dx_side[j] = dc * g * i * (1 - i);
            dx_side[h + j] = dc * c_prev * f * (1 - f);
            dx_side[2 * h + j] = dc * i * (1 - g * g);
            dx_side[3 * h + j] = dh * tc * o * (1 - o);
            dr[j] = dx_side[j], dr[h + j] = dx_side[h + j], dr[2 * h + j] = dx_side[2 * h + j],
            dr[3 * h + j] = dx_side[3 * h + j];
            dhn[j] = 0.f;
          } else {
            float r = a[j], z = a[h + j], nn = a[2 * h + j];
            float dn = dh * (1 - z) * (1 - nn * nn);
            dx_side[j] = dn * e[j] * r * (1 - r);
            dx_side[h + j] = dh * (hp[j] - nn) * z * (1 - z);
            dx_side[2 * h + j] = dn;
            dr[j] = dx_side[j], dr[h + j] = dx_side[h + j], dr[2 * h + j] = dn * r;
            dhn[j] = dh * z;  // the direct path; the W_hh path is added below
          }
        }
      }
      // dh_{t-1} += d_rec W_hh; dW_hh += d_rec^T h_{t-1}; db_hh += sum d_rec
      gemm(false, false, s.n, h, gh, d_rec.data(), gh, w_hh, h, 1.f, dh_next.data(), h);
      gemm(true, false, gh, h, s.n, d_rec.data(), gh, h_prev, ld_prev, 1.f, f32(d_hh), h);
      for (int64_t n = 0; n < s.n; ++n)
        for (int64_t k = 0; k < gh; ++k) f32(d_bhh)[k] += d_rec[size_t(n * gh + k)];
    }
    Tensor d_ih = new_f32(Shape{gh, width}), d_bih = new_f32(Shape{gh}), dx = new_f32(Shape{s.n, s.t, width});
    gemm(true, false, gh, width, rows, f32(d_in_side), gh, f32(layer_in), width, 0.f, f32(d_ih), width);
    gemm(false, false, rows, width, gh, f32(d_in_side), gh, w_ih, width, 0.f, f32(dx), width);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < gh; ++k) f32(d_bih)[k] += f32(d_in_side)[r * gh + k];
    set_param_grad(c, layer_param("weight_ih", l), d_ih);
    set_param_grad(c, layer_param("weight_hh", l), d_hh);
    set_param_grad(c, layer_param("bias_ih", l), d_bih);
    set_param_grad(c, layer_param("bias_hh", l), d_bhh);
    dy = dx;
  }
  c.grad_inputs[0] = dy;
}

}  // namespace

extern const OpRules lstm_rules{"LSTM", infer, forward, backward};
extern const OpRules gru_rules{"GRU", infer, forward, backward};
extern const OpRules dynamic_quant_lstm_rules{"DynamicQuantLSTM", infer, forward, nullptr};
extern const OpRules dynamic_quant_gru_rules{"DynamicQuantGRU", infer, forward, nullptr};

}  // namespace shrink::nn::ops
