"""Ingestion: Segment-compatible events stored durably per tenant, then queued for processing.

``schemas`` describes the accepted events, ``service.accept`` validates and stores them, and the
HTTP side lives in ``web/routes/ingest.py``.
"""
