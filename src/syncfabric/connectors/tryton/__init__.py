"""Tryton ERP over JSON-RPC: items, suppliers, structures, stock and orders in; planned orders back as purchases and
productions."""
