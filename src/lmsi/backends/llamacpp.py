"""llama.cpp sampler for GGUF models, through llama-cpp-python's C API (`./scripts/setup.sh` builds it).

The m-paths workload in one context: the few-shot prefix shared by a group of prompts is
decoded once into sequence 0; each prompt's suffix is decoded once into its own sequence
(all suffixes in one batch); its n paths are copies of that sequence (llama.cpp shares the
KV cells, nothing is recomputed); then every live path of every prompt in the group decodes
one token per step in a single batch. Sampling happens on the logits in torch with a seeded
generator, exactly as the hf backend does, so both backends draw from the same distribution.
"""

from __future__ import annotations

import ctypes
import os
import sys

import torch

from .base import SamplingParams, cut_at_stop, pick_tokens
from .llama_probe import LlamaCppUnavailable, llama_cpp_import_error

_LOG_CALLBACK = None  # kept alive: llama.cpp holds a raw pointer to it


def _errors_only(L):
    """A log callback passing only llama.cpp's errors: it prints hundreds of load and graph
    lines (many at warning level) per context. LMSI_VERBOSE=1 keeps them all."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is None:

        @L.llama_log_callback
        def cb(level, text, _):
            if level == 3:
                sys.stderr.write(text.decode("utf-8", "replace"))

        _LOG_CALLBACK = cb
    return _LOG_CALLBACK


class LlamaCppSampler:
    name = "llamacpp"

    def __init__(self, model: str, batch_rows: int = 32, n_threads: int | None = None, kv_unified: bool = True, **_):
        problem = llama_cpp_import_error()
        if problem:
            raise LlamaCppUnavailable(problem)
        import llama_cpp as L

        self.L = L
        if not os.environ.get("LMSI_VERBOSE"):
            L.llama_log_set(_errors_only(L), ctypes.c_void_p(0))
        L.llama_backend_init()
        params = L.llama_model_default_params()
        self.model = L.llama_model_load_from_file(str(model).encode(), params)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {model}")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.batch_rows = max(1, batch_rows)
        self.threads = n_threads or os.cpu_count() or 1
        # unified: one pool of cells, copies share the prefix, every token attends (masked) over
        # all of them; split: one stream per sequence, a copy duplicates the prefix, a token
        # attends over its own stream only
        self.kv_unified = kv_unified
        self.ctx = None
        self.n_ctx = 0
        self._prefix: list[int] = []  # tokens now held by sequence 0

    # -- llama.cpp plumbing --------------------------------------------------
    def _context(self, n_ctx: int, n_seq: int) -> None:
        """(Re)create the context when a call needs more cells or sequences than it has."""
        L = self.L
        fits = self.ctx is not None and n_ctx <= self.n_ctx and n_seq <= self.n_seq
        if fits and (self.kv_unified or n_ctx / n_seq <= self.n_ctx / self.n_seq):  # split: per stream too
            return
        if self.ctx is not None:
            L.llama_free(self.ctx)
            L.llama_batch_free(self.batch)
        p = L.llama_context_default_params()
        p.n_ctx, p.n_batch, p.n_ubatch = n_ctx, 512, 512
        p.n_seq_max, p.kv_unified = n_seq, self.kv_unified
        p.n_threads = p.n_threads_batch = self.threads
        self.ctx = L.llama_init_from_model(self.model, p)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not create a context of {n_ctx} cells")
        self.n_ctx, self.n_seq = n_ctx, n_seq
        self.mem = L.llama_get_memory(self.ctx)
        self.batch = L.llama_batch_init(512, 0, n_seq)
        self._prefix = []

    def tokenize(self, text: str) -> list[int]:
        raw = text.encode()
        buf = (self.L.llama_token * (len(raw) + 8))()
        n = self.L.llama_tokenize(self.vocab, raw, len(raw), buf, len(buf), True, False)
        return list(buf[:n])

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self.L.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
        return buf.raw[:n]

    def _decode(self, items: list[tuple[int, int, int, bool]]) -> torch.Tensor:
        """Decode (token, pos, seq, want_logits) items in chunks of the batch size; returns the
        logits of the items that asked for them, in item order (across all chunks)."""
        L, out = self.L, []
        for start in range(0, len(items), 512):
            chunk = items[start : start + 512]
            b = self.batch
            b.n_tokens = len(chunk)
            wanted = 0
            for i, (tok, pos, seq, want) in enumerate(chunk):
                b.token[i], b.pos[i], b.n_seq_id[i], b.seq_id[i][0], b.logits[i] = tok, pos, 1, seq, want
                wanted += bool(want)
            if L.llama_decode(self.ctx, b) != 0:
                raise RuntimeError("llama.cpp decode failed (context full?)")
            if wanted:
                out.append(self._logits(wanted))
        return torch.cat(out) if out else torch.empty(0, self.n_vocab)

    def _logits(self, n: int) -> torch.Tensor:
        """The last decode's n output rows (llama.cpp stores them in batch order)."""
        ptr = self.L.llama_get_logits(self.ctx)
        flat = torch.frombuffer(
            (ctypes.c_float * (n * self.n_vocab)).from_address(ctypes.addressof(ptr.contents)), dtype=torch.float32
        ).view(n, self.n_vocab)
        return flat.clone()

    # -- sampling --------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, prompts: list[str], params: SamplingParams, progress=None) -> list[list[str]]:
        gen = torch.Generator().manual_seed(params.seed)
        per_group = max(1, self.batch_rows // params.n)
        out: list[list[str]] = []
        ids = [self.tokenize(p) for p in prompts]
        for start in range(0, len(prompts), per_group):
            out += self._group(ids[start : start + per_group], params, gen)
            if progress:
                progress(len(out))
        return out

    def _group(self, ids: list[list[int]], params: SamplingParams, gen) -> list[list[str]]:
        L, n = self.L, params.n
        lcp = min(len(x) for x in ids) - 1
        for i in range(lcp):
            if any(x[i] != ids[0][i] for x in ids):
                lcp = i
                break
        rows = len(ids) * n
        if self.kv_unified:
            need = lcp + sum(len(x) - lcp for x in ids) + rows * (params.max_new_tokens + 1) + 64
        else:  # every stream holds a whole prompt and its path; llama.cpp gives each n_ctx / n_seq
            need = (max(len(x) for x in ids) + params.max_new_tokens + 64) * (rows + 1)
        self._context(max(need, 2048), rows + 1)
        # sequence 0 keeps the shared prefix across calls: only the new part is decoded
        keep = 0
        while keep < min(len(self._prefix), lcp) and self._prefix[keep] == ids[0][keep]:
            keep += 1
        for s in range(1, self.n_seq):
            L.llama_memory_seq_rm(self.mem, s, -1, -1)
        L.llama_memory_seq_rm(self.mem, 0, keep, -1)
        self._decode([(t, p, 0, False) for p, t in enumerate(ids[0][keep:lcp], start=keep)])
        self._prefix = ids[0][:lcp]
        # each prompt's suffix once, in its first path's sequence; then its other paths copy it
        items = []
        for j, x in enumerate(ids):
            seq = 1 + j * n
            L.llama_memory_seq_cp(self.mem, 0, seq, -1, -1)
            items += [(t, p, seq, p == len(x) - 1) for p, t in enumerate(x[lcp:], start=lcp)]
        logits = self._decode(items).repeat_interleave(n, 0)
        for j in range(len(ids)):
            for k in range(1, n):
                L.llama_memory_seq_cp(self.mem, 1 + j * n, 1 + j * n + k, -1, -1)
        greedy = torch.zeros(rows, dtype=torch.bool)
        if params.greedy_first:
            greedy[::n] = True
        pos = [len(ids[r // n]) for r in range(rows)]
        pieces: list[bytes] = [b"" for _ in range(rows)]
        alive = list(range(rows))
        for step in range(params.max_new_tokens):
            nxt = pick_tokens(logits, greedy[alive], params, gen)
            still = []
            for b, r in enumerate(alive):
                t = int(nxt[b])
                if L.llama_vocab_is_eog(self.vocab, t):
                    continue
                pieces[r] += self._piece(t)
                tail = pieces[r][-64:].decode("utf-8", "ignore")
                if params.stop and any(s in tail for s in params.stop):
                    continue
                still.append((r, t))
            if not still or step == params.max_new_tokens - 1:
                break
            logits = self._decode([(t, pos[r], 1 + r, True) for r, t in still])
            for r, _ in still:
                pos[r] += 1
            alive = [r for r, _ in still]
        texts = [cut_at_stop(p.decode("utf-8", "replace"), params.stop)[0] for p in pieces]
        return [texts[j * n : (j + 1) * n] for j in range(len(ids))]

    def __del__(self):
        try:
            if self.ctx is not None:
                self.L.llama_batch_free(self.batch)
                self.L.llama_free(self.ctx)
            self.L.llama_model_free(self.model)
        except Exception:
            pass
