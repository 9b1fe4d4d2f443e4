// `shrink inspect` of a safetensors or shrink model file: the summary (tensors, metadata, and for
// shrink files the graph and what the provenance says) and its JSON form.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"
#include "shrink/io/inspect.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shrink;
  fuzz::expect_success_or_error([&] {
    const ModelSummary summary = summarize_model(fuzz::scratch_file(data, size, ".safetensors"));
    (void)to_json(summary).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  });
  return 0;
}
