// Structured channel pruning: channel groups by union-find, ranking, and consumer rewrites.
#include "shrink/compress/structured.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "shrink/compress/prune.h"

namespace shrink::compress {
namespace {

const std::set<std::string> kChannelWise = {"BatchNorm1d", "BatchNorm2d", "ReLU", "ReLU6", "GELU", "SiLU",
                                            "Tanh", "Sigmoid", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
                                            "Dropout", "Add", "Mul"};

// The channel-wise ops that act on each feature alone wherever it sits (transformer MLPs: SiLU, Mul).
const std::set<std::string> kElementWise = {"ReLU", "ReLU6", "GELU", "SiLU", "Tanh", "Sigmoid", "Dropout", "Add", "Mul"};

struct UnionFind {
  std::vector<int> parent;
  explicit UnionFind(size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
  int find(int x) { return parent[size_t(x)] == x ? x : parent[size_t(x)] = find(parent[size_t(x)]); }
  void unite(int a, int b) { parent[size_t(find(a))] = find(b); }
};

// Copies the entries of `t` whose index along `axis` is in `keep`.
Tensor select_along(const Tensor& t_in, int axis, const std::vector<int64_t>& keep) {
  Tensor t = t_in.contiguous();
  std::vector<int64_t> dims = t.shape().dims().to_vector();
  int64_t outer = 1, inner = 1, along = dims[size_t(axis)];
  for (int d = 0; d < axis; ++d) outer *= dims[size_t(d)];
  for (size_t d = size_t(axis) + 1; d < dims.size(); ++d) inner *= dims[d];
  dims[size_t(axis)] = int64_t(keep.size());
  Tensor out = Tensor::empty(Shape(dims), t.dtype());
  for (int64_t o = 0; o < outer; ++o)
    for (size_t k = 0; k < keep.size(); ++k)
      std::copy(t.data<float>() + (o * along + keep[k]) * inner, t.data<float>() + (o * along + keep[k] + 1) * inner,
                out.mutable_data<float>() + (o * int64_t(keep.size()) + int64_t(k)) * inner);
  return out;
}

struct Group {
  std::vector<int> values;
  std::vector<int> producers, channel_wise, conv_consumers, linear_consumers, flatten_linear;  // node indices
  std::string problem;
};

// Linear consumers reached through a Flatten (whose output feeds only Linear nodes).
std::vector<int> linears_after(const nn::Graph& g, int flatten) {
  std::vector<int> result;
  for (int c : g.consumers(g.nodes()[size_t(flatten)].outputs[0])) {
    if (g.nodes()[size_t(c)].kind != "Linear") return {};
    result.push_back(c);
  }
  return result;
}

std::vector<Group> channel_groups(const nn::Graph& g) {
  UnionFind uf(g.values().size());
  for (const nn::Node& n : g.nodes())
    if (kChannelWise.count(n.kind))
      for (int in : n.inputs) uf.unite(in, n.outputs[0]);
  std::map<int, Group> by_root;
  for (size_t v = 0; v < g.values().size(); ++v) by_root[uf.find(int(v))].values.push_back(int(v));
  std::vector<Group> groups;
  for (auto& [root, group] : by_root) {
    std::set<int> producers, consumers;
    bool channels_last = false;  // 3-D (batch, sequence, features): only Linear and element-wise ops qualify
    for (int v : group.values) {
      const nn::Value& value = g.values()[size_t(v)];
      int rank = value.info.shape.rank();
      if (rank == 3) channels_last = true;
      else if (rank != 2 && rank != 4) group.problem = "channels must be axis 1 of 2-D or 4-D values, or the last of 3-D";
      if (std::count(g.outputs().begin(), g.outputs().end(), v)) group.problem = "it is a graph output";
      if (value.producer < 0) group.problem = "it is a graph input";
      else producers.insert(value.producer);
      for (int c : g.consumers(v)) consumers.insert(c);
    }
    for (int p : producers) {
      const nn::Node& n = g.nodes()[size_t(p)];
      if (kChannelWise.count(n.kind)) group.channel_wise.push_back(p);
      else if (n.kind == "Linear" || (n.kind == "Conv2d" && n.attrs.value("groups", 1) == 1)) group.producers.push_back(p);
      else group.problem = n.kind + " '" + n.name + "' produces these channels";
    }
    for (int c : consumers) {
      const nn::Node& n = g.nodes()[size_t(c)];
      if (kChannelWise.count(n.kind)) continue;
      if (n.kind == "Conv2d" && n.attrs.value("groups", 1) == 1) group.conv_consumers.push_back(c);
      else if (n.kind == "Linear") group.linear_consumers.push_back(c);
      else if (n.kind == "Flatten" && !linears_after(g, c).empty()) group.flatten_linear.push_back(c);
      else group.problem = n.kind + " '" + n.name + "' reads these channels";
    }
    if (channels_last) {
      for (int n : group.channel_wise)
        if (!kElementWise.count(g.nodes()[size_t(n)].kind))
          group.problem = g.nodes()[size_t(n)].kind + " '" + g.nodes()[size_t(n)].name + "' needs channels on axis 1";
      if (!group.conv_consumers.empty() || !group.flatten_linear.empty())
        group.problem = "3-D values with features last feed a convolution or a Flatten";
    }
    if (group.producers.empty() && group.problem.empty()) group.problem = "no Conv2d or Linear produces them";
    groups.push_back(std::move(group));
  }
  return groups;
}

double row_norm(const Tensor& w, int64_t row, bool l1) {
  int64_t per = w.numel() / w.shape()[0];
  double sum = 0;
  for (int64_t i = 0; i < per; ++i) {
    double v = w.data<float>()[row * per + i];
    sum += l1 ? std::abs(v) : v * v;
  }
  return l1 ? sum : std::sqrt(sum);
}

// sum over rows of W[r, c]^2 * norm_c^2 for the columns [first, first + count): the squared
// contribution of those input features to the layer's output over the calibration data.
double weighted_column_energy(const Tensor& w_in, const std::vector<float>& norms, int64_t first, int64_t count) {
  const Tensor w = w_in.contiguous();
  const int64_t rows = w.shape()[0], cols = w.shape()[1];
  if (int64_t(norms.size()) != cols)
    throw UsageError(fmt::format("{} activation norms for a layer of {} inputs", norms.size(), cols), "structured pruning",
                     "collect the statistics on the model being pruned");
  double sum = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = first; c < first + count; ++c) {
      const double v = double(w.data<float>()[r * cols + c]) * norms[size_t(c)];
      sum += v * v;
    }
  return sum;
}

void slice_param(nn::Node& node, const char* name, int axis, const std::vector<int64_t>& keep) {
  if (nn::Param* p = node.find_param(name)) p->value = select_along(p->value, axis, keep), p->grad = Tensor();
}

}  // namespace

std::vector<ChannelGroupReport> prune_channels(nn::Graph& graph, const StructuredConfig& config) {
  if (!(config.fraction >= 0 && config.fraction < 1))
    throw UsageError(fmt::format("the fraction of channels must be in [0, 1), got {}", config.fraction), "--fraction");
  nn::Graph backup = graph;
  std::vector<ChannelGroupReport> report;
  std::vector<Group> groups = channel_groups(graph);
  struct Plan {
    const Group* group;
    std::vector<int64_t> keep;
  };
  std::vector<Plan> plans;
  for (const Group& group : groups) {
    if (group.producers.empty() && group.problem == "no Conv2d or Linear produces them") continue;  // e.g. ids
    ChannelGroupReport r;
    for (int p : group.producers) r.producers.push_back(graph.nodes()[size_t(p)].name);
    bool excluded = std::any_of(r.producers.begin(), r.producers.end(), [&](const std::string& name) {
      return std::any_of(config.exclude.begin(), config.exclude.end(), [&](const std::string& p) { return name_matches(p, name); });
    });
    if (group.producers.empty() || !group.problem.empty() || excluded) {
      r.reason = excluded ? "excluded" : group.problem;
      if (!r.producers.empty()) report.push_back(r);
      continue;
    }
    const Tensor& first = graph.nodes()[size_t(group.producers[0])].param("weight").value;
    int64_t channels = first.shape()[0];
    std::vector<double> score(static_cast<size_t>(channels), 0.0);
    r.by_activation = !config.input_norms.empty() && !group.linear_consumers.empty() && group.conv_consumers.empty() &&
                      group.flatten_linear.empty() &&
                      std::all_of(group.linear_consumers.begin(), group.linear_consumers.end(), [&](int c) {
                        return config.input_norms.count(graph.nodes()[size_t(c)].name) > 0;
                      });
    if (r.by_activation) {
      for (int c : group.linear_consumers) {
        const nn::Node& consumer = graph.nodes()[size_t(c)];
        for (int64_t ch = 0; ch < channels; ++ch)
          score[size_t(ch)] += weighted_column_energy(consumer.param("weight").value, config.input_norms.at(consumer.name), ch, 1);
      }
    } else {
      for (int p : group.producers)
        for (int64_t c = 0; c < channels; ++c) score[size_t(c)] += row_norm(graph.nodes()[size_t(p)].param("weight").value, c, config.l1);
    }
    int64_t remove = std::min<int64_t>(int64_t(std::floor(config.fraction * double(channels))), channels - 1);
    std::vector<int64_t> order(static_cast<size_t>(channels));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[size_t(a)] < score[size_t(b)]; });
    std::vector<int64_t> removed(order.begin(), order.begin() + remove), keep(order.begin() + remove, order.end());
    std::sort(removed.begin(), removed.end());
    std::sort(keep.begin(), keep.end());
    r.before = channels;
    r.after = int64_t(keep.size());
    r.removed = removed;
    r.pruned = remove > 0;
    report.push_back(r);
    if (remove > 0) plans.push_back({&group, keep});
  }
  try {
    for (const Plan& plan : plans) {
      auto& nodes = graph.nodes();
      int64_t kept = int64_t(plan.keep.size());
      for (int p : plan.group->producers) {
        nn::Node& n = nodes[size_t(p)];
        slice_param(n, "weight", 0, plan.keep);
        slice_param(n, "bias", 0, plan.keep);
        n.attrs[n.kind == "Linear" ? "out_features" : "out_channels"] = kept;
      }
      for (int p : plan.group->channel_wise) {
        nn::Node& n = nodes[size_t(p)];
        if (n.kind != "BatchNorm1d" && n.kind != "BatchNorm2d") continue;
        for (const char* name : {"weight", "bias", "running_mean", "running_var"}) slice_param(n, name, 0, plan.keep);
        n.attrs["num_features"] = kept;
      }
      for (int c : plan.group->conv_consumers) {
        slice_param(nodes[size_t(c)], "weight", 1, plan.keep);
        nodes[size_t(c)].attrs["in_channels"] = kept;
      }
      for (int c : plan.group->linear_consumers) {
        slice_param(nodes[size_t(c)], "weight", 1, plan.keep);
        nodes[size_t(c)].attrs["in_features"] = kept;
      }
      for (int f : plan.group->flatten_linear) {
        const Shape& in = graph.values()[size_t(nodes[size_t(f)].inputs[0])].info.shape;
        int64_t block = 1;
        for (int d = 2; d < in.rank(); ++d) block *= in[d];
        if (block <= 0) throw UsageError("a Flatten before a Linear needs known spatial sizes", nodes[size_t(f)].name);
        std::vector<int64_t> columns;
        for (int64_t c : plan.keep)
          for (int64_t i = 0; i < block; ++i) columns.push_back(c * block + i);
        for (int l : linears_after(graph, f)) {
          slice_param(nodes[size_t(l)], "weight", 1, columns);
          nodes[size_t(l)].attrs["in_features"] = int64_t(columns.size());
        }
      }
    }
    graph.validate();
  } catch (...) {
    graph = std::move(backup);
    throw;
  }
  return report;
}

namespace {

// The Linear producing `value` when the node `reader` is its only consumer, else -1.
int sole_linear_producer(const nn::Graph& g, int value, int reader) {
  const int producer = g.values()[size_t(value)].producer;
  if (producer < 0 || g.nodes()[size_t(producer)].kind != "Linear") return -1;
  const std::vector<int> readers = g.consumers(value);
  return readers.size() == 1 && readers[0] == reader ? producer : -1;
}

double squared_norm(const Tensor& w, int axis, int64_t first, int64_t count) {
  const Tensor t = w.contiguous();
  const int64_t rows = t.shape()[0], cols = t.shape()[1];
  double sum = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t along = axis == 0 ? r : c;
      if (along >= first && along < first + count) sum += double(t.data<float>()[r * cols + c]) * t.data<float>()[r * cols + c];
    }
  return sum;
}

std::vector<int64_t> spans(const std::vector<int64_t>& groups, int64_t width) {
  std::vector<int64_t> out;
  for (int64_t g : groups)
    for (int64_t i = 0; i < width; ++i) out.push_back(g * width + i);
  return out;
}

}  // namespace

std::vector<HeadGroupReport> prune_attention_heads(nn::Graph& graph, const StructuredConfig& config) {
  if (!(config.fraction >= 0 && config.fraction < 1))
    throw UsageError(fmt::format("the fraction of heads must be in [0, 1), got {}", config.fraction), "--heads");
  nn::Graph backup = graph;
  std::vector<HeadGroupReport> report;
  try {
    for (size_t a = 0; a < graph.nodes().size(); ++a) {
      nn::Node& attention = graph.nodes()[a];
      if (attention.kind != "Attention") continue;
      HeadGroupReport r;
      r.attention = attention.name;
      const int64_t heads = attention.attrs.value("num_heads", int64_t(0));
      const int64_t kv = attention.attrs.value("num_kv_heads", heads);
      r.heads_before = r.heads_after = heads, r.kv_heads_before = r.kv_heads_after = kv;
      int qkv[3];
      for (int i = 0; i < 3; ++i) qkv[i] = sole_linear_producer(graph, attention.inputs[size_t(i)], int(a));
      const std::vector<int> readers = graph.consumers(attention.outputs[0]);
      const int o = readers.size() == 1 && graph.nodes()[size_t(readers[0])].kind == "Linear" ? readers[0] : -1;
      const bool excluded = std::any_of(config.exclude.begin(), config.exclude.end(),
                                        [&](const std::string& p) { return name_matches(p, attention.name); });
      if (qkv[0] < 0 || qkv[1] < 0 || qkv[2] < 0 || o < 0 || heads <= 0 || kv <= 0 || heads % kv) {
        r.reason = "q, k, v and the output are not Linear layers of this attention alone";
      } else if (excluded) {
        r.reason = "excluded";
      }
      const int64_t remove = std::min<int64_t>(int64_t(std::floor(config.fraction * double(kv))), kv - 1);
      if (!r.reason.empty() || remove == 0) {
        if (r.reason.empty()) r.reason = "fewer than one key/value group to remove";
        report.push_back(r);
        continue;
      }
      auto weight = [&](int n) -> const Tensor& { return graph.nodes()[size_t(n)].param("weight").value; };
      const int64_t head_dim = weight(qkv[0]).shape()[0] / heads, per_group = heads / kv;
      std::vector<double> score(static_cast<size_t>(kv), 0.0);
      const auto o_norms = config.input_norms.find(graph.nodes()[size_t(o)].name);
      r.by_activation = o_norms != config.input_norms.end();
      for (int64_t grp = 0; grp < kv; ++grp)
        score[size_t(grp)] = r.by_activation
                                 ? weighted_column_energy(weight(o), o_norms->second, grp * per_group * head_dim, per_group * head_dim)
                                 : std::sqrt(squared_norm(weight(qkv[0]), 0, grp * per_group * head_dim, per_group * head_dim) +
                                       squared_norm(weight(qkv[1]), 0, grp * head_dim, head_dim) +
                                       squared_norm(weight(qkv[2]), 0, grp * head_dim, head_dim) +
                                       squared_norm(weight(o), 1, grp * per_group * head_dim, per_group * head_dim));
      std::vector<int64_t> order(static_cast<size_t>(kv));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return score[size_t(x)] < score[size_t(y)]; });
      std::vector<int64_t> keep(order.begin() + remove, order.end());
      r.removed.assign(order.begin(), order.begin() + remove);
      std::sort(keep.begin(), keep.end());
      std::sort(r.removed.begin(), r.removed.end());
      const std::vector<int64_t> q_rows = spans(keep, per_group * head_dim), kv_rows = spans(keep, head_dim);
      auto& nodes = graph.nodes();
      for (int i = 0; i < 3; ++i) {
        nn::Node& proj = nodes[size_t(qkv[i])];
        const std::vector<int64_t>& rows = i == 0 ? q_rows : kv_rows;
        slice_param(proj, "weight", 0, rows);
        slice_param(proj, "bias", 0, rows);
        proj.attrs["out_features"] = int64_t(rows.size());
        proj.prepared = nullptr;
      }
      slice_param(nodes[size_t(o)], "weight", 1, q_rows);
      nodes[size_t(o)].attrs["in_features"] = int64_t(q_rows.size());
      nodes[size_t(o)].prepared = nullptr;
      r.kv_heads_after = kv - remove, r.heads_after = (kv - remove) * per_group;
      nodes[a].attrs["num_heads"] = r.heads_after;
      nodes[a].attrs["num_kv_heads"] = r.kv_heads_after;
      report.push_back(r);
    }
    graph.validate();
  } catch (...) {
    graph = std::move(backup);
    throw;
  }
  return report;
}

}  // namespace shrink::compress
