// The walk from elements to the blocks that hold them, shared by the quantization primitives and
// the observers (internal to the quant floor).
#pragma once
#include <cstdint>
#include <vector>

#include "shrink/quant/scheme.h"

namespace shrink::quant_detail {

// Calls visit(element_index, block_index) for every element of a contiguous tensor, in order.
template <class Visit>
void for_each_element(const Shape& shape, const std::vector<int64_t>& block, Visit&& visit) {
  if (block.empty()) {
    for (int64_t e = 0; e < shape.numel(); ++e) visit(e, int64_t(0));
    return;
  }
  const int rank = shape.rank();
  const Shape blocks = qparams_shape(shape, block);
  if (shape.numel() == 0) return;
  if (rank == 0) return visit(int64_t(0), int64_t(0));
  const Dims block_strides = contiguous_strides(blocks);
  std::vector<int64_t> index(size_t(rank), 0);
  const int64_t row = shape[rank - 1], inner_block = block[size_t(rank - 1)];
  for (int64_t element = 0; element < shape.numel(); element += row) {
    int64_t base = 0;
    for (int i = 0; i < rank - 1; ++i) base += index[size_t(i)] / block[size_t(i)] * block_strides[size_t(i)];
    for (int64_t j = 0; j < row; ++j) visit(element + j, base + j / inner_block);
    for (int i = rank - 2; i >= 0; --i) {
      if (++index[size_t(i)] < shape[i]) break;
      index[size_t(i)] = 0;
    }
  }
}

}  // namespace shrink::quant_detail
