"""Project logging: one named logger per module.

Usage:

    import logkit

    logger = logkit.get_logger(__name__)
    logger.info("started")
"""

import logging


def get_logger(name):
    return logging.getLogger(f"app.{name}")
