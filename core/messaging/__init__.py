"""Messaging: the outbox / contact history, dispatch through channel plugins, statuses
and tracking, the transactional API."""
