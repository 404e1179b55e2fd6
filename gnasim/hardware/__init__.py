"""GPU hardware as data: profile schema and loading (profile), kernel tile tables (kernels),
physical ranges (ranges), tile resolution (tiles) and the TOML writer (write)."""
