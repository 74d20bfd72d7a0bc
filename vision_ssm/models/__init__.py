"""Floor 3: timm-registered reference models (importing this module registers them)."""
