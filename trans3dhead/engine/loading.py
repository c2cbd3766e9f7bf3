"""The training loader: workers, pinned memory and prefetch chosen from the machine.

Persistent workers hold their own copy of the dataset, so ``dataset.set_epoch`` in the main process
would not reach them; the sampler therefore hands each worker ``(epoch, index)`` and the item is
cropped for that epoch. Crops stay a pure function of (seed, epoch, index) whatever the worker count.
"""
from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler

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
    """Wraps a sampler so that its indices carry the epoch they were drawn for."""

    def __init__(self, sampler: Sampler):
        self.sampler, self.epoch = sampler, 0

    def __iter__(self):
        return ((self.epoch, index) for index in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


def available_cores() -> int:
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


def train_loader(dataset: Dataset, batch_size: int, shuffle: torch.Generator, options: dict) -> DataLoader:
    """Shuffled, drop-last batches; the same generator drives the loader's seed draw and the sampler,
    in the same order as ``DataLoader(shuffle=True, generator=shuffle)``, so the batches are identical."""
    sampler = EpochSampler(RandomSampler(dataset, generator=shuffle))
    return DataLoader(EpochItems(dataset), batch_size=batch_size, sampler=sampler, drop_last=True,
                      generator=shuffle, **options)
