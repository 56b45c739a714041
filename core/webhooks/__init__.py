"""Webhooks: the contracts, signing, address vetting and the outbox, shared by api and worker.

`contracts` imports only the standard library, so the delivery workflow can load it.
"""
