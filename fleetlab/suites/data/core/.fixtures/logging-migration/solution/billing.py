import logkit

logger = logkit.get_logger(__name__)


def charge(invoices):
    logger.info(f"charging {len(invoices)} invoices")
    failed = [amount for amount in invoices if amount < 0]
    if failed:
        logger.error(f"{len(failed)} invoices have negative amounts")
    return sum(amount for amount in invoices if amount >= 0)
