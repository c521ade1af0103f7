"""Sending a campaign: claim a batch, apply the send-time rules, call the provider, record.

Exactly once, even across crashes, because PostgreSQL holds every recipient's state:

1. One transaction claims due rows (``FOR UPDATE SKIP LOCKED``, so concurrent jobs never
   share a row), decides per row (send, hold for quiet hours, suppress with a reason) and
   marks the rows to send ``sending`` under a claim token and a lease. Their idempotency
   keys were written when the audience was materialised, before any provider call.
2. The provider is called outside any transaction.
3. A second transaction records each result, but only on rows still held under the token.

A worker killed between 1 and 3 leaves rows ``sending`` with an expired lease, and so
does a send whose outcome is unknown (a timeout). The re-driver (a cron job on every
worker, independent of arq re-running the killed job) asks the provider which of those
sends it accepted: those become ``sent``; the rest go back to ``queued`` once the provider's
"not found" is conclusive (``lookup_settles_seconds`` after the attempt), and are asked
about again then if it is not yet. A send the provider could not be asked about stays
``sending`` for the next sweep.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from arq.connections import ArqRedis
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from services.care import repository
from services.care.config import CareSettings
from services.care.providers.aliyun import AliyunSmsConfig, AliyunSmsProvider
from services.care.providers.base import (
    SendResult,
    SendStatus,
    SentQuery,
    SmsMessage,
    SmsProvider,
)
from services.care.providers.sandbox import SandboxSmsProvider
from services.care.ratelimit import TokenBucket
from services.care.suppression import Hold, Send, Suppress, decide, policy_for
from services.kit import clock

logger = logging.getLogger("keepwell.care.dispatch")

DISPATCH_JOB = "dispatch_campaign"
DEADLOCK = "40P01"

OpenSession = Callable[[], AbstractAsyncContextManager[AsyncSession]]


def build_provider(care: CareSettings, http: httpx.AsyncClient) -> SmsProvider:
    if care.sms_provider == "aliyun":
        return AliyunSmsProvider(
            AliyunSmsConfig(
                access_key_id=care.aliyun_access_key_id,
                access_key_secret=care.aliyun_access_key_secret,
                sign_name=care.aliyun_sign_name,
                endpoint=care.aliyun_endpoint,
                receipt_token=care.receipt_token,
                uplink_token=care.uplink_secret,
                lookup_settles_seconds=care.aliyun_lookup_settles_seconds,
            ),
            http,
        )
    return SandboxSmsProvider(
        care.sandbox_url,
        http,
        receipt_token=care.receipt_token.get_secret_value(),
        uplink_token=care.uplink_secret.get_secret_value(),
        max_batch_size=max(care.batch_size, 1),
        # Well inside the lease, so a call never outlives its claim.
        timeout_seconds=min(10.0, care.lease_seconds / 3),
    )


async def nudge(redis: ArqRedis, campaign_id: uuid.UUID, jobs: int = 1) -> None:
    """Wake dispatch jobs for a campaign. A nudge may be lost; the re-driver finds any
    campaign with due work and no recent progress."""
    for _ in range(jobs):
        await redis.enqueue_job(DISPATCH_JOB, str(campaign_id))


@dataclass(frozen=True)
class BatchOutcome:
    claimed: int
    sent: int


def backoff(attempts: int, base: float, floor: float | None) -> float:
    delay: float = min(3600.0, base * 2 ** max(attempts - 1, 0)) * random.uniform(0.8, 1.2)
    return max(delay, floor or 0.0)


class Dispatcher:
    def __init__(
        self,
        open_session: OpenSession,
        redis: ArqRedis,
        provider: SmsProvider,
        care: CareSettings,
        clock: Callable[[], datetime] = clock.now,
    ) -> None:
        self.clock = clock
        """When rules are judged (quiet hours) and what is due; tests move it."""
        self.open_session = open_session
        self.redis = redis
        self.provider = provider
        self.care = care
        self._touched: dict[uuid.UUID, float] = {}
        self.bucket = TokenBucket(redis, f"care:rate:{provider.name}", care.rate_per_second)

    @property
    def batch_size(self) -> int:
        size = min(self.care.batch_size, self.provider.max_batch_size)
        if self.care.rate_per_second > 0:
            # Keep one batch's tokens within a few seconds, so a claim's lease is never
            # spent waiting on the bucket.
            size = min(size, max(1, int(self.care.rate_per_second * 5)))
        return size

    def _slot_keys(self, campaign_id: uuid.UUID) -> list[str]:
        return [
            f"care:dispatch:{campaign_id}:slot:{i}" for i in range(self.care.dispatch_concurrency)
        ]

    async def _take_slot(self, campaign_id: uuid.UUID) -> str | None:
        """One of the campaign's ``dispatch_concurrency`` slots, held while the job lives.

        A slot expires one lease after its job stops renewing it, so the re-driver can tell
        how many jobs are really working on a campaign and replace a dead worker's jobs
        (arq itself would only re-run them after its in-progress key expires).
        """
        ttl = max(1, int(self.care.lease_seconds))
        for key in self._slot_keys(campaign_id):
            if await self.redis.set(key, "1", nx=True, ex=ttl):
                return key
        return None

    async def run(self, campaign_id: uuid.UUID, seconds: float) -> str:
        """Send due recipients for up to ``seconds``. Returns why it stopped: ``done``,
        ``stopped`` (paused/cancelled), ``idle`` (work left but not due), ``handover``, or
        ``enough`` (the campaign already has its number of jobs)."""
        slot = await self._take_slot(campaign_id)
        if slot is None:
            return "enough"
        started = time.monotonic()
        try:
            while True:
                try:
                    outcome = await self.process_batch(campaign_id)
                except DBAPIError as exc:
                    # The cap's customer locks can meet the read-model consumer's updates
                    # in the other order; PostgreSQL then rolls this batch back whole, so
                    # taking it again is safe.
                    if getattr(exc.orig, "sqlstate", None) != DEADLOCK:
                        raise
                    logger.warning("dispatch batch of %s hit a deadlock; retrying", campaign_id)
                    continue
                if outcome is None:
                    return "stopped"
                if outcome.claimed == 0:
                    async with self.open_session() as session:
                        done = await repository.complete_if_done(session, campaign_id)
                    return "done" if done else "idle"
                if time.monotonic() - started > seconds:
                    return "handover"
                await self.redis.expire(slot, max(1, int(self.care.lease_seconds)))
        finally:
            await self.redis.delete(slot)

    async def process_batch(self, campaign_id: uuid.UUID) -> BatchOutcome | None:
        care = self.care
        token = uuid.uuid4()
        async with self.open_session() as session:
            campaign = await repository.get_campaign(session, campaign_id)
            if campaign is None or campaign.status != "dispatching":
                return None
            now = self.clock()
            rows = await repository.claim_due(session, campaign_id, self.batch_size, now)
            if not rows:
                return BatchOutcome(0, 0)
            policy = policy_for(campaign, care)
            counts: dict[str, int] = {}
            if not policy.cap_exempt:
                msisdns = [r["msisdn"] for r in rows]
                # Until this transaction ends, no other campaign can count or send to
                # these customers: without it two campaigns sending at once would each
                # see the other's message as not yet sent and both pass the cap.
                await repository.lock_customers(session, msisdns)
                counts = await repository.sent_in_window(
                    session, msisdns, care.frequency_window_days
                )
            decisions: list[tuple[int, str, str | None, str | None, str | None, datetime | None]]
            decisions = []
            to_send: list[tuple[int, SmsMessage]] = []
            sendable: dict[int, Send] = {}
            for row in rows:
                decision = decide(
                    msisdn=row["msisdn"],
                    customer=row if row["customer_msisdn"] is not None else None,
                    template=campaign.template,
                    taboo_tags=list(campaign.taboo_tags),
                    policy=policy,
                    now=now,
                    sent_in_window=counts.get(row["msisdn"], 0),
                )
                if isinstance(decision, Send):
                    sendable[row["id"]] = decision
                elif isinstance(decision, Hold):
                    decisions.append(
                        (row["id"], "held", None, decision.reason, None, decision.until)
                    )
                elif isinstance(decision, Suppress):
                    decisions.append(
                        (row["id"], "suppressed", None, decision.reason, decision.detail, None)
                    )
            ours: set[str] | None = None
            if campaign.occasion:
                ours = await repository.claim_greetings(
                    session,
                    campaign.occasion,
                    {r["msisdn"]: r["id"] for r in rows if r["id"] in sendable},
                )
            for row in rows:
                send = sendable.get(row["id"])
                if send is None:
                    continue
                if ours is not None and row["msisdn"] not in ours:
                    decisions.append(
                        (row["id"], "suppressed", None, "duplicate_greeting", None, None)
                    )
                    continue
                decisions.append((row["id"], "sending", send.text, None, None, None))
                to_send.append(
                    (
                        row["id"],
                        SmsMessage(
                            idempotency_key=row["idempotency_key"],
                            phone=row["msisdn"],
                            text=send.text,
                            template_code=campaign.template_code,
                        ),
                    )
                )
            await repository.apply_decisions(
                session,
                decisions,
                token=token,
                lease_seconds=care.lease_seconds,
                provider=self.provider.name,
            )
            if time.monotonic() - self._touched.get(campaign_id, 0.0) > 1.0:
                # At most once a second: every job of a campaign would queue on this row.
                await repository.touch_campaign(session, campaign_id)
                self._touched[campaign_id] = time.monotonic()
        claimed_at = time.monotonic()
        if not to_send:
            return BatchOutcome(len(rows), 0)

        await self.bucket.acquire(len(to_send))
        if time.monotonic() - claimed_at > care.lease_seconds / 2:
            # Too late to be sure the re-driver has not settled these rows: give them back
            # untouched rather than risk a second copy.
            await self._release(token, [rid for rid, _ in to_send])
            return BatchOutcome(len(rows), 0)
        results: list[SendResult] = []
        messages = [m for _, m in to_send]
        for start in range(0, len(messages), self.provider.max_batch_size):
            results += await self.provider.send_batch(
                messages[start : start + self.provider.max_batch_size]
            )
        attempts = {r["id"]: r["attempts"] + 1 for r in rows}
        sent = await self._record(campaign_id, token, to_send, results, attempts)
        return BatchOutcome(len(rows), sent)

    async def _release(self, token: uuid.UUID, ids: list[int]) -> None:
        now = self.clock()
        async with self.open_session() as session:
            await repository.record_results(
                session, token, [(i, "queued", None, None, None, now, True) for i in ids]
            )

    async def _record(
        self,
        campaign_id: uuid.UUID,
        token: uuid.UUID,
        to_send: list[tuple[int, SmsMessage]],
        results: list[SendResult],
        attempts_of: dict[int, int],
    ) -> int:
        care = self.care
        now = self.clock()
        rows: list[tuple[int, str, str | None, str | None, str | None, datetime | None, bool]]
        rows = []
        failed: list[int] = []
        account_problem: SendResult | None = None
        for (rid, _), result in zip(to_send, results, strict=True):
            if result.status is SendStatus.ACCEPTED:
                rows.append((rid, "sent", result.provider_message_id, None, None, None, False))
            elif result.status is SendStatus.FAILED_PERMANENT:
                rows.append(
                    (rid, "failed", None, result.error_code, result.error_message, None, False)
                )
                failed.append(rid)
            elif result.outcome_unknown:
                # It may have gone out: let the re-driver ask before anything is resent.
                lease = clock.now() + timedelta(seconds=care.retry_base_seconds)
                rows.append(
                    (rid, "sending", None, result.error_code, result.error_message, lease, False)
                )
            elif result.account_level:
                account_problem = result
                due = now + timedelta(seconds=max(result.retry_after_seconds or 60.0, 60.0))
                rows.append(
                    (rid, "queued", None, result.error_code, result.error_message, due, True)
                )
            else:
                attempts = attempts_of[rid]
                if attempts >= care.max_attempts:
                    rows.append(
                        (rid, "failed", None, result.error_code, result.error_message, None, False)
                    )
                    failed.append(rid)
                else:
                    delay = backoff(attempts, care.retry_base_seconds, result.retry_after_seconds)
                    rows.append(
                        (
                            rid,
                            "queued",
                            None,
                            result.error_code,
                            result.error_message,
                            now + timedelta(seconds=delay),
                            False,
                        )
                    )
        async with self.open_session() as session:
            changed = await repository.record_results(session, token, rows)
            await repository.forget_greetings(session, [i for i in failed if i in changed])
            if account_problem is not None:
                await repository.pause_campaign(
                    session,
                    campaign_id,
                    f"短信账户问题（{account_problem.error_code}）：{account_problem.error_message}",
                )
        lost = len(rows) - len(changed)
        if lost:
            logger.error("%d results arrived after their lease was settled elsewhere", lost)
        return sum(1 for r in rows if r[1] == "sent" and r[0] in changed)

    # ---- re-driving ----------------------------------------------------------------

    async def reconcile(self) -> int:
        """Settle sends of unknown outcome (lease expired while ``sending``) by asking the
        provider. Returns how many were settled."""
        settles = timedelta(seconds=self.provider.lookup_settles_seconds)
        settled = 0
        while True:
            async with self.open_session() as session:
                stale = await repository.stale_sending(session, self.provider.name, 1000)
                if not stale:
                    return settled
                answer = await self.provider.lookup(
                    [
                        SentQuery(
                            idempotency_key=r["idempotency_key"],
                            phone=r["msisdn"],
                            attempted_at=r["sent_at"],
                        )
                        for r in stale
                    ]
                )
                now = clock.now()
                sent: dict[int, str | None] = {}
                requeue: list[int] = []
                ask_later: dict[int, datetime] = {}
                for r in stale:
                    key = r["idempotency_key"]
                    if key in answer.found:
                        sent[r["id"]] = answer.found[key]
                    elif key in answer.unanswered:
                        continue  # its lease stays expired: the next sweep asks again
                    elif r["sent_at"] + settles <= now:
                        requeue.append(r["id"])
                    else:
                        ask_later[r["id"]] = r["sent_at"] + settles
                if answer.unanswered:
                    logger.warning(
                        "%s could not be asked about %d sends of unknown outcome",
                        self.provider.name,
                        len(answer.unanswered),
                    )
                await repository.settle_stale(session, sent, requeue, ask_later)
                settled += len(sent) + len(requeue)
                if len(stale) < 1000 or not (sent or requeue):
                    return settled

    async def redrive(self) -> dict[str, Any]:
        async with self.open_session() as session:
            started = await repository.due_approved_campaigns(session)
        reconciled = await self.reconcile()
        async with self.open_session() as session:
            due = await repository.campaigns_with_due_work(session)
            finished = [
                c
                for c in await repository.finished_candidates(session)
                if await repository.complete_if_done(session, c)
            ]
        nudged = 0
        for campaign_id in {*started, *due}:
            missing = self.care.dispatch_concurrency - int(
                await self.redis.exists(*self._slot_keys(campaign_id))
            )
            # One nudge per stall period: jobs queued behind busy or restarting workers
            # hold no slot yet, and must not be multiplied every sweep.
            marker = f"care:dispatch:{campaign_id}:nudged"
            ttl = max(1, int(self.care.stall_seconds))
            if missing > 0 and await self.redis.set(marker, "1", nx=True, ex=ttl):
                await nudge(self.redis, campaign_id, missing)
                nudged += 1
        return {
            "started": len(started),
            "reconciled": reconciled,
            "nudged": nudged,
            "completed": len(finished),
        }
