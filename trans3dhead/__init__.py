"""Trans3DHead re-implementation: FLAME decoding, data, models, losses, metrics, training."""
__version__ = "0.1.0"
