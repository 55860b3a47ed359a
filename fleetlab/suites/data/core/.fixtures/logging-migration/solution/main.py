import billing
import logkit
import search
import shipping
import users

logger = logkit.get_logger(__name__)


def main():
    logger.info("nightly run started")
    total = billing.charge([120, -5, 30])
    users.deactivate([7, 9])
    label = shipping.ship("A-17", 42)
    hits = search.find(["apple", "apricot"], "kiwi")
    logger.info("nightly run finished")
    return f"{total} {label} {len(hits)}"


if __name__ == "__main__":
    print(main())
