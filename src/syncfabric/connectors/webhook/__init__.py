"""HTTP webhooks (logistics platforms, supplier portals): signed deliveries, answered only once stored."""
