// AWQ: activation-aware scale search, folding, and the clipping search (see awq.h).
#include "shrink/compress/awq.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>

#include "shrink/core/error.h"
#include "shrink/core/parallel.h"
#include "shrink/kernels/registry.h"
#include "shrink/nn/execute.h"

namespace shrink::compress {

std::vector<float> awq_scales(std::span<const float> magnitude, double alpha) {
  std::vector<float> s(magnitude.size());
  float hi = 0.f, lo = std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < s.size(); ++i) {
    s[i] = std::max(float(std::pow(double(magnitude[i]), alpha)), 1e-4f);
    hi = std::max(hi, s[i]), lo = std::min(lo, s[i]);
  }
  const float norm = std::sqrt(hi * lo);
  for (float& v : s) v /= norm;
  return s;
}

Tensor awq_scaled_quantize(const Tensor& weight, std::span<const float> column_scale, const WeightOnlyConfig& config) {
  const Tensor w = weight.to(DType::f32).contiguous();
  const int64_t rows = w.shape()[0], cols = w.shape()[1];
  if (int64_t(column_scale.size()) != cols) throw UsageError("AWQ: one scale per input column");
  Tensor scaled = Tensor::uninitialized(w.shape(), DType::f32);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      scaled.mutable_data<float>()[r * cols + c] = w.data<float>()[r * cols + c] * column_scale[size_t(c)];
  Tensor q = rtn_quantize(scaled, config);
  float* d = q.mutable_data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) d[r * cols + c] /= column_scale[size_t(c)];
  return q;
}

AwqClipResult awq_clip(const Tensor& weight, const Tensor& inputs, const WeightOnlyConfig& config,
                       const AwqOptions& options) {
  const Tensor w = weight.to(DType::f32).contiguous(), x = inputs.to(DType::f32).contiguous();
  if (w.rank() != 2 || x.rank() != 2 || x.shape()[1] != w.shape()[1])
    throw UsageError("AWQ clipping takes weights (out, in) and inputs (rows, in)");
  const int64_t rows = w.shape()[0], cols = w.shape()[1], n = x.shape()[0];
  const int64_t group = std::min(config.group_of(cols), cols), groups = (cols + group - 1) / group;
  // The error of a group's partial product over the tokens, d^T (X_g^T X_g / n) d, from the
  // diagonal blocks of the Gram matrix.
  std::vector<float> gram(static_cast<size_t>(cols * cols), 0.f);
  if (n > 0)
    kernels().gemm_f32(true, false, cols, cols, n, 1.f / float(n), x.data<float>(), cols, x.data<float>(), cols, 0.f,
                       gram.data(), cols);
  std::vector<float> limit(static_cast<size_t>(rows * groups));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      float m = 0.f;
      for (int64_t c = g * group; c < std::min(cols, (g + 1) * group); ++c) m = std::max(m, std::fabs(w.data<float>()[r * cols + c]));
      limit[size_t(r * groups + g)] = m;
    }
  std::vector<double> best(limit.size(), std::numeric_limits<double>::infinity());
  std::vector<float> best_limit(limit.size());
  AwqClipResult result;
  Tensor clamped = Tensor::uninitialized(w.shape(), DType::f32);
  std::vector<float> diff(static_cast<size_t>(rows * cols)), product(static_cast<size_t>(rows * cols));
  const int steps = std::max(1, int(options.max_shrink * options.clip_grid));
  for (int i = 0; i < steps; ++i) {
    const float factor = 1.f - float(i) / float(options.clip_grid);
    float* cd = clamped.mutable_data<float>();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        float m = limit[size_t(r * groups + c / group)] * factor;
        cd[r * cols + c] = std::clamp(w.data<float>()[r * cols + c], -m, m);
      }
    Tensor q = rtn_quantize(clamped, config);
    for (int64_t k = 0; k < rows * cols; ++k) diff[size_t(k)] = q.data<float>()[k] - w.data<float>()[k];
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t begin = g * group, width = std::min(group, cols - begin);
      kernels().gemm_f32(false, false, rows, width, width, 1.f, diff.data() + begin, cols,
                         gram.data() + begin * cols + begin, cols, 0.f, product.data() + begin, cols);
    }
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < groups; ++g) {
        double e = 0;
        for (int64_t c = g * group; c < std::min(cols, (g + 1) * group); ++c)
          e += double(diff[size_t(r * cols + c)]) * product[size_t(r * cols + c)];
        const size_t at = size_t(r * groups + g);
        if (i == 0) result.loss_unclipped += e;
        if (e < best[at]) best[at] = e, best_limit[at] = limit[at] * factor;
      }
  }
  result.weight = Tensor::uninitialized(w.shape(), DType::f32);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      float m = best_limit[size_t(r * groups + c / group)];
      result.weight.mutable_data<float>()[r * cols + c] = std::clamp(w.data<float>()[r * cols + c], -m, m);
    }
  for (double e : best) result.loss += e;
  return result;
}

void ChannelMagnitude::add(const Tensor& x) {
  const Tensor c = x.contiguous();
  const int64_t dim = int64_t(sum_.size());
  if (c.shape()[c.rank() - 1] != dim) throw UsageError("ChannelMagnitude: activations of another width");
  const float* d = c.data<float>();
  const int64_t rows = c.numel() / dim;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < dim; ++j) sum_[size_t(j)] += std::fabs(d[r * dim + j]);
  rows_ += rows;
}

std::vector<float> ChannelMagnitude::mean() const {
  std::vector<float> m(sum_.size());
  for (size_t j = 0; j < m.size(); ++j) m[j] = rows_ ? float(sum_[j] / double(rows_)) : 0.f;
  return m;
}

namespace {

// Linear layers reading one value, and where their input scales can be folded.
struct ScaleGroup {
  int input = -1;
  std::vector<size_t> linears;
  int target = -1;                     // node that absorbs 1/s on its output channels
  std::vector<int64_t> channel_map;    // input channel -> target channel
  int64_t target_channels = 0;
  bool segment = false;                // searched by running nodes [seg_first, seg_last)
  size_t seg_first = 0, seg_last = 0;
  int seg_output = -1;
  // Calibration captures.
  ChannelMagnitude magnitude{0};
  std::optional<HessianAccumulator> gram;
  std::vector<float> samples;  // clip rows (row-major, width = in)
  int64_t seen_rows = 0;
  std::vector<Tensor> search_inputs;
};

bool only_consumers(const nn::Graph& g, int value, const std::vector<size_t>& allowed) {
  for (int c : g.consumers(value))
    if (std::find(allowed.begin(), allowed.end(), size_t(c)) == allowed.end()) return false;
  return true;
}

// The Linear producing `value` when nothing else reads it besides `reader`.
int sole_linear_producer(const nn::Graph& g, int value, size_t reader) {
  int p = g.values()[size_t(value)].producer;
  if (p < 0 || g.nodes()[size_t(p)].kind != "Linear") return -1;
  return only_consumers(g, value, {reader}) ? p : -1;
}

void find_fold_target(const nn::Graph& g, size_t first, size_t last, ScaleGroup& s) {
  const int64_t in = g.nodes()[s.linears[0]].param("weight").value.shape()[1];
  const int p = g.values()[size_t(s.input)].producer;
  if (p < int(first) || p >= int(last) || !only_consumers(g, s.input, s.linears)) return;
  const nn::Node& producer = g.nodes()[size_t(p)];
  s.channel_map.resize(size_t(in));
  for (int64_t c = 0; c < in; ++c) s.channel_map[size_t(c)] = c;
  s.target_channels = in;
  if (producer.kind == "RMSNorm" || producer.kind == "LayerNorm" || producer.kind == "Linear") {
    s.target = p;
  } else if (producer.kind == "Mul") {  // gated MLP: act(gate) * up, scale up's rows
    for (int v : producer.inputs)
      if (int q = sole_linear_producer(g, v, size_t(p)); q >= 0) {
        s.target = q;
        break;
      }
  } else if (producer.kind == "Attention" && producer.inputs.size() >= 3) {
    // Output channel h * head_dim + i is a mix of v's channel (h / group) * head_dim + i.
    int q = sole_linear_producer(g, producer.inputs[2], size_t(p));
    int64_t heads = producer.attrs.value("num_heads", int64_t(0));
    int64_t kv_heads = producer.attrs.value("num_kv_heads", heads);
    if (q < 0 || heads <= 0 || kv_heads <= 0 || in % heads || heads % kv_heads) return;
    const int64_t dim = in / heads, group = heads / kv_heads;
    for (int64_t c = 0; c < in; ++c) s.channel_map[size_t(c)] = (c / dim / group) * dim + c % dim;
    s.target_channels = kv_heads * dim;
    s.target = q;
  }
}

void find_segment(const nn::Graph& g, size_t last, ScaleGroup& s) {
  if (s.linears.size() < 2) return;
  const size_t first = *std::min_element(s.linears.begin(), s.linears.end());
  const size_t after = *std::max_element(s.linears.begin(), s.linears.end());
  for (size_t n = after + 1; n < last; ++n) {
    if (g.nodes()[n].kind != "Add") continue;
    for (int v : g.nodes()[n].inputs) {
      int p = g.values()[size_t(v)].producer;
      if (p >= int(first) && p < int(n)) {
        s.segment = true, s.seg_first = first, s.seg_last = size_t(p) + 1, s.seg_output = v;
        return;
      }
    }
    return;
  }
}

Tensor scale_columns(const Tensor& w, std::span<const float> s, bool divide) {
  Tensor out = w.contiguous().clone();
  const int64_t rows = out.shape()[0], cols = out.shape()[1];
  float* d = out.mutable_data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) d[r * cols + c] = divide ? d[r * cols + c] / s[size_t(c)] : d[r * cols + c] * s[size_t(c)];
  return out;
}

// Divides output channel t of the fold target by s[t].
void fold_into(nn::Node& node, std::span<const float> s) {
  auto divide = [&](nn::Param* p, int64_t row_size) {
    if (!p) return;
    Tensor t = p->value.contiguous().clone();
    float* d = t.mutable_data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) d[i] /= s[size_t(i / row_size)];
    p->value = t;
  };
  const int64_t row = node.kind == "Linear" ? node.param("weight").value.shape()[1] : 1;
  divide(node.find_param("weight"), row);
  divide(node.find_param("bias"), 1);
  node.prepared = nullptr;
}

void set_linear_weight(nn::Node& node, Tensor w) {
  node.param("weight").value = std::move(w);
  node.prepared = nullptr;
}

double squared_error(const Tensor& a, const Tensor& b) {
  const Tensor x = a.contiguous(), y = b.contiguous();
  double s = 0;
  for (int64_t i = 0; i < x.numel(); ++i) s += std::pow(double(x.data<float>()[i]) - y.data<float>()[i], 2);
  return s;
}

// trace((Wq - W) G (Wq - W)^T): the output error over the Gram matrix's tokens.
double gram_error(const Tensor& w, const Tensor& wq, const Tensor& gram) {
  const int64_t rows = w.shape()[0], cols = w.shape()[1];
  std::vector<float> diff(static_cast<size_t>(rows * cols)), product(diff.size());
  for (int64_t i = 0; i < rows * cols; ++i) diff[size_t(i)] = wq.data<float>()[i] - w.data<float>()[i];
  kernels().gemm_f32(false, false, rows, cols, cols, 1.f, diff.data(), cols, gram.data<float>(), cols, 0.f,
                     product.data(), cols);
  double e = 0;
  for (size_t i = 0; i < diff.size(); ++i) e += double(diff[i]) * product[i];
  return e;
}

bool feeds_attention_scores(const nn::Graph& g, size_t linear) {
  const int out = g.nodes()[linear].outputs[0];
  for (int c : g.consumers(out)) {
    const nn::Node& n = g.nodes()[size_t(c)];
    if (n.kind == "Attention" && (n.inputs[0] == out || (n.inputs.size() > 1 && n.inputs[1] == out))) return true;
  }
  return false;
}

}  // namespace

void awq_block(nn::Graph& g, size_t first, size_t last, int input, std::span<const Tensor> hidden,
               const std::vector<size_t>& linears, const WeightOnlyConfig& config, const AwqOptions& o,
               std::vector<AwqGroupReport>* group_reports, std::vector<AwqLayerReport>* layer_reports) {
  if (o.scale_grid < 1 || o.clip_grid < 1 || o.clip_tokens < 1) throw UsageError("AWQ: grids and clip tokens must be positive");
  std::vector<ScaleGroup> groups;
  std::map<int, size_t> group_of_input;
  for (size_t n : linears) {
    int in = g.nodes()[n].inputs[0];
    auto [it, fresh] = group_of_input.try_emplace(in, groups.size());
    if (fresh) {
      groups.emplace_back();
      groups.back().input = in;
    }
    groups[it->second].linears.push_back(n);
  }
  int64_t total_rows = 0, sequences = 0;
  for (const Tensor& x : hidden) total_rows += x.numel() / x.shape()[x.rank() - 1], sequences += x.shape()[0];
  const int64_t wanted_sequences = o.search_sequences > 0 ? std::min(o.search_sequences, sequences) : sequences;
  size_t search_batches = 0;
  for (int64_t covered = 0; search_batches < hidden.size() && covered < wanted_sequences; ++search_batches)
    covered += hidden[search_batches].shape()[0];
  const int64_t stride = std::max<int64_t>(1, total_rows / o.clip_tokens);
  for (ScaleGroup& s : groups) {
    const int64_t in = g.nodes()[s.linears[0]].param("weight").value.shape()[1];
    s.magnitude = ChannelMagnitude(in);
    find_fold_target(g, first, last, s);
    find_segment(g, last, s);
    if (o.scale && s.target >= 0 && !s.segment) s.gram.emplace(in);
  }

  // One pass over the calibration batches captures what every search needs.
  size_t batch = 0;
  auto capture = [&](int value, const Tensor& x) {
    auto it = group_of_input.find(value);
    if (it == group_of_input.end()) return;
    ScaleGroup& s = groups[it->second];
    const Tensor c = x.contiguous();
    const int64_t dim = c.shape()[c.rank() - 1], rows = c.numel() / dim;
    s.magnitude.add(c);
    if (s.gram) s.gram->add(c);
    for (int64_t r = 0; r < rows; ++r, ++s.seen_rows)
      if (s.seen_rows % stride == 0 && int64_t(s.samples.size()) < o.clip_tokens * dim)
        s.samples.insert(s.samples.end(), c.data<float>() + r * dim, c.data<float>() + (r + 1) * dim);
    if (s.segment && batch < search_batches) s.search_inputs.push_back(c.clone());
  };
  nn::RunOptions run;
  run.after_node = [&](const nn::Node& node, std::span<const Tensor> outs) {
    for (size_t i = 0; i < outs.size(); ++i) capture(node.outputs[i], outs[i]);
  };
  const int probe = g.nodes()[last - 1].outputs[0];
  for (batch = 0; batch < hidden.size(); ++batch) {
    capture(input, hidden[batch]);
    nn::forward_segment(g, first, last, {{input, hidden[batch]}}, std::span<const int>(&probe, 1), run);
  }

  for (ScaleGroup& s : groups) {
    std::string names;
    for (size_t n : s.linears) names += (names.empty() ? "" : ",") + g.nodes()[n].name;
    AwqGroupReport report{names, s.target >= 0 ? g.nodes()[size_t(s.target)].name : "", 0, 0, 0};
    std::vector<float> column_scale;
    if (o.scale && s.target >= 0) {
      std::vector<float> magnitude = s.magnitude.mean(), target_magnitude(size_t(s.target_channels), 0.f);
      std::vector<int> count(size_t(s.target_channels), 0);
      for (size_t c = 0; c < magnitude.size(); ++c)
        target_magnitude[size_t(s.channel_map[c])] += magnitude[c], ++count[size_t(s.channel_map[c])];
      for (size_t t = 0; t < count.size(); ++t) target_magnitude[t] /= float(std::max(count[t], 1));
      std::vector<Tensor> original;
      for (size_t n : s.linears) original.push_back(g.nodes()[n].param("weight").value.contiguous());
      std::vector<Tensor> reference;
      if (s.segment)
        for (const Tensor& x : s.search_inputs)
          reference.push_back(nn::forward_segment(g, s.seg_first, s.seg_last, {{s.input, x}},
                                                  std::span<const int>(&s.seg_output, 1)).at(0));
      const Tensor gram = s.gram ? s.gram->hessian() : Tensor();
      double best = std::numeric_limits<double>::infinity();
      std::vector<float> best_target;
      for (int i = 0; i < o.scale_grid; ++i) {
        const double alpha = double(i) / o.scale_grid;
        std::vector<float> target = awq_scales(target_magnitude, alpha), columns(magnitude.size());
        for (size_t c = 0; c < columns.size(); ++c) columns[c] = target[size_t(s.channel_map[c])];
        double loss = 0;
        if (s.segment) {
          for (size_t l = 0; l < s.linears.size(); ++l)
            set_linear_weight(g.nodes()[s.linears[l]], awq_scaled_quantize(original[l], columns, config));
          for (size_t b = 0; b < s.search_inputs.size(); ++b)
            loss += squared_error(nn::forward_segment(g, s.seg_first, s.seg_last, {{s.input, s.search_inputs[b]}},
                                                      std::span<const int>(&s.seg_output, 1)).at(0),
                                  reference[b]);
        } else {
          for (size_t l = 0; l < s.linears.size(); ++l)
            loss += gram_error(original[l], awq_scaled_quantize(original[l], columns, config), gram);
        }
        if (!std::isfinite(loss)) throw Error(fmt::format("AWQ: the output error of {} is not finite", names));
        if (i == 0) report.loss_rtn = loss;
        if (loss < best) best = loss, best_target = target, report.alpha = alpha;
      }
      report.loss = best;
      column_scale.resize(magnitude.size());
      for (size_t c = 0; c < column_scale.size(); ++c) column_scale[c] = best_target[size_t(s.channel_map[c])];
      for (size_t l = 0; l < s.linears.size(); ++l)
        set_linear_weight(g.nodes()[s.linears[l]], scale_columns(original[l], column_scale, false));
      fold_into(g.nodes()[size_t(s.target)], best_target);
      const int64_t dim = int64_t(column_scale.size());
      for (size_t k = 0; k < s.samples.size(); ++k) s.samples[k] /= column_scale[k % size_t(dim)];
    }
    s.search_inputs.clear();
    if (group_reports) group_reports->push_back(report);
  }
  // As the reference: every scale first, then the clipping search on the scaled weights.
  if (!o.clip) return;
  for (ScaleGroup& s : groups) {
    const int64_t dim = g.nodes()[s.linears[0]].param("weight").value.shape()[1];
    Tensor rows = Tensor::uninitialized(Shape{int64_t(s.samples.size()) / dim, dim}, DType::f32);
    std::copy(s.samples.begin(), s.samples.end(), rows.mutable_data<float>());
    for (size_t n : s.linears) {
      if (feeds_attention_scores(g, n)) continue;
      AwqClipResult r = awq_clip(g.nodes()[n].param("weight").value, rows, config, o);
      set_linear_weight(g.nodes()[n], r.weight);
      if (layer_reports) layer_reports->push_back({g.nodes()[n].name, r.loss_unclipped, r.loss});
    }
  }
}

}  // namespace shrink::compress
