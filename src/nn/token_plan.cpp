#include "nn/token_plan.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <xmmintrin.h>

#include "ops/row_kernels.h"
#include "shrink/core/error.h"
#include "shrink/core/parallel.h"
#include "shrink/core/rng.h"
#include "shrink/nn/op.h"

namespace shrink::nn {

struct TokenPlan::Step {
  enum class Op { generic, int4_set, attention, add_then_norm, silu_then_mul } op = Op::generic;
  Node* node = nullptr;
  const OpRules* rules = nullptr;        // generic
  std::span<const std::byte> next;       // weights the helpers read ahead from this step on
  std::vector<int> in, out;              // value ids: the node's inputs; the values this step writes
  std::vector<const Node*> covered;      // nodes whose outputs this step writes besides its own
  ops::Int4RowSet set;                   // int4_set
  ops::AttentionShape attention{};       // attention
  int64_t width = 0;                     // add_then_norm: the norm's width; silu_then_mul: values
  const float* norm_weight = nullptr;    // add_then_norm
  float eps = 0;
  size_t cache = 0;                      // attention: the node's KV cache
  int64_t prefetch_cache = -1;           // int4_set: the KV cache of the attention after it
  const float* prefetch_norm = nullptr;  // int4_set: the weights of the fused add + norm after it
  int64_t prefetch_norm_width = 0;
  bool asked_early = false;              // attention: its keys and values asked for by a product
};

namespace {

bool is_f32_row(const Tensor& t, int64_t numel) {
  return t.defined() && t.dtype() == DType::f32 && t.is_contiguous() && t.numel() == numel;
}

// A slot's floats, checked against what the plan was made for (a graph whose shapes a token
// cannot change: a mismatch is the plan's bug, not the input's).
const float* row_of(const Tensor& t, int64_t numel) {
  if (!is_f32_row(t, numel)) throw std::logic_error("decode plan: a value is not the f32 row it was planned as");
  return t.data<float>();
}

float* mutable_row_of(Tensor& t, int64_t numel) {
  if (!is_f32_row(t, numel)) throw std::logic_error("decode plan: a slot is not the f32 row it was planned as");
  return t.mutable_data<float>();
}

}  // namespace

TokenPlan::TokenPlan(Graph& graph, const TokenPlanParts& parts, std::span<const Tensor> token_values)
    : graph_(graph), values_(graph.values().size()) {
  std::vector<Node>& nodes = graph.nodes();
  if (token_values.size() != values_.size()) throw std::logic_error("decode plan: one token's values do not match the graph");
  const auto recorded = [&](int value) -> const Tensor& { return token_values[size_t(value)]; };
  std::vector<bool> covered(nodes.size(), false);
  const auto own_slot = [&](int value) {  // a slot this plan's steps write: allocated once
    values_[size_t(value)] = Tensor::uninitialized(recorded(value).shape(), DType::f32);
  };
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (covered[i]) continue;
    Node& node = nodes[i];
    Step step;
    step.node = &node;
    step.in = node.inputs;
    step.out = node.outputs;
    step.next = parts.next_weights[i];
    const FusedStep& fused = parts.fused[i];
    const bool single_output = node.outputs.size() == 1 && recorded(node.outputs[0]).defined();
    if (node.kind == "Int4Linear" && parts.product_first[i] == int(i) && node.inputs.size() == 1 && single_output) {
      std::vector<Node*> members = parts.sets[i];
      if (members.empty()) members.push_back(&node);
      step.set = ops::prepare_int4_row_set(members);
      if (is_f32_row(recorded(node.inputs[0]), step.set.k)) {
        step.op = Step::Op::int4_set;
        step.out.clear();
        for (Node* m : members) {
          step.out.push_back(m->outputs.at(0));
          if (m != &node) {
            covered[size_t(m - nodes.data())] = true;
            step.covered.push_back(m);
          }
        }
      }
    } else if (node.kind == "Attention" && node.inputs.size() == 3 && single_output) {
      const Tensor& q = recorded(node.inputs[0]);
      step.attention = ops::cached_attention_row_shape(node, q.defined() ? q.numel() : 0);
      const int64_t kv = step.attention.kv_heads * step.attention.dim;
      if (is_f32_row(q, q.numel()) && is_f32_row(recorded(node.inputs[1]), kv) && is_f32_row(recorded(node.inputs[2]), kv)) {
        step.op = Step::Op::attention;
        step.cache = i;
      } else {  // its op's own forward would not use the cache
        throw UnsupportedError("decode plan: an attention node whose inputs are not single f32 rows");
      }
    } else if (fused.kind == FusedStep::Kind::add_then_norm && single_output) {
      const Node& norm = nodes[size_t(fused.partner)];
      const int64_t width = fused.weight.numel();
      if (is_f32_row(recorded(node.inputs[0]), width) && is_f32_row(recorded(node.inputs[1]), width) &&
          is_f32_row(recorded(norm.outputs[0]), width)) {
        step.op = Step::Op::add_then_norm;
        step.width = width, step.norm_weight = fused.weight.data<float>(), step.eps = fused.eps;
        step.out.push_back(norm.outputs[0]);
        covered[size_t(fused.partner)] = true;
        step.covered.push_back(&norm);
      }
    } else if (fused.kind == FusedStep::Kind::silu_then_mul && single_output) {
      const Node& mul = nodes[size_t(fused.partner)];
      const int up = nodes[size_t(fused.other)].outputs.at(0);
      const int64_t n = recorded(node.inputs[0]).numel();
      if (is_f32_row(recorded(node.inputs[0]), n) && is_f32_row(recorded(up), n) && is_f32_row(recorded(mul.outputs[0]), n)) {
        step.op = Step::Op::silu_then_mul;
        step.width = n;
        step.in = {node.inputs[0], up};
        step.out = {mul.outputs[0]};  // the SiLU's own output is read by the Mul alone
        covered[size_t(fused.partner)] = true;
        step.covered.push_back(&mul);
      }
    }
    if (step.op == Step::Op::generic) {
      step.rules = &op_rules(node.kind);
    } else {
      for (int value : step.out) own_slot(value);
    }
    steps_.push_back(std::move(step));
  }
  // What a step reads that the weights streamed since its last use have pushed out of every cache
  // is asked for as the product before it starts: an attention's keys and values (its q/k/v
  // product), and a fused add + norm's weights (576 floats for SmolLM2; on the 2-core Zen 4 host
  // the norm took ~2,200 TSC cycles a call with them cold, ~1,200 asked for early).
  Step* product = nullptr;  // the last int4 set so far
  for (Step& step : steps_) {
    if (step.op == Step::Op::int4_set) product = &step;
    if (!product) continue;
    if (step.op == Step::Op::attention) {
      product->prefetch_cache = int64_t(step.cache);
      step.asked_early = true;
    } else if (step.op == Step::Op::add_then_norm) {
      product->prefetch_norm = step.norm_weight;
      product->prefetch_norm_width = step.width;
    }
  }
}

TokenPlan::~TokenPlan() = default;

int64_t TokenPlan::planned_steps() const {
  return std::count_if(steps_.begin(), steps_.end(), [](const Step& s) { return s.op != Step::Op::generic; });
}

Tensor TokenPlan::run(const Tensor& ids, std::vector<ops::KvCache>& caches,
                      std::map<std::string, Decoder::KindTime>* profile) {
  values_[size_t(graph_.inputs()[0])] = ids;
  std::vector<Tensor> in, out, saved;
  std::vector<float*> set_outputs;
  Rng rng(0x5eed);  // as forward_segment's: no op reads it in eval mode
  for (Step& step : steps_) {
    const auto start = profile ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    if (!step.next.empty()) team_prefetch(step.next.data(), step.next.size());
    switch (step.op) {
      case Step::Op::generic: {
        in.clear();
        for (int value : step.in) in.push_back(values_[size_t(value)]);
        out.assign(step.out.size(), Tensor());
        saved.clear();
        ForwardContext context{*step.node, in, out, saved, false, false, rng};
        step.rules->forward(context);
        for (size_t o = 0; o < out.size(); ++o) values_[size_t(step.out[o])] = std::move(out[o]);
        break;
      }
      case Step::Op::int4_set: {
        if (step.prefetch_cache >= 0) {
          ops::KvCache& cache = caches[size_t(step.prefetch_cache)];
          cache.prefetch(cache.length + 1);
        }
        const char* norm = reinterpret_cast<const char*>(step.prefetch_norm);
        for (int64_t b = 0; b < step.prefetch_norm_width * int64_t(sizeof(float)); b += 64) _mm_prefetch(norm + b, _MM_HINT_T0);
        set_outputs.clear();
        for (size_t m = 0; m < step.out.size(); ++m)
          set_outputs.push_back(mutable_row_of(values_[size_t(step.out[m])], step.set.weights[m].n));
        ops::int4_row_set_forward(step.set, row_of(values_[size_t(step.in[0])], step.set.k), 1, set_outputs.data());
        break;
      }
      case Step::Op::attention: {
        const ops::AttentionShape& s = step.attention;
        const int64_t q = s.heads * s.dim, kv = s.kv_heads * s.dim;
        // Asked for now if no product did: the positions then split between the threads, or
        // not, as on the node-by-node path.
        if (!step.asked_early) caches[step.cache].prefetch(caches[step.cache].length + 1);
        ops::cached_attention_row(*step.node, s, row_of(values_[size_t(step.in[0])], q),
                                  row_of(values_[size_t(step.in[1])], kv), row_of(values_[size_t(step.in[2])], kv),
                                  caches[step.cache], mutable_row_of(values_[size_t(step.out[0])], q));
        break;
      }
      case Step::Op::add_then_norm: {
        const int64_t n = step.width;
        const float *a = row_of(values_[size_t(step.in[0])], n), *b = row_of(values_[size_t(step.in[1])], n);
        float* sum = mutable_row_of(values_[size_t(step.out[0])], n);
        for (int64_t i = 0; i < n; ++i) sum[i] = a[i] + b[i];
        ops::norm_row(sum, n, step.norm_weight, nullptr, /*layer_norm=*/false, step.eps,
                      mutable_row_of(values_[size_t(step.out[1])], n));
        break;
      }
      case Step::Op::silu_then_mul: {
        const int64_t n = step.width;
        const float *gate = row_of(values_[size_t(step.in[0])], n), *up = row_of(values_[size_t(step.in[1])], n);
        float* y = mutable_row_of(values_[size_t(step.out[0])], n);
        ops::silu_row(gate, y, n);
        for (int64_t i = 0; i < n; ++i) y[i] = y[i] * up[i];
        break;
      }
    }
    if (profile) {
      Decoder::KindTime& k = (*profile)[step.node->kind];
      k.calls += 1;
      k.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      for (const Node* c : step.covered) (*profile)[c->kind].calls += 1;
    }
  }
  return values_[size_t(graph_.outputs()[0])];
}

}  // namespace shrink::nn
