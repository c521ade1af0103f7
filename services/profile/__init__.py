"""Customer archives: tiers, service levels, lifecycle, managers and the contact log."""
