"""Dramatiq middleware: one database connection per message."""

from __future__ import annotations

import dramatiq

from service import db


class DatabaseConnection(dramatiq.Middleware):
    """Opens the database connection a message needs and closes it after.

    Worker threads live for the whole process: without this they would each
    hold a connection for ever.
    """

    def before_process_message(self, broker, message):
        db.database.connect(reuse_if_open=True)

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if not db.database.is_closed():
            db.database.close()

    after_skip_message = after_process_message
