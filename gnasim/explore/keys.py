"""The sweep's column key lists and chunking constants."""

# Columns the vectorised path computes (everything SimulationResult.to_dict() returned when
# this module was written). Keys to_dict() adds later are filled per row (see module docstring).
STRING_KEYS = ("hardware", "kernel", "input_size", "window_size", "stride", "dilation", "causal",
               "q_tile", "kv_tile", "kv_tiling", "dtype")
INT_KEYS = ("batch", "heads", "heads_kv", "head_dim", "head_dim_v", "tokens", "q_tiles",
            "kv_tiles", "dense_kv_tiles_per_q_tile", "kv_tiles_visited_max",
            "tile_pairs_visited", "tile_pairs_full", "tile_pairs_partial", "attended_pairs",
            "flops_dense", "flops_useful", "flops_computed", "flops_wasted")
FLOAT_KEYS = ("flop_speedup", "tile_speedup", "tile_speedup_mean", "sparsity",
              "kv_tiles_visited_mean", "attention_fraction", "e2e_flop_speedup",
              "e2e_tile_speedup")
BOOL_KEYS = ("fully_block_sparse", "natten_fast_path")
FAST_KEYS = frozenset(STRING_KEYS + INT_KEYS + FLOAT_KEYS + BOOL_KEYS + ("notes",))
# Runtime-model columns (flattened RuntimePrediction.to_dict(), plus the end-to-end speedup) the
# batched runtime model (gnasim.cost.predict_runtime_many) computes for a chunk of rows.
RUNTIME_STRING_KEYS = ("bound", "dense_bound", "baseline")
RUNTIME_INT_KEYS = ("predicted_ctas", "masked_tile_pairs")
RUNTIME_BOOL_KEYS = ("masks_every_tile",)
RUNTIME_FLOAT_KEYS = (
    "predicted_time_ms", "predicted_dense_time_ms", "predicted_permute_ms", "predicted_total_ms",
    "predicted_speedup", "predicted_speedup_with_permute", "predicted_waves",
    "predicted_clock_fraction", "tile_time_us", "masked_tile_time_us", "mask_cost_factor",
    "time_components_ms.tensor", "time_components_ms.exp", "time_components_ms.memory",
    "time_components_ms.latency", "speedup_factors.waves", "speedup_factors.masking",
    "speedup_factors.overheads", "speedup_factors.clock", "speedup_factors.baseline",
    "speedup_factors.permute", "e2e_predicted_speedup")
RUNTIME_KEYS = frozenset(RUNTIME_STRING_KEYS + RUNTIME_INT_KEYS + RUNTIME_BOOL_KEYS
                         + RUNTIME_FLOAT_KEYS)
# Columns that identify a configuration (checked on --resume).
IDENTITY_KEYS = ("hardware", "kernel", "input_size", "window_size", "stride", "dilation",
                 "causal", "q_tile", "kv_tile", "kv_tiling", "batch", "heads", "heads_kv",
                 "head_dim", "head_dim_v", "dtype", "attention_fraction")

DEFAULT_CHUNK_ROWS = 32768
PARALLEL_MIN_ROWS = 300_000      # below this, one process is faster than starting workers
_EXACT_FLOAT = 2 ** 53           # ints below this convert to float64 exactly
_INT64_MAX = 2 ** 63 - 1
