"""Paged JSON HTTP APIs: offset/limit, cursor-token and Link-header paging, net-change by a watermark parameter."""
