// Tensors that would not fit in what the machine has left are refused with an error, before
// they are taken (the kernel would have killed the process when their pages were touched).
#include "core/memory_budget.h"

#include <gtest/gtest.h>

#include <string>

#include "shrink/core/error.h"
#include "shrink/core/tensor.h"

namespace shrink {
namespace {

struct PretendAvailable {
  explicit PretendAvailable(uint64_t bytes) { memory_budget::set_available_for_testing(bytes); }
  ~PretendAvailable() { memory_budget::set_available_for_testing(0); }
};

TEST(MemoryBudget, TensorsBeyondWhatIsLeftAreRefusedWithAClearError) {
  const uint64_t held = memory_budget::reserved_bytes();
  PretendAvailable machine(200 << 20);  // 200 MB left besides what the process holds now
  Tensor first = Tensor::uninitialized(Shape{25 << 20}, DType::f32);  // 100 MB: fits beside the 64 MB margin
  EXPECT_EQ(memory_budget::reserved_bytes(), held + (100u << 20));
  try {
    Tensor second = Tensor::uninitialized(Shape{25 << 20}, DType::f32);  // 100 MB more: 100 left, less the margin
    ADD_FAILURE() << "a tensor beyond the budget was allocated";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("out of memory"), std::string::npos) << message;
    EXPECT_NE(message.find("smaller batch"), std::string::npos) << message;
  }
  EXPECT_EQ(memory_budget::reserved_bytes(), held + (100u << 20));  // the refused block is not counted
  first = Tensor();
  EXPECT_EQ(memory_budget::reserved_bytes(), held);
  Tensor again = Tensor::empty(Shape{25 << 20}, DType::f32);  // freed room is usable again
  EXPECT_EQ(again.data<float>()[123], 0.f);
}

TEST(MemoryBudget, TheMachineIsAskedWhenNothingIsPretended) {
  memory_budget::set_available_for_testing(0);
  // Linux: /proc/meminfo (or the cgroup) answers; a real machine has some memory left.
  EXPECT_GT(memory_budget::available_bytes(), uint64_t(1) << 20);
  Tensor t = Tensor::uninitialized(Shape{1 << 20}, DType::f32);
  EXPECT_GE(memory_budget::reserved_bytes(), uint64_t(4) << 20);
}

}  // namespace
}  // namespace shrink
