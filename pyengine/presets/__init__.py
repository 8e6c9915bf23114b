"""Model and hardware presets (placeholder; filled in with sourced TOML files)."""
