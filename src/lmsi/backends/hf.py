"""Pure-torch sampler: one prefill per prompt, its KV cache shared by all n paths.

Rows from several prompts decode together in one batch (left-padded cache), and rows that
hit a stop string or EOS leave the batch at once, so no compute goes to finished paths.
"""

from __future__ import annotations

import torch

from .base import SamplingParams, cut_at_stop


class HFSampler:
    name = "hf"

    def __init__(self, model, tokenizer=None, batch_rows: int = 32, **_):
        if isinstance(model, str):
            from ..models import load_model

            model, tokenizer = load_model(model)
        self.model, self.tok = model, tokenizer
        self.batch_rows = batch_rows
        self._prefix_key, self._prefix = None, None
        eos = {tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)}
        flat = set()
        for e in eos:
            flat.update(e if isinstance(e, (list, tuple)) else [e])
        self.eos_ids = torch.tensor(sorted(x for x in flat if x is not None))

    # ------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, prompts: list[str], params: SamplingParams, progress=None) -> list[list[str]]:
        gen = torch.Generator().manual_seed(params.seed)
        out: list[list[str]] = [[] for _ in prompts]
        per_chunk = max(1, self.batch_rows // params.n)
        done = 0
        for start in range(0, len(prompts), per_chunk):
            idx = list(range(start, min(start + per_chunk, len(prompts))))
            texts = self._run_chunk([prompts[i] for i in idx], params, gen)
            for j, i in enumerate(idx):
                out[i] = texts[j * params.n : (j + 1) * params.n]
            done += len(idx)
            if progress:
                progress(done)
        return out

    def _prefix_kv(self, ids: list[int]):
        """KV of the shared few-shot prefix, computed once and reused across calls."""
        from transformers import DynamicCache

        key = tuple(ids)
        if self._prefix_key != key:
            cache = DynamicCache(config=self.model.config)
            if ids:
                self.model(input_ids=torch.tensor([ids]), cache=cache, use_cache=True, logits_to_keep=1)
            self._prefix_key = key
            self._prefix = [(layer.keys, layer.values) for layer in cache.layers] if ids else None
        return self._prefix

    def _prefill(self, prompts: list[str]):
        """Prefill the common prefix once, each prompt's own suffix alone (no padding
        waste), then stack the caches left-padded into one decode batch."""
        from transformers import DynamicCache

        all_ids = [self.tok(p, add_special_tokens=False).input_ids for p in prompts]
        lcp = min(len(x) for x in all_ids) - 1  # every prompt keeps >= 1 token to prefill
        for i in range(lcp):
            if any(x[i] != all_ids[0][i] for x in all_ids):
                lcp = i
                break
        prefix = self._prefix_kv(all_ids[0][:lcp]) if lcp > 0 else None
        kvs, last_logits, lengths = [], [], []
        for ids in all_ids:
            cache = DynamicCache(config=self.model.config)
            if prefix is not None:
                for li, (k, v) in enumerate(prefix):
                    cache.update(k, v, li)
            suffix = torch.tensor([ids[lcp:]])
            pos = torch.arange(lcp, len(ids)).unsqueeze(0)
            res = self.model(input_ids=suffix, position_ids=pos, cache=cache, use_cache=True, logits_to_keep=1)
            kvs.append([(layer.keys, layer.values) for layer in res.cache.layers])
            last_logits.append(res.logits[0, -1].float())
            lengths.append(len(ids))
        width = max(lengths)
        cache = DynamicCache(config=self.model.config)
        for li in range(len(kvs[0])):
            ks, vs = [], []
            for kv, n in zip(kvs, lengths):
                k, v = kv[li]
                ks.append(torch.nn.functional.pad(k, (0, 0, width - n, 0)))
                vs.append(torch.nn.functional.pad(v, (0, 0, width - n, 0)))
            cache.update(torch.cat(ks), torch.cat(vs), li)
        mask = torch.zeros(len(prompts), width, dtype=torch.long)
        for r, n in enumerate(lengths):
            mask[r, width - n :] = 1
        return cache, torch.stack(last_logits), torch.tensor(lengths), mask

    def _pick(self, logits: torch.Tensor, params: SamplingParams, gen) -> torch.Tensor:
        if params.temperature <= 0:
            return logits.argmax(-1)
        probs = torch.softmax(logits / params.temperature, -1)
        if params.top_p < 1.0:
            sp, si = probs.sort(-1, descending=True)
            keep = sp.cumsum(-1) - sp < params.top_p
            sp = sp * keep
            probs = torch.zeros_like(probs).scatter(-1, si, sp)
        return torch.multinomial(probs, 1, generator=gen).squeeze(-1)

    def _run_chunk(self, prompts: list[str], params: SamplingParams, gen) -> list[str]:
        n = params.n
        cache, logits, lengths, mask = self._prefill(prompts)
        if n > 1:
            cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, 0)
            lengths = lengths.repeat_interleave(n)
            mask = mask.repeat_interleave(n, 0)
        rows = logits.shape[0]
        alive = torch.arange(rows)  # original row index of each live batch row
        tokens: list[list[int]] = [[] for _ in range(rows)]
        texts = [""] * rows
        for step in range(params.max_new_tokens):
            nxt = self._pick(logits, params, gen)
            keep = []
            for b, r in enumerate(alive.tolist()):
                t = int(nxt[b])
                if (self.eos_ids == t).any():
                    continue
                tokens[r].append(t)
                # stop strings can span tokens, so check the decoded tail
                tail = self.tok.decode(tokens[r][-8:])
                if params.stop and any(s in tail for s in params.stop):
                    continue
                keep.append(b)
            if not keep or step == params.max_new_tokens - 1:
                break
            if len(keep) < len(alive):
                sel = torch.tensor(keep)
                cache.batch_select_indices(sel)
                alive, nxt, lengths, mask = alive[sel], nxt[sel], lengths[sel], mask[sel]
            mask = torch.cat([mask, torch.ones(len(alive), 1, dtype=torch.long)], 1)
            pos = (lengths + step).unsqueeze(1)
            res = self.model(
                input_ids=nxt.unsqueeze(1), attention_mask=mask, position_ids=pos,
                cache=cache, use_cache=True,
            )
            cache, logits = res.cache, res.logits[:, -1].float()
        for r in range(rows):
            texts[r] = cut_at_stop(self.tok.decode(tokens[r]), params.stop)[0]
        return texts
