// Sequential block-by-block calibration (see block_calibration.h).
#include "compress/block_calibration.h"

#include "core/memory_budget.h"

#include <fmt/format.h>
#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <regex>

#include "shrink/compress/prune.h"
#include "shrink/core/error.h"
#include "shrink/nn/execute.h"

namespace shrink::compress {

// Transformer blocks: maximal runs of nodes named "<prefix>.layers.<i>.<...>" (Llama) or
// "<prefix>.layer.<i>.<...>" (BERT).
std::vector<TransformerBlock> find_transformer_blocks(const nn::Graph& g) {
  static const std::regex pattern(R"(^(.*\blayers?\.\d+)\..*$)");
  std::vector<TransformerBlock> blocks;
  std::string current;
  const auto& nodes = g.nodes();
  for (size_t n = 0; n < nodes.size(); ++n) {
    std::smatch m;
    std::string prefix = std::regex_match(nodes[n].name, m, pattern) ? m[1].str() : "";
    if (!prefix.empty() && prefix == current) {
      blocks.back().last = n + 1;
    } else if (!prefix.empty()) {
      blocks.push_back({n, n + 1});
    }
    current = prefix;
  }
  for (TransformerBlock& b : blocks) {
    auto produced_inside = [&](int value) {
      int p = g.values()[size_t(value)].producer;
      return p >= int(b.first) && p < int(b.last);
    };
    for (size_t n = b.first; n < b.last; ++n)
      for (int v : nodes[n].inputs)
        if (!produced_inside(v)) {
          if (b.input >= 0 && b.input != v)
            throw UnsupportedError(fmt::format("block at '{}' reads more than one outside value", nodes[b.first].name));
          b.input = v;
        }
    for (size_t n = b.last; n < nodes.size(); ++n)
      for (int v : nodes[n].inputs)
        if (produced_inside(v)) {
          if (b.output >= 0 && b.output != v)
            throw UnsupportedError(fmt::format("block at '{}' feeds more than one value onward", nodes[b.first].name));
          b.output = v;
        }
    for (int v : g.outputs())
      if (produced_inside(v)) b.output = v;
    if (b.input < 0 || b.output < 0) throw UnsupportedError("a transformer block without an input or an output");
  }
  return blocks;
}

std::vector<size_t> block_linears(const nn::Graph& g, const TransformerBlock& b, const std::vector<std::string>& exclude) {
  std::vector<size_t> out;
  for (size_t n = b.first; n < b.last; ++n) {
    if (g.nodes()[n].kind != "Linear") continue;
    bool skip = false;
    for (const std::string& p : exclude) skip = skip || name_matches(p, g.nodes()[n].name);
    if (!skip) out.push_back(n);
  }
  return out;
}

BlockCalibration::BlockCalibration(nn::Graph& graph, const std::vector<std::vector<int32_t>>& windows, int64_t batch,
                                   const TransformerBlock& first_block)
    : graph_(graph) {
  if (windows.empty()) throw UsageError("calibration needs at least one window", "--samples");
  if (batch <= 0) throw UsageError("the calibration batch must be positive");
  const int64_t seq_len = int64_t(windows[0].size());
  for (const auto& w : windows)
    if (int64_t(w.size()) != seq_len) throw UsageError("calibration samples must have one length");
  const int tokens_value = graph.inputs().at(0);
  for (size_t s = 0; s < windows.size(); s += size_t(batch)) {
    const int64_t count = std::min<int64_t>(batch, int64_t(windows.size() - s));
    Tensor tokens = Tensor::uninitialized(Shape{count, seq_len}, DType::i64);
    int64_t* t = tokens.mutable_data<int64_t>();
    for (int64_t i = 0; i < count; ++i)
      for (int64_t j = 0; j < seq_len; ++j) t[i * seq_len + j] = windows[s + size_t(i)][size_t(j)];
    const int want = first_block.input;
    hidden_.push_back(
        nn::forward_segment(graph, 0, first_block.first, {{tokens_value, tokens}}, std::span<const int>(&want, 1)).at(0));
    tokens_ += count * seq_len;
    hidden_bytes_ += hidden_.back().numel() * 4;
    if (s == 0) {  // every window's hidden states are held until the last block: refuse now, not later
      const uint64_t all = uint64_t(hidden_bytes_) / uint64_t(count) * windows.size();
      const uint64_t left = memory_budget::left_bytes();
      if (left > 0 && all > left)
        throw UsageError(fmt::format("calibration would hold at least {:.1f} GB of hidden states ({} windows of {} tokens) "
                                     "and this machine has {:.1f} GB left",
                                     double(all) / 1e9, windows.size(), seq_len, double(left) / 1e9),
                         "--samples", "use fewer --samples or a shorter --seq-len");
    }
  }
}

void BlockCalibration::observe(const TransformerBlock& b, const std::vector<int>& needed,
                               const std::function<void(int, const Tensor&)>& observe) {
  size_t end = b.first;  // one past the last node producing a needed value
  for (size_t n = b.first; n < b.last; ++n)
    for (int id : graph_.nodes()[n].outputs)
      if (std::find(needed.begin(), needed.end(), id) != needed.end()) end = n + 1;
  nn::RunOptions run;
  run.after_node = [&](const nn::Node& node, std::span<const Tensor> outs) {
    for (size_t i = 0; i < outs.size(); ++i) observe(node.outputs[i], outs[i]);
  };
  for (const Tensor& x : hidden_) {
    observe(b.input, x);
    nn::forward_segment(graph_, b.first, end, {{b.input, x}}, std::span<const int>(&b.input, 1), run);
  }
}

void BlockCalibration::advance(const TransformerBlock& b) {
  for (Tensor& x : hidden_)
    x = nn::forward_segment(graph_, b.first, b.last, {{b.input, x}}, std::span<const int>(&b.output, 1)).at(0);
}

void BlockCalibration::run_in_stages(const TransformerBlock& b, std::vector<int> stage_values,
                                     const std::function<void(int, const Tensor&)>& observe,
                                     const std::function<void(int)>& after_stage, bool advance) {
  const auto& nodes = graph_.nodes();
  auto stage_end = [&](int value) {  // one past the producer, inside the block
    int p = graph_.values()[size_t(value)].producer;
    if (p < int(b.first)) return b.first;  // the block input
    if (p >= int(b.last)) throw UsageError("a calibrated value is produced after its block");
    return size_t(p) + 1;
  };
  std::stable_sort(stage_values.begin(), stage_values.end(), [&](int x, int y) { return stage_end(x) < stage_end(y); });
  // The values produced before `end` that nodes from `end` on read (the block's nodes read no
  // outside value but its input).
  auto live_at = [&](size_t end) {
    std::vector<int> live;
    auto add = [&](int v) {
      if (graph_.values()[size_t(v)].producer < int(end) && std::find(live.begin(), live.end(), v) == live.end())
        live.push_back(v);
    };
    for (size_t n = end; n < b.last; ++n)
      for (int v : nodes[n].inputs) add(v);
    if (advance) add(b.output);
    return live;
  };
  // Per batch, the live values (ids in `live`, tensors in `kept[batch]`).
  std::vector<int> live = {b.input};
  std::vector<std::vector<Tensor>> kept(hidden_.size());
  for (size_t i = 0; i < hidden_.size(); ++i) kept[i] = {std::move(hidden_[i])};
  size_t start = b.first;
  // The heap is never trimmed (tensor.cpp keeps large blocks in it for training): the values kept
  // per batch interleave with each stage's temporaries, and the holes those leave stayed
  // resident (peak 2.3 GB instead of 1.5 on SmolLM2 with 128 windows). Returning the free pages
  // after each stage keeps the peak to what is live (1.5 GB); copying the values into one tensor
  // per value instead took 172 s instead of 158 s for 1.67 GB.
  auto run_to = [&](size_t end, std::span<const int> wanted) {
    for (auto& values : kept) {
      std::vector<std::pair<int, Tensor>> given;
      for (size_t j = 0; j < live.size(); ++j) given.emplace_back(live[j], std::move(values[j]));
      values = nn::forward_segment(graph_, start, end, given, wanted);
    }
    start = end;
    malloc_trim(0);
  };
  for (int value : stage_values) {
    const size_t end = stage_end(value);
    std::vector<int> next = live_at(end);
    if (std::find(next.begin(), next.end(), value) == next.end())
      throw UnsupportedError("a calibrated value is not read after its stage");
    run_to(end, next);
    live = std::move(next);
    const size_t at = size_t(std::find(live.begin(), live.end(), value) - live.begin());
    for (const auto& values : kept) observe(value, values[at]);
    after_stage(value);
  }
  if (!advance) {
    hidden_.assign(hidden_.size(), Tensor());
    return;
  }
  run_to(b.last, std::span<const int>(&b.output, 1));
  for (size_t i = 0; i < hidden_.size(); ++i) hidden_[i] = std::move(kept[i][0]);
}

int64_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return int64_t(usage.ru_maxrss) * 1024;
}


}  // namespace shrink::compress
