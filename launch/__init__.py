"""Launch tooling: TPU pods (``tpu_pod``), SLURM GPU clusters (``slurm``), several
processes on one machine (``local``) and sweeps (``sweep``).

Every launcher builds its commands with pure functions (lists of arguments, easy to test
and to print) and runs them through one thin runner (``common.Runner``) that prints each
command before running it, or only prints it with ``--dry_run``.
"""
