import log


def ship(order_id, weight_kg):
    if weight_kg > 30:
        log.log_msg("WARNING", f"order {order_id} is heavy ({weight_kg} kg)")
    log.log_msg("INFO", f"shipping order {order_id}")
    return f"label-{order_id}"
