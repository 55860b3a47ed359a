import log


def find(items, term):
    hits = [item for item in items if term in item]
    if not hits:
        log.log_msg("WARNING", f"no results for {term!r}")
    return hits
