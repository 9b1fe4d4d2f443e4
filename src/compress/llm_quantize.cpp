// Block-by-block weight-only quantization of language models (see llm_quantize.h).
#include "shrink/compress/llm_quantize.h"

#include "compress/block_calibration.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>
#include <optional>

#include "shrink/compress/quantize_dynamic.h"
#include "shrink/core/error.h"
#include "shrink/core/half.h"
#include "shrink/kernels/int4_gemm.h"
#include "shrink/core/progress.h"
#include "shrink/core/rng.h"
#include "shrink/nn/execute.h"

namespace shrink::compress {
namespace {

double squared_difference(const Tensor& a, const Tensor& b) {
  double s = 0;
  const float *x = a.data<float>(), *y = b.data<float>();
  for (int64_t i = 0; i < a.numel(); ++i) s += double(x[i] - y[i]) * (x[i] - y[i]);
  return s;
}

// Salient input channels kept at 16 bits next to a quantized layer.
struct SalientColumns {
  std::vector<int32_t> columns;  // ascending
  Tensor weight;                 // f16 (out, columns)
};

// The int4 kernels' layout for 4-bit results whose groups are runs of inputs: kernel groups of
// gcd(group, in) inputs (a multiple of 32), each carrying its group's f16 scale and min = -zero *
// scale. Empty when the layout does not fit (other bit widths, act-order groups, odd sizes).
std::optional<nn::Node> int4_node(const nn::Node& linear, const GroupQuantized& q, const SalientColumns& salient) {
  if (q.bits != 4 || !q.defined()) return std::nullopt;
  const int64_t rows = q.codes.shape()[0], cols = q.codes.shape()[1];
  const int64_t kernel_group = std::gcd(q.group, cols), groups = (cols + q.group - 1) / q.group;
  if (kernel_group % 32) return std::nullopt;
  nn::Node node{linear.name, "Int4Linear", linear.attrs, {}, {}, {}};
  node.attrs["group_size"] = kernel_group;
  Tensor nibbles = Tensor::uninitialized(Shape{rows, cols / 2}, DType::u8);
  pack_int4_nibbles(q.codes.data<uint8_t>(), rows, cols, nibbles.mutable_data<uint8_t>());
  Tensor scales = Tensor::uninitialized(Shape{rows, cols / kernel_group}, DType::f16);
  Tensor mins = Tensor::uninitialized(Shape{rows, cols / kernel_group}, DType::f16);
  auto* s = static_cast<uint16_t*>(scales.mutable_raw_data());
  auto* m = static_cast<uint16_t*>(mins.mutable_raw_data());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < cols / kernel_group; ++g) {
      int64_t source = r * groups + g * kernel_group / q.group;
      float scale = q.scale.data<float>()[source], zero = q.zero.data<float>()[source];
      s[r * (cols / kernel_group) + g] = f32_to_f16(scale);
      m[r * (cols / kernel_group) + g] = f32_to_f16(-zero * scale);
    }
  node.params = {{"nibbles", nibbles, {}, false}, {"scales", scales, {}, false}, {"mins", mins, {}, false}};
  if (const nn::Param* bias = linear.find_param("bias")) node.params.push_back({"bias", bias->value, {}, false});
  if (!salient.columns.empty()) {
    Tensor columns = Tensor::uninitialized(Shape{int64_t(salient.columns.size())}, DType::i32);
    std::copy(salient.columns.begin(), salient.columns.end(), columns.mutable_data<int32_t>());
    node.params.push_back({"salient_columns", columns, {}, false});
    node.params.push_back({"salient_weight", salient.weight, {}, false});
  }
  return node;
}

void set_weight(nn::Graph& g, size_t index, Tensor w, const GroupQuantized& integers, const LlmQuantizeOptions& o,
                const SalientColumns& salient = {}) {
  nn::Node& node = g.nodes()[index];
  node.param("weight").value = std::move(w);
  node.prepared = nullptr;
  node.attrs["weight_quant"] = {{"method", o.method}, {"bits", o.weights.bits},
                                {"group_size", o.weights.group_size}, {"symmetric", o.weights.symmetric}};
  if (o.method == "gptq") {
    node.attrs["weight_quant"]["act_order"] = o.gptq.act_order;
    node.attrs["weight_quant"]["static_groups"] = o.gptq.static_groups;
    node.attrs["weight_quant"]["true_sequential"] = o.true_sequential;
  }
  if (o.method == "awq") {
    node.attrs["weight_quant"]["awq_scale"] = o.awq.scale;
    node.attrs["weight_quant"]["awq_clip"] = o.awq.clip;
  }
  if (!salient.columns.empty()) node.attrs["weight_quant"]["salient_columns"] = salient.columns.size();
  if (o.pack_int4)
    if (std::optional<nn::Node> packed = int4_node(node, integers, salient)) g.replace_node(node.name, std::move(*packed));
}

// RTN of one Linear; with `magnitude` (mean |x| per input channel), the top keep_salient
// fraction of the channels stay f16 and the quantized part holds zeros in their place.
void quantize_rtn_layer(nn::Graph& g, size_t n, const LlmQuantizeOptions& o, LlmQuantizeReport& report,
                        const std::vector<float>* magnitude) {
  nn::Node& node = g.nodes()[n];
  Tensor w = node.param("weight").value.contiguous();
  const int64_t rows = w.shape()[0], cols = w.shape()[1];
  SalientColumns salient;
  Tensor rest = w;
  if (magnitude && o.keep_salient > 0) {
    const int64_t keep = std::min<int64_t>(cols, int64_t(std::ceil(o.keep_salient * double(cols))));
    std::vector<int32_t> order(static_cast<size_t>(cols));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return (*magnitude)[size_t(a)] > (*magnitude)[size_t(b)]; });
    salient.columns.assign(order.begin(), order.begin() + keep);
    std::sort(salient.columns.begin(), salient.columns.end());
    salient.weight = Tensor::uninitialized(Shape{rows, keep}, DType::f16);
    auto* sw = static_cast<uint16_t*>(salient.weight.mutable_raw_data());
    rest = w.clone();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < keep; ++k) {
        float& v = rest.mutable_data<float>()[r * cols + salient.columns[size_t(k)]];
        sw[r * keep + k] = f32_to_f16(v);
        v = 0.f;
      }
    report.salient_weights += rows * keep;
  }
  GroupQuantized integers;
  Tensor q = rtn_quantize(rest, o.weights, &integers);
  if (!salient.columns.empty()) {  // the model computes with the f16 values in those columns
    const auto* sw = static_cast<const uint16_t*>(salient.weight.raw_data());
    const int64_t keep = int64_t(salient.columns.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < keep; ++k) q.mutable_data<float>()[r * cols + salient.columns[size_t(k)]] = f16_to_f32(sw[r * keep + k]);
  }
  report.layers.push_back({node.name, squared_difference(w, q), 0, 0, 0});
  set_weight(g, n, q, integers, o, salient);
}

}  // namespace

std::vector<std::vector<int32_t>> sample_calibration(std::span<const int32_t> stream, int64_t samples,
                                                     int64_t seq_len, uint64_t seed) {
  if (samples <= 0 || seq_len <= 0) throw UsageError("calibration needs positive --samples and --seq-len");
  if (int64_t(stream.size()) <= seq_len)
    throw UsageError(fmt::format("the calibration text has {} tokens, not more than --seq-len {}", stream.size(), seq_len),
                     "--calib");
  Rng rng(seed);
  std::vector<std::vector<int32_t>> out;
  for (int64_t s = 0; s < samples; ++s) {
    size_t start = size_t(rng.below(uint64_t(int64_t(stream.size()) - seq_len)));
    out.emplace_back(stream.begin() + std::ptrdiff_t(start), stream.begin() + std::ptrdiff_t(start + size_t(seq_len)));
  }
  return out;
}

// The output layer as int8 per row (DynamicQuantLinear). When it was tied to the token embedding,
// the embedding reads the same int8 table (with its row scales), so the file keeps one int8 copy
// instead of an f32 table plus an int8 head (SmolLM2: 28 MB instead of 142 MB).
static void quantize_head(io::LanguageModel& model) {
  nn::Graph& g = model.graph;
  if (g.node_index("lm_head") < 0) throw UnsupportedError("the model has no lm_head to quantize");
  nn::Node* embedding = nullptr;  // the token embedding tied to the head, if any
  const Tensor& f32_head = g.node("lm_head").param("weight").value;
  for (nn::Node& node : g.nodes())
    if (node.kind == "Embedding" && node.param("weight").value.raw_data() == f32_head.raw_data() &&
        node.param("weight").value.shape() == f32_head.shape())
      embedding = &node;
  compress::quantize_dynamic(g, {{"lm_head"}, {}});
  g.node("lm_head").attrs["weight_only"] = true;  // prompts (and perplexity) in f32 activations
  if (embedding) {
    const nn::Node& head = g.node("lm_head");
    embedding->param("weight").value = head.param("weight").value;
    embedding->param("weight").trainable = false;
    embedding->params.push_back({"weight_scale", head.param("weight_scale").value, {}, false});
    g.validate();
  }
  model.config.tied_embeddings = false;  // the head has its own node (GGUF export writes output.weight)
}

LlmQuantizeReport quantize_language_model(io::LanguageModel& model,
                                          const std::vector<std::vector<int32_t>>& calibration,
                                          const LlmQuantizeOptions& o) {
  if (o.method != "rtn" && o.method != "gptq" && o.method != "awq")
    throw UsageError(fmt::format("unknown weight-only method '{}' (rtn, gptq, awq)", o.method), "--method");
  if (!(o.keep_salient >= 0 && o.keep_salient < 1))
    throw UsageError(fmt::format("the salient fraction must be in [0, 1), not {}", o.keep_salient), "--keep-salient");
  if (o.keep_salient > 0 && o.method != "rtn")
    throw UsageError("salient channels are kept with --method rtn (AWQ's scaling replaces them)", "--keep-salient");
  auto start = std::chrono::steady_clock::now();
  nn::Graph& g = model.graph;
  std::vector<TransformerBlock> blocks = find_transformer_blocks(g);
  if (blocks.empty()) throw UnsupportedError("the model has no transformer blocks (nodes named '*.layers.<i>.*' or '*.layer.<i>.*')");
  LlmQuantizeReport report;
  auto linears_of = [&](const TransformerBlock& b) { return block_linears(g, b, o.exclude); };
  size_t layers = 0;
  for (const TransformerBlock& b : blocks)
    for (size_t n : linears_of(b)) o.weights.validate(g.nodes()[n].param("weight").value.shape()[1]), ++layers;
  if (layers == 0 && !o.int8_head)  // e.g. a model quantized already: it was saved again unchanged
    throw UsageError("the model's transformer blocks have no f32 Linear layers left to quantize (it is quantized "
                     "already, or --exclude names them all)");

  const std::string label = o.method == "gptq" ? "GPTQ" : o.method == "awq" ? "AWQ" : "RTN";
  ProgressLine progress(label + " block", int64_t(blocks.size()), o.quiet);
  auto finish = [&] {
    progress.finish();
    if (o.int8_head) quantize_head(model);
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    report.peak_rss_bytes = peak_rss_bytes();
    return report;
  };
  if (o.method == "rtn" && o.keep_salient == 0) {
    for (size_t bi = 0; bi < blocks.size(); ++bi) {
      for (size_t n : linears_of(blocks[bi])) quantize_rtn_layer(g, n, o, report, nullptr);
      progress.update(int64_t(bi + 1));
    }
    return finish();
  }

  if (calibration.empty()) throw UsageError(fmt::format("{} needs calibration samples", label), "--calib");
  BlockCalibration calib(g, calibration, o.batch, blocks[0]);
  report.calibration_tokens = calib.tokens();
  report.hidden_state_bytes = calib.hidden_bytes();
  for (size_t bi = 0; bi < blocks.size(); ++bi) {
    const TransformerBlock& b = blocks[bi];
    std::vector<size_t> linears = linears_of(b);
    double block_loss = 0;
    const bool staged = o.method == "gptq" && o.true_sequential;  // run_in_stages runs the whole block
    if (o.method == "gptq") {
      auto quantize_layer = [&](size_t n, const Tensor& hessian) {
        nn::Node& node = g.nodes()[n];
        GptqResult r = gptq_quantize(node.param("weight").value, hessian, o.weights, o.gptq);
        if (r.retries && !o.quiet)
          std::fprintf(stderr, "\n%s: Cholesky failed %d time(s); damping raised to %g of mean(diag H)\n",
                       node.name.c_str(), r.retries, r.damp);
        report.layers.push_back({node.name, r.loss, r.damp, r.retries, r.dead_columns});
        block_loss += r.loss;
        set_weight(g, n, r.weight, r.integers, o);
      };
      std::map<int, HessianAccumulator> hessians;  // by the input value of the Linear layers
      for (size_t n : linears) hessians.try_emplace(g.nodes()[n].inputs[0], g.nodes()[n].param("weight").value.shape()[1]);
      auto accumulate = [&](int value, const Tensor& x) {
        if (auto it = hessians.find(value); it != hessians.end()) it->second.add(x);
      };
      if (staged) {
        calib.run_in_stages(b, value_keys(hessians), accumulate, [&](int value) {
          const Tensor hessian = hessians.at(value).hessian();
          for (size_t n : linears)
            if (g.nodes()[n].inputs[0] == value) quantize_layer(n, hessian);
          hessians.erase(value);
        }, bi + 1 < blocks.size());
      } else {
        calib.observe(b, value_keys(hessians), accumulate);
        for (size_t n : linears) quantize_layer(n, hessians.at(g.nodes()[n].inputs[0]).hessian());
      }
    } else if (o.method == "awq") {
      size_t first_group = report.awq_groups.size();
      awq_block(g, b.first, b.last, b.input, calib.hidden(), linears, o.weights, o.awq, &report.awq_groups, nullptr);
      for (size_t i = first_group; i < report.awq_groups.size(); ++i)
        block_loss += report.awq_groups[i].loss_rtn > 0 ? report.awq_groups[i].loss / report.awq_groups[i].loss_rtn : 1;
      block_loss /= double(std::max<size_t>(1, report.awq_groups.size() - first_group));
      for (size_t n : linears) quantize_rtn_layer(g, n, o, report, nullptr);
    } else {
      std::map<int, ChannelMagnitude> magnitudes;
      for (size_t n : linears) magnitudes.try_emplace(g.nodes()[n].inputs[0], g.nodes()[n].param("weight").value.shape()[1]);
      calib.observe(b, value_keys(magnitudes), [&](int value, const Tensor& x) {
        if (auto it = magnitudes.find(value); it != magnitudes.end()) it->second.add(x);
      });
      for (size_t n : linears) {
        std::vector<float> m = magnitudes.at(g.nodes()[n].inputs[0]).mean();
        quantize_rtn_layer(g, n, o, report, &m);
      }
    }
    if (bi + 1 < blocks.size() && !staged) calib.advance(b);  // the quantized block's outputs feed the next block
    if (bi + 1 < blocks.size() && blocks[bi + 1].input != b.output)
      throw UnsupportedError("the next block does not read this block's output");
    progress.update(int64_t(bi + 1), o.method == "gptq"  ? fmt::format("block loss {:.3g}", block_loss)
                                     : o.method == "awq" ? fmt::format("error vs RTN {:.3f}", block_loss)
                                                         : std::string());
  }
  return finish();
}

}  // namespace shrink::compress
