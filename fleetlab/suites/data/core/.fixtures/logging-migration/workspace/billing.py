import log


def charge(invoices):
    log.log_msg("INFO", f"charging {len(invoices)} invoices")
    failed = [amount for amount in invoices if amount < 0]
    if failed:
        log.log_msg("ERROR", f"{len(failed)} invoices have negative amounts")
    return sum(amount for amount in invoices if amount >= 0)
