"""Task datasets used by the recipes."""
