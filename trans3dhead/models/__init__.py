"""Trans3DHead and the DAD-3DNet baseline; ``build_model`` turns a ModelConfig into either."""
from trans3dhead.models.build import build_model

__all__ = ["build_model"]
