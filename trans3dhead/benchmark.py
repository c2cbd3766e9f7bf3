"""The former name of :mod:`trans3dhead.scoring`, kept so that ``python -m trans3dhead.benchmark make-gt|score``
and ``from trans3dhead import benchmark`` go on working; new code names ``trans3dhead.scoring``."""
from trans3dhead.scoring import DAD_METRICS, InputFileError, ScoreResult, main, make_gt, score, score_item

__all__ = ["DAD_METRICS", "InputFileError", "ScoreResult", "main", "make_gt", "score", "score_item"]

if __name__ == "__main__":
    raise SystemExit(main())
