"""Pure-torch sampler: the shared few-shot prefix is prefilled once, each prompt once, and
its KV cache is shared by all n paths.

Rows from several prompts decode together in one batch (left-padded cache), and rows that
hit a stop string or EOS leave the batch at once, so no compute goes to finished paths.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer

from ..models import load_model
from .base import SamplingParams, cut_at_stop, pick_tokens


class HFSampler:
    name = "hf"

    def __init__(self, model, tokenizer=None, batch_rows: int = 32, **_):
        if isinstance(model, str):
            model, tokenizer = load_model(model)
        self.model, self.tok = model, tokenizer
        self.batch_rows = batch_rows
        self._prefix_key, self._prefix = None, None
        eos = {tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)}
        flat = set()
        for e in eos:
            flat.update(e if isinstance(e, (list, tuple)) else [e])
        self.eos = {x for x in flat if x is not None}
        self.dev = getattr(model, "device", torch.device("cpu"))

    # ------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, prompts: list[str], params: SamplingParams, progress=None) -> list[list[str]]:
        gen = torch.Generator(device=self.dev).manual_seed(params.seed)
        out: list[list[str]] = [[] for _ in prompts]
        per_chunk = max(1, self.batch_rows // params.n)
        chunks = -(-len(prompts) // per_chunk)
        per_chunk = -(-len(prompts) // max(1, chunks))  # balance: 20 prompts -> 10+10, not 19+1
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
            self.model(input_ids=torch.tensor([ids], device=self.dev), cache=cache, use_cache=True, logits_to_keep=1)
            self._prefix_key = key
            self._prefix = [(layer.keys, layer.values) for layer in cache.layers]
        return self._prefix

    @torch.inference_mode()
    def score(self, prompt: str, completions: list[str]) -> list[float]:
        """Mean token log-probability (T=1) of each completion after `prompt`: the weight of a
        path in a weighted vote. The prompt's KV is shared by all completions, as in sampling."""
        p = self.tok(prompt, add_special_tokens=False).input_ids
        cs = [self.tok(c, add_special_tokens=False).input_ids or [self.tok.eos_token_id] for c in completions]
        keep = 1 + max(len(c) for c in cs)  # prompt's last position predicts each completion's first token
        _, logits, _, _ = self._prefill_ids([p + c for c in cs], room=0, shared=len(p) - 1, keep=keep)
        out = []
        for r, c in enumerate(cs):
            lp = torch.log_softmax(logits[r, keep - 1 - len(c) : keep - 1], -1)
            out.append(lp.gather(-1, torch.tensor(c, device=lp.device).unsqueeze(-1)).mean().item())
        return out

    def _prefill(self, prompts: list[str], room: int):
        return self._prefill_ids([self.tok(p, add_special_tokens=False).input_ids for p in prompts], room)

    def _prefill_ids(self, all_ids: list[list[int]], room: int, shared: int | None = None, keep: int = 1):
        """Reuse the common prefix's KV, then prefill all suffixes in one left-padded batch.

        Row r's cache is [prefix | padding | suffix_r]; the attention mask hides the padding,
        so one forward pass replaces a pass per prompt (bigger, faster GEMMs on CPU).
        """
        from transformers import DynamicCache

        lcp = min(len(x) for x in all_ids) - 1  # every prompt keeps >= 1 token to prefill
        lcp = lcp if shared is None else min(lcp, shared)  # scoring needs logits from `shared` on
        for i in range(lcp):
            if any(x[i] != all_ids[0][i] for x in all_ids):
                lcp = i
                break
        rows, width = len(all_ids), max(len(x) for x in all_ids) - lcp
        ids = torch.full((rows, width), self.tok.pad_token_id or 0)
        mask = torch.zeros(rows, lcp + width, dtype=torch.long)
        mask[:, :lcp] = 1
        pos = torch.full((rows, width), lcp)
        for r, x in enumerate(all_ids):
            k = len(x) - lcp
            ids[r, width - k :] = torch.tensor(x[lcp:])
            mask[r, lcp + width - k :] = 1
            pos[r, width - k :] = torch.arange(lcp, len(x))
        cache = DynamicCache(config=self.model.config)
        if lcp > 0:
            cache.layers = [
                _BufferedLayer(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1), width + room)
                for k, v in self._prefix_kv(all_ids[0][:lcp])
            ]
        else:
            cache.layers = [
                _BufferedLayer(None, None, width + room) for _ in range(self.model.config.num_hidden_layers)
            ]
        ids, mask, pos = ids.to(self.dev), mask.to(self.dev), pos.to(self.dev)
        res = self.model(
            input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True, logits_to_keep=keep
        )
        logits = res.logits[:, -1].float() if keep == 1 else res.logits.float()
        return res.cache, logits, torch.tensor([len(x) for x in all_ids], device=self.dev), mask

    def _run_chunk(self, prompts: list[str], params: SamplingParams, gen) -> list[str]:
        n = params.n
        cache, logits, lengths, mask = self._prefill(prompts, room=params.max_new_tokens + 1)
        if n > 1:
            cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, 0)
            lengths = lengths.repeat_interleave(n)
            mask = mask.repeat_interleave(n, 0)
        rows = logits.shape[0]
        greedy = torch.zeros(rows, dtype=torch.bool, device=self.dev)
        if params.greedy_first:
            greedy[::n] = True
        alive = torch.arange(rows, device=self.dev)  # original row index of each live batch row
        tokens: list[list[int]] = [[] for _ in range(rows)]
        texts = [""] * rows
        for step in range(params.max_new_tokens):
            nxt = pick_tokens(logits, greedy[alive], params, gen)
            keep = []
            for b, (r, t) in enumerate(zip(alive.tolist(), nxt.tolist())):  # one device sync per step
                if t in self.eos:
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
                sel = torch.tensor(keep, device=self.dev)
                cache.batch_select_indices(sel)
                alive, nxt, lengths, mask = alive[sel], nxt[sel], lengths[sel], mask[sel]
            mask = torch.cat([mask, torch.ones(len(alive), 1, dtype=torch.long, device=self.dev)], 1)
            pos = (lengths + step).unsqueeze(1)
            res = self.model(
                input_ids=nxt.unsqueeze(1),
                attention_mask=mask,
                position_ids=pos,
                cache=cache,
                use_cache=True,
            )
            cache, logits = res.cache, res.logits[:, -1].float()
        for r in range(rows):
            texts[r] = cut_at_stop(self.tok.decode(tokens[r]), params.stop)[0]
        return texts


class _BufferedLayer(DynamicLayer):
    """A KV cache layer that writes into preallocated buffers.

    transformers' DynamicLayer grows by torch.cat, copying the whole cache every decode step
    (19 % of step time measured on CPU at batch 48); this writes only the new token.
    """

    def __init__(self, keys, values, room: int):  # no super().__init__: keys/values are views here
        self.room, self.n = room, 0
        self._k = self._v = None
        self.is_initialized = False
        if keys is not None:
            self._alloc(keys, values)

    def _alloc(self, keys, values):
        b, h, n, d = keys.shape
        self._k = keys.new_empty(b, h, n + self.room, d)
        self._v = values.new_empty(b, h, n + self.room, values.shape[-1])
        self._k[:, :, :n] = keys
        self._v[:, :, :n] = values
        self.n, self.is_initialized, self.device = n, True, keys.device

    @property
    def keys(self):
        return self._k[:, :, : self.n]

    @property
    def values(self):
        return self._v[:, :, : self.n]

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self._alloc(key_states[:, :, :0], value_states[:, :, :0])
        m = key_states.shape[-2]
        if self.n + m > self._k.shape[2]:  # out of room: grow once more
            self._alloc(self.keys, self.values)
        self._k[:, :, self.n : self.n + m] = key_states
        self._v[:, :, self.n : self.n + m] = value_states
        self.n += m
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.n

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.n + query_length, 0

    def get_max_length(self) -> int:
        return -1

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._k = self._k.repeat_interleave(repeats, 0)
        self._v = self._v.repeat_interleave(repeats, 0)

    def batch_select_indices(self, indices) -> None:
        self._k, self._v = self._k[indices], self._v[indices]
