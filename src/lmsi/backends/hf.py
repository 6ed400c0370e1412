"""Pure-torch sampler: the shared few-shot prefix is prefilled once, each prompt once, and
its KV cache is shared by all n paths.

Sampled rows from several prompts decode together in one batch (left-padded cache), and rows
that hit a stop string or EOS leave the batch at once, so no compute goes to finished paths.

Greedy rows (temperature 0; the first path under greedy_first) are decoded apart so that their
text depends on their prompt alone, not on the other prompts or paths of a call (modes, sc_m,
batch_rows or a resumed chunk must not move a greedy score). A batched row's floats depend on
the batch: GEMM kernels change with the row count, padding moves a row's keys within
attention's reductions. So a greedy prompt is prefilled alone (its head, through the last blank
line, in one cached pass), then decodes in one of GREEDY_ROWS slots: a finished slot takes the
next prompt, empty slots decode a dummy token, so every step has one shape, and attention reads
each slot's keys alone. At one shape GEMM rows are computed independently: on a device whose
kernels are deterministic, a prompt's greedy text is the same in any batch.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, DynamicCache
from transformers.cache_utils import DynamicLayer

from ..models import end_token_ids, load_model
from .base import SamplingParams, cut_at_stop, pick_tokens, row_generators

GREEDY_ROWS = 32  # rows of every greedy decode step; greedy text depends on it, so it is fixed
ROWWISE = "lmsi_rowwise"


def _rowwise_attention(module, query, key, value, attention_mask, scaling=None, sliding_window=None, **_):
    """One decode step's softmax attention, each row over its own keys alone: key and value
    hold one [1, kv_heads, len, dim] view per row (None: empty slot), so a row's numbers never
    depend on the other rows' lengths. The mask is unused (one query sees all its keys)."""
    out = torch.zeros_like(query)  # [rows, heads, 1, dim]
    for r, (k, v) in enumerate(zip(key, value)):
        if k is not None:
            k, v = (k, v) if not sliding_window else (k[:, :, -sliding_window:], v[:, :, -sliding_window:])
            out[r : r + 1] = F.scaled_dot_product_attention(query[r : r + 1], k, v, scale=scaling, enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(ROWWISE, _rowwise_attention)


class HFSampler:
    name = "hf"
    prompt_seeds = True  # SamplingParams.seeds: one generator per row

    def __init__(self, model, tokenizer=None, batch_rows: int = 32, invariant_greedy: bool = True, **_):
        if isinstance(model, str):
            model, tokenizer = load_model(model)
        self.model, self.tok = model, tokenizer
        self.batch_rows = batch_rows
        self.invariant_greedy = invariant_greedy  # False: greedy rows batch with sampled ones (a bench baseline)
        self._prefixes: dict[tuple, list] = {}  # KV of recent shared prefixes (greedy heads, sampled batches)
        self.eos = end_token_ids(tokenizer, getattr(model, "generation_config", None))
        self.dev = getattr(model, "device", torch.device("cpu"))

    @torch.inference_mode()
    def generate(self, prompts: list[str], params: SamplingParams, progress=None) -> list[list[str]]:
        if not self.invariant_greedy:
            return self._sample(prompts, params, progress)
        if params.temperature <= 0 or params.n == params.greedy_first:  # greedy rows only
            return [[t] * params.n for t in self._greedy(prompts, params, progress)]
        greedy = self._greedy(prompts, params) if params.greedy_first else None
        out = self._sample(prompts, replace(params, n=params.n - params.greedy_first, greedy_first=False), progress)
        return [[g, *o] for g, o in zip(greedy, out)] if greedy else out

    def _sample(self, prompts: list[str], params: SamplingParams, progress=None) -> list[list[str]]:
        gen = torch.Generator(device=self.dev).manual_seed(params.seed)
        out: list[list[str]] = [[] for _ in prompts]
        per_chunk = max(1, self.batch_rows // params.n)
        chunks = -(-len(prompts) // per_chunk)
        per_chunk = max(1, -(-len(prompts) // max(1, chunks)))  # balance: 20 prompts -> 10+10, not 19+1
        for start in range(0, len(prompts), per_chunk):
            idx = list(range(start, min(start + per_chunk, len(prompts))))
            g = row_generators([params.seeds[i] for i in idx], params.n, self.dev) if params.seeds else gen
            texts = self._run_chunk([prompts[i] for i in idx], params, g)
            for j, i in enumerate(idx):
                out[i] = texts[j * params.n : (j + 1) * params.n]
            if progress:
                progress(idx[-1] + 1)  # chunks run in order
        return out

    def _greedy(self, prompts: list[str], params: SamplingParams, progress=None) -> list[str]:
        """Each prompt's greedy text, the same whichever prompts share the call (module doc)."""
        ids = [self.tok(p, add_special_tokens=False).input_ids for p in prompts]
        slot: list[int | None] = [None] * GREEDY_ROWS  # the prompt each slot decodes
        tokens: list[list[int]] = [[] for _ in prompts]
        todo, cache, done = list(range(len(prompts)))[::-1], None, 0
        while True:
            for j in range(GREEDY_ROWS):
                while slot[j] is None and todo:  # admit the next prompt; it may finish at once
                    r = todo.pop()
                    kv, logits = self._prefill_alone(prompts[r], ids[r])
                    cache = cache or _RowsCache(kv, GREEDY_ROWS, max(map(len, ids)) + params.max_new_tokens)
                    cache.load(j, kv)
                    slot[j] = None if self._take(tokens[r], int(logits.argmax()), params) else r
                    cache.live[j] = slot[j] is not None
                    done += slot[j] is None
            if progress and done:
                progress(done)
            if all(r is None for r in slot):
                break
            picks = self._rowwise_step(cache, [tokens[r][-1] if r is not None else 0 for r in slot])
            for j, r in enumerate(slot):
                if r is not None and self._take(tokens[r], picks[j], params):
                    slot[j], cache.live[j] = None, False
                    done += 1
        return [cut_at_stop(self.tok.decode(t), params.stop)[0] for t in tokens]

    def _take(self, tokens: list[int], t: int, params: SamplingParams) -> bool:
        """Append token t to a row; whether the row is finished (EOS, a stop string, the cap)."""
        if t in self.eos:
            return True
        tokens.append(t)
        tail = self.tok.decode(tokens[-8:])  # stop strings can span tokens, so check the decoded tail
        return len(tokens) >= params.max_new_tokens or any(s in tail for s in params.stop)

    def _head_len(self, prompt: str, ids: list[int]) -> int:
        """Tokens of the prompt's head (through its last blank line: the few-shot exemplars,
        shared by every prompt of an evaluation); a function of this prompt alone."""
        cut = prompt.rfind("\n\n") + 2
        head = self.tok(prompt[:cut], add_special_tokens=False).input_ids if cut > 1 else []
        n = 0
        while n < min(len(head), len(ids) - 1) and head[n] == ids[n]:
            n += 1
        return n

    def _prefill_alone(self, prompt: str, ids: list[int]):
        """One prompt's KV and last logits: its head's KV (one pass, cached), then the rest."""
        h = self._head_len(prompt, ids)
        cache = DynamicCache(config=self.model.config)
        head = self._prefix_kv(ids[:h]) if h else [(None, None)] * self.model.config.num_hidden_layers
        cache.layers = [_BufferedLayer(k, v, len(ids) - h) for k, v in head]
        x, pos = torch.tensor([ids[h:]], device=self.dev), torch.arange(h, len(ids), device=self.dev)[None]
        res = self.model(input_ids=x, position_ids=pos, cache=cache, use_cache=True, logits_to_keep=1)
        return [(layer.keys, layer.values) for layer in res.cache.layers], res.logits[0, -1].float()

    def _rowwise_step(self, cache: _RowsCache, last: list[int]) -> list[int]:
        """One greedy decode step of every slot (empty ones too: the shape never changes)."""
        cfg, x = self.model.config, torch.tensor(last, device=self.dev)[:, None]
        cache.pos = torch.tensor(cache.len, device=self.dev)
        unused = torch.ones(len(last), 1, 1, 1, dtype=torch.bool, device=self.dev)  # a 4D mask skips mask building
        before, cfg._attn_implementation = cfg._attn_implementation, ROWWISE
        try:
            res = self.model(
                input_ids=x, position_ids=cache.pos[:, None], attention_mask=unused, cache=cache, use_cache=True
            )
        finally:
            cfg._attn_implementation = before
        cache.len = [n + live for n, live in zip(cache.len, cache.live)]
        return res.logits[:, -1].argmax(-1).tolist()

    def _prefix_kv(self, ids: list[int]):
        """KV of a shared few-shot prefix, computed in one pass and reused across calls."""
        key = tuple(ids)
        if key not in self._prefixes:
            cache = DynamicCache(config=self.model.config)
            self.model(input_ids=torch.tensor([ids], device=self.dev), cache=cache, use_cache=True, logits_to_keep=1)
            if len(self._prefixes) >= 4:
                self._prefixes.pop(next(iter(self._prefixes)))
            self._prefixes[key] = [(layer.keys, layer.values) for layer in cache.layers]
        return self._prefixes[key]

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
        greedy = (torch.arange(rows, device=self.dev) % n == 0) & bool(params.greedy_first)  # invariant_greedy off
        alive = torch.arange(rows, device=self.dev)  # original row index of each live batch row
        tokens: list[list[int]] = [[] for _ in range(rows)]
        for step in range(params.max_new_tokens):
            live = alive.tolist()
            nxt = pick_tokens(logits, greedy[alive], params, [gen[r] for r in live] if isinstance(gen, list) else gen)
            # one device sync per step
            keep = [b for b, (r, t) in enumerate(zip(live, nxt.tolist())) if not self._take(tokens[r], t, params)]
            if not keep:
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
        return [cut_at_stop(self.tok.decode(t), params.stop)[0] for t in tokens]


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


class _RowsCache:
    """Decode-time KV of the greedy slots: slot j's keys sit at [0, len[j]) of its own buffer,
    stored [position, head, dim] so a slot's view has the same strides whatever the capacity;
    a step writes each slot's token at its own position (`pos`), and `_rowwise_attention`
    reads each slot alone."""

    def __init__(self, kv, rows: int, cap: int):
        self.k = [k.new_zeros(rows, cap, k.shape[1], k.shape[3]) for k, _ in kv]
        self.v = [v.new_zeros(rows, cap, v.shape[1], v.shape[3]) for _, v in kv]
        self.len, self.live, self.pos = [0] * rows, [False] * rows, None
        self.rows = torch.arange(rows, device=self.k[0].device)

    def load(self, j: int, kv) -> None:
        for kb, vb, (k, v) in zip(self.k, self.v, kv):
            kb[j, : k.shape[2]] = k[0].transpose(0, 1)
            vb[j, : v.shape[2]] = v[0].transpose(0, 1)
        self.len[j], self.live[j] = kv[0][0].shape[2], True

    def update(self, key_states, value_states, layer_idx: int, *args, **kwargs):
        kb, vb = self.k[layer_idx], self.v[layer_idx]
        kb[self.rows, self.pos] = key_states[:, :, 0]
        vb[self.rows, self.pos] = value_states[:, :, 0]
        return self._views(kb), self._views(vb)

    def _views(self, b) -> list:
        return [
            b[j, : n + 1].transpose(0, 1)[None] if live else None
            for j, (n, live) in enumerate(zip(self.len, self.live))
        ]
