import logkit

logger = logkit.get_logger(__name__)


def deactivate(user_ids):
    for user_id in user_ids:
        logger.info(f"deactivating user {user_id}")
    return len(user_ids)
