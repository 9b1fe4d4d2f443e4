// Pooling over NCHW: MaxPool2d (kernel, stride = kernel by default, padding, dilation 1),
// AvgPool2d (padding counts as zeros in the average, PyTorch's count_include_pad=True default),
// AdaptiveAvgPool2d (output_size; window [floor(i*H/OH), ceil((i+1)*H/OH)) as in PyTorch).
// MaxPool2d also takes u8 channels-last (N, H, W, C) input with attribute layout "nhwc" (the int8
// region's activations: the max commutes with a monotone quantizer).
#include <algorithm>
#include <cstring>
#include <cmath>
#include <limits>

#include "ops/op_support.h"
#include "shrink/core/parallel.h"

namespace shrink::nn::ops {
namespace {

struct Window {
  int64_t y0, y1, x0, x1;  // clipped to the input
  int64_t divisor;
};

struct PoolGeometry {
  int64_t h, w, oh, ow;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
  bool adaptive = false;
  Window window(int64_t oy, int64_t ox) const {
    if (adaptive) {
      Window win{oy * h / oh, ((oy + 1) * h + oh - 1) / oh, ox * w / ow, ((ox + 1) * w + ow - 1) / ow, 0};
      win.divisor = (win.y1 - win.y0) * (win.x1 - win.x0);
      return win;
    }
    int64_t y0 = oy * sh - ph, x0 = ox * sw - pw;
    int64_t y1 = std::min(y0 + kh, h + ph), x1 = std::min(x0 + kw, w + pw);
    Window win{std::max<int64_t>(y0, 0), std::min(y1, h), std::max<int64_t>(x0, 0), std::min(x1, w),
               (y1 - y0) * (x1 - x0)};
    return win;
  }
};

PoolGeometry geometry(const Node& node, const Shape& x) {
  PoolGeometry g;
  g.h = x[2], g.w = x[3];
  if (node.kind == "AdaptiveAvgPool2d") {
    g.adaptive = true;
    std::tie(g.oh, g.ow) = attr_pair(node, "output_size", -1);
    return g;
  }
  std::tie(g.kh, g.kw) = attr_pair(node, "kernel_size", -1);
  std::tie(g.sh, g.sw) = attr_pair(node, "stride", g.kh);
  if (!node.attrs.contains("stride")) g.sw = g.kw;
  std::tie(g.ph, g.pw) = attr_pair(node, "padding", 0);
  g.oh = g.h < 0 ? -1 : (g.h + 2 * g.ph - g.kh) / g.sh + 1;
  g.ow = g.w < 0 ? -1 : (g.w + 2 * g.pw - g.kw) / g.sw + 1;
  return g;
}

std::vector<ValueInfo> infer(const Node& node, std::span<const ValueInfo> in) {
  expect_inputs(node, in, 1);
  const bool nhwc = node.attrs.value("layout", std::string()) == "nhwc";
  if (nhwc != (node.kind == "MaxPool2d" && in[0].dtype == DType::u8))
    fail(node, "u8 input needs MaxPool2d with layout \"nhwc\", and only u8 input may have it");
  if (!nhwc) expect_f32(node, in[0], "input");
  expect_rank(node, in[0], 4, nhwc ? "input (N, H, W, C)" : "input (N, C, H, W)");
  if (nhwc) {
    const Shape& s = in[0].shape;
    PoolGeometry g = geometry(node, Shape{s[0], s[3], s[1], s[2]});
    if (g.kh <= 0 || g.kw <= 0 || g.sh <= 0 || g.sw <= 0 || g.ph < 0 || g.pw < 0 || 2 * g.ph > g.kh || 2 * g.pw > g.kw)
      fail(node, "needs positive kernel_size and stride, padding >= 0 and at most half the kernel");
    if ((g.h >= 0 && g.oh <= 0) || (g.w >= 0 && g.ow <= 0)) fail(node, "input is smaller than the kernel");
    return {{Shape{s[0], g.oh, g.ow, s[3]}, DType::u8}};
  }
  PoolGeometry g = geometry(node, in[0].shape);
  if (g.adaptive) {
    if (g.oh <= 0 || g.ow <= 0) fail(node, "needs a positive output_size");
  } else {
    if (g.kh <= 0 || g.kw <= 0 || g.sh <= 0 || g.sw <= 0 || g.ph < 0 || g.pw < 0)
      fail(node, "needs positive kernel_size and stride, padding >= 0");
    if (2 * g.ph > g.kh || 2 * g.pw > g.kw) fail(node, "padding must be at most half the kernel");
    if ((g.h >= 0 && g.oh <= 0) || (g.w >= 0 && g.ow <= 0))
      fail(node, fmt::format("input {}x{} is smaller than the kernel", g.h, g.w));
  }
  return {{Shape{in[0].shape[0], in[0].shape[1], g.oh, g.ow}, in[0].dtype}};
}

void max_pool_u8(ForwardContext& c) {  // channels-last
  const Tensor x = c.inputs[0].contiguous();
  const int64_t n = x.shape()[0], channels = x.shape()[3];
  const PoolGeometry g = geometry(c.node, Shape{n, channels, x.shape()[1], x.shape()[2]});
  Tensor y = Tensor::uninitialized(Shape{n, g.oh, g.ow, channels}, DType::u8);
  const uint8_t* src = x.data<uint8_t>();
  uint8_t* dst_all = y.mutable_data<uint8_t>();
  parallel_for(0, n * g.oh, 1, [&](int64_t begin, int64_t end) {
    for (int64_t line = begin; line < end; ++line) {
      const int64_t image = line / g.oh, oy = line % g.oh;
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        const Window win = g.window(oy, ox);
        uint8_t* __restrict best = dst_all + ((image * g.oh + oy) * g.ow + ox) * channels;
        std::memset(best, 0, size_t(channels));  // u8 values are >= 0: the maximum starts there
        for (int64_t iy = win.y0; iy < win.y1; ++iy)
          for (int64_t ix = win.x0; ix < win.x1; ++ix) {
            const uint8_t* __restrict pixel = src + ((image * g.h + iy) * g.w + ix) * channels;
            for (int64_t ch = 0; ch < channels; ++ch) best[ch] = std::max(best[ch], pixel[ch]);
          }
      }
    }
  });
  c.outputs[0] = y;
}

// The common max pool (2 x 2, stride 2, no padding) at inference: the same comparisons in the
// same order as the general loop (so NaN propagates alike) without its window arithmetic, which
// had made the Fashion-MNIST CNN's one pooling a quarter of its f32 forward pass.
bool is_plain_2x2(const PoolGeometry& g) {
  return !g.adaptive && g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0;
}

void max_pool_2x2(const PoolGeometry& g, const float* src, float* dst) {
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    const float* top = src + 2 * oy * g.w;
    const float* bottom = top + g.w;
    for (int64_t ox = 0; ox < g.ow; ++ox) {
      float best = top[2 * ox];
      for (float v : {top[2 * ox + 1], bottom[2 * ox], bottom[2 * ox + 1]})
        if (!(v <= best)) best = v;
      dst[oy * g.ow + ox] = best;
    }
  }
}

void forward(ForwardContext& c) {
  if (c.inputs[0].dtype() == DType::u8) return max_pool_u8(c);
  const Tensor x = c.inputs[0].contiguous();
  PoolGeometry g = geometry(c.node, x.shape());
  int64_t planes = x.shape()[0] * x.shape()[1];
  bool is_max = c.node.kind == "MaxPool2d";
  Tensor y = uninitialized_f32(Shape{x.shape()[0], x.shape()[1], g.oh, g.ow});
  Tensor argmax = is_max && c.record ? Tensor::uninitialized(y.shape(), DType::i32) : Tensor();
  int32_t* argmax_out = argmax.defined() ? argmax.mutable_data<int32_t>() : nullptr;
  parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const float* src = f32(x) + plane * g.h * g.w;
      float* dst = f32(y) + plane * g.oh * g.ow;
      if (is_max && !argmax_out && is_plain_2x2(g)) {
        max_pool_2x2(g, src, dst);
        continue;
      }
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          Window win = g.window(oy, ox);
          if (is_max) {
            float best = -std::numeric_limits<float>::infinity();
            int32_t where = int32_t(win.y0 * g.w + win.x0);
            for (int64_t iy = win.y0; iy < win.y1; ++iy)
              for (int64_t ix = win.x0; ix < win.x1; ++ix) {
                float v = src[iy * g.w + ix];
                if (!(v <= best)) {  // also takes NaN, which then propagates as in PyTorch
                  best = v;
                  where = int32_t(iy * g.w + ix);
                }
              }
            dst[oy * g.ow + ox] = best;
            if (argmax_out) argmax_out[plane * g.oh * g.ow + oy * g.ow + ox] = where;
          } else {
            double sum = 0;
            for (int64_t iy = win.y0; iy < win.y1; ++iy)
              for (int64_t ix = win.x0; ix < win.x1; ++ix) sum += src[iy * g.w + ix];
            dst[oy * g.ow + ox] = float(sum / double(win.divisor));
          }
        }
    }
  });
  c.outputs[0] = y;
  if (c.record && is_max) c.saved = {argmax};
}

void backward(BackwardContext& c) {
  if (!c.grad_outputs[0].defined()) return;
  const Tensor& x = c.inputs[0];
  PoolGeometry g = geometry(c.node, x.shape());
  const Tensor dy = c.grad_outputs[0].contiguous();
  int64_t planes = x.shape()[0] * x.shape()[1];
  bool is_max = c.node.kind == "MaxPool2d";
  Tensor dx = new_f32(x.shape());
  parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin; plane < end; ++plane) {
      const float* g_out = f32(dy) + plane * g.oh * g.ow;
      float* g_in = f32(dx) + plane * g.h * g.w;
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          float grad = g_out[oy * g.ow + ox];
          if (is_max) {
            g_in[c.saved.at(0).data<int32_t>()[plane * g.oh * g.ow + oy * g.ow + ox]] += grad;
            continue;
          }
          Window win = g.window(oy, ox);
          float share = grad / float(win.divisor);
          for (int64_t iy = win.y0; iy < win.y1; ++iy)
            for (int64_t ix = win.x0; ix < win.x1; ++ix) g_in[iy * g.w + ix] += share;
        }
    }
  });
  c.grad_inputs[0] = dx;
}

}  // namespace

extern const OpRules max_pool2d_rules{"MaxPool2d", infer, forward, backward};
extern const OpRules avg_pool2d_rules{"AvgPool2d", infer, forward, backward};
extern const OpRules adaptive_avg_pool2d_rules{"AdaptiveAvgPool2d", infer, forward, backward};

}  // namespace shrink::nn::ops
