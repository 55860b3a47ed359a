import logkit

logger = logkit.get_logger(__name__)


def ship(order_id, weight_kg):
    if weight_kg > 30:
        logger.warning(f"order {order_id} is heavy ({weight_kg} kg)")
    logger.info(f"shipping order {order_id}")
    return f"label-{order_id}"
