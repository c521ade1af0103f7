"""arq worker of the profile service: ``keepwell worker profile``."""

from arq import cron

from services.kit.clock import BEIJING
from services.kit.worker import worker_settings
from services.profile.jobs import anonymise_old_contact_text, recompute_tiers, take_vip_snapshot

WorkerSettings = worker_settings(
    "profile",
    [recompute_tiers, take_vip_snapshot, anonymise_old_contact_text],
    cron_jobs=[
        # 03:30 on the 2nd to the 5th of each month, after the month's billing feed: a run
        # skips itself until that billing is loaded, and a run after a successful one
        # changes nothing.
        cron(recompute_tiers, day={2, 3, 4, 5}, hour=3, minute=30, unique=True),
        # The month's VIP base (拍照) just after midnight on the 1st, before the recompute
        # moves any tier; the two later runs take it if the worker was down at 00:05 and
        # otherwise find it taken.
        cron(take_vip_snapshot, day=1, hour={0, 1, 2}, minute=5, unique=True),
        # Nightly retention of the contact log's free text; named with the service, since
        # arq keys a cron run "cron:{name}:{time}" across every queue.
        cron(
            anonymise_old_contact_text,
            name="anonymise_contact_text:profile",
            hour=4,
            minute=20,
            unique=True,
        ),
    ],
)
# Cron times are Beijing times, whatever zone the server runs in.
WorkerSettings.timezone = BEIJING  # type: ignore[attr-defined]
