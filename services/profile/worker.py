"""arq worker of the profile service: ``keepwell worker profile``."""

from arq import cron

from services.kit.worker import worker_settings
from services.profile.jobs import recompute_tiers

# 03:30 China time (19:30 UTC the day before) on the 2nd to the 5th of each month, after
# the month's billing feed: a run skips itself until that billing is loaded, and a run
# after a successful one changes nothing.
WorkerSettings = worker_settings(
    "profile",
    [recompute_tiers],
    cron_jobs=[
        cron(recompute_tiers, day={1, 2, 3, 4}, hour=19, minute=30, unique=True),
    ],
)
