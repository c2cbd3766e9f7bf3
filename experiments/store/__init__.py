"""The result store: ``results/<profile>/<run_id>/`` per run, every file written atomically.

``files`` reads, writes and checks each stored file; ``runs`` says where a run lives (``RunPaths``:
results/, work/, jobs/) and what state it is in (``RunState`` and its reasons), and collects the
store into one table. The public names of both are this package's: ``from experiments import store``.
"""
from experiments.store.files import *  # noqa: F401,F403
from experiments.store.files import __all__ as _files_all
from experiments.store.runs import *  # noqa: F401,F403
from experiments.store.runs import __all__ as _runs_all

__all__ = [*_files_all, *_runs_all]
