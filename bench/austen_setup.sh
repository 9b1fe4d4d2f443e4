# Sourced by the Austen-based benchmark tables (llm_quant_table.sh, minilm_quant_table.sh): the
# asset cache, the held-out novel (Persuasion), the shrink binary, and the calibration text (the
# other five novels) written to "$out/austen_calibration.txt". Needs $out set.
cache="${SHRINK_CACHE:-$HOME/.cache/shrink}"
held="$cache/austen/persuasion.txt"
shrink=${SHRINK:-build/release/src/shrink}
mkdir -p "$out"
calib="$out/austen_calibration.txt"
cat "$cache"/austen/{emma,mansfieldpark,northangerabbey,prideprejudice,sensesensibility}.txt > "$calib"
