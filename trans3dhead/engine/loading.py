"""The training loader: workers, pinned memory and prefetch chosen from the machine.

Persistent workers hold their own copy of the dataset, so ``dataset.set_epoch`` in the main process
would not reach them; the sampler therefore hands each worker ``(epoch, index)`` and the item is
cropped for that epoch. Crops stay a pure function of (seed, epoch, index) whatever the worker count.
"""
from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

MAX_AUTO_WORKERS = 8


class EpochItems(Dataset):
    """``dataset[(epoch, index)]``: the item as ``dataset.set_epoch(epoch)`` would crop it."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        if self.dataset.epoch != epoch:
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


class EpochSampler(Sampler):
    """A shuffle that is a pure function of ``shuffle_seed`` (set per epoch), with the epoch attached to
    each index. It reproduces ``DataLoader(shuffle=True, generator=g)`` with ``g`` seeded per epoch (the
    loader's worker-seed draw, then one permutation), which a persistent loader would not: it draws its
    worker seed only once, so from the second epoch on its permutations would change."""

    def __init__(self, size: int):
        self.size, self.epoch, self.shuffle_seed = size, 0, 0

    def set_epoch(self, epoch: int, shuffle_seed: int) -> None:
        self.epoch, self.shuffle_seed = epoch, shuffle_seed

    def __iter__(self):
        generator = torch.Generator()
        generator.manual_seed(self.shuffle_seed)
        torch.empty((), dtype=torch.int64).random_(generator=generator)     # the loader's worker-seed draw
        epoch = self.epoch
        return ((epoch, index) for index in torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, as taskset or a cpuset sets it); else
    ``os.cpu_count()`` where the OS has no affinity call."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:        # not on every OS
        return os.cpu_count() or 1


def auto_workers(device: torch.device) -> int:
    """On CPU the model's own threads use every core given to the job, and on the cpu profile the data
    (decoded once, cropped from RAM) is a few percent of a step: no workers. On a GPU the host must keep
    the device fed: one worker per CPU thread the job was given, less one for the training process."""
    if device.type != "cuda":
        return 0
    return max(1, min(MAX_AUTO_WORKERS, torch.get_num_threads() - 1, available_cores() - 1))


def loader_options(num_workers: int, device: torch.device) -> dict:
    """DataLoader keyword arguments for ``data.num_workers`` (-1 = auto) on ``device``."""
    workers = auto_workers(device) if num_workers < 0 else num_workers
    options = {"num_workers": workers, "pin_memory": device.type == "cuda"}
    if workers:
        options.update(persistent_workers=True, prefetch_factor=4)
    return options


def train_loader(dataset: Dataset, batch_size: int, options: dict) -> DataLoader:
    """Shuffled (``loader.sampler.set_epoch``), drop-last batches of ``(epoch, index)`` items. The loader
    gets a generator of its own so that its worker-seed draw leaves the global RNG (dropout) alone."""
    return DataLoader(EpochItems(dataset), batch_size=batch_size, sampler=EpochSampler(len(dataset)), drop_last=True,
                      generator=torch.Generator().manual_seed(0), **options)
