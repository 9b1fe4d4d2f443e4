// Dynamic int8 quantization vs f32 in shrink: 24 x Linear(4096, 4096) at batch 1 and 64, and an
// LSTM(512, 512) over 100 steps at batch 1 and 32. Prints one JSON object of median milliseconds.
// bench/dynamic_quant.sh runs it next to PyTorch's quantize_dynamic (bench/dynamic_quant_pytorch.py).
// Usage: bench_dynamic_quant [threads] [repeats]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "shrink/compress/quantize_dynamic.h"
#include "shrink/core/parallel.h"
#include "shrink/core/rng.h"
#include "shrink/nn/builder.h"
#include "shrink/nn/execute.h"
#include "forward_timing.h"

using namespace shrink;

namespace {

Tensor random_input(const Shape& shape, Rng& rng) {
  Tensor x = Tensor::empty(shape, DType::f32);
  for (int64_t i = 0; i < x.numel(); ++i) x.mutable_data<float>()[i] = rng.normal();
  return x;
}

nn::Graph linear_stack(int64_t layers, int64_t width) {
  nn::GraphBuilder b(1);
  int x = b.input("x", Shape{-1, width});
  for (int64_t l = 0; l < layers; ++l) x = b.linear(fmt::format("fc{}", l), x, width, width);
  b.output(x);
  return b.take();
}

nn::Graph lstm(int64_t width) {
  nn::GraphBuilder b(2);
  int x = b.input("x", Shape{-1, -1, width});
  const double bound = 1 / std::sqrt(double(width));
  nn::Node node{"lstm", "LSTM", {{"input_size", width}, {"hidden_size", width}, {"num_layers", 1}}, {x}, {}, {}};
  for (const char* name : {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}) {
    const bool matrix = name[0] == 'w';
    Tensor t = Tensor::empty(matrix ? Shape{4 * width, width} : Shape{4 * width}, DType::f32);
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = float((2 * b.rng().uniform() - 1) * bound);
    node.params.push_back({name, t, Tensor(), true});
  }
  b.output(b.graph().add(std::move(node)));
  return b.take();
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2, repeats = argc > 2 ? std::atoi(argv[2]) : 7;
  set_num_threads(threads);
  Rng rng(3);
  nlohmann::ordered_json out = {{"threads", threads}, {"repeats", repeats}};
  struct Case {
    const char* name;
    nn::Graph (*make)();
    std::vector<Shape> inputs;
  };
  const Case cases[] = {
      {"linear24x4096", [] { return linear_stack(24, 4096); }, {Shape{1, 4096}, Shape{64, 4096}}},
      {"lstm512x100", [] { return lstm(512); }, {Shape{1, 100, 512}, Shape{32, 100, 512}}},
  };
  for (const Case& c : cases) {
    nn::Graph f32 = c.make();
    nn::Graph int8 = c.make();
    compress::quantize_dynamic(int8, {});
    for (const Shape& shape : c.inputs) {
      const Tensor x = random_input(shape, rng);
      const double a = bench::median_forward_ms(f32, x, repeats), b = bench::median_forward_ms(int8, x, repeats);
      out[fmt::format("{}_b{}", c.name, shape[0])] = {{"f32_ms", a}, {"int8_ms", b}};
      fmt::print(stderr, "{} batch {}: f32 {:.2f} ms, int8 {:.2f} ms\n", c.name, shape[0], a, b);
    }
  }
  fmt::print("{}\n", out.dump());
}
