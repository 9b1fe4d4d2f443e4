// A model file and its int8 version side by side: median forward latency at batch 1 and 64 on
// random inputs of the model's input shape, both in this one process.
// Usage: bench_static_quant F32_MODEL INT8_MODEL [threads] [repeats]
//   shrink quantize cnn.safetensors --method static --out cnn-int8.safetensors
//   build/release/bench/bench_static_quant cnn.safetensors cnn-int8.safetensors 2 20
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "shrink/core/parallel.h"
#include "shrink/core/rng.h"
#include "shrink/io/native_model.h"
#include "shrink/nn/execute.h"
#include "forward_timing.h"

using namespace shrink;

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: bench_static_quant F32_MODEL INT8_MODEL [threads] [repeats]\n");
    return 2;
  }
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2, repeats = argc > 4 ? std::atoi(argv[4]) : 20;
  set_num_threads(threads);
  try {
    io::LoadedModel f32 = io::load_model(argv[1]), int8 = io::load_model(argv[2]);
    Shape shape = f32.graph.values()[size_t(f32.graph.inputs()[0])].info.shape;
    Rng rng(1);
    fmt::print("{} vs {}, {} threads, median of {} forward passes\n\n", argv[1], argv[2], threads, repeats);
    fmt::print("| batch | f32 ms | int8 ms | int8 speed-up |\n|---:|---:|---:|---:|\n");
    for (int64_t batch : {1, 64}) {
      Shape s = shape;
      s[0] = batch;
      Tensor x = Tensor::empty(s, DType::f32);
      for (int64_t i = 0; i < x.numel(); ++i) x.mutable_data<float>()[i] = rng.normal();
      const double a = bench::median_forward_ms(f32.graph, x, repeats), b = bench::median_forward_ms(int8.graph, x, repeats);
      fmt::print("| {} | {:.3f} | {:.3f} | {:.2f}x |\n", batch, a, b, a / b);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_static_quant: {}\n", e.what());
    return 1;
  }
}
