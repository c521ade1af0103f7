"""The shared kernel: mechanisms every Keepwell service needs, never domain rules."""
