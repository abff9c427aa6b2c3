"""Reading pages: the next page is requested while the caller works on the current one, leaving early
cancels it, and a caller-kept record of ids (the state's scratch table) finds duplicates."""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing

from replicator.scim.client import ScimClient
from replicator.scim.latency import Latencies
from replicator.scim.paging import ReadReport
from replicator.testing import Faults, Quirks, serve
from replicator.testing.protocol import GROUP_SCHEMA, USER_SCHEMA


def _users(server, count: int) -> None:  # type: ignore[no-untyped-def]
    for index in range(count):
        server.add_user({"schemas": [USER_SCHEMA], "userName": f"user{index:03d}"})


def _list_requests(server) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for method, path in server.request_log if method == "GET" and path.endswith("/Users"))


async def test_the_next_page_is_requested_while_the_caller_works_on_this_one() -> None:
    """While the caller holds page 1, the request for page 2 reaches the server."""
    async with serve() as (server, url):
        _users(server, 25)
        async with ScimClient(url) as client:
            report = ReadReport("User")
            pages = client.iter_pages("User", report, page_size=10, cursor=False)
            async with aclosing(pages):
                first = await anext(pages)
                for _ in range(100):
                    if _list_requests(server) == 2:
                        break
                    await asyncio.sleep(0.01)
                assert len(first) == 10 and _list_requests(server) == 2
                rest = [user async for page in pages for user in page]
    assert len(rest) == 15 and report.complete and _list_requests(server) == 3


async def test_leaving_early_cancels_the_page_requested_ahead() -> None:
    """Closing the iterator after one page cancels the slow request for page 2 instead of waiting."""
    async with serve(faults=Faults(latency=5.0)) as (server, url):
        _users(server, 25)
        async with ScimClient(url, timeout=30) as client:
            server.faults.latency = 0.0
            report = ReadReport("User")
            pages = client.iter_pages("User", report, page_size=10, cursor=False)
            first = await anext(pages)
            server.faults.latency = 5.0
            await asyncio.sleep(0.05)  # page 2 is on its way
            loop = asyncio.get_running_loop()
            started = loop.time()
            await pages.aclose()
            assert loop.time() - started < 1.0
    assert len(first) == 10 and not report.finished and not report.complete


async def test_a_caller_kept_record_of_ids_finds_duplicates_across_pages() -> None:
    """With `read_before`, an id that the caller's record already holds is dropped and counted."""
    record: set[str] = set()

    async def read_before(ids: list[str]) -> set[str]:
        earlier = record & set(ids)
        record.update(ids)
        return earlier

    async with serve() as (server, url):
        _users(server, 5)
        known = next(iter(server.users))
        record.add(known)
        async with ScimClient(url) as client:
            report = ReadReport("User")
            read = [rid async for page in client.iter_pages("User", report, page_size=2, with_raw=True,
                                                            read_before=read_before) for rid, _ in page]
    assert known not in read and len(read) == 4 and report.duplicates == 1


async def test_pages_of_large_resources_are_sized_by_bytes() -> None:
    """With `max_page_bytes`, the first page asks for one resource and each next page for as many as
    the last page's average size fits (growing at most fourfold, and dividing the number read so far),
    so two large groups come alone."""
    async with serve() as (server, url):
        _users(server, 1000)
        everyone = [{"value": user_id, "type": "User"} for user_id in server.users]
        for index in range(20):
            members = everyone if index < 2 else everyone[:1]
            server.add_group({"schemas": [GROUP_SCHEMA], "displayName": f"group{index:02d}", "members": members})
        async with ScimClient(url) as client:
            report = ReadReport("Group")
            sizes = [len(page) async for page in client.iter_pages("Group", report, page_size=50, cursor=False,
                                                                   max_page_bytes=100_000)]
            assert len(str(everyone)) > 50_000  # a large group is over half of max_page_bytes
            plain = [len(page) async for page in client.iter_pages("Group", ReadReport("Group"), page_size=50,
                                                                   cursor=False)]
    assert sizes == [1, 1, 1, 3, 6, 8] and report.complete
    assert plain == [20]


async def test_byte_sized_pages_stay_aligned_for_a_server_that_pages_by_page_number() -> None:
    """Some servers list page (startIndex-1) // count, not from startIndex: the count of a byte-sized page
    divides the number read so far, so each page starts where the last one ended and none is skipped."""
    async with serve(quirks=Quirks(pages_by_number=True)) as (server, url):
        _users(server, 1000)
        everyone = [{"value": user_id, "type": "User"} for user_id in server.users]
        for index in range(40):
            members = everyone if index in (0, 1, 7) else everyone[:1]
            server.add_group({"schemas": [GROUP_SCHEMA], "displayName": f"group{index:02d}", "members": members})
        async with ScimClient(url) as client:
            report = ReadReport("Group")
            names = [json.loads(bytes(raw))["displayName"]
                     async for page in client.iter_pages("Group", report, page_size=50, cursor=False,
                                                         with_raw=True, max_page_bytes=100_000)
                     for _, raw in page]
    assert names == [f"group{index:02d}" for index in range(40)]
    assert report.complete and report.duplicates == 0


def test_latencies_keep_a_bounded_uniform_sample_and_tell_an_observer_every_one() -> None:
    """Past its size the sample stops growing but keeps later durations too; the observer sees all."""
    observed: list[float] = []
    latencies = Latencies(keep=100)
    latencies.observer = observed.append
    for index in range(10_000):
        latencies.add(float(index))
    assert latencies.count == 10_000 and len(latencies.sample) == 100 and len(observed) == 10_000
    assert max(latencies.sample) > 5_000  # not just the first hundred
