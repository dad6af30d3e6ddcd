"""Object summarizer and the object (query) transformer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ChannelAttentionResBlock, GroupConv2d, SinePositionEncoding


class ObjectSummarizer(nn.Module):
    """Pools a mask value into 16 object summaries (8 on the object, 8 on its complement) plus areas."""

    def __init__(self, value_dim: int = 256, embed_dim: int = 256, num_summaries: int = 16):
        super().__init__()
        self.num_summaries = num_summaries
        self.pos_enc = SinePositionEncoding(embed_dim, scale=32, temperature=128)
        self.input_proj = nn.Linear(value_dim, embed_dim)
        self.feature_pred = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, embed_dim))
        self.weights_pred = nn.Sequential(
            nn.Linear(embed_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, num_summaries)
        )

    def forward(self, masks: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """masks `[B,N,H',W']`, value `[B,N,C,h,w]` -> summaries `[B,N,16,C+1]` (fp32; last channel = area)."""
        h, w = value.shape[-2:]
        m = F.interpolate(masks, size=(h, w), mode="area").unsqueeze(-1)
        half = self.num_summaries // 2
        weight_masks = torch.cat([m.expand(*m.shape[:-1], half), (1 - m).expand(*m.shape[:-1], half)], -1)
        x = value.permute(0, 1, 3, 4, 2)
        x = self.input_proj(x) + self.pos_enc.code(h, w, x.dtype)
        x = x.float()
        feature = _linear_mlp_fp32(self.feature_pred, x)
        logits = _linear_mlp_fp32(self.weights_pred, x)
        weights = torch.sigmoid(logits) * weight_masks.float()
        sums = torch.einsum("bnhwq,bnhwc->bnqc", weights, feature)
        area = weights.flatten(2, 3).sum(2).unsqueeze(-1)
        return torch.cat([sums, area], dim=-1)


def _linear_mlp_fp32(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    first, last = mlp[0], mlp[2]
    x = F.linear(x, first.weight.float(), first.bias.float())
    return F.linear(F.relu(x), last.weight.float(), last.bias.float())


class _Attention(nn.Module):
    """Multi-head attention with `nn.MultiheadAttention`'s parameter names and semantics."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocked: torch.Tensor | None = None
    ) -> torch.Tensor:
        wq, wk, wv = self.in_proj_weight.chunk(3)
        bq, bk, bv = self.in_proj_bias.chunk(3)
        b, lq, d = q.shape
        hd = d // self.heads

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, -1, self.heads, hd).transpose(1, 2)

        qh = heads(F.linear(q, wq, bq))
        kh = heads(F.linear(k, wk, bk))
        vh = heads(F.linear(v, wv, bv))
        allowed = None if blocked is None else ~blocked.view(b, self.heads, lq, -1)
        out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=allowed)
        return self.out_proj(out.transpose(1, 2).reshape(b, lq, d))


class _ReadFromPixel(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.cross_attn = _Attention(dim, heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, q, pixels, q_pe, pixel_pe, blocked):
        a = self.norm(q)
        return a + self.cross_attn(a + q_pe, pixels + pixel_pe, pixels, blocked)


class _SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.self_attn = _Attention(dim, heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, q, q_pe):
        a = self.norm(q)
        qk = a + q_pe
        return a + self.self_attn(qk, qk, a)


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return x + self.linear2(F.relu(self.linear1(self.norm(x))))


class _ReadFromQuery(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.cross_attn = _Attention(dim, heads)

    def forward(self, pixels, queries, pixel_pe, q_pe):
        return pixels + self.cross_attn(pixels + pixel_pe, queries + q_pe, queries)


class _PixelFeedForward(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv = ChannelAttentionResBlock(dim)

    def forward(self, pixels_flat: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = pixels_flat.view(pixels_flat.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous()
        return self.conv(x)


class QueryTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, ff_dim: int):
        super().__init__()
        self.read_from_pixel = _ReadFromPixel(dim, heads)
        self.self_attn = _SelfAttention(dim, heads)
        self.ffn = _FeedForward(dim, ff_dim)
        self.read_from_query = _ReadFromQuery(dim, heads)
        self.pixel_ffn = _PixelFeedForward(dim)

    def forward(self, queries, pixels, q_pe, pixel_pe, blocked):
        """queries `[BN,Q,C]`, pixels `[BN,C,h,w]` -> (queries, pixels)."""
        h, w = pixels.shape[-2:]
        flat = pixels.flatten(2).transpose(1, 2).contiguous()
        queries = self.read_from_pixel(queries, flat, q_pe, pixel_pe, blocked)
        queries = self.self_attn(queries, q_pe)
        queries = self.ffn(queries)
        flat = self.read_from_query(flat, queries, pixel_pe, q_pe)
        return queries, self.pixel_ffn(flat, h, w)


class ObjectTransformer(nn.Module):
    """Object queries read from and write back to the fused pixel features, guided by auxiliary masks."""

    def __init__(self, dim: int = 256, heads: int = 8, num_queries: int = 16, ff_dim: int = 2048, num_blocks: int = 3):
        super().__init__()
        self.heads = heads
        self.num_queries = num_queries
        self.query_init = nn.Embedding(num_queries, dim)
        self.query_emb = nn.Embedding(num_queries, dim)
        self.summary_to_query_init = nn.Linear(dim, dim)
        self.summary_to_query_emb = nn.Linear(dim, dim)
        self.pixel_init_proj = GroupConv2d(dim, dim, 1)
        self.pixel_emb_proj = GroupConv2d(dim, dim, 1)
        self.spatial_pe = SinePositionEncoding(dim, scale=32, temperature=128)
        self.blocks = nn.ModuleList(QueryTransformerBlock(dim, heads, ff_dim) for _ in range(num_blocks))
        self.mask_pred = nn.ModuleList(
            nn.Sequential(nn.ReLU(), GroupConv2d(dim, 1, 1)) for _ in range(num_blocks + 1)
        )

    def forward(self, pixels: torch.Tensor, summaries: torch.Tensor) -> torch.Tensor:
        """pixels `[B,N,C,h,w]`, summaries `[B,N,16,C+1]` (running sums) -> readout `[B,N,C,h,w]`."""
        b, n, c, h, w = pixels.shape
        dtype = pixels.dtype
        values = (summaries[..., :-1] / (summaries[..., -1:] + 1e-4)).flatten(0, 1).to(dtype)
        queries = self.query_init.weight.unsqueeze(0) + self.summary_to_query_init(values)
        q_pe = self.query_emb.weight.unsqueeze(0) + self.summary_to_query_emb(values)

        state = self.pixel_init_proj(pixels)
        emb = self.pixel_emb_proj(pixels).flatten(3).flatten(0, 1).transpose(1, 2)
        pixel_pe = self.spatial_pe.code(h, w, dtype).flatten(0, 1).unsqueeze(0) + emb

        state = state.flatten(0, 1)
        blocked = self._blocked_attention(self.mask_pred[0](state.view(b, n, c, h, w)))
        for i, block in enumerate(self.blocks):
            queries, state = block(queries, state, q_pe, pixel_pe, blocked)
            if i + 1 < len(self.blocks):
                blocked = self._blocked_attention(self.mask_pred[i + 1](state.view(b, n, c, h, w)))
        return state.view(b, n, c, h, w)

    def _blocked_attention(self, logits: torch.Tensor) -> torch.Tensor:
        """True where attention is blocked: queries 0-7 see object pixels, 8-15 the rest. `[BN*heads,Q,hw]`."""
        prob = torch.sigmoid(logits.squeeze(2)).float()  # [B,N,h,w]
        background = torch.prod(1 - prob, dim=1, keepdim=True)
        odds = torch.cat([background, prob], dim=1).clamp(1e-7, 1 - 1e-7)
        log_odds = torch.log(odds / (1 - odds))
        foreground = (log_odds[:, 1:] >= log_odds.max(dim=1, keepdim=True)[0]).flatten(2)  # [B,N,hw]
        half = self.num_queries // 2
        fg_rows = (~foreground)[:, :, None, None, :].expand(-1, -1, self.heads, half, -1)
        bg_rows = foreground[:, :, None, None, :].expand(-1, -1, self.heads, half, -1)
        blocked = torch.cat([fg_rows, bg_rows], dim=3).flatten(0, 2)
        fully_blocked = blocked.all(dim=-1, keepdim=True)
        return blocked & ~fully_blocked
