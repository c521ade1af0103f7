"""Care campaigns and automatic care; SMS sent by arq workers."""
