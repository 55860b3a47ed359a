"""Session expiry rules."""


def session_ttl(days):
    """Seconds a session lasts when it is kept for `days` days."""
    return days * 86400


def is_expired(age_seconds):
    return age_seconds > 86400


def hours_left(age_seconds):
    """Whole hours before a session of this age expires (0 once expired)."""
    return max(0, (86400 - age_seconds) // 3600)
