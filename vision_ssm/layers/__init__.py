"""Floor 2: nn.Modules built on :mod:`vision_ssm.ops` (one family of blocks per file)."""
