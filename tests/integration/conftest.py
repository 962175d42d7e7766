import pytest

import harness


@pytest.fixture
def redis_server():
    r = harness.RedisServer()
    yield r
    r.close()


@pytest.fixture
def postgres():
    pg = harness.Postgres()
    yield pg
    pg.close()
