"""Where a secret would sit in the clear: every text column of every table, searched."""

from __future__ import annotations

from sqlalchemy import LargeBinary, Text, cast, inspect, literal, select
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table


def text_columns_holding(rt, needle: str) -> list[str]:
    """``table.column`` of every text column (binary ones excepted) where ``needle`` stands."""
    found = []
    with rt.db.session() as session:
        inspector = inspect(session.connection())
        for table in inspector.get_table_names():
            for column in inspector.get_columns(table):
                if isinstance(column["type"], LargeBinary):
                    continue
                query = (
                    select(literal(1))
                    .select_from(sql_table(table))
                    .where(cast(sql_column(column["name"]), Text).like(f"%{needle}%"))
                    .limit(1)
                )
                if session.execute(query).first():
                    found.append(f"{table}.{column['name']}")
    return found
