import pytest
from sqlalchemy.ext.asyncio import AsyncEngine


@pytest.fixture
def engine(records_store: AsyncEngine) -> AsyncEngine:
    """A fresh records store on SQLite and on PostgreSQL."""
    return records_store
