#!/usr/bin/env bash
# Redraws the figures in docs/figures from their CSV tables (tools/svg_chart.py). Each CSV holds
# the numbers of a table in docs/results.md (named beside the figure there); the context sweep's
# CSVs are what bench/llm_context_sweep.sh wrote.
set -euo pipefail
cd "$(dirname "$0")/.."
chart="python3 tools/svg_chart.py"
dir=docs/figures

$chart $dir/smollm2_quantization.csv --x bits_per_weight --y perplexity --series method --log-y \
  --hline "36.952:f32 baseline 36.95" \
  --title "SmolLM2-135M: held-out perplexity against stored bits per weight" \
  --x-label "bits per weight stored (scales and zeros included)" \
  --y-label "Persuasion perplexity (40 × 512 tokens, log scale)" --out $dir/smollm2_quantization.svg

$chart $dir/minilm_factorization.csv --x parameters_kept --y mean_cosine --series method \
  --title "all-MiniLM-L6-v2 factored by SVD: embedding cosine to f32" \
  --x-label "fraction of the blocks' Linear parameters kept" \
  --y-label "mean cosine to the f32 embeddings (200 sentences)" --out $dir/minilm_factorization.svg

$chart $dir/smollm2_context_sweep.csv --x prompt_tokens --y decode_tokens_per_second --series binary model \
  --median --log-x --y-from-zero \
  --title "SmolLM2-135M decode speed against the context in the KV cache" \
  --x-label "tokens already in the cache (prompt length, log scale)" \
  --y-label "decode tokens/s (median of runs)" --out $dir/smollm2_context_sweep.svg
$chart $dir/smollm2_attention_kernel.csv --x prompt_tokens --y attention_ms_per_token --series binary model \
  --median --log-x --log-y \
  --title "SmolLM2-135M: attention per decoded token, online-softmax kernel (after) vs before" \
  --x-label "tokens already in the cache (prompt length, log scale)" \
  --y-label "attention ms per decoded token (median, log scale)" --out $dir/smollm2_attention_kernel.svg
$chart $dir/cnn_pruning.csv --x sparsity_percent --y accuracy_percent --series method --y-from-zero \
  --hline "93.19:dense 93.19%" \
  --title "Fashion-MNIST CNN: held-out accuracy against sparsity" \
  --x-label "sparsity of the pruned weights (%)" --y-label "held-out accuracy (%)" --out $dir/cnn_pruning.svg
echo "figures written to $dir"
