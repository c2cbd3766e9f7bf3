import os

# Two cores and many small tests: one intra-op thread per test process avoids oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
