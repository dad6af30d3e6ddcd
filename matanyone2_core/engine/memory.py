"""The memory bank: permanent and working (FIFO) pixel memory, optional long-term prototypes, top-k read.

Token order along the memory axis is [long-term, permanent, working oldest -> newest], each frame's
tokens row-major; it only matters for ties and summation order, but keeping it makes comparisons exact.

One bank serves a group of objects that share a memory schedule (the same frames memorised at the same
steps): keys, shrinkage, selection and usage are the frame's and shared, values and the object and sensory
memories are per object, with the objects along the batch axis (`[N,1,C,h,w]`), so the top-k is computed
once for the whole group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .options import MattingOptions


def similarity(
    mem_key: torch.Tensor, mem_shrinkage: torch.Tensor, query_key: torch.Tensor, query_selection: torch.Tensor
) -> torch.Tensor:
    """Negative selection-weighted squared distance times shrinkage / sqrt(CK): `[N_mem, Q]`.

    mem_key `[CK, N_mem]`, mem_shrinkage `[1, N_mem]`, query_key / query_selection `[CK, Q]`.
    """
    mk = mem_key.transpose(0, 1)
    a_sq = mk.pow(2) @ query_selection
    two_ab = 2 * (mk @ (query_key * query_selection))
    b_sq = (query_selection * query_key.pow(2)).sum(0, keepdim=True)
    return (-a_sq + two_ab - b_sq) * mem_shrinkage.transpose(0, 1) / (mem_key.shape[0] ** 0.5)


def _cat(parts: list[torch.Tensor | None], dim: int = -1) -> torch.Tensor | None:
    present = [p for p in parts if p is not None and p.shape[-1] > 0]
    if not present:
        return None
    return present[0] if len(present) == 1 else torch.cat(present, dim=dim)


@dataclass
class _Tokens:
    """A run of memory tokens: keys `[CK,T]`, shrinkage `[1,T]`, values `[N,C,T]`, plus usage counters."""

    key: torch.Tensor | None = None
    shrinkage: torch.Tensor | None = None
    value: torch.Tensor | None = None
    selection: torch.Tensor | None = None
    usage: torch.Tensor | None = None
    life: torch.Tensor | None = None
    counted: bool = field(default=False)

    @property
    def size(self) -> int:
        return 0 if self.key is None else self.key.shape[-1]

    def append(self, key, shrinkage, value, selection=None, *, prepend: bool = False) -> None:
        def join(old, new):
            if old is None:
                return new
            return torch.cat([new, old], -1) if prepend else torch.cat([old, new], -1)

        self.key = join(self.key, key)
        self.shrinkage = join(self.shrinkage, shrinkage)
        self.value = join(self.value, value)
        if self.counted:
            self.selection = None if selection is None else join(self.selection, selection)
            n = key.shape[-1]
            self.usage = join(self.usage, torch.zeros(n, device=key.device, dtype=torch.float32))
            self.life = join(self.life, torch.full((n,), 1e-7, device=key.device, dtype=torch.float32))

    def select_objects(self, objects: list[int]) -> _Tokens:
        """A copy holding the values of `objects` only; the (immutable) keys are shared, the counters copied."""
        tokens = _Tokens(counted=self.counted)
        tokens.key, tokens.shrinkage, tokens.selection = self.key, self.shrinkage, self.selection
        tokens.value = None if self.value is None else self.value[objects]
        # usage and life are updated in place by reads: each bank needs its own
        tokens.usage = None if self.usage is None else self.usage.clone()
        tokens.life = None if self.life is None else self.life.clone()
        return tokens

    def keep(self, index: torch.Tensor | slice) -> None:
        """Keep only the tokens at `index` (a slice or an index tensor), in that order."""
        self.key = self.key[..., index]
        self.shrinkage = self.shrinkage[..., index]
        self.value = self.value[..., index]
        if self.selection is not None:
            self.selection = self.selection[..., index]
        if self.usage is not None:
            self.usage = self.usage[index]
            self.life = self.life[index]

    def normalized_usage(self) -> torch.Tensor:
        return self.usage / self.life


class MemoryBank:
    """Pixel memory plus the object memory (running sums of summaries) and the sensory memory."""

    def __init__(self, options: MattingOptions):
        self.options = options
        self.long_term = options.long_term
        self.frames_kept = (options.long_term_max_mem_frames if options.long_term else options.max_mem_frames) - 1
        self.min_frames_kept = options.long_term_min_mem_frames - 1
        self.tokens_per_frame = 0
        self.sensory: torch.Tensor | None = None
        self.long = _Tokens(counted=True)
        self.clear_working()

    def clear_working(self) -> None:
        """Drop permanent and working pixel memory and the object memory (sensory and long-term stay)."""
        self.permanent = _Tokens()
        self.working = _Tokens(counted=self.long_term)
        self.summaries: torch.Tensor | None = None

    @property
    def engaged(self) -> bool:
        return self.permanent.size > 0 or self.working.size > 0

    def init_sensory(self, like: torch.Tensor, num_objects: int) -> None:
        """Zero sensory memory `[N,1,256,h,w]` at the size of `like` unless there is one already."""
        if self.sensory is None:
            h, w = like.shape[-2:]
            self.sensory = torch.zeros(num_objects, 1, 256, h, w, device=like.device, dtype=torch.float32)

    def select_objects(self, objects: list[int]) -> MemoryBank:
        """A bank for the objects at positions `objects` of this one, with the same history.

        Used when objects that shared this bank stop sharing a schedule (a keyframe for some of them only):
        each part continues exactly as if it had always had a bank of its own.
        """
        bank = MemoryBank(self.options)
        bank.tokens_per_frame = self.tokens_per_frame
        bank.sensory = None if self.sensory is None else self.sensory[objects]
        bank.summaries = None if self.summaries is None else self.summaries[objects]
        bank.long = self.long.select_objects(objects)
        bank.permanent = self.permanent.select_objects(objects)
        bank.working = self.working.select_objects(objects)
        return bank

    def add(
        self,
        key: torch.Tensor,
        shrinkage: torch.Tensor,
        selection: torch.Tensor,
        value: torch.Tensor,
        summaries: torch.Tensor,
        *,
        force_permanent: bool = False,
    ) -> None:
        """Store one frame: key/shrinkage/selection `[1,C,h,w]`, value `[N,1,C,h,w]`, summaries `[N,1,16,C+1]`."""
        self.tokens_per_frame = key.shape[-2] * key.shape[-1]
        k, s, e = key[0].flatten(1), shrinkage[0].flatten(1), selection[0].flatten(1)
        v = value[:, 0].flatten(2)
        self.summaries = summaries.clone() if self.summaries is None else self.summaries + summaries
        if force_permanent:
            self.permanent.append(k, s, v, prepend=True)
        elif self.permanent.size == 0:
            self.permanent.append(k, s, v)
        else:
            self.working.append(k, s, v, e)
        self._trim()

    def _trim(self) -> None:
        hw = self.tokens_per_frame
        if not self.long_term:
            excess = self.working.size - self.frames_kept * hw
            if excess > 0:
                self.working.keep(slice(excess, None))
            return
        if self.working.size < self.frames_kept * hw:
            return
        opts = self.options
        if self.long.size >= opts.max_long_term_tokens - opts.num_prototypes:
            survivors = opts.max_long_term_tokens - opts.num_prototypes - opts.buffer_tokens
            order = torch.topk(self.long.normalized_usage(), k=survivors).indices
            self.long.keep(order)
        keep_tokens = self.min_frames_kept * hw
        if self.working.size <= keep_tokens:
            return
        n_candidates = self.working.size - keep_tokens
        self._consolidate(n_candidates)
        self.working.keep(slice(n_candidates, None))

    def _consolidate(self, n_candidates: int) -> None:
        """Turn the oldest working tokens into `num_prototypes` long-term prototypes."""
        w = self.working
        key, shrinkage = w.key[:, :n_candidates], w.shrinkage[:, :n_candidates]
        value, selection = w.value[..., :n_candidates], w.selection[:, :n_candidates]
        usage = w.normalized_usage()[:n_candidates]
        chosen = torch.topk(usage, k=min(self.options.num_prototypes, n_candidates)).indices
        proto_key, proto_selection = key[:, chosen], selection[:, chosen]
        affinity = torch.softmax(similarity(key, shrinkage, proto_key, proto_selection), dim=0)
        proto_value = value @ affinity
        proto_shrinkage = shrinkage @ affinity
        self.long.append(proto_key, proto_shrinkage, proto_value)

    def read(self, query_key: torch.Tensor, query_selection: torch.Tensor) -> torch.Tensor:
        """Top-k attention readout `[N,1,C,h,w]` for query key/selection `[1,CK,h,w]` (one top-k for all N);
        with `memory_read="full"` a softmax over all memory tokens instead."""
        h, w = query_key.shape[-2:]
        qk, qe = query_key[0].flatten(1), query_selection[0].flatten(1)
        stores = [self.long, self.permanent, self.working]
        key = _cat([s.key for s in stores])
        shrinkage = _cat([s.shrinkage for s in stores])
        value = _cat([s.value for s in stores])
        n_obj, channels, n_mem = value.shape
        values_t = value.reshape(n_obj * channels, n_mem).transpose(0, 1).contiguous()  # [N_mem, N*C]
        k = min(self.options.top_k, n_mem)
        usage = torch.zeros(n_mem, device=key.device, dtype=torch.float32) if self.long_term else None

        out = []
        chunk = self.options.query_chunk
        full = self.options.memory_read == "full"
        for start in range(0, qk.shape[1], chunk):
            sim = similarity(key, shrinkage, qk[:, start : start + chunk], qe[:, start : start + chunk])
            if full:  # every token weighted: [N_mem, q] softmax, one product with the values
                weights = torch.softmax(sim, dim=0)
                out.append(values_t.transpose(0, 1) @ weights.to(values_t.dtype))
                if usage is not None:
                    usage += weights.sum(1).float()
                continue
            top, index = torch.topk(sim, k=k, dim=0)  # [k, q]
            weights = torch.softmax(top, dim=0)  # identical to exp/sum wherever that is finite
            gathered = values_t[index]  # [k, q, N*C]
            out.append(torch.einsum("kq,kqc->cq", weights.to(gathered.dtype), gathered))
            if usage is not None:
                usage.index_add_(0, index.flatten(), weights.flatten().float())
        if usage is not None:
            self._count_usage(usage)
        readout = torch.cat(out, dim=1) if len(out) > 1 else out[0]
        return readout.view(n_obj, 1, channels, h, w)

    def _count_usage(self, usage: torch.Tensor) -> None:
        offset = self.long.size + self.permanent.size
        for store, part in ((self.long, usage[: self.long.size]), (self.working, usage[offset:])):
            if store.size > 0:
                store.usage += part
                store.life += 1
