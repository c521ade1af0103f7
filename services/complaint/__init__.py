"""Complaint tickets with SLAs, the 4-step handling flow, escalation and compensation."""
