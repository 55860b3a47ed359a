import db
from orders import open_orders
from users import user_count


def daily():
    conn = db.connect("reports")
    return f"{conn['name']}: {user_count()} users, {len(open_orders())} open orders"
