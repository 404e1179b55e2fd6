"""The sweep's resume identity columns and chunking constants."""

from gnasim.record import IDENTITY_KEYS

__all__ = ["IDENTITY_KEYS", "DEFAULT_CHUNK_ROWS", "PARALLEL_MIN_ROWS"]

DEFAULT_CHUNK_ROWS = 32768
PARALLEL_MIN_ROWS = 300_000      # below this, one process is faster than starting workers
FLAT_CHUNK_ROWS = 256            # rows of flat tiling (one exact plan each) per chunk
EXACT_FLOAT = 2 ** 53           # ints below this convert to float64 exactly
INT64_MAX = 2 ** 63 - 1
