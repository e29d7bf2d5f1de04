"""Business events: the catalog of event types (schema, version, owner, topic) that plants, logistics and
suppliers publish, and that syncfabric ingests as append-only facts."""
