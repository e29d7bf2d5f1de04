"""Any database SQLAlchemy speaks: tables or queries, read in keyset pages, in full or by a watermark column."""
