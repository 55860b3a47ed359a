import logkit

logger = logkit.get_logger(__name__)


def find(items, term):
    hits = [item for item in items if term in item]
    if not hits:
        logger.warning(f"no results for {term!r}")
    return hits
