"""Churn warnings from daily usage, contracts and complaints, with follow-up and outcomes."""
