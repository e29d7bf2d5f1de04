"""Flows move records: inbound (system → canonical store) and outbound (store → system)."""
