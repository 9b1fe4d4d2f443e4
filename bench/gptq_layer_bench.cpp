// One GPTQ layer, timed: bench/gptq_compare.sh runs this and the PyTorch reference
// (tools/gptq_reference.py) on the same weights and Hessian and compares time and result.
//   bench_gptq_layer ROWS COLS BITS GROUP REPS OUT_PREFIX
// Writes OUT_PREFIX.w, .h (f32 inputs) and .q (shrink's result); prints {"median_s": ...}.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "shrink/compress/gptq.h"
#include "shrink/core/rng.h"

using namespace shrink;

static void write(const std::string& path, const Tensor& t) {
  std::ofstream(path, std::ios::binary).write(static_cast<const char*>(t.contiguous().raw_data()), t.numel() * 4);
}

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: bench_gptq_layer ROWS COLS BITS GROUP REPS OUT_PREFIX\n");
    return 2;
  }
  const int64_t rows = std::stoll(argv[1]), cols = std::stoll(argv[2]), group = std::stoll(argv[4]);
  const int bits = std::stoi(argv[3]), reps = std::stoi(argv[5]);
  const std::string prefix = argv[6];
  Rng rng(1234);
  Tensor w = Tensor::uninitialized(Shape{rows, cols}, DType::f32), x = Tensor::uninitialized(Shape{4096, cols}, DType::f32);
  for (int64_t i = 0; i < w.numel(); ++i) w.mutable_data<float>()[i] = 0.05f * rng.normal();
  // Correlated inputs with uneven channel scales, like a real layer's activations.
  std::vector<float> base(static_cast<size_t>(cols));
  for (int64_t s = 0; s < 4096; ++s) {
    float shared = rng.normal();
    for (int64_t j = 0; j < cols; ++j)
      x.mutable_data<float>()[s * cols + j] = (rng.normal() + 0.5f * shared) * (0.2f + 3.f * float(j % 17) / 17.f);
  }
  compress::HessianAccumulator acc(cols);
  acc.add(x);
  const Tensor h = acc.hessian();
  write(prefix + ".w", w);
  write(prefix + ".h", h);
  std::vector<double> times;
  Tensor q;
  for (int r = 0; r < reps; ++r) {
    auto start = std::chrono::steady_clock::now();
    q = compress::gptq_quantize(w, h, {bits, group, false}).weight;
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  write(prefix + ".q", q);
  std::sort(times.begin(), times.end());
  std::printf("{\"median_s\": %.6f}\n", times[times.size() / 2]);
}
