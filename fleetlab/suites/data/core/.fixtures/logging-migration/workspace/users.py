from log import log_msg


def deactivate(user_ids):
    for user_id in user_ids:
        log_msg("INFO", f"deactivating user {user_id}")
    return len(user_ids)
