"""The prefix-sharing sampler must match plain `generate` token for token at T=0."""

import torch

from lmsi.backends import SamplingParams
from lmsi.backends.hf import HFSampler


def _load(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, tok


def test_greedy_matches_generate(tiny_model_dir):
    model, tok = _load(tiny_model_dir)
    prefix = "Q: Ada buys 3 bags of apples.\nA: The answer is 3.\n\n"
    prompts = [
        prefix + "Q: Ben has 4 cards. How many?\nA:",
        prefix + "Q: Kira finds 12 more beads and 3 boxes. How many?\nA:",
    ]
    s = HFSampler(model, tok, batch_rows=4)
    got = s.generate(prompts, SamplingParams(n=2, temperature=0.0, max_new_tokens=12))
    for p, outs in zip(prompts, got):
        ids = tok(p, return_tensors="pt").input_ids
        ref = model.generate(
            ids, max_new_tokens=12, do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id
        )
        want = tok.decode(ref[0, ids.shape[1] :], skip_special_tokens=True)
        assert outs == [want, want]


def test_seeded_sampling_reproducible_and_stops(tiny_model_dir):
    model, tok = _load(tiny_model_dir)
    s = HFSampler(model, tok, batch_rows=3)
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=20, stop=("e",), seed=7)
    a = s.generate(["Q: one\nA:", "Q: two two\nA:"], params)
    b = s.generate(["Q: one\nA:", "Q: two two\nA:"], params)
    assert a == b and len(a) == 2 and all(len(x) == 3 for x in a)
    assert all("e" not in c for x in a for c in x)


def test_greedy_first_row_is_greedy(tiny_model_dir):
    model, tok = _load(tiny_model_dir)
    s = HFSampler(model, tok, batch_rows=8)
    prompts = ["Q: one two\nA:", "Q: three\nA:"]
    greedy = s.generate(prompts, SamplingParams(n=1, temperature=0.0, max_new_tokens=10))
    mixed = s.generate(prompts, SamplingParams(n=4, temperature=1.0, max_new_tokens=10, greedy_first=True, seed=3))
    assert [m[0] for m in mixed] == [g[0] for g in greedy]
    assert any(len(set(m[1:])) > 1 for m in mixed)  # the rest are sampled


def test_bench_sample_reports_ratio_against_naive(tiny_model_dir, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lmsi.cli import app

    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(
        app,
        [
            "bench",
            "sample",
            "--model",
            str(tiny_model_dir),
            "--task",
            "arith",
            "--questions",
            "2",
            "--paths",
            "3",
            "--max-new-tokens",
            "6",
            "--engines",
            "naive,hf,hf-int8",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "| naive |" in r.stdout and "| hf |" in r.stdout and "| hf-int8 |" in r.stdout and "roofline" in r.stdout
    saved = list((tmp_path / "benchmarks/results").glob("sample-*.md"))
    assert saved and "Command: `lmsi" in saved[0].read_text()


def test_sampled_first_tokens_follow_the_model_distribution(tiny_model_dir):
    """At T>0 the fast path must not change the distribution: 3,000 one-token paths from one
    prompt, grouped by their text, match softmax(logits / T) within 4.5 binomial standard errors
    for the most likely texts, at top_p=1 and with a nucleus."""
    from collections import Counter

    model, tok = _load(tiny_model_dir)
    prompt = "Q: Ben has 4 cards and finds 3 more. How many?\nA:"
    ids = tok(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits[0, -1]
    s = HFSampler(model, tok, batch_rows=512)
    n = 3000
    for top_p in (1.0, 0.6):
        probs = torch.softmax(logits / 0.5, -1)
        if top_p < 1:
            sp, si = probs.sort(descending=True)
            keep = si[(sp.cumsum(0) - sp) < top_p]
            probs = torch.zeros_like(probs).index_fill(0, keep, 1.0) * probs
            probs /= probs.sum()
        want = Counter()
        for i in torch.nonzero(probs).flatten().tolist():
            want["" if i == tok.eos_token_id else tok.decode([i])] += float(probs[i])
        got = Counter(
            s.generate([prompt], SamplingParams(n=n, temperature=0.5, top_p=top_p, max_new_tokens=1, seed=11))[0]
        )
        assert set(got) <= set(want)  # nothing outside the nucleus
        for text, p in want.most_common(5):
            se = (p * (1 - p) / n) ** 0.5
            assert abs(got[text] / n - p) <= 4.5 * se + 1e-9, (top_p, text, got[text] / n, p)


def test_score_is_the_mean_token_logprob_of_each_completion(tiny_model_dir):
    """Weighted votes read these scores: they must equal a plain forward pass over prompt + path."""
    model, tok = _load(tiny_model_dir)
    s = HFSampler(model, tok, batch_rows=4)
    prompt = "Q: Ada buys 3 bags of apples.\nA: The answer is 3.\n\nQ: Ben has 4 cards. How many?\nA:"
    paths = [" He has 4.", " Ben has 4 cards and buys 2 more, so 6. The answer is 6.", " 4"]
    got = s.score(prompt, paths)
    p = tok(prompt, add_special_tokens=False).input_ids
    for g, c in zip(got, paths):
        ids = p + tok(c, add_special_tokens=False).input_ids
        lp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
        want = torch.stack([lp[t - 1, ids[t]] for t in range(len(p), len(ids))]).mean().item()
        assert abs(g - want) < 1e-4, (g, want)


def test_int8_engine_quantizes_a_copy_that_keeps_the_logits(tiny_model_dir):
    """bench's hf-int8 engine: every Linear of the copy holds int8 weights, the original keeps its
    fp32 ones, and the copy's next-token logits follow the original's closely."""
    from lmsi.bench import int8_dynamic

    model, tok = _load(tiny_model_dir)
    q = int8_dynamic(model)
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
    assert linears and not any(type(m) is torch.nn.Linear for m in q.modules())
    assert all(m.weight.dtype == torch.float32 for m in linears)
    ids = tok("Q: Ben has 4 cards and finds 3 more. How many?\nA:", return_tensors="pt").input_ids
    with torch.no_grad():
        a, b = model(ids).logits[0, -1], q(ids).logits[0, -1]
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.99


def test_bench_sample_names_a_bad_dtype():
    from typer.testing import CliRunner

    from lmsi.cli import app

    r = CliRunner().invoke(app, ["bench", "sample", "--dtype", "fp33", "--no-save"])
    assert r.exit_code == 2 and "--dtype takes auto, float32" in r.output


def test_every_special_token_ends_a_path_not_only_the_declared_eos(tiny_model_dir):
    """A chat-tuned checkpoint (the embedded 1.5B) declares <|im_end|> as EOS yet emits
    <|endoftext|> after a plain-text answer; decoding on wrote the next exemplar into the path."""
    model, tok = _load(tiny_model_dir)
    tok.add_special_tokens({"eos_token": "<|im_end|>", "bos_token": "<|endoftext|>"})  # as its GGUF tokenizer says
    model.generation_config.eos_token_id = tok.eos_token_id
    end = tok.convert_tokens_to_ids("<|endoftext|>")
    assert end != tok.eos_token_id

    def favour_end(_module, _inputs, logits):  # the model's next token after two of its own
        if logits.shape[1] == 1:
            logits[..., end] += 1e4 * favour_end.calls.__next__()
        return logits

    favour_end.calls = iter([0, 0] + [1] * 10_000)
    model.lm_head.register_forward_hook(favour_end)
    s = HFSampler(model, tok, batch_rows=4)
    out = s.generate(["Q: one two\nA:"], SamplingParams(n=1, temperature=0.0, max_new_tokens=12))[0][0]
    assert "<|endoftext|>" not in out and 0 < len(tok(out).input_ids) <= 3
