"""bench ops' scraper reads a real service's /metrics with the bearer token, once a second,
and a scrape it is refused fails the bench instead of being timed."""

from __future__ import annotations

import time

import pytest

from bench.ops import TOKEN, Scraper
from tests.servers import KeyServiceFactory

pytestmark = pytest.mark.integration


def test_the_scraper_reads_metrics_once_a_second(keyservice_factory: KeyServiceFactory) -> None:
    service = keyservice_factory(extra_env={"CAREVAULT_METRICS_TOKEN": TOKEN})
    with Scraper(service.base_url) as scraper:
        while len(scraper.took) < 2:
            time.sleep(0.05)
    assert scraper.size > 0
    refused = keyservice_factory(extra_env={"CAREVAULT_METRICS_TOKEN": "x" * 32})
    failing = Scraper(refused.base_url)
    with pytest.raises(Exception, match="401"):
        failing._run()
