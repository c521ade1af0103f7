"""Staff channels: the teams' WeCom (企业微信) and DingTalk (钉钉) group robots, which get the
same notices as the app's live updates (warnings raised, SLA breaches, escalations) for
people who are not in the app.

``queue_notice`` queues a notice for each active channel of its team in the caller's
transaction; ``ChannelSender`` (one per gateway process) sends what is due, with retries
and a per-team rate limit shared by every process; ``manage`` is what the
``keepwell gateway channels`` commands do.
"""

from gateway.channels.queue import Notice, queue_notice
from gateway.channels.sender import ChannelPolicy, ChannelSender

__all__ = ["ChannelPolicy", "ChannelSender", "Notice", "queue_notice"]
