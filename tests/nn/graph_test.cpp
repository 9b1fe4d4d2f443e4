// Graph building, validation errors, rewrites (with rollback), execution and the native file.
#include "nn/nn_test_support.h"
#include "shrink/io/native_model.h"
#include "shrink/io/safetensors.h"
#include "shrink/nn/builder.h"
#include "shrink/nn/zoo.h"
#include "test_support.h"

namespace shrink::testing {
namespace {

using nlohmann::json;

// x (N, 4) -> fc1 (4->3) -> relu -> fc2 (3->2)
nn::Graph small_mlp() {
  nn::GraphBuilder b(5);
  int x = b.input("x", Shape{-1, 4});
  x = b.op("relu", "ReLU", {b.linear("fc1", x, 4, 3)});
  b.output(b.linear("fc2", x, 3, 2));
  return b.take();
}

Tensor run(nn::Graph& graph, const Tensor& x) { return nn::forward(graph, std::vector<Tensor>{x})[0]; }

void expect_same(const Tensor& a, const Tensor& b, float tolerance = 0.f) {
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.numel(); ++i)
    EXPECT_NEAR(a.data<float>()[i], b.data<float>()[i], tolerance) << "element " << i;
}

TEST(Graph, BuildsWithShapesAndDottedParameterNames) {
  nn::Graph g = small_mlp();
  EXPECT_EQ(g.values()[size_t(g.outputs()[0])].info.shape, (Shape{-1, 2}));
  auto params = g.named_params();
  ASSERT_EQ(params.size(), 4u);
  EXPECT_EQ(params[0].first, "fc1.weight");
  EXPECT_EQ(params[3].first, "fc2.bias");
  EXPECT_EQ(g.parameter_count(), 4 * 3 + 3 + 3 * 2 + 2);
}

TEST(Graph, RejectsBadNodesWithClearErrors) {
  nn::Graph g = small_mlp();
  int relu = g.values().size() > 0 ? g.node("relu").outputs[0] : -1;
  nn::Node wrong{"fc3", "Linear", {{"in_features", 5}, {"out_features", 2}}, {relu}, {}, {}};
  wrong.params.push_back({"weight", Tensor::empty(Shape{2, 5}, DType::f32), {}, true});
  try {
    g.add_node(wrong);
    FAIL() << "a 5-input Linear after a 3-wide value was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("last dimension is 3, expected 5"), std::string::npos) << e.what();
  }
  EXPECT_THROW(g.add_node(nn::Node{"relu", "ReLU", {}, {relu}, {}, {}}), UsageError);  // duplicate name
  EXPECT_THROW(g.add_node(nn::Node{"x2", "Frobnicate", {}, {relu}, {}, {}}), UsageError);
  EXPECT_THROW(g.add_node(nn::Node{"x3", "ReLU", {}, {999}, {}, {}}), UsageError);
  nn::Node missing_param{"fc4", "Linear", {{"in_features", 3}, {"out_features", 2}}, {relu}, {}, {}};
  EXPECT_THROW(g.add_node(missing_param), UsageError);
}

TEST(Graph, InsertAfterAndRemoveKeepTheFunction) {
  nn::Graph g = small_mlp();
  Rng rng(1);
  Tensor x = random_tensor(Shape{5, 4}, rng);
  Tensor before = run(g, x);
  g.insert_after("fc1", nn::Node{"drop", "Dropout", {{"p", 0.5}}, {}, {}, {}});
  EXPECT_EQ(g.nodes()[1].name, "drop");
  expect_same(run(g, x), before);  // eval mode: identity
  g.remove_node("drop");
  EXPECT_EQ(g.node_index("drop"), -1);
  expect_same(run(g, x), before);
  // Inserting after the last node re-targets the graph output.
  g.insert_after("fc2", nn::Node{"out_relu", "ReLU", {}, {}, {}, {}});
  Tensor relu_out = run(g, x);
  for (int64_t i = 0; i < relu_out.numel(); ++i)
    EXPECT_EQ(relu_out.data<float>()[i], std::max(0.f, before.data<float>()[i]));
}

TEST(Graph, InsertBeforeAndReplace) {
  nn::Graph g = small_mlp();
  g.insert_before("fc2", 0, nn::Node{"pre", "Tanh", {}, {}, {}, {}});
  EXPECT_EQ(g.node_index("pre") + 1, g.node_index("fc2"));
  nn::Node sig{"relu", "Sigmoid", {}, {}, {}, {}};
  g.replace_node("relu", sig);
  EXPECT_EQ(g.node("relu").kind, "Sigmoid");
  // A replacement that does not fit is refused and the graph is left as it was.
  nn::Node bad{"fc2", "Linear", {{"in_features", 7}, {"out_features", 2}}, {}, {}, {}};
  bad.params.push_back({"weight", Tensor::empty(Shape{2, 7}, DType::f32), {}, true});
  EXPECT_THROW(g.replace_node("fc2", bad), UsageError);
  EXPECT_EQ(g.node("fc2").attrs["in_features"], 3);
}

TEST(Graph, RemoveRefusesShapeChangingNodes) {
  nn::Graph g = small_mlp();
  EXPECT_THROW(g.remove_node("fc1"), UsageError);
  EXPECT_EQ(g.nodes().size(), 3u);
}

TEST(Graph, FuseChainReplacesPrivateChainsOnly) {
  nn::Graph g = small_mlp();
  Rng rng(2);
  Tensor x = random_tensor(Shape{3, 4}, rng);
  Tensor before = run(g, x);
  // fc1 -> relu fused into one Linear followed by nothing would change the function; fuse into a
  // Linear (fc1's parameters) and check the graph is wired, then compare with ReLU re-inserted.
  nn::Node fused = g.node("fc1");
  fused.name = "fc1_fused";
  g.fuse_chain({"fc1", "relu"}, fused);
  EXPECT_EQ(g.nodes().size(), 2u);
  g.insert_after("fc1_fused", nn::Node{"relu", "ReLU", {}, {}, {}, {}});
  expect_same(run(g, x), before);
  // A chain whose intermediate value has another reader cannot be fused.
  nn::GraphBuilder b(1);
  int in = b.input("x", Shape{-1, 4});
  int a = b.op("a", "ReLU", {in});
  int t = b.op("t", "Tanh", {a});
  b.output(b.op("sum", "Add", {a, t}));
  nn::Graph branchy = b.take();
  EXPECT_THROW(branchy.fuse_chain({"a", "t"}, nn::Node{"at", "ReLU", {}, {}, {}, {}}), UsageError);
  EXPECT_EQ(branchy.nodes().size(), 3u);
}

TEST(Graph, RemoveOutputDropsTheNodesOnlyItNeeded) {
  nn::Graph g = small_mlp();
  Rng rng(3);
  Tensor x = random_tensor(Shape{2, 4}, rng);
  Tensor before = run(g, x);
  size_t nodes = g.nodes().size();
  // A training-only head of two nodes off the ReLU, as a second output.
  int relu = g.nodes()[size_t(g.node_index("relu"))].outputs[0];
  int head = g.add(nn::Node{"aux", "Linear", {{"in_features", 3}, {"out_features", 5}}, {relu}, {},
                            {{"weight", random_tensor(Shape{5, 3}, rng), {}, true}}});
  g.mark_output(g.add(nn::Node{"aux.relu", "ReLU", {}, {head}, {}, {}}));
  ASSERT_EQ(nn::forward(g, std::vector<Tensor>{x}).size(), 2u);
  EXPECT_THROW(g.remove_output(relu), UsageError);  // not an output
  g.remove_output(g.outputs()[1]);
  EXPECT_EQ(g.nodes().size(), nodes);
  EXPECT_EQ(g.node_index("aux"), -1);
  EXPECT_EQ(g.outputs().size(), 1u);
  expect_same(run(g, x), before);
  EXPECT_THROW(g.remove_output(g.outputs()[0]), UsageError);  // the last output stays
  // An output that is also read inside the graph keeps its producer.
  g.mark_output(relu);
  g.remove_output(relu);
  EXPECT_EQ(g.nodes().size(), nodes);
}

TEST(Graph, ForwardChecksInputs) {
  nn::Graph g = small_mlp();
  Rng rng(3);
  EXPECT_THROW(run(g, random_tensor(Shape{2, 5}, rng)), UsageError);
  EXPECT_THROW(nn::forward(g, std::vector<Tensor>{}), UsageError);
  EXPECT_NO_THROW(run(g, random_tensor(Shape{7, 4}, rng)));  // any batch
}

TEST(NativeModel, RoundTripRebuildsTheExactGraph) {
  ScratchDir dir;
  for (const char* arch : {"mlp", "cnn"}) {
    SCOPED_TRACE(arch);
    nn::Graph g = nn::build_architecture(arch, {.seed = 3});
    io::save_model(dir.file("m.safetensors"), g, {{"technique", "test"}});
    io::LoadedModel loaded = io::load_model(dir.file("m.safetensors"));
    EXPECT_EQ(io::graph_to_json(loaded.graph), io::graph_to_json(g));
    EXPECT_EQ(loaded.provenance["technique"], "test");
    Rng rng(4);
    Tensor x = random_tensor(Shape{2, 1, 28, 28}, rng);
    expect_same(run(loaded.graph, x), run(g, x));
    auto a = g.named_params(), b = loaded.graph.named_params();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].second->trainable, b[i].second->trainable);
  }
}

// The provenance fields shrink reads back must have their types: {"config": {"arch": 5}} ended
// `shrink inspect` with nlohmann's type_error (exit 3).
TEST(NativeModel, ProvenanceFieldsOfTheWrongTypeAreFormatErrors) {
  ScratchDir dir;
  nn::Graph g = small_mlp();
  const nlohmann::json good = {{"technique", "train"}, {"tool", "shrink"}, {"epochs_completed", 2},
                               {"config", {{"arch", "mlp"}, {"data", "fashion-mnist"}, {"context", 64}}},
                               {"result", {{"metric", "accuracy"}, {"value", 0.9}, {"loss", 0.3}}},
                               {"calibration", {{"batches", 3}}}};
  io::save_model(dir.file("good.safetensors"), g, good);
  EXPECT_EQ(io::load_model(dir.file("good.safetensors")).provenance, good);
  for (const auto& [pointer, wrong] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"/config", 5}, {"/config/arch", 5}, {"/config/data", nlohmann::json::array()}, {"/config/context", 2.5},
           {"/technique", 7}, {"/tool", false}, {"/epochs_completed", "x"}, {"/result", "good"},
           {"/result/metric", 3}, {"/result/value", "high"}, {"/result/loss", nullptr}, {"/calibration/batches", "x"},
           {"/language_model", 1}}) {
    nlohmann::json bad = good;
    bad[nlohmann::json::json_pointer(pointer)] = wrong;
    io::save_model(dir.file("bad.safetensors"), g, bad);
    EXPECT_THROW(io::load_model(dir.file("bad.safetensors")), FormatError) << pointer;
  }
}

TEST(NativeModel, RejectsForeignAndDamagedFiles) {
  ScratchDir dir;
  save_safetensors(dir.file("plain.safetensors"), {{"w", Tensor::empty(Shape{2}, DType::f32)}});
  EXPECT_THROW(io::load_model(dir.file("plain.safetensors")), FormatError);
  EXPECT_FALSE(io::is_native_model(dir.file("plain.safetensors")));
  nn::Graph g = small_mlp();
  auto graph_json = io::graph_to_json(g);
  // A tensor the graph names is missing.
  save_safetensors(dir.file("missing.safetensors"), {{"fc1.weight", g.node("fc1").param("weight").value}},
                   {{"shrink.format", io::kNativeFormatTag}, {"shrink.graph", graph_json.dump()}});
  EXPECT_THROW(io::load_model(dir.file("missing.safetensors")), FormatError);
  // Malformed graph JSON, a wrong kind of value, and a shape that disagrees.
  std::vector<NamedTensor> tensors;
  for (auto& [name, p] : g.named_params()) tensors.push_back({name, p->value});
  for (std::string graph_text : {std::string("{not json"), std::string("{\"inputs\": 3}"),
                                  std::string(graph_json.dump()).replace(graph_json.dump().find("\"out_features\":3"),
                                                                         16, "\"out_features\":9")}) {
    save_safetensors(dir.file("bad.safetensors"), tensors,
                     {{"shrink.format", io::kNativeFormatTag}, {"shrink.graph", graph_text}});
    EXPECT_THROW(io::load_model(dir.file("bad.safetensors")), FormatError) << graph_text.substr(0, 40);
  }
  save_safetensors(dir.file("future.safetensors"), tensors,
                   {{"shrink.format", "shrink-model/99"}, {"shrink.graph", graph_json.dump()}});
  EXPECT_THROW(io::load_model(dir.file("future.safetensors")), UnsupportedError);
  // A GGUF is a usage error that names the commands reading language models, and a file that is
  // neither format says so (both had read as a safetensors header length of ~10^10).
  try {
    io::load_model(fixture_path("gguf/all_types.gguf"));
    ADD_FAILURE() << "a GGUF loaded as a shrink model";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("a GGUF language model"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("eval --perplexity"), std::string::npos) << e.what();
  }
  std::vector<std::byte> junk(11, std::byte{0});
  junk[0] = std::byte{0x8f}, junk[1] = std::byte{0x01}, junk[8] = std::byte{'n'};  // no JSON after the length
  write_bytes(dir.file("junk.shrink"), junk);
  try {
    io::load_model(dir.file("junk.shrink"));
    ADD_FAILURE() << "a junk file loaded";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("neither safetensors, GGUF nor ONNX"), std::string::npos) << e.what();
  }
}

TEST(NativeModel, SparseWeightsShrinkTheFileAndRoundTrip) {
  ScratchDir dir;
  nn::Graph g = nn::build_architecture("mlp", {.seed = 1});
  io::save_model(dir.file("dense.safetensors"), g);
  // Zero 3 of every 4 weights of fc1 and fc2.
  for (const char* name : {"fc1", "fc2"}) {
    Tensor& w = g.node(name).param("weight").value;
    for (int64_t i = 0; i < w.numel(); ++i)
      if (i % 4) w.mutable_data<float>()[i] = 0.f;
  }
  io::save_model(dir.file("sparse.safetensors"), g);
  auto dense_bytes = read_bytes(dir.file("dense.safetensors")).size();
  auto sparse_bytes = read_bytes(dir.file("sparse.safetensors")).size();
  EXPECT_LT(double(sparse_bytes), 0.35 * double(dense_bytes)) << dense_bytes << " -> " << sparse_bytes;
  io::LoadedModel back = io::load_model(dir.file("sparse.safetensors"));
  auto a = g.named_params(), b = back.graph.named_params();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    for (int64_t j = 0; j < a[i].second->value.numel(); ++j)
      ASSERT_EQ(a[i].second->value.data<float>()[j], b[i].second->value.data<float>()[j]) << a[i].first;
  // A mask that disagrees with the stored values is refused.
  SafetensorsFile file = SafetensorsFile::open(dir.file("sparse.safetensors"));
  std::vector<NamedTensor> tensors;
  for (const auto& e : file.entries()) {
    Tensor t = file.tensor(e.name).clone();
    if (e.name == "fc1.weight.mask") t.mutable_data<uint8_t>()[0] = 0xff;
    tensors.push_back({e.name, t});
  }
  save_safetensors(dir.file("lying.safetensors"), tensors, file.metadata());
  EXPECT_THROW(io::load_model(dir.file("lying.safetensors")), FormatError);
}

// The 2 x 2 max pool's inference path (no argmax kept) against the general loop that recording
// for backward takes: equal bit for bit, NaN and infinities included, odd sizes cut as PyTorch does.
TEST(Graph, MaxPoolFastPathEqualsTheGeneralLoop) {
  nn::Graph graph = single_node_graph(make_node("MaxPool2d", {{"kernel_size", 2}}, {}), {{Shape{-1, 3, 7, 9}}});
  Rng rng(4);
  Tensor x = random_tensor(Shape{2, 3, 7, 9}, rng);
  float* p = x.mutable_data<float>();
  p[0] = std::numeric_limits<float>::quiet_NaN();
  p[12] = -std::numeric_limits<float>::infinity();
  p[40] = std::numeric_limits<float>::infinity();
  p[41] = std::numeric_limits<float>::quiet_NaN();
  std::vector<Tensor> in{x};
  const Tensor fast = nn::forward(graph, in)[0];
  nn::Tape tape;
  nn::RunOptions record;
  record.tape = &tape;
  const Tensor general = nn::forward(graph, in, record)[0];
  ASSERT_EQ(fast.shape(), (Shape{2, 3, 3, 4}));
  for (int64_t i = 0; i < fast.numel(); ++i) {
    const float a = fast.data<float>()[i], b = general.data<float>()[i];
    EXPECT_TRUE(a == b || (std::isnan(a) && std::isnan(b))) << i << ": " << a << " vs " << b;
  }
}

}  // namespace
}  // namespace shrink::testing
