#!/usr/bin/env bash
# Issue #10's reference experiment: the exact commands behind docs/results.md.
# Every step is resumable: rerun the script (or one step) and finished work is skipped.
#
#   scripts/reference_runs.sh [STEP ...]     steps: signal05 signal15 multiarith_cpu multiarith_cpu_variants multiarith gsm8k15 (default: all)
#
# Env: R (runs folder, default runs/ref), A (archives, default docs/runs), M05 / M15 (model specs, default the embedded GGUFs),
# EXTRA (overrides added to every command, e.g. "sample.batch_rows=1024" on a GPU).
# On a 2-core CPU the whole set takes days; on one H100 about an hour.
set -euo pipefail
R=${R:-runs/ref}
M05=${M05:-embedded:qwen2.5-coder-0.5b}
M15=${M15:-embedded:qwen2.5-coder-1.5b}
G="sample.max_new_tokens=256 sample.shots=4 ${EXTRA:-}"
L=${LMSI:-lmsi}

signals() {  # the vote signal of model $1 (tag $2) on the candidate tasks, m=32 on 150 questions
  for t in multiarith gsm8k aqua arc_challenge arith; do
    $L signal --task "$t" --paths 32 --limit 150 -m "$1" -r "$R/signal_$2_$t" $G
  done
}

step() {
  case $1 in
    signal05) signals "$M05" 05 ;;
    signal15) signals "$M15" 15 ;;
    # the CPU-sized MultiArith run: measure the signal on 100 train questions (m=8), then train
    # round 1 on those very paths (--samples-from) and score on the first 100 test questions
    multiarith_cpu)
      $L signal --task multiarith --paths 8 --limit 100 -m "$M05" -r "$R/signal_05_multiarith_m8" --weighted $G
      $L run -r "$R/multiarith_05_cpu" model="$M05" data.task=multiarith data.limit=100 data.overlap=drop \
        loop.rounds=3 loop.questions=same loop.stop=false sample.m=8 build.max_paths=4 build.max_rows=240 \
        eval.limit=100 "eval.modes=[greedy_cot,sc]" eval.sc_m=8 $G --samples-from "$R/signal_05_multiarith_m8" ;;
    # variants of its round 1 on the same paths, greedy CoT only (issue #10 item 3): the first
    # borrows the signal run's paths, the others the 3-round run's paths and base eval
    multiarith_cpu_variants)
      V=(model="$M05" data.task=multiarith data.limit=100 data.overlap=drop loop.rounds=1 loop.questions=same
         loop.stop=false sample.m=8 build.max_paths=4 build.max_rows=240 eval.limit=100 "eval.modes=[greedy_cot]" eval.sc_m=8 $G)
      $L run -r "$R/multiarith_05_cpu_cotonly" "${V[@]}" \
        "build.formats={fewshot_cot: 1, fewshot_direct: 0, zeroshot_cot: 1, zeroshot_direct: 0}" --samples-from "$R/signal_05_multiarith_m8"
      S=(--samples-from "$R/multiarith_05_cpu")
      $L run -r "$R/multiarith_05_cpu_weighted" "${V[@]}" build.vote=weighted "${S[@]}"
      $L run -r "$R/multiarith_05_cpu_strict" "${V[@]}" build.threshold=0.75 "${S[@]}"
      $L run -r "$R/multiarith_05_cpu_epochs2" "${V[@]}" train.epochs=2 "${S[@]}"
      # a second build/train draw of each (train.seed=1, same samples): how much of a gap is training noise?
      T=("${V[@]}" train.seed=1)
      $L run -r "$R/multiarith_05_cpu_seed1" "${T[@]}" "${S[@]}"
      $L run -r "$R/multiarith_05_cpu_weighted_seed1" "${T[@]}" build.vote=weighted --samples-from "$R/multiarith_05_cpu_weighted"
      $L run -r "$R/multiarith_05_cpu_strict_seed1" "${T[@]}" build.threshold=0.75 "${S[@]}"
      $L run -r "$R/multiarith_05_cpu_cotonly_seed1" "${T[@]}" \
        "build.formats={fewshot_cot: 1, fewshot_direct: 0, zeroshot_cot: 1, zeroshot_direct: 0}" --samples-from "$R/signal_05_multiarith_m8"
      $L run -r "$R/multiarith_05_cpu_epochs2_seed1" "${T[@]}" train.epochs=2 "${S[@]}"
      # a third draw of one epoch vs two, the one variant that led on both seeds
      T=("${V[@]}" train.seed=2)
      $L run -r "$R/multiarith_05_cpu_seed2" "${T[@]}" "${S[@]}"
      $L run -r "$R/multiarith_05_cpu_epochs2_seed2" "${T[@]}" train.epochs=2 "${S[@]}" ;;
    # the strongest real-benchmark signal of the 0.5B: three rounds on the same 299 unlabeled
    # MultiArith questions (one near-duplicate of a test question dropped), scored on all 300 test ones
    multiarith) $L run -r "$R/multiarith_05" model="$M05" data.task=multiarith data.limit=0 data.overlap=drop \
      loop.rounds=3 loop.questions=same loop.stop=false sample.m=32 build.max_rows=2000 build.max_paths=4 \
      eval.limit=0 "eval.modes=[greedy_cot,sc,direct]" eval.sc_m=16 train.batch_size=16 $G ;;
    # the paper's flagship with the 1.5B: 2,000 unlabeled train questions, full 1,319-question test
    gsm8k15) $L run -r "$R/gsm8k_15" model="$M15" data.task=gsm8k data.limit=2000 sample.m=16 \
      build.max_rows=4000 build.max_paths=4 eval.limit=0 "eval.modes=[greedy_cot,sc]" eval.sc_m=8 \
      train.batch_size=16 $G ;;
    *) echo "unknown step: $1 (signal05 signal15 multiarith_cpu multiarith_cpu_variants multiarith gsm8k15)" >&2; exit 2 ;;
  esac
}

for s in "${@:-signal05 signal15 multiarith gsm8k15}"; do
  for one in $s; do step "$one"; done
done
# run directories hold dataset text and weights and are not committed: keep their numbers in docs/runs
for d in "$R"/*/; do
  if [[ -e "$d/manifest.json" || -e "$d/signal.json" ]]; then $L archive "$d" "${A:-docs/runs}/$(basename "$d")"; fi
done
