"""Processes that parse what strangers wrote, each with a deadline and a memory limit.

`pool.ParserPool` starts them and sends them work; `worker` is what runs in each. What a
process runs is named by a string ("module:function", `pool.PARSE` by default: inbound mail's
parser), never imported here: this package knows nothing of mail, so the lowest layer can hold
it and `Context` can carry a pool for every layer above.

This file imports nothing: a parsing process imports only `worker`, so that what the pool needs
(asyncio, logging) does not count against the process's memory limit.
"""
