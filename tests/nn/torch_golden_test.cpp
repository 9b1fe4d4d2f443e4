// Layers and losses against PyTorch: forward values, input and parameter gradients, and updated
// running statistics, from tests/fixtures/torch_layers.safetensors (tools/make_torch_fixtures.py).
#include "nn/nn_test_support.h"
#include "shrink/io/safetensors.h"
#include "shrink/train/losses.h"
#include "test_support.h"

namespace shrink::testing {
namespace {

const SafetensorsFile& fixtures() {
  static const SafetensorsFile file = SafetensorsFile::open(fixture_path("torch_layers.safetensors"));
  return file;
}

std::string metadata(const std::string& key) {
  for (const auto& [k, v] : fixtures().metadata())
    if (k == key) return v;
  ADD_FAILURE() << "fixture metadata lacks " << key;
  return "";
}

void expect_close(const Tensor& actual_in, const Tensor& expected_in, const std::string& what,
                  double tolerance = 1e-4) {
  ASSERT_TRUE(actual_in.defined()) << what << " was not computed";
  ASSERT_EQ(actual_in.shape(), expected_in.shape()) << what;
  Tensor actual = actual_in.contiguous(), expected = expected_in.contiguous();
  double worst = 0;
  for (int64_t i = 0; i < actual.numel(); ++i) {
    double a = actual.data<float>()[i], e = expected.data<float>()[i];
    worst = std::max(worst, std::abs(a - e) / (1 + std::abs(e)));
  }
  EXPECT_LE(worst, tolerance) << what;
}

TEST(TorchGolden, LayersForwardBackwardAndRunningStatistics) {
  auto cases = nlohmann::json::parse(metadata("cases"));
  ASSERT_GE(cases.size(), 15u);
  for (const auto& c : cases) {
    std::string name = c["name"];
    SCOPED_TRACE(name);
    nn::Node node;
    node.name = "layer";
    node.kind = c["kind"];
    node.attrs = c["attrs"];
    std::vector<Tensor> inputs;
    for (const auto& entry : fixtures().entries()) {
      std::string prefix = name + ".param.";
      if (entry.name.rfind(prefix, 0) == 0) {
        std::string local = entry.name.substr(prefix.size());
        bool buffer = local.rfind("running_", 0) == 0;
        node.params.push_back({local, fixtures().tensor(entry.name).clone(), {}, !buffer});
      }
    }
    for (int i = 0; fixtures().find(name + ".input." + std::to_string(i)); ++i)
      inputs.push_back(fixtures().tensor(name + ".input." + std::to_string(i)).clone());
    std::vector<nn::ValueInfo> infos;
    for (const Tensor& t : inputs) infos.push_back({t.shape(), t.dtype()});
    nn::Graph graph = single_node_graph(node, infos);
    nn::Tape tape;
    nn::RunOptions run;
    run.training = c["training"];
    run.tape = &tape;
    auto outputs = nn::forward(graph, inputs, run);
    expect_close(outputs[0], fixtures().tensor(name + ".output"), "output");
    Tensor grad_output = fixtures().tensor(name + ".grad_output").clone();
    auto input_grads = nn::backward(graph, tape, std::vector<Tensor>{grad_output});
    for (size_t i = 0; i < inputs.size(); ++i)
      expect_close(input_grads[i], fixtures().tensor(name + ".grad_input." + std::to_string(i)), "input gradient");
    for (const nn::Param& p : graph.nodes()[0].params) {
      if (p.trainable) expect_close(p.grad, fixtures().tensor(name + ".grad." + p.name), "gradient of " + p.name);
      else expect_close(p.value, fixtures().tensor(name + ".after." + p.name), p.name + " after the step");
    }
  }
}

TEST(TorchGolden, CrossEntropyWithLabelSmoothing) {
  auto result = train::cross_entropy(fixtures().tensor("loss_ce.logits"), fixtures().tensor("loss_ce.targets"),
                                     std::stod(metadata("ce_label_smoothing")));
  EXPECT_NEAR(result.loss, fixtures().tensor("loss_ce.value").data<float>()[0], 1e-5);
  expect_close(result.grad, fixtures().tensor("loss_ce.grad"), "cross-entropy gradient", 1e-5);
}

TEST(TorchGolden, KlDivergenceWithTemperature) {
  auto result = train::kl_divergence(fixtures().tensor("loss_kl.student"), fixtures().tensor("loss_kl.teacher"),
                                     std::stod(metadata("kl_temperature")));
  EXPECT_NEAR(result.loss, fixtures().tensor("loss_kl.value").data<float>()[0], 1e-5);
  expect_close(result.grad, fixtures().tensor("loss_kl.grad"), "KL gradient", 1e-5);
}

}  // namespace
}  // namespace shrink::testing
