"""The local stack: Offload on a laptop against an embedded AWS emulator (never shipped)."""
