"""A records store that refuses writes, made so by the database itself (a trigger), for the
tests of what a refused write does to an order."""

from sqlalchemy.ext.asyncio import AsyncEngine


async def refuse_events_from(engine: AsyncEngine, seq: int) -> None:
    """Make the store itself refuse events from `seq` on, as a column too small for a value
    would: a trigger on the event log (dropped by `accept_events`)."""
    async with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            await connection.exec_driver_sql(
                f"CREATE TRIGGER refuse_events BEFORE INSERT ON order_events WHEN NEW.seq >= {seq}"
                " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
            return
        await connection.exec_driver_sql(
            "CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation'; END $$"
        )
        await connection.exec_driver_sql(
            "CREATE TRIGGER refuse_events BEFORE INSERT ON order_events FOR EACH ROW"
            f" WHEN (NEW.seq >= {seq}) EXECUTE FUNCTION refuse_event()"
        )


async def accept_events(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        on_table = "" if engine.dialect.name == "sqlite" else " ON order_events"
        await connection.exec_driver_sql(f"DROP TRIGGER refuse_events{on_table}")
