"""Session expiry rules."""

SECONDS_PER_DAY = 86400


def session_ttl(days):
    """Seconds a session lasts when it is kept for `days` days."""
    return days * SECONDS_PER_DAY


def is_expired(age_seconds):
    return age_seconds > SECONDS_PER_DAY


def hours_left(age_seconds):
    """Whole hours before a session of this age expires (0 once expired)."""
    return max(0, (SECONDS_PER_DAY - age_seconds) // 3600)
