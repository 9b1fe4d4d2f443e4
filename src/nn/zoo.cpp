// The model zoo's builders.
#include "shrink/nn/zoo.h"

#include <fmt/format.h>

#include <cmath>

#include "shrink/nn/builder.h"

namespace shrink::nn {
namespace {

// image (N,1,28,28) -> Flatten -> 784 -> W -> ReLU -> W -> ReLU -> classes
Graph build_mlp(const ZooOptions& o) {
  int64_t width = o.width ? o.width : 256;
  GraphBuilder b(o.seed);
  int x = b.input("image", Shape{-1, 1, 28, 28});
  x = b.op("flatten", "Flatten", {x});
  x = b.op("fc1.relu", "ReLU", {b.linear("fc1", x, 784, width)});
  x = b.op("fc2.relu", "ReLU", {b.linear("fc2", x, width, width)});
  b.output(b.linear("head", x, width, o.classes));
  b.graph().set_value_name(b.graph().outputs()[0], "logits");
  return b.take();
}

int conv_bn(GraphBuilder& b, const std::string& name, int x, int64_t in, int64_t out,
            int64_t stride, bool relu) {
  x = b.conv2d(name + ".conv", x, in, out, 3, stride, 1, 1, false);
  x = b.batch_norm(name + ".bn", x, out);
  return relu ? b.op(name + ".relu", "ReLU", {x}) : x;
}

// x -> conv-bn-relu -> conv-bn -> + x -> relu (He et al. 2016's basic block)
int residual_block(GraphBuilder& b, const std::string& name, int x, int64_t channels) {
  int y = conv_bn(b, name + ".0", x, channels, channels, 1, true);
  y = conv_bn(b, name + ".1", y, channels, channels, 1, false);
  return b.op(name + ".relu", "ReLU", {b.op(name + ".add", "Add", {y, x})});
}

// 28x28: stem conv-bn-relu (C) -> maxpool 14x14 -> residual block (C) -> stride-2 conv-bn-relu
// (2C) 7x7 -> residual block (2C) -> flatten -> fc 128 -> relu -> dropout -> classes
Graph build_cnn(const ZooOptions& o) {
  int64_t c = o.width ? o.width : 32;
  GraphBuilder b(o.seed);
  int x = b.input("image", Shape{-1, 1, 28, 28});
  x = conv_bn(b, "stem", x, 1, c, 1, true);
  x = b.op("pool", "MaxPool2d", {x}, {{"kernel_size", 2}});
  x = residual_block(b, "block1", x, c);
  x = conv_bn(b, "down", x, c, 2 * c, 2, true);
  x = residual_block(b, "block2", x, 2 * c);
  x = b.op("flatten", "Flatten", {x});
  x = b.op("fc.relu", "ReLU", {b.linear("fc", x, 2 * c * 49, 128)});
  x = b.op("dropout", "Dropout", {x}, {{"p", 0.25}});
  b.output(b.linear("head", x, 128, o.classes));
  b.graph().set_value_name(b.graph().outputs()[0], "logits");
  return b.take();
}

int64_t vocabulary_of(const ZooOptions& o) {
  if (o.vocabulary <= 0) throw UsageError("a language model needs the vocabulary size");
  return o.vocabulary;
}

// tokens -> embedding 64 -> LSTM (W, 2 layers) -> logits
Graph build_lstm_lm(const ZooOptions& o) {
  int64_t vocabulary = vocabulary_of(o), width = o.width ? o.width : 256, layers = o.layers ? o.layers : 2;
  GraphBuilder b(o.seed);
  int x = b.input("tokens", Shape{-1, -1}, DType::i64);
  x = b.embedding("embed", x, vocabulary, 64);
  Node lstm{"lstm", "LSTM", {{"input_size", 64}, {"hidden_size", width}, {"num_layers", layers}}, {x}, {}, {}};
  double bound = 1.0 / std::sqrt(double(width));  // PyTorch's LSTM init: U(-1/sqrt(H), 1/sqrt(H))
  for (int64_t l = 0; l < layers; ++l) {
    std::string k = "_l" + std::to_string(l);
    auto uniform = [&](const Shape& shape) {
      Tensor t = Tensor::empty(shape, DType::f32);
      for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = b.rng().uniform(float(-bound), float(bound));
      return t;
    };
    lstm.params.push_back({"weight_ih" + k, uniform(Shape{4 * width, l ? width : 64}), {}, true});
    lstm.params.push_back({"weight_hh" + k, uniform(Shape{4 * width, width}), {}, true});
    lstm.params.push_back({"bias_ih" + k, uniform(Shape{4 * width}), {}, true});
    lstm.params.push_back({"bias_hh" + k, uniform(Shape{4 * width}), {}, true});
  }
  x = b.graph().add(std::move(lstm));
  b.output(b.linear("head", x, width, vocabulary));
  b.graph().set_value_name(b.graph().outputs()[0], "logits");
  return b.take();
}

// Llama-style decoder: RMSNorm pre-norm blocks of causal attention (4 query heads sharing 2
// key/value heads, rotary positions) and a SiLU-gated MLP; no biases.
Graph build_gpt(const ZooOptions& o) {
  int64_t vocabulary = vocabulary_of(o), d = o.width ? o.width : 128, layers = o.layers ? o.layers : 4;
  int64_t heads = 4, kv_heads = 2, head_dim = d / heads, hidden = 3 * d;
  if (d % heads) throw UsageError("the GPT's width must be a multiple of 4", "--width");
  GraphBuilder b(o.seed);
  int x = b.input("tokens", Shape{-1, -1}, DType::i64);
  x = b.embedding("embed", x, vocabulary, d);
  for (int64_t l = 0; l < layers; ++l) {
    std::string p = "blocks." + std::to_string(l);
    int h = b.rms_norm(p + ".attn_norm", x, d);
    int q = b.linear(p + ".attn.q", h, d, heads * head_dim, false);
    int k = b.linear(p + ".attn.k", h, d, kv_heads * head_dim, false);
    int v = b.linear(p + ".attn.v", h, d, kv_heads * head_dim, false);
    int a = b.op(p + ".attn", "Attention", {q, k, v}, {{"num_heads", heads}, {"num_kv_heads", kv_heads}, {"rope", true}});
    x = b.op(p + ".attn_add", "Add", {x, b.linear(p + ".attn.out", a, heads * head_dim, d, false)});
    h = b.rms_norm(p + ".mlp_norm", x, d);
    int gate = b.op(p + ".mlp.act", "SiLU", {b.linear(p + ".mlp.gate", h, d, hidden, false)});
    int up = b.linear(p + ".mlp.up", h, d, hidden, false);
    int mixed = b.op(p + ".mlp.mul", "Mul", {gate, up});
    x = b.op(p + ".mlp_add", "Add", {x, b.linear(p + ".mlp.down", mixed, hidden, d, false)});
  }
  x = b.rms_norm("norm", x, d);
  b.output(b.linear("head", x, d, vocabulary, false));
  b.graph().set_value_name(b.graph().outputs()[0], "logits");
  return b.take();
}

}  // namespace

const std::vector<ArchitectureInfo>& architectures() {
  static const std::vector<ArchitectureInfo> list = {
      {"mlp", "fashion-mnist", "784-256-256-10 ReLU MLP"},
      {"cnn", "fashion-mnist", "Conv-BN-ReLU CNN with two residual blocks (32 and 64 channels)"},
      {"lstm-lm", "austen", "character LSTM language model: embedding 64, 2 LSTM layers of 256"},
      {"gpt", "austen", "character Llama-style decoder: width 128, 4 blocks, 4 heads / 2 kv heads, RoPE"},
  };
  return list;
}

const ArchitectureInfo& architecture(const std::string& name) {
  for (const ArchitectureInfo& a : architectures())
    if (a.name == name) return a;
  std::vector<std::string> names;
  for (const ArchitectureInfo& a : architectures()) names.push_back(a.name);
  throw UsageError("unknown architecture '" + name + "'", "--arch",
                   fmt::format("choose one of: {}", fmt::join(names, ", ")));
}

Graph build_architecture(const std::string& name, const ZooOptions& options) {
  architecture(name);
  if (name == "mlp") return build_mlp(options);
  if (name == "lstm-lm") return build_lstm_lm(options);
  if (name == "gpt") return build_gpt(options);
  return build_cnn(options);
}

}  // namespace shrink::nn
