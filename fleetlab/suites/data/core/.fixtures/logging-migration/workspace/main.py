import billing
import log
import search
import shipping
import users


def main():
    log.log_msg("INFO", "nightly run started")
    total = billing.charge([120, -5, 30])
    users.deactivate([7, 9])
    label = shipping.ship("A-17", 42)
    hits = search.find(["apple", "apricot"], "kiwi")
    log.log_msg("INFO", "nightly run finished")
    return f"{total} {label} {len(hits)}"


if __name__ == "__main__":
    print(main())
