"""The loop's two label-free stop rules: before training, is the round's vote worth training on
(weak_vote_stop); after a round, did its model raise agreement (agreement_stop)."""

from __future__ import annotations

from .config import RunConfig
from .rundir import RunDir
from .stats import agreement_stalled, probe_agreement, vote_signs, weak_vote


def agreement_stop(cfg: RunConfig, rundir: RunDir, stages: dict, k: int) -> str | None:
    """Label-free stop rule, checked after round k: did the new model's agreement (mean vote
    share of its self-consistency paths on the fixed eval questions; no label read) rise by
    loop.min_gain over the previous model's? Without sc evaluation, the agreement of the
    round's own vote on its fresh questions stands in (noisier: the questions change)."""
    if not cfg.loop.stop or k < 1:
        return None
    now, before = probe_agreement(rundir.eval_dir(k)), probe_agreement(rundir.eval_dir(k - 1))
    where = "the eval questions"
    if now is None or before is None:
        if k < 2:
            return None
        now = stages[f"{rundir.round_dir(k).name}/vote"]["agreement"]
        before = stages[f"{rundir.round_dir(k - 1).name}/vote"]["agreement"]
        k, where = k - 1, "fresh questions"  # round k's vote measures round k-1's model
    if agreement_stalled(before, now, cfg.loop.min_gain):
        return (
            f"round {k}'s model did not raise agreement on {where} ({now:.3f} vs {before:.3f}, needed "
            f"+{cfg.loop.min_gain}): keep round {k - 1}'s model"
        )
    return None


def round_vote_signs(rundir: RunDir, k: int, threshold: float, spaces: dict | None = None) -> dict:
    rd = rundir.round_dir(k)
    return vote_signs(rundir.rows(rd, "votes"), rundir.rows(rd, "samples"), threshold, spaces)


def weak_vote_stop(cfg: RunConfig, signs: dict, k: int, log) -> str | None:
    """Why the run stops before training on round k's vote (its signs; loop.stop on and a weak
    vote), or None; with loop.stop off a weak vote is only a warning."""
    weak = weak_vote(signs, cfg.loop.min_agreement)
    if weak and cfg.loop.stop:
        log(f"[stop] round {k}: {weak}; not trained (to train anyway: loop.stop=false)")
        return f"round {k}: {weak}; not trained"
    if weak:
        log(f"[warn] round {k}: {weak} (loop.stop=false: training anyway)")
    return None
