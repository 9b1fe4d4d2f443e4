// The table of subcommands. Each subcommand lives in its own file: it adds its options to a
// CLI11 subcommand, and its callback calls the library and prints.
#pragma once
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <string>

namespace shrink::cli {

struct Command {
  const char* name;
  const char* summary;
  void (*setup)(CLI::App& subcommand);  // adds options and sets the callback
};

void setup_inspect(CLI::App& subcommand);
void setup_info(CLI::App& subcommand);
void setup_bench(CLI::App& subcommand);
void setup_train(CLI::App& subcommand);
void setup_eval(CLI::App& subcommand);
void setup_prune(CLI::App& subcommand);
void setup_distill(CLI::App& subcommand);
void setup_factorize(CLI::App& subcommand);
void setup_quantize(CLI::App& subcommand);
void setup_qat(CLI::App& subcommand);
void setup_generate(CLI::App& subcommand);
void setup_export(CLI::App& subcommand);

inline constexpr Command kCommands[] = {
    {"inspect", "Show what a model file holds: architecture, metadata, tensors, size", setup_inspect},
    {"info", "Show this machine's CPU features, the kernel chosen for each slot, and OpenBLAS", setup_info},
    {"train", "Train a model from the zoo on a dataset, with progress and a checkpoint per epoch", setup_train},
    {"eval", "Measure a model on held-out data (accuracy, loss)", setup_eval},
    {"prune", "Remove weights by magnitude (per layer, global, N:M), optionally gradually with fine-tuning", setup_prune},
    {"distill", "Train a zoo student from a teacher's softened outputs plus the labels", setup_distill},
    {"factorize", "Split Linear and Conv2d layers into two low-rank layers by SVD, optionally fine-tuning", setup_factorize},
    {"quantize", "Quantize a model: int8 dynamic or static, or a language model's weights with RTN, GPTQ or AWQ", setup_quantize},
    {"qat", "Quantization-aware training: fake-quantized fine-tuning, then conversion to int8", setup_qat},
    {"generate", "Continue a prompt with a language model (greedy or sampled), streaming tokens", setup_generate},
    {"export", "Write a language model (e.g. a GPTQ result) as GGUF for llama.cpp: Q4_0/Q4_1/Q8_0 tensors", setup_export},
    {"bench", "Measure the kernels side by side against baselines and limits taken in the same run", setup_bench},
};

// Formatting helpers shared by the subcommands.
std::string with_thousands(uint64_t value);  // 134515008 -> "134,515,008"
std::string human_bytes(uint64_t bytes);      // "98.4 MB"
uint64_t stored_bytes(const std::string& path);  // a file's size, or a model folder's (its files, not its subfolders)
// Checks for numeric options, in place of CLI11's NonNegativeNumber and PositiveNumber, whose
// messages spell out their upper bound (1.8e308) in 310 digits.
inline CLI::Validator number_at_least(double lowest, bool inclusive, const char* name) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double value = 0;
        try {
          size_t used = 0;
          value = std::stod(text, &used);
          if (used != text.size()) return "'" + text + "' is not a number";
        } catch (const std::exception&) {
          return "'" + text + "' is not a number";
        }
        if (inclusive ? value >= lowest : value > lowest) return "";
        return fmt::format("must be {} {:g}, got {}", inclusive ? "at least" : "more than", lowest, text);
      },
      name);
}
inline const CLI::Validator kNonNegative = number_at_least(0, true, "NONNEGATIVE");
inline const CLI::Validator kPositive = number_at_least(0, false, "POSITIVE");

// A --json result on stdout, indented by 2. Bytes that are not UTF-8 (a prompt given as raw
// bytes, a generation cut inside a character) print as U+FFFD instead of failing the command.
template <class Json>  // nlohmann::json or ordered_json
void print_json(const Json& out) {
  fmt::print("{}\n", out.dump(2, ' ', false, Json::error_handler_t::replace));
}
// A whole text file (IoError naming `what` when it cannot be read).
std::string read_text_file(const std::string& path, const char* what = "the text");

}  // namespace shrink::cli
