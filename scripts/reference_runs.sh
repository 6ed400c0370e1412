#!/usr/bin/env bash
# Issue #10's reference experiment: the exact commands behind docs/results.md.
# Every step is resumable: rerun the script (or one step) and finished work is skipped.
# Run it from the repository root: each step reads its settings from configs/<name>.yaml.
#
#   scripts/reference_runs.sh [STEP ...]     steps: signal05 signal15 multiarith_cpu multiarith_cpu_variants vote_check ceiling gsm8k15_cpu multiarith gsm8k15
#                                            (default: signal05 signal15 multiarith gsm8k15)
#
# Env: R (runs folder, default runs/ref), A (archives, default docs/runs), M05 / M15 (model specs, default the embedded GGUFs),
# EXTRA (overrides added to every command, e.g. "sample.batch_rows=1024" on a GPU).
# On a 2-core CPU the whole set takes days; on one H100 about an hour.
set -euo pipefail
R=${R:-runs/ref}
M05=${M05:-embedded:qwen2.5-coder-0.5b}
M15=${M15:-embedded:qwen2.5-coder-1.5b}
L=${LMSI:-lmsi}
[[ -d configs ]] || { echo "run from the repository root (configs/ not found)" >&2; exit 2; }
read -ra X <<< "${EXTRA:-}"  # EXTRA split into words, added to every command

signals() {  # the vote signal of model $1 (tag $2) on the candidate tasks, m=32 on 150 questions
  for t in multiarith gsm8k aqua arc_challenge arith; do
    $L signal --task "$t" --paths 32 --limit 150 -m "$1" -r "$R/signal_$2_$t" --config configs/signal.yaml "${X[@]}"
  done
}

step() {
  case $1 in
    signal05) signals "$M05" 05 ;;
    signal15) signals "$M15" 15 ;;
    # the CPU-sized MultiArith run: measure the signal on 100 train questions (m=8), then train
    # round 1 on those very paths (--samples-from) and score on the first 100 test questions
    multiarith_cpu)
      $L signal --task multiarith --paths 8 --limit 100 -m "$M05" -r "$R/signal_05_multiarith_m8" --weighted \
        --config configs/signal.yaml "${X[@]}"
      $L run -r "$R/multiarith_05_cpu" --config configs/multiarith_05_cpu.yaml model="$M05" "${X[@]}" \
        --samples-from "$R/signal_05_multiarith_m8" ;;
    # variants of its round 1 on the same paths, greedy CoT only (issue #10 item 3): the CoT-only
    # runs borrow the signal run's paths, the others the 3-round run's paths and base eval
    multiarith_cpu_variants)
      v() {  # v NAME CONFIG [OVERRIDE ...] -- SAMPLES_FROM
        local name=$1 cfg=$2; shift 2
        local over=(); while [[ $1 != -- ]]; do over+=("$1"); shift; done
        $L run -r "$R/$name" --config "configs/$cfg.yaml" model="$M05" "${over[@]}" "${X[@]}" --samples-from "$R/$2"
      }
      v multiarith_05_cpu_cotonly multiarith_05_cpu_cotonly -- signal_05_multiarith_m8
      v multiarith_05_cpu_weighted multiarith_05_cpu_weighted -- multiarith_05_cpu
      v multiarith_05_cpu_strict multiarith_05_cpu_strict -- multiarith_05_cpu
      v multiarith_05_cpu_epochs2 multiarith_05_cpu_epochs2 -- multiarith_05_cpu
      # a second build/train draw of each (train.seed=1, same samples): how much of a gap is training noise?
      v multiarith_05_cpu_seed1 multiarith_05_cpu_round1 train.seed=1 -- multiarith_05_cpu
      v multiarith_05_cpu_weighted_seed1 multiarith_05_cpu_weighted train.seed=1 -- multiarith_05_cpu_weighted
      v multiarith_05_cpu_strict_seed1 multiarith_05_cpu_strict train.seed=1 -- multiarith_05_cpu
      v multiarith_05_cpu_cotonly_seed1 multiarith_05_cpu_cotonly train.seed=1 -- signal_05_multiarith_m8
      v multiarith_05_cpu_epochs2_seed1 multiarith_05_cpu_epochs2 train.seed=1 -- multiarith_05_cpu
      # a third draw of one epoch vs two, the one variant that led on both seeds
      v multiarith_05_cpu_seed2 multiarith_05_cpu_round1 train.seed=2 -- multiarith_05_cpu
      v multiarith_05_cpu_epochs2_seed2 multiarith_05_cpu_epochs2 train.seed=2 -- multiarith_05_cpu ;;
    # one round on other tasks, trained whatever the vote says: does the weak-vote rule
    # (loop.min_agreement) separate the runs that helped from those that did not? (docs/vote-check.md)
    vote_check)
      for t in ${VOTE_TASKS:-arith gsm8k commonsenseqa openbookqa anli_r3}; do
        $L run -r "$R/vote_check_05_$t" --config configs/vote_check.yaml data.task="$t" model="$M05" "${X[@]}"
        if [[ -e "$R/vote_check_05_$t/manifest.json" ]]; then $L archive "$R/vote_check_05_$t" "${A:-docs/runs}/vote_check_05_$t"; fi
      done ;;
    # the strongest real-benchmark signal of the 0.5B: three rounds on the same 299 unlabeled
    # MultiArith questions (one near-duplicate of a test question dropped), scored on all 300 test ones
    # issue 23's ceiling run: all 299 unlabeled questions, m=16, threshold 0.75, three training
    # draws, greedy CoT and maj@8 on all 300 test questions; archived after every stage
    ceiling) $L run -r "$R/ceiling_05" --config configs/ceiling_05.yaml model="$M05" "${X[@]}" --archive "${A:-docs/runs}/ceiling_05" ;;
    # issue 23 item 3 on a CPU: the 1.5B's GSM8K vote signal, then one round (about 6 hours on 2 cores),
    # then greedy CoT of its base and trained model on all 1,319 test questions
    gsm8k15_cpu)
      $L signal --task gsm8k --paths 8 --limit 100 -m "$M15" -r "$R/signal_15_gsm8k_m8" --config configs/signal.yaml "${X[@]}"
      $L run -r "$R/gsm8k_15_cpu" --config configs/gsm8k_15_cpu.yaml model="$M15" "${X[@]}" --archive "${A:-docs/runs}/gsm8k_15_cpu"
      ${PY:-python} scripts/cross_task.py eval "$R/gsm8k_15_cpu" arith:200 commonsenseqa:200 ;;
    multiarith) $L run -r "$R/multiarith_05" --config configs/multiarith_05.yaml model="$M05" "${X[@]}" ;;
    # the paper's flagship with the 1.5B: 2,000 unlabeled train questions, full 1,319-question test
    gsm8k15) $L run -r "$R/gsm8k_15" --config configs/gsm8k_15.yaml model="$M15" "${X[@]}" ;;
    *) echo "unknown step: $1 (signal05 signal15 multiarith_cpu multiarith_cpu_variants vote_check ceiling gsm8k15_cpu multiarith gsm8k15)" >&2; exit 2 ;;
  esac
}

for s in "${@:-signal05 signal15 multiarith gsm8k15}"; do
  for one in $s; do step "$one"; done
done
# run directories hold dataset text and weights and are not committed: keep their numbers in docs/runs
for d in "$R"/*/; do
  if [[ -e "$d/manifest.json" || -e "$d/signal.json" ]]; then $L archive "$d" "${A:-docs/runs}/$(basename "$d")"; fi
done
