"""Streaming session (being written)."""


class MattingSession:
    pass
