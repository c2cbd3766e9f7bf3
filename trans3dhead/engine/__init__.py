"""Training and evaluation: ``train(cfg, workdir)`` and ``evaluate(checkpoint, dataset, split)``."""
from trans3dhead.engine.checkpoint import CheckpointError
from trans3dhead.engine.evaluate import EvalResult, evaluate
from trans3dhead.engine.train import NonFiniteLossError, train

__all__ = ["CheckpointError", "EvalResult", "NonFiniteLossError", "evaluate", "train"]
