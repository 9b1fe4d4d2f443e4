#include "shrink/nn/decoder.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>

#include "core/env_switch.h"
#include "ops/attention.h"
#include "ops/linear.h"
#include "ops/op_support.h"
#include "nn/token_plan.h"
#include "ops/row_kernels.h"
#include "shrink/core/error.h"
#include "shrink/core/parallel.h"
#include "shrink/core/rng.h"
#include "shrink/nn/execute.h"
#include "shrink/nn/op.h"

namespace shrink::nn {

struct Decoder::Caches {
  std::vector<ops::KvCache> by_node;  // indexed by node
  // Int4Linear layers reading one value run together (ops/linear.h): at the first of a set, all
  // of its members; the later members find their output waiting in `ahead` (by node index).
  std::vector<std::vector<Node*>> shared_input;
  std::vector<Tensor> ahead;
  // By node: the weights of the next product a decoded token runs after this node's own (an
  // Int4Linear set or layer, a DynamicQuantLinear), which the team's helper reads ahead while it
  // waits (team_prefetch; next_weights_by_node).
  std::vector<std::span<const std::byte>> next_weights;
  // By node: a single token's step fused with the node after it (fused_steps_by_node).
  std::vector<FusedStep> fused;
  std::vector<int> product_first;  // product_first_by_node
  // A decoded token's steps, planned from the first token that runs node by node (token_plan.h);
  // SHRINK_DECODE_PLAN=0 keeps every token node by node.
  std::unique_ptr<TokenPlan> plan;
  bool plan_wanted = true;
  // Whether a decoded token runs as one run_as_team team: ~145 parallel calls of 5-50 us
  // each (SmolLM2) handed to a spinning helper rather than through an OpenMP region each. Not
  // when an f32 Linear layer multiplies through OpenBLAS, which inside the team would run on one
  // thread; SHRINK_DECODE_TEAM=0 turns it off (to measure what it gives).
  bool team = false;
};

namespace {

bool is_linear_kind(const std::string& kind) {
  return kind == "Linear" || kind == "DynamicQuantLinear" || kind == "Int4Linear";
}

// Sets of two or more Int4Linear nodes with the same single input, keyed by their first node.
std::vector<std::vector<Node*>> int4_sets_by_input(Graph& graph) {
  std::vector<Node>& nodes = graph.nodes();
  std::map<int, std::vector<Node*>> by_input;
  for (Node& node : nodes)
    if (node.kind == "Int4Linear" && node.inputs.size() == 1) by_input[node.inputs[0]].push_back(&node);
  std::vector<std::vector<Node*>> sets(nodes.size());
  for (auto& [input, members] : by_input)
    if (members.size() > 1 && ops::int4_linears_share_input(members)) sets[size_t(members[0] - nodes.data())] = members;
  return sets;
}

// The bytes of a set of Int4Linear layers (or of one) from the first to the last, when they lie
// together as the decode layouts are made (in graph order); else the first layer's.
std::span<const std::byte> set_weight_bytes(std::span<Node* const> members) {
  const std::byte *begin = nullptr, *end = nullptr;
  size_t total = 0;
  for (Node* m : members) {
    const std::span<const std::byte> bytes = ops::decoding_weight_bytes(*m);
    if (bytes.empty()) continue;
    begin = begin ? std::min(begin, bytes.data()) : bytes.data();
    end = std::max(end, bytes.data() + bytes.size());
    total += bytes.size();
  }
  if (!begin) return {};
  if (size_t(end - begin) > total + 64 * members.size()) return ops::decoding_weight_bytes(*members[0]);
  return {begin, size_t(end - begin)};
}

// By node: the first node of the product it belongs to (a set of Int4Linear layers reading one
// input, run at its first node, or a single Int4Linear or DynamicQuantLinear layer, its own
// index); -1 for nodes that are no product.
std::vector<int> product_first_by_node(const Graph& graph, const std::vector<std::vector<Node*>>& sets) {
  const std::vector<Node>& nodes = graph.nodes();
  std::vector<int> first(nodes.size(), -1);
  for (size_t i = 0; i < nodes.size(); ++i) {
    if ((nodes[i].kind != "Int4Linear" && nodes[i].kind != "DynamicQuantLinear") || first[i] >= 0) continue;
    first[i] = int(i);
    for (const Node* m : sets[i]) first[size_t(m - nodes.data())] = int(i);
  }
  return first;
}

// By node: the weights of the next product that a decoded token reads after the one this node
// belongs to, or after this node; empty where none follows.
std::vector<std::span<const std::byte>> next_weights_by_node(Graph& graph, const std::vector<std::vector<Node*>>& sets,
                                                             const std::vector<int>& first_of) {
  std::vector<Node>& nodes = graph.nodes();
  std::vector<std::span<const std::byte>> bytes_of(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (first_of[i] != int(i)) continue;
    Node* self = &nodes[i];
    bytes_of[i] = set_weight_bytes(sets[i].empty() ? std::span<Node* const>(&self, 1) : std::span<Node* const>(sets[i]));
  }
  std::vector<std::span<const std::byte>> next(nodes.size());
  std::span<const std::byte> coming;  // of the first set starting after node i
  for (size_t i = nodes.size(); i-- > 0;) {
    next[i] = coming;
    if (first_of[i] == int(i) && !bytes_of[i].empty()) coming = bytes_of[i];
  }
  for (size_t i = 0; i < nodes.size(); ++i)  // a set's members: what follows its first node's set
    if (first_of[i] >= 0) next[i] = next[size_t(first_of[i])];
  return next;
}

// Runs a fused step on its node's inputs (in, out as in replace_forward); false where the inputs
// are not what the step needs (the node then runs alone).
bool run_fused(const FusedStep& f, std::span<const Tensor> in, std::vector<Tensor>& out, std::vector<Tensor>& ahead) {
  if (f.kind == FusedStep::Kind::add_then_norm) {
    const Tensor a = in[0].contiguous(), b = in[1].contiguous();
    const int64_t width = f.weight.numel();
    if (a.dtype() != DType::f32 || b.dtype() != DType::f32 || a.shape() != b.shape() || a.rank() < 1 ||
        a.shape()[a.rank() - 1] != width || width <= 0)
      return false;
    const int64_t n = a.numel();
    Tensor sum = Tensor::uninitialized(a.shape(), DType::f32), normed = Tensor::uninitialized(a.shape(), DType::f32);
    const float *ad = a.data<float>(), *bd = b.data<float>();
    float* x = sum.mutable_data<float>();
    for (int64_t i = 0; i < n; ++i) x[i] = ad[i] + bd[i];
    for (int64_t row = 0; row < n; row += width)
      ops::norm_row(x + row, width, f.weight.data<float>(), nullptr, /*layer_norm=*/false, f.eps,
                    normed.mutable_data<float>() + row);
    out[0] = sum;
    ahead[size_t(f.partner)] = normed;
    return true;
  }
  if (f.kind == FusedStep::Kind::silu_then_mul) {
    const Tensor& up = ahead[size_t(f.other)];
    if (!up.defined()) return false;
    const Tensor gate = in[0].contiguous(), u = up.contiguous();
    if (gate.dtype() != DType::f32 || u.dtype() != DType::f32 || gate.shape() != u.shape()) return false;
    const int64_t n = gate.numel();
    Tensor mixed = Tensor::uninitialized(gate.shape(), DType::f32);
    float* y = mixed.mutable_data<float>();
    const float* ud = u.data<float>();
    ops::silu_row(gate.data<float>(), y, n);
    for (int64_t i = 0; i < n; ++i) y[i] = y[i] * ud[i];
    out[0] = in[0];  // the SiLU's own output is read by the Mul alone, which takes `mixed`
    ahead[size_t(f.partner)] = mixed;
    return true;
  }
  return false;
}

// Where a single token's steps can be fused (FusedStep): an Add whose sum an RMSNorm reads, and a
// SiLU whose only reader is a Mul by an Int4Linear's output that its set computes before the SiLU.
std::vector<FusedStep> fused_steps_by_node(const Graph& graph, const std::vector<int>& first_of) {
  const std::vector<Node>& nodes = graph.nodes();
  const std::vector<int>& outputs = graph.outputs();
  std::vector<FusedStep> fused(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& node = nodes[i];
    if (node.outputs.size() != 1 || (node.kind != "Add" && node.kind != "SiLU")) continue;
    const std::vector<int> reads = graph.consumers(node.outputs[0]);
    if (node.kind == "Add" && node.inputs.size() == 2) {
      for (int r : reads) {
        const Node& norm = nodes[size_t(r)];
        if (norm.kind != "RMSNorm" || norm.inputs.size() != 1 || norm.outputs.size() != 1) continue;
        const Param* weight = norm.find_param("weight");
        if (!weight || weight->value.dtype() != DType::f32 || !weight->value.is_contiguous()) continue;
        FusedStep& f = fused[i];
        f.kind = FusedStep::Kind::add_then_norm, f.partner = r, f.weight = weight->value;
        f.eps = float(ops::attr_float(norm, "eps", 1e-6));  // as the op reads it
        break;
      }
    }
    if (node.kind == "SiLU" && node.inputs.size() == 1 && reads.size() == 1 &&
        std::find(outputs.begin(), outputs.end(), node.outputs[0]) == outputs.end()) {
      const Node& mul = nodes[size_t(reads[0])];
      if (mul.kind != "Mul" || mul.inputs.size() != 2 || mul.inputs[0] == mul.inputs[1]) continue;
      const int other_value = mul.inputs[0] == node.outputs[0] ? mul.inputs[1] : mul.inputs[0];
      const int producer = graph.values()[size_t(other_value)].producer;
      // computed with its set before the SiLU: its output waits in `ahead`
      if (producer <= int(i) || first_of[size_t(producer)] < 0 || first_of[size_t(producer)] >= int(i)) continue;
      fused[i].kind = FusedStep::Kind::silu_then_mul, fused[i].partner = reads[0], fused[i].other = producer;
    }
  }
  return fused;
}

}  // namespace

Decoder::Decoder(Graph& graph, DecoderOptions options)
    : graph_(graph), caches_(std::make_unique<Caches>()), options_(options) {
  if (graph.inputs().size() != 1 || graph.values()[size_t(graph.inputs()[0])].info.dtype != DType::i64 ||
      graph.outputs().size() != 1)
    throw UsageError("decoding needs a language model: one i64 token input, one logits output");
  if (options.kv_cache != DType::f16 && options.kv_cache != DType::f32)
    throw UsageError("the key/value cache holds f16 or f32, not " + std::string(dtype_name(options.kv_cache)));
  caches_->by_node.resize(graph.nodes().size());
  reset();
  caches_->shared_input = int4_sets_by_input(graph);
  caches_->ahead.resize(graph.nodes().size());
  for (Node& node : graph.nodes()) ops::prepare_for_decoding(node);
  caches_->product_first = product_first_by_node(graph, caches_->shared_input);
  const std::vector<int>& product_first = caches_->product_first;
  caches_->next_weights = next_weights_by_node(graph, caches_->shared_input, product_first);
  caches_->fused = switched_on("SHRINK_DECODE_FUSE") ? fused_steps_by_node(graph, product_first)
                                                     : std::vector<FusedStep>(graph.nodes().size());
  caches_->plan_wanted = switched_on("SHRINK_DECODE_PLAN");
  caches_->team = switched_on("SHRINK_DECODE_TEAM") &&
                  std::none_of(graph.nodes().begin(), graph.nodes().end(), [](const Node& n) { return n.kind == "Linear"; });
}

Decoder::~Decoder() = default;

void Decoder::reserve(int64_t positions) {
  if (positions < 0) throw UsageError("a negative number of positions to reserve");
  reserved_ = positions;
  for (ops::KvCache& c : caches_->by_node) c.reserved = positions;
}

void Decoder::reset() {
  ops::KvCache empty;
  empty.half = options_.kv_cache == DType::f16;
  empty.reserved = reserved_;
  for (auto& c : caches_->by_node) c = empty;
  length_ = 0;
  logits_ = Tensor();
}

int64_t Decoder::fused_steps() const {
  return std::count_if(caches_->fused.begin(), caches_->fused.end(),
                       [](const FusedStep& f) { return f.kind != FusedStep::Kind::none; });
}

int64_t Decoder::planned_steps() const { return caches_->plan ? caches_->plan->planned_steps() : 0; }

int64_t Decoder::kv_cache_bytes() const {
  int64_t bytes = 0;
  for (const ops::KvCache& c : caches_->by_node)
    bytes += 2 * c.kv_heads * c.capacity * c.dim * int64_t(c.half ? sizeof(uint16_t) : sizeof(float));
  return bytes;
}

std::vector<float> Decoder::feed(std::span<const int32_t> tokens) {
  const std::span<const float> last = feed_view(tokens);
  return std::vector<float>(last.begin(), last.end());
}

std::span<const float> Decoder::feed_view(std::span<const int32_t> tokens) {
  if (tokens.empty()) throw UsageError("nothing to feed the decoder");
  const int64_t t = int64_t(tokens.size());
  Tensor ids = Tensor::uninitialized(Shape{1, t}, DType::i64);
  std::copy(tokens.begin(), tokens.end(), ids.mutable_data<int64_t>());
  Tensor logits;
  bool head_ran_on_last_row = false;
  const bool planned = t == 1 && caches_->plan;
  const auto run = [&] {
    logits = (planned ? caches_->plan->run(ids, caches_->by_node, profiling_ ? &profile_ : nullptr)
                      : run_node_by_node(ids, head_ran_on_last_row))
                 .contiguous();
  };
  if (t == 1 && caches_->team)
    run_as_team(run);
  else
    run();
  length_ += t;
  const int64_t rows = head_ran_on_last_row ? 1 : t;
  if (logits.rank() != 3 || logits.shape()[1] != rows) throw UsageError("the model's output is not (1, T, vocabulary) logits");
  int64_t v = logits.shape()[2];
  logits_ = std::move(logits);
  return {logits_.data<float>() + (rows - 1) * v, size_t(v)};
}

Tensor Decoder::run_node_by_node(const Tensor& ids, bool& head_ran_on_last_row) {
  for (Tensor& ready : caches_->ahead) ready = Tensor();  // nothing left over from a call that failed midway
  const int64_t t = ids.shape()[1];
  const std::vector<Node>& nodes = graph_.nodes();
  RunOptions options;
  std::chrono::steady_clock::time_point node_start;
  // Only the last position's logits are returned, so a prompt's output layer, when it is a linear
  // layer (row by row), runs on that position alone: SmolLM2's head over a 699-token prompt is
  // 40 GFLOP, about a fifth of the prefill.
  const int output = graph_.outputs()[0];
  const int head = graph_.values()[size_t(output)].producer;
  const bool head_on_last_row = t > 1 && head >= 0 && is_linear_kind(nodes[size_t(head)].kind) &&
                                nodes[size_t(head)].inputs.size() == 1;
  options.replace_forward = [&](Node& node, std::span<const Tensor> in, std::vector<Tensor>& out) {
    if (profiling_) node_start = std::chrono::steady_clock::now();
    const size_t index = size_t(&node - nodes.data());
    if (const std::span<const std::byte> next = caches_->next_weights[index]; !next.empty())
      team_prefetch(next.data(), next.size());
    if (Tensor& ready = caches_->ahead[index]; ready.defined()) {  // computed with the first of its set
      out[0] = std::move(ready);
      ready = Tensor();
      return true;
    }
    if (head_on_last_row && int(index) == head && in[0].rank() == 3) {
      const Tensor last_row = in[0].slice(1, in[0].shape()[1] - 1, in[0].shape()[1]).contiguous();
      std::vector<Tensor> saved;
      Rng rng(0);
      ForwardContext context{node, std::span<const Tensor>(&last_row, 1), out, saved, false, false, rng};
      op_rules(node.kind).forward(context);  // one row: a quantized layer takes its decoding path
      head_ran_on_last_row = true;
      return true;
    }
    if (node.kind == "Int4Linear") {  // alone or as the first of its set; prompts too in s8 activations
      const std::vector<Node*>& set = caches_->shared_input[index];
      Node* self = &node;
      const std::span<Node* const> members = set.empty() ? std::span<Node* const>(&self, 1) : std::span<Node* const>(set);
      std::vector<Tensor> results = ops::int4_linears_shared_input(members, in[0], /*s8_activations=*/true);
      out[0] = results[0];
      for (size_t m = 1; m < members.size(); ++m) caches_->ahead[size_t(members[m] - nodes.data())] = results[m];
      return true;
    }
    if (t == 1 && run_fused(caches_->fused[index], in, out, caches_->ahead)) return true;
    if (node.kind != "Attention") return false;
    ops::KvCache& cache = caches_->by_node[index];
    // As the plan does (earlier there), so that a token's attention splits its positions between
    // the threads, or not, alike on both paths.
    if (t == 1) cache.prefetch(cache.length + 1);
    out[0] = ops::cached_attention(node, in[0], in[1], in[2], cache);
    return true;
  };
  // The first decoded token runs node by node and leaves its values for the plan of the rest.
  const bool record = t == 1 && !caches_->plan && caches_->plan_wanted;
  std::vector<Tensor> recorded(record ? graph_.values().size() : 0);
  if (record) recorded[size_t(graph_.inputs()[0])] = ids;
  if (profiling_ || record)
    options.after_node = [&](const Node& node, std::span<const Tensor> outputs) {
      if (record)
        for (size_t o = 0; o < outputs.size() && o < node.outputs.size(); ++o) recorded[size_t(node.outputs[o])] = outputs[o];
      if (!profiling_) return;
      KindTime& k = profile_[node.kind];
      k.calls += 1;
      k.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - node_start).count();
    };
  Tensor logits =
      forward_segment(graph_, 0, nodes.size(), {{graph_.inputs()[0], ids}}, std::span<const int>(&output, 1), options).at(0);
  if (record) {
    const TokenPlanParts parts{caches_->shared_input, caches_->product_first, caches_->fused, caches_->next_weights};
    try {
      caches_->plan = std::make_unique<TokenPlan>(graph_, parts, recorded);
    } catch (const UnsupportedError&) {
      caches_->plan_wanted = false;  // this graph decodes node by node
    }
  }
  return logits;
}

namespace {

// The first index of the largest logit (NaNs never win). std::max_element runs one compare and
// branch per logit (~0.1 ms of a SmolLM2 token, 49,152 logits); here the maximum of each block of
// 64 comes from lane-wise maxima the compiler vectorizes, and only the winning block is searched.
int32_t greedy_token(std::span<const float> logits) {
  constexpr size_t kBlock = 64, kLanes = 16;
  const float* x = logits.data();
  const size_t n = logits.size(), blocks = n / kBlock;
  float best = -INFINITY;
  size_t best_block = blocks;  // none yet
  for (size_t b = 0; b < blocks; ++b) {
    float lane[kLanes];
    std::fill(lane, lane + kLanes, -INFINITY);
    for (size_t i = 0; i < kBlock; i += kLanes)
      for (size_t j = 0; j < kLanes; ++j) lane[j] = lane[j] < x[b * kBlock + i + j] ? x[b * kBlock + i + j] : lane[j];
    float top = lane[0];
    for (size_t j = 1; j < kLanes; ++j) top = top < lane[j] ? lane[j] : top;
    if (best < top) best = top, best_block = b;
  }
  size_t index = 0;
  bool found = false;
  for (size_t i = blocks * kBlock; i < n; ++i)  // the tail, after the blocks
    if (best < x[i]) best = x[i], index = i, found = true;
  if (!found && best_block < blocks)
    for (size_t i = best_block * kBlock;; ++i)
      if (x[i] == best) {
        index = i;
        break;
      }
  return int32_t(index);
}

}  // namespace

int32_t sample_token(std::span<const float> logits, const SamplingOptions& o, Rng& rng) {
  if (logits.empty()) throw UsageError("no logits to sample from");
  if (o.temperature < 0 || o.top_k < 0 || o.top_p <= 0 || o.top_p > 1)
    throw UsageError("sampling needs temperature >= 0, top-k >= 0 and 0 < top-p <= 1");
  if (o.temperature == 0) return greedy_token(logits);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[size_t(a)] > logits[size_t(b)]; });
  size_t keep = o.top_k > 0 ? std::min(order.size(), size_t(o.top_k)) : order.size();
  std::vector<double> p(keep);
  double top = logits[size_t(order[0])], sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += p[i] = std::exp((logits[size_t(order[i])] - top) / o.temperature);
  double mass = 0;
  size_t nucleus = keep;
  for (size_t i = 0; i < keep; ++i) {
    mass += p[i] / sum;
    if (mass >= o.top_p) {
      nucleus = i + 1;
      break;
    }
  }
  double total = std::accumulate(p.begin(), p.begin() + std::ptrdiff_t(nucleus), 0.0);
  double u = rng.uniform(0.f, 1.f) * total;
  for (size_t i = 0; i < nucleus; ++i) {
    u -= p[i];
    if (u <= 0) return order[i];
  }
  return order[nucleus - 1];
}

int64_t weight_bytes_per_token(const Graph& graph) {
  int64_t bytes = 0;
  for (const Node& node : graph.nodes()) {
    if (node.kind == "Embedding" || node.kind == "PositionEmbedding") continue;
    bytes += node.param_bytes();
  }
  return bytes;
}

}  // namespace shrink::nn
