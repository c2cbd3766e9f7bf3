"""Dispatch: from a plan of runs to finished results.

``plan`` (what each run lacks, from the store's ``RunState``), ``preflight`` (what would fail before it
trains), ``launch`` (jobs through submitit: in-process, local processes, a SLURM array), ``packing``
(several runs per GPU or per SLURM job), ``runlock`` (one run, one owner), ``continuation`` (a longer
run continues a finished shorter one), ``estimate`` (how long a plan takes here), ``steptimer`` (one
timed training step, shared by ``estimate`` and ``packing``) and ``local_controller`` (submitit's local
controller, quiet on Ctrl-C).

Layering: dispatch reads ``registry``, ``overrides`` and ``store``; nothing below it imports it, and it
never imports ``report``, ``bench`` or ``run``.
"""
